"""pytest plugin: gate a router inside an existing pytest job.

``pytest --evalkit-suite suites/saas-support`` runs the suite once (at the end of collection, when
a selected test needs it; ``--collect-only`` sends nothing) and collects one test per gate (suite.yaml's ``gates:`` plus ``--evalkit-gate``); a failed gate fails
its test with the gate's message. ``--evalkit-run RUN`` gates a stored run instead of running.
A suite with no gate at all gets one test per task instead: ``recall[TASK] >= 0.5`` (the floor is
``--evalkit-min-recall`` or the ini option ``evalkit_min_recall``), so the command always tests
something and says how to set real gates.
The ``evalkit_run`` fixture hands the finished run (``evalkit.Run``: ``path``, ``manifest``,
``results``, ``summary``, ``to_pandas()``; see docs/python-api.md) to a test; ``evalkit_gate``
evaluates an expression on it::

    def test_reasoning_is_found(evalkit_run, evalkit_gate):
        assert evalkit_run.summary.per_task["reasoning"].support > 0
        evalkit_gate("recall[reasoning] >= 0.5")

A run that cannot be a result is not a failed gate: bad options (the run's ``InputError``) are a
pytest usage error (exit 4) naming the plugin's options, and a run that could not complete (a
``RunError``: router unreachable, key refused, error budget spent) is a collection error of the
suite (pytest exits 2, "Interrupted: 1 error during collection") with the command that finishes it.

Registered through the ``pytest11`` entry point; heavy imports wait until a run is needed.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, Callable

import pytest

from evalkit.errors import EvalkitError

_RUN_KEY = pytest.StashKey[dict]()
DEFAULT_MIN_RECALL = 0.5  # the per-task recall floor of a suite that declares no gates
# The command line's option names in evalkit's messages, as the plugin spells them.
PLUGIN_OPTIONS = {"--target": "--evalkit-target", "--base-url": "--evalkit-base-url", "--gate": "--evalkit-gate",
                  "--baseline": "--evalkit-baseline", "--out": "--evalkit-out",
                  "--allow-incomplete": "--evalkit-allow-incomplete"}
_CLI_OPTION = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, PLUGIN_OPTIONS)) + r")(?![\w-])")
NO_GATES_HINT = ("add gates to suite.yaml (gates: [accuracy >= 0.9, recall[TASK] >= 0.8]) or pass --evalkit-gate EXPR; "
                 "see docs/ci.md")


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
    group.addoption("--evalkit-allow-incomplete", action="store_true", default=False,
                    help="Gate a run that stopped before every case had a result on the cases it has "
                         "(by default every gate of an incomplete run fails).")
    group.addoption("--evalkit-target", action="store", default="local",
                    help="Target of the suite run: local (default), do or openai.")
    group.addoption("--evalkit-base-url", action="store", default=None, help="Router base URL (openai/do targets).")
    group.addoption("--evalkit-out", action="store", default="reports", metavar="DIR",
                    help="Parent folder of the run directory (default reports/).")
    group.addoption("--evalkit-min-recall", action="store", default=None, metavar="R",
                    help=f"For a suite without gates: the recall each task must reach (default {DEFAULT_MIN_RECALL}).")
    parser.addini("evalkit_suite", "Default for --evalkit-suite.", default=None)
    parser.addini("evalkit_min_recall", "Default for --evalkit-min-recall.", default=None)


def _suite_option(config: pytest.Config) -> str | None:
    return config.getoption("evalkit_suite") or config.getini("evalkit_suite") or None


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RUN_KEY] = {}
    config.pluginmanager.register(_RunAtCollectionEnd(), "evalkit-run-at-collection-end")


class EvalkitGateError(EvalkitError):
    """A gate failed (its message is the test's failure); like a failed gate of ``evalkit gate``, exit code 1."""

    exit_code = 1


def plugin_message(config: pytest.Config, exc: EvalkitError) -> str:
    """An evalkit error as the plugin's user reads it: the plugin's option names for the command
    line's, and a stopped run's resume placeholder replaced by the command that finishes it."""
    from evalkit.runner import RESUME_PLACEHOLDER

    text = _CLI_OPTION.sub(lambda m: PLUGIN_OPTIONS[m.group(1)], exc.message)
    command = _resume_command(config, exc)
    for placeholder in (RESUME_PLACEHOLDER, "`evalkit run SUITE [the same options] --resume RUN_DIR`"):
        if command and placeholder in text:
            run_dir = str(exc.where)
            text = (text.replace(placeholder, f"`{command}`") +
                    f", then gate it with `{shlex.join(['pytest', '--evalkit-run', run_dir])}`")
    return text


def _target_spec(config: pytest.Config) -> Any:
    from evalkit.run import TargetSpec

    return TargetSpec(kind=config.getoption("evalkit_target"), base_url=config.getoption("evalkit_base_url"))


def _resume_command(config: pytest.Config, exc: EvalkitError) -> str | None:
    """For a run that stopped early (or was interrupted): the ``evalkit run`` command with this
    session's options that finishes it in its run directory (``exc.where``)."""
    from evalkit.errors import Interrupted
    from evalkit.finish import command_line
    from evalkit.runner import StoppedEarly

    if not (isinstance(exc, (StoppedEarly, Interrupted)) and exc.where and _suite_option(config)):
        return None
    args = ["evalkit", "run", str(_suite_option(config))]
    if config.getoption("evalkit_target") != "local":
        args += ["--target", config.getoption("evalkit_target")]
    url = config.getoption("evalkit_base_url")
    if url:
        args += ["--base-url", url]
    for expr in config.getoption("evalkit_gate") or []:
        args += ["--gate", expr]
    if config.getoption("evalkit_baseline"):
        args += ["--baseline", config.getoption("evalkit_baseline")]
    for name, value in (getattr(exc, "resume_overrides", None) or {}).items():
        args += ["--" + name.replace("_", "-"), value]
    return command_line([*args, "--resume", str(exc.where)])  # URLs shown without credentials


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
        from evalkit.api import run_suite

        run = run_suite(suite_path, target=_target_spec(config), out=config.getoption("evalkit_out"),
                        gates=config.getoption("evalkit_gate"), baseline=config.getoption("evalkit_baseline"))
    else:
        raise pytest.UsageError("the evalkit_run fixture needs --evalkit-suite SUITE or --evalkit-run RUN "
                                "(or the evalkit_suite ini option)")
    return run


def _baseline_summary(config: pytest.Config) -> Any:
    path = config.getoption("evalkit_baseline")
    if not path:
        return None
    from evalkit.store import load_run

    return load_run(path).summary


def _gate_exprs(config: pytest.Config) -> tuple[str, list[str], list[str]]:
    """(collector name, gate expressions, labels) without running anything."""
    stored = config.getoption("evalkit_run")
    extra = list(config.getoption("evalkit_gate") or [])
    if stored:
        from evalkit.store import load_manifest

        manifest = load_manifest(stored)
        return manifest.suite.name, [*(manifest.options.get("gates") or []), *extra], [*manifest.router.tasks, "fallback"]
    from evalkit.suites import load_suite

    suite = load_suite(_suite_option(config) or "")
    return suite.name, [*suite.spec.gates, *extra], list(suite.router.labels)


def _min_recall(config: pytest.Config) -> float:
    raw = config.getoption("evalkit_min_recall") or config.getini("evalkit_min_recall")
    if raw in (None, ""):
        return DEFAULT_MIN_RECALL
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise pytest.UsageError(f"evalkit: --evalkit-min-recall must be a number between 0 and 1, got {raw!r} "
                                f"(e.g. --evalkit-min-recall {DEFAULT_MIN_RECALL})")
    return value


class EvalkitSuite(pytest.Collector):
    """The gates of one suite (or stored run)."""

    def __init__(self, *, exprs: list[str], default: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exprs = exprs
        self.default = default

    def collect(self) -> list[pytest.Item]:
        return [EvalkitGateItem.from_parent(self, name=expr, expr=expr, default=self.default) for expr in self.exprs]


class EvalkitGateItem(pytest.Item):
    """One gate as one test (``default``: a task's recall floor, for a suite without gates)."""

    def __init__(self, *, expr: str, default: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.expr = expr
        self.default = default

    def setup(self) -> None:
        """The run is made (or failed) at the end of collection; a run that failed is this test's
        error in setup (with --continue-on-collection-errors), never a failed gate."""
        _run_or_fail(self.config)

    def runtest(self) -> None:
        from evalkit.gates import evaluate_gate, parse_gate

        run = _finished_run(self.config)
        gate = parse_gate(self.expr)
        task = run.summary.per_task.get(gate.task) if gate.task else None
        if self.default and not (task and task.support):
            pytest.skip(f"no case of suite {run.manifest.suite.name} expects {gate.task}: its recall is undefined")
        verdict = evaluate_gate(gate, run.summary, baseline=_baseline_summary(self.config),
                                allow_incomplete=self.config.getoption("evalkit_allow_incomplete"))
        self.user_properties.append(("evalkit_value", verdict.value))
        self.user_properties.append(("evalkit_run", str(run.path)))
        if not verdict.passed:
            message = verdict.message
            if self.default:
                message += (f"\n(suite {run.manifest.suite.name} has no gates, so each task's recall is checked "
                            f"against the default floor; {NO_GATES_HINT})")
            raise EvalkitGateError(message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, EvalkitError):  # a failed gate (EvalkitGateError) or a failed run
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"evalkit gate: {self.expr}"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add the gate tests before other plugins select (-k, -m) or reorder items."""
    if not (_suite_option(config) or config.getoption("evalkit_run")):
        return
    from evalkit.gates import parse_gate

    try:
        name, exprs, labels = _gate_exprs(config)
        relative = [g.expr for g in map(parse_gate, exprs) if g.relative]
        if not config.getoption("evalkit_run"):
            _target_spec(config).check()  # bad target options are a usage error, before any traffic
    except EvalkitError as exc:
        raise pytest.UsageError(f"evalkit: {plugin_message(config, exc)}") from None
    if relative and not config.getoption("evalkit_baseline"):
        raise pytest.UsageError(f"evalkit: gate '{relative[0]}' compares with a baseline: add --evalkit-baseline RUN")
    default = not exprs
    if default:
        floor = _min_recall(config)
        exprs = [f"recall[{label}] >= {floor:g}" for label in labels]
        config.stash[_RUN_KEY]["no_gates_note"] = (f"evalkit: suite {name} has no gates: one test per task, its recall "
                                            f">= {floor:g} (--evalkit-min-recall); {NO_GATES_HINT}")
    collector = EvalkitSuite.from_parent(session, name=f"evalkit:{name}", nodeid=f"evalkit/{name}", exprs=exprs,
                                         default=default)
    items.extend(collector.collect())


class _RunAtCollectionEnd:
    """Runs the suite once collection has selected the tests (after -k and -m), when one of them
    needs it; a run that cannot be a result stops the session before any gate is tested."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        if (not (_suite_option(config) or config.getoption("evalkit_run")) or config.option.collectonly
                or not _needs_run(items)):
            return
        try:
            _finished_run(config)
        except EvalkitError as exc:
            message = f"evalkit: {plugin_message(config, exc)}"
            if exc.exit_code == EvalkitError.exit_code:  # bad input: the options, the suite, a stored run
                raise pytest.UsageError(message) from None
            # The run could not complete (exit 3 on the command line): an error collecting the suite,
            # so pytest stops with "Interrupted: 1 error during collection" (exit 2), no gate judged.
            nodeid = next((i.parent.nodeid for i in items if isinstance(i, EvalkitGateItem) and i.parent), "evalkit")
            session.ihook.pytest_collectreport(report=pytest.CollectReport(nodeid, "failed", message, result=[]))


def _needs_run(items: list[pytest.Item]) -> bool:
    return any(isinstance(item, EvalkitGateItem) or {"evalkit_run", "evalkit_gate"} & set(getattr(item, "fixturenames", ()))
               for item in items)


def _run_or_fail(config: pytest.Config) -> Any:
    """The finished run for a test; a run that failed fails the test's setup with its message."""
    try:
        return _finished_run(config)
    except EvalkitError as exc:
        pytest.fail(f"evalkit: {plugin_message(config, exc)}", pytrace=False)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say once, at the end, that the tests were default recall floors and how to set real gates."""
    cache = config.stash.get(_RUN_KEY, {})
    note = cache.get("no_gates_note")
    if note and "error" not in cache:  # no test measured anything: the hint has nothing to do with it
        terminalreporter.write_line(note)


@pytest.fixture(scope="session")
def evalkit_run(pytestconfig: pytest.Config) -> Any:
    """The finished run (``evalkit.store.Run``) of ``--evalkit-suite`` or ``--evalkit-run``."""
    return _run_or_fail(pytestconfig)


@pytest.fixture(scope="session")
def evalkit_gate(evalkit_run: Any, pytestconfig: pytest.Config) -> Callable[[str], Any]:
    """``evalkit_gate("accuracy >= 0.9")`` fails the test with the gate's message, else returns the verdict."""
    from evalkit.gates import evaluate_gate, parse_gate

    def check(expr: str) -> Any:
        verdict = evaluate_gate(parse_gate(expr), evalkit_run.summary, baseline=_baseline_summary(pytestconfig),
                                allow_incomplete=pytestconfig.getoption("evalkit_allow_incomplete"))
        if not verdict.passed:
            pytest.fail(verdict.message, pytrace=False)
        return verdict

    return check
