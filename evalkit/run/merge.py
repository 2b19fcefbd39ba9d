"""``evalkit merge``: join shard runs into one run directory that reports as if the suite had run
whole. Every per-case file is carried (results, the judge's grades, the baseline model's answers
and grades, the pairwise verdicts); the summary, gates and reports are computed afresh."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from evalkit.errors import RunError, UsageError
from evalkit.gates import check_tasks, parse_gates
from evalkit.report.junit import check_junit_cases
from evalkit.run.finalize import finalize
from evalkit.shard import merge_runs, shard_order
from evalkit.store import PER_CASE_FILES, RESULTS, Run, RunDir, check_out_dir, load_run, new_run_id


def merge_shards(paths: Sequence[str | Path], *, out: str | Path, gates: Sequence[str] = (),
                 baseline: Run | str | Path | None = None, junit_cases: str | None = None,
                 allow_incomplete: bool = False) -> Run:
    """Join the runs in ``paths`` (the shards of one ``--shard I/N`` matrix, or runs of disjoint
    cases) into a new run directory under ``out``; ``gates`` are added to the shards' own and
    ``baseline`` is compared with, as ``evalkit run --baseline`` does. Nothing is written before
    every check has passed. Cases without a result in any shard make the merged run incomplete:
    its gates fail unless ``allow_incomplete``. A whole shard of the matrix missing is refused
    unless ``allow_incomplete`` (its cases then count as not run)."""
    if junit_cases is not None:
        check_junit_cases(junit_cases)
    check_out_dir(out)
    runs = [load_run(p) for p in paths]
    extra = parse_gates(gates, where="--gate")
    if baseline is not None and not isinstance(baseline, Run):
        baseline = load_run(baseline)
    manifest, results = merge_runs(runs, run_id=new_run_id(), allow_missing=allow_incomplete)
    check_tasks(extra, [*manifest.router.tasks, "fallback"], where="--gate")
    manifest.options["gates"] = [*(manifest.options.get("gates") or []), *(g.expr for g in extra)]
    if any(g.relative for g in parse_gates(manifest.options["gates"])) and baseline is None:
        raise UsageError("a gate compares with a baseline, but no baseline run was given", where="evalkit merge",
                         fix="pass --baseline RUN (a stored run directory)")
    if baseline is not None:
        manifest.options["baseline"] = str(baseline.path)
    if junit_cases is not None:
        manifest.options["junit_cases"] = junit_cases
    manifest.options.pop("allow_incomplete", None)  # as the merge says, not as the shards ran
    if allow_incomplete:
        manifest.options["allow_incomplete"] = True
    ordered = [runs[k] for k in shard_order(runs, allow_missing=allow_incomplete)]  # shard 1 first, as the merged results are
    with RunDir.create(out, manifest.suite.name, manifest.run_id, purpose="evalkit merge") as run_dir:
        run_dir.write_manifest(manifest)
        router = next((r.router for r in ordered if r.router is not None), None)
        if router is not None:
            run_dir.write_router(router)
        try:
            with run_dir.result_writer() as writer:
                for result in results:
                    writer.write(result)
        except OSError as exc:  # a full disk: the shards are untouched, the merged folder is incomplete
            raise RunError(f"cannot write the merged results: {exc.strerror or exc}", where=str(run_dir.path),
                           fix="free disk space, delete this merged folder and merge again (the shard runs are "
                               "untouched)") from None
        for name in PER_CASE_FILES:
            if name == RESULTS:
                continue
            records = [rec for r in ordered for rec in r.dir.read_records(name)]
            if records:
                run_dir.write_records(name, records)
        summary = finalize(run_dir, manifest, results, baseline=baseline)
    return Run(run_dir.path, manifest, results, summary=summary)
