"""The public Python API (re-exported by ``evalkit``): load a stored run, compare two runs, gate a
run, run a suite. Documented in docs/python-api.md, whose examples run as tests.

Each function returns the typed documents the command line writes to disk (``summary.json``
is ``Summary``, ``diff.json`` is ``Comparison``), so a notebook and the files agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from evalkit.store import Run, load_run

if TYPE_CHECKING:
    from evalkit.comparison import Comparison
    from evalkit.gates import GateReport
    from evalkit.judge import JudgeSettings
    from evalkit.records import CaseResult
    from evalkit.run.spec import Reliability, TargetSpec
    from evalkit.suites import Suite



def _as_run(run: Run | str | Path) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def compare(run_a: Run | str | Path, run_b: Run | str | Path, *, seed: int = 0, n_boot: int = 2000,
            alpha: float = 0.05, max_drop: Mapping[str, float | str] | None = None,
            fail_on_significant_regression: bool = True, allow_incomplete: bool = False) -> Comparison:
    """The paired comparison of run A (before) and run B (after), case by case: what ``evalkit
    compare`` writes as diff.json. ``max_drop`` maps a metric to the largest worsening allowed
    (``{"accuracy": 0.02}``, or a percentage ``{"recall[reasoning]": "5%"}``); the comparison's
    ``failed`` says whether a check failed. Settings are checked as ``evalkit compare`` checks its
    options: ``UsageError`` (an ``InputError``) naming the argument and the fix. When a run is
    incomplete (cases planned without a result) a check fails, unless ``allow_incomplete``."""
    from evalkit.comparison import API_NAMES, Comparison, check_max_drop, check_settings, compare_runs
    from evalkit.errors import UsageError

    check_settings(alpha=alpha, seed=seed, n_boot=n_boot, names=API_NAMES)
    if max_drop is not None and not isinstance(max_drop, Mapping):
        raise UsageError("max_drop must map a metric to its largest drop", where=API_NAMES["max_drop"],
                         got=repr(max_drop), fix='e.g. max_drop={"accuracy": 0.02, "recall[reasoning]": "5%"}')
    a, b = _as_run(run_a), _as_run(run_b)
    labels = list(dict.fromkeys([*a.manifest.router.tasks, *b.manifest.router.tasks, "fallback"]))
    drops = check_max_drop(max_drop, labels=labels, names=API_NAMES)
    return Comparison.model_validate(compare_runs(a.side(), b.side(), seed=seed, n_boot=n_boot, alpha=alpha,
                                                  max_drop=drops,
                                                  fail_on_significant_regression=fail_on_significant_regression,
                                                  allow_incomplete=allow_incomplete))


def gate(run: Run | str | Path, expressions: Sequence[str] | str, *,
         baseline: Run | str | Path | None = None, allow_incomplete: bool = False) -> GateReport:
    """The verdicts of gate expressions (``"accuracy >= 0.9"``, ``"recall[reasoning] >= 0.85"``,
    ``"accuracy >= baseline - 0.02"`` with ``baseline``) on a run; ``.passed`` when all pass.
    On an incomplete run (cases planned without a result) every gate fails unless ``allow_incomplete``."""
    from evalkit.gates import GateReport, evaluate_gates, parse_gates

    exprs = [expressions] if isinstance(expressions, str) else list(expressions)
    gates = parse_gates(exprs, where="evalkit.gate")
    base = _as_run(baseline).summary if baseline is not None else None
    verdicts = evaluate_gates(gates, _as_run(run).summary, baseline=base, allow_incomplete=allow_incomplete)
    return GateReport(passed=all(v.passed for v in verdicts), gates=verdicts)


def run_suite(suite: Suite | str | Path, *, router: str | Path | None = None, target: TargetSpec | str = "local",
              out: str | Path = "reports", prices: Mapping[str, Any] | str | Path | None = None, concurrency: int = 16,
              gates: Sequence[str] = (), baseline: Run | str | Path | None = None,
              judge: JudgeSettings | None = None, baseline_model: str | None = None,
              shard: tuple[int, int] | None = None, reliability: Reliability | None = None,
              on_result: Callable[[CaseResult], None] | None = None,
              status: Callable[[str], None] | None = None) -> Run:
    """Run a suite (a folder holding suite.yaml, or a loaded ``Suite``) and return the stored run.

    ``router``: a router config file to run instead of the one the suite names (``--router``).
    ``target`` is ``"local"`` (the embedded router, the default), or a ``TargetSpec`` for
    DigitalOcean or any OpenAI-compatible router. ``prices``: a price catalog file or mapping
    (default: the packaged one). ``gates`` are added to suite.yaml's; ``baseline`` (a stored run)
    feeds relative gates and is compared with (``run.comparison``). Raises ``evalkit.errors``
    exceptions for bad input (``InputError``) and runs that cannot complete (``RunError``).
    """
    from evalkit.cost import load_prices
    from evalkit.run import TargetSpec, run_suite as run_job
    from evalkit.suites import Suite, load_suite

    if isinstance(suite, Suite) and router is not None:
        suite = suite.folder
    loaded = suite if isinstance(suite, Suite) else load_suite(suite, router_path=router)
    spec = target if isinstance(target, TargetSpec) else TargetSpec(kind=target)
    catalog = dict(prices) if isinstance(prices, Mapping) else load_prices(prices)
    return run_job(loaded, spec, out=out, prices=catalog, concurrency=concurrency, gates=gates,
                   baseline=_as_run(baseline) if baseline is not None else None, judge=judge,
                   baseline_model=baseline_model, shard=shard, reliability=reliability,
                   on_result=on_result or (lambda r: None), status=status or (lambda s: None))


__all__ = ["Run", "compare", "gate", "load_run", "run_suite"]
