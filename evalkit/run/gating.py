"""A run's gates and its comparison with a baseline run.

Gates come from suite.yaml and the command line, are checked before any traffic, recorded in the
manifest (so merge and re-rendering evaluate the same ones) and evaluated on the finished run;
a shard defers them to the merged run. Relative gates (``accuracy >= baseline - 0.02``) read the
baseline run's summary; with a baseline run the paired comparison is written into the run
directory (``diff.json``, ``compare.html``, ``compare.md``) and shown in its summary.md and junit.xml.
"""

from __future__ import annotations

from typing import Any, Sequence

from evalkit.comparison import Comparison
from evalkit.errors import RunDirError, UsageError
from evalkit.gates import GateResult, as_mapping, check_tasks, evaluate_gate, parse_gates
from evalkit.records import Case, Manifest
from evalkit.report.junit import DEFAULT_JUNIT_CASES, check_junit_cases
from evalkit.store import Run, RunDir, load_run
from evalkit.suites import Suite
from evalkit.summary import Summary


def gate_expressions(suite: Suite, extra: Sequence[str], *, baseline_given: bool = True) -> list[str]:
    """suite.yaml's gates, then the command line's; all parsed and checked before any traffic."""
    parse_gates(suite.spec.gates, where=f"{suite.folder / 'suite.yaml'} at gates")
    parse_gates(extra, where="--gate")
    exprs = [*suite.spec.gates, *extra]
    gates = parse_gates(exprs)
    check_tasks(gates, suite.router.labels, where="--gate / suite.yaml gates")
    relative = [g.expr for g in gates if g.relative]
    if relative and not baseline_given:
        raise UsageError(f"gate '{relative[0]}' compares with a baseline, but no baseline run was given",
                         where="--gate" if relative[0] in extra else f"{suite.folder / 'suite.yaml'} at gates",
                         fix="pass --baseline RUN (a stored run directory), or use an absolute threshold")
    return exprs


def check_baseline_cases(baseline: Run, suite: Suite, cases: Sequence[Case]) -> None:
    """Refuse, before any traffic, a ``--baseline`` run that has no case id in common with the cases
    to run: the comparison at the end would have nothing to pair. A baseline of the same suite whose
    cases changed (another hash), or of another suite sharing some case ids, is compared on the
    shared ids (the comparison says how the suites differ)."""
    ids = {c.id for c in cases}
    if any(r.id in ids for r in baseline.results):
        return
    base_suite = baseline.manifest.suite.name
    same = base_suite == suite.name
    raise UsageError(
        f"the baseline run is of suite '{base_suite}' and shares no case id with suite '{suite.name}' "
        "(cases are compared by id): the comparison would have nothing to compare",
        where=f"--baseline {baseline.path}",
        got=f"{len(baseline.results)} results in the baseline run, {len(ids)} cases in {suite.folder}",
        fix=("the suite's case ids all changed since that run: start a run without --baseline" if same else
             f"give a run directory of suite '{suite.name}' (one under OUT/{suite.name}/), or leave out --baseline"))


def gating_options(gates: Sequence[str], baseline_path: str | None, shard: tuple[int, int] | None,
                   junit_cases: str = DEFAULT_JUNIT_CASES, allow_incomplete: bool = False) -> dict[str, Any]:
    """What a run records in manifest.options so that merge and re-rendering evaluate the same gates
    (and write junit.xml the same way)."""
    out: dict[str, Any] = {"gates": list(gates), "junit_cases": check_junit_cases(junit_cases)}
    if allow_incomplete:
        out["allow_incomplete"] = True
    if baseline_path:
        out["baseline"] = baseline_path
    if shard:
        out["shard"] = f"{shard[0]}/{shard[1]}"
    return out


def gate_verdicts(run_dir: RunDir, manifest: Manifest, summary: Summary,
                  baseline: Summary | None) -> list[GateResult]:
    """The run's gate verdicts; none for a shard (its gates are evaluated on the merged run).

    Re-rendering re-reads the baseline run named in the manifest; if it is gone, the verdicts
    stored earlier for relative gates are kept. On an incomplete run every gate fails unless the
    run was made (or merged) with ``--allow-incomplete`` (``options.allow_incomplete``).
    """
    exprs = manifest.options.get("gates") or []
    if not exprs or manifest.options.get("shard"):
        return []
    gates = parse_gates(exprs)
    if baseline is None and any(g.relative for g in gates) and manifest.options.get("baseline"):
        try:
            baseline = load_run(manifest.options["baseline"]).summary
        except RunDirError:
            baseline = None
    previous: dict[str, GateResult] = {}
    if baseline is None:
        stored = run_dir.read_summary()
        previous = {g.expr: g for g in stored.gates} if stored is not None else {}
    figures = as_mapping(summary)  # gates name figures by their summary.json paths
    base_figures = as_mapping(baseline) if baseline is not None else None
    verdicts = []
    for g in gates:
        if g.relative and baseline is None and g.expr in previous:
            verdicts.append(previous[g.expr])
        elif g.relative and baseline is None:
            verdicts.append(GateResult(expr=g.expr, metric=g.name, value=None, threshold=None, baseline=None,
                                       passed=False, n=None, ci95=None,
                                       message=f"Gate '{g.expr}' failed: the baseline run is not available"))
        else:
            verdicts.append(evaluate_gate(g, figures, baseline=base_figures,
                                          allow_incomplete=bool(manifest.options.get("allow_incomplete"))))
    return verdicts


def compare_with_baseline(baseline: Run, run: Run) -> Comparison:
    """The paired comparison of a baseline run (A) with this run (B), with the default settings.

    An incomplete baseline (or run) fails the comparison's checks, so the run exits 1, unless the
    run was made with ``--allow-incomplete``, which then covers its comparison as it does its gates."""
    from evalkit.comparison import compare_runs

    allow = bool(run.manifest.options.get("allow_incomplete"))
    return Comparison.model_validate(compare_runs(baseline.side(), run.side(), allow_incomplete=allow))
