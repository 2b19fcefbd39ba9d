"""Finish a run: judge it, analyse its records, write summary.json, the comparison with a
baseline run and the reports. Also what ``evalkit report`` (re-render) and ``evalkit judge`` do
to a stored run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from evalkit.comparison import Comparison
from evalkit.cost import Price
from evalkit.judge import JudgeSettings, make_judge_client, skipped_block
from evalkit.records import CaseResult, JudgeInfo, Manifest
from evalkit.router_config import RouterConfig
from evalkit.run.gating import compare_with_baseline, gate_verdicts
from evalkit.store import Run, RunDir, load_run
from evalkit.summary import Summary, build_summary


def run_overlap(run_dir: RunDir, manifest: Manifest, results: Sequence[CaseResult],
                router: RouterConfig | None = None) -> dict[str, Any] | None:
    """Overlap evidence for a run: the descriptions (static) plus the run's confusion.

    The router is the one the run measured (``router.json`` in the run directory when not
    given). Embedding similarity is computed for local runs only, whose encoder is already
    loaded; other targets get TF-IDF and shared terms, so finishing a remote run never pays a
    model load. ``evalkit overlap ROUTER --run RUN`` gives the full evidence for any run.
    """
    from evalkit.overlap import find_overlaps

    router = router or run_dir.read_router()
    if router is None or router.task_names != manifest.router.tasks:
        return None
    vectors = None
    if manifest.target.kind == "local":
        from evalkit.embedding import encode

        vectors = encode([t.description for t in router.tasks])
    return find_overlaps(router, description_vectors=vectors, results=results).to_dict()


def judge_stored(run_dir: RunDir, manifest: Manifest, results: Sequence[CaseResult], settings: JudgeSettings, *,
                 key: str | None, prices: dict[str, Price], status: Callable[[str], None] = lambda s: None,
                 client: Any = None, raise_unreachable: bool = False) -> JudgeInfo | None:
    """Judge a stored run (or record why not: no key, or route-only answers with no text to judge)
    and keep the judge's settings in the manifest.

    When every judge call failed and the run already held judge files, those files and the
    manifest's judge block are left as they were (the earlier grades are kept) and the result is
    None, or with ``raise_unreachable`` a ``RunError`` (exit 3) saying so."""
    from evalkit.judge import JudgeUnreachable, judge_run_dir, route_only_block, route_only_run
    from evalkit.store import BASELINE

    if route_only_run(results, run_dir.read_results(BASELINE)):
        block = route_only_block(settings)  # said once, with the summary (commands.output.print_judge)
    elif key is None:
        block = skipped_block(settings, str(run_dir.path))  # said once, with the summary (print_judge)
    else:
        judge = make_judge_client(settings, key, prices, client=client)
        try:
            block = judge_run_dir(run_dir, results, settings, judge=judge,
                                  descriptions=manifest.router.descriptions, status=status)
        except JudgeUnreachable as exc:
            if raise_unreachable:
                from evalkit.errors import RunError
                from evalkit.redact import safe_url

                raise RunError("the judge could not be reached: every judge call failed; the earlier grades are "
                               "kept (judge files, summary and reports are as they were)",
                               where=safe_url(settings.base_url), got=exc.first_error,
                               fix="check --judge-base-url, the judge model and its key, then judge again") from None
            status(f"the judge could not be reached ({exc.first_error}): the earlier grades are kept")
            return None
    manifest.judge = block
    run_dir.write_manifest(manifest)
    return block


def finalize(run_dir: RunDir | str | Path, manifest: Manifest, results: Sequence[CaseResult], *,
             baseline: Run | None = None, router: RouterConfig | None = None) -> Summary:
    """Analyse a run's records and write summary.json and the reports.

    With ``baseline`` (a stored run) the relative gates read its figures and the comparison with it
    is written beside the run; without one, a comparison stored earlier is kept in the reports.
    """
    run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    summary = build_summary(manifest, results, judgement=run_dir.read_judgement(),
                            overlap=run_overlap(run_dir, manifest, results, router))
    summary.gates = gate_verdicts(run_dir, manifest, summary, baseline.summary if baseline is not None else None)
    run_dir.write_summary(summary)
    comparison: Comparison | None
    if baseline is not None:
        from evalkit.report.compare import write_compare

        comparison = compare_with_baseline(baseline, Run(run_dir.path, manifest, list(results), summary=summary))
        write_compare(comparison, run_dir.path)
    else:
        comparison = run_dir.read_diff()
    from evalkit.report import write_reports

    write_reports(run_dir.path, summary, results, manifest, diff=comparison)
    return summary


def rerender(path: Any) -> Run:
    """``evalkit report RUN``: recompute the summary and reports from the stored files."""
    load_run(path)  # bad input is refused before the lock file is made
    with RunDir(path).lock_for_run("evalkit report"):
        run = load_run(path)
        summary = finalize(run.dir, run.manifest, run.results)
    return Run(run.path, run.manifest, run.results, summary=summary)
