"""pytest plugin: gate a router inside an existing pytest job.

``pytest --evalkit-suite suites/saas-support`` runs the suite once (on the first gate test) and
collects one test per gate (suite.yaml's ``gates:`` plus ``--evalkit-gate``); a failed gate fails
its test with the gate's message. ``--evalkit-run RUN`` gates a stored run instead of running.
The ``evalkit_run`` fixture hands the finished run (``evalkit.store.Run``: ``path``,
``manifest``, ``results``, ``summary``) to a test; ``evalkit_gate`` evaluates an expression on it::

    def test_reasoning_is_found(evalkit_run, evalkit_gate):
        assert evalkit_run.summary["per_task"]["reasoning"]["support"] > 0
        evalkit_gate("recall[reasoning] >= 0.5")

Registered through the ``pytest11`` entry point; heavy imports wait until a run is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

_RUN_KEY = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("evalkit", "evalkit router gates")
    group.addoption("--evalkit-suite", action="store", default=None, metavar="SUITE",
                    help="Run this evalkit suite (folder with suite.yaml) and collect one test per gate.")
    group.addoption("--evalkit-run", action="store", default=None, metavar="RUN",
                    help="Gate a stored run directory instead of running a suite.")
    group.addoption("--evalkit-gate", action="append", default=[], metavar="EXPR",
                    help="Extra gate METRIC OP VALUE (repeatable).")
    group.addoption("--evalkit-baseline", action="store", default=None, metavar="RUN",
                    help="Baseline run for relative gates such as 'accuracy >= baseline - 0.02'.")
    group.addoption("--evalkit-target", action="store", default="local",
                    help="Target of the suite run: local (default), do or openai.")
    group.addoption("--evalkit-base-url", action="store", default=None, help="Router base URL (openai/do targets).")
    group.addoption("--evalkit-out", action="store", default="reports", metavar="DIR",
                    help="Parent folder of the run directory (default reports/).")
    parser.addini("evalkit_suite", "Default for --evalkit-suite.", default=None)


def _suite_option(config: pytest.Config) -> str | None:
    return config.getoption("evalkit_suite") or config.getini("evalkit_suite") or None


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RUN_KEY] = {}


class EvalkitGateError(Exception):
    """A gate failed (its message is the test's failure)."""


def _finished_run(config: pytest.Config) -> Any:
    """The run the gates and fixtures look at, produced once per session."""
    cache = config.stash[_RUN_KEY]
    if "run" in cache:
        return cache["run"]
    if "error" in cache:  # a run that failed once is not retried by every gate test
        raise cache["error"]
    try:
        cache["run"] = _produce_run(config)
    except Exception as exc:
        cache["error"] = exc
        raise
    return cache["run"]


def _produce_run(config: pytest.Config) -> Any:
    from evalkit.store import load_run

    stored = config.getoption("evalkit_run")
    suite_path = _suite_option(config)
    if stored:
        run = load_run(stored)
    elif suite_path:
        from evalkit.cost import load_prices
        from evalkit.pipeline import TargetSpec, run_suite
        from evalkit.suites import load_suite

        suite = load_suite(suite_path)
        baseline = _baseline_summary(config)
        spec = TargetSpec(kind=config.getoption("evalkit_target"), base_url=config.getoption("evalkit_base_url"))
        outcome = run_suite(suite, spec, out=config.getoption("evalkit_out"), prices=load_prices(),
                            gates=config.getoption("evalkit_gate"), baseline=baseline,
                            baseline_path=config.getoption("evalkit_baseline"))
        run = load_run(outcome.run_dir)
    else:
        raise pytest.UsageError("the evalkit_run fixture needs --evalkit-suite SUITE or --evalkit-run RUN "
                                "(or the evalkit_suite ini option)")
    if run.summary is None:
        from evalkit.summary import build_summary

        run.summary = build_summary(run.manifest, run.results)
    return run


def _baseline_summary(config: pytest.Config) -> dict[str, Any] | None:
    path = config.getoption("evalkit_baseline")
    if not path:
        return None
    from evalkit.store import load_run
    from evalkit.summary import build_summary

    base = load_run(path)
    return base.summary if base.summary is not None else build_summary(base.manifest, base.results)


def _gate_exprs(config: pytest.Config) -> tuple[str, list[str]]:
    """(collector name, gate expressions) without running anything."""
    stored = config.getoption("evalkit_run")
    extra = list(config.getoption("evalkit_gate") or [])
    if stored:
        from evalkit.store import load_manifest

        manifest = load_manifest(stored)
        return manifest.suite.name, [*(manifest.options.get("gates") or []), *extra]
    from evalkit.suites import load_suite

    suite = load_suite(_suite_option(config))
    return suite.name, [*suite.spec.gates, *extra]


class EvalkitSuite(pytest.Collector):
    """The gates of one suite (or stored run)."""

    def __init__(self, *, exprs: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exprs = exprs

    def collect(self) -> list[pytest.Item]:
        return [EvalkitGateItem.from_parent(self, name=expr, expr=expr) for expr in self.exprs]


class EvalkitGateItem(pytest.Item):
    """One gate as one test."""

    def __init__(self, *, expr: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.expr = expr

    def runtest(self) -> None:
        from evalkit.gate import evaluate_gate, parse_gate

        run = _finished_run(self.config)
        verdict = evaluate_gate(parse_gate(self.expr), run.summary, baseline=_baseline_summary(self.config))
        self.user_properties.append(("evalkit_value", verdict.value))
        self.user_properties.append(("evalkit_run", str(run.path)))
        if not verdict.passed:
            raise EvalkitGateError(verdict.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        from evalkit.errors import EvalkitError

        if isinstance(excinfo.value, (EvalkitGateError, EvalkitError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"evalkit gate: {self.expr}"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add the gate tests before other plugins select (-k, -m) or reorder items."""
    if not (_suite_option(config) or config.getoption("evalkit_run")):
        return
    from evalkit.errors import EvalkitError
    from evalkit.gate import parse_gate

    try:
        name, exprs = _gate_exprs(config)
        relative = [g.expr for g in map(parse_gate, exprs) if g.relative]
    except EvalkitError as exc:
        raise pytest.UsageError(f"evalkit: {exc.message}") from None
    if relative and not config.getoption("evalkit_baseline"):
        raise pytest.UsageError(f"evalkit: gate '{relative[0]}' compares with a baseline: add --evalkit-baseline RUN")
    if not exprs:
        config.issue_config_time_warning(pytest.PytestWarning(f"evalkit: suite {name} has no gates to collect"),
                                         stacklevel=2)
        return
    collector = EvalkitSuite.from_parent(session, name=f"evalkit:{name}", nodeid=f"evalkit/{name}", exprs=exprs)
    items.extend(collector.collect())


@pytest.fixture(scope="session")
def evalkit_run(pytestconfig: pytest.Config) -> Any:
    """The finished run (``evalkit.store.Run``) of ``--evalkit-suite`` or ``--evalkit-run``."""
    return _finished_run(pytestconfig)


@pytest.fixture(scope="session")
def evalkit_gate(evalkit_run: Any, pytestconfig: pytest.Config) -> Callable[[str], Any]:
    """``evalkit_gate("accuracy >= 0.9")`` fails the test with the gate's message, else returns the verdict."""
    from evalkit.gate import evaluate_gate, parse_gate

    def check(expr: str) -> Any:
        verdict = evaluate_gate(parse_gate(expr), evalkit_run.summary, baseline=_baseline_summary(pytestconfig))
        if not verdict.passed:
            pytest.fail(verdict.message, pytrace=False)
        return verdict

    return check
