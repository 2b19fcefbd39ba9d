"""The pytest plugin: one test per gate from --evalkit-suite / --evalkit-run, and the run fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# In-process pytester runs drop modules first imported inside them; numpy and scikit-learn cannot
# be imported twice in one process, so everything the stored-run tests touch is imported here.
import evalkit.gates  # noqa: F401
import evalkit.run  # noqa: F401
import evalkit.pytest_plugin  # noqa: F401
import numpy  # noqa: F401
import scipy.stats  # noqa: F401
import sklearn.metrics  # noqa: F401
from tests.conftest import ROOT
from tests.run_helpers import make_run, result, slice_suite

pytest_plugins = ["pytester"]

if sys.version_info >= (3, 11):
    import tomllib


@pytest.fixture(scope="module", autouse=True)
def encoder_loaded_outside_pytester() -> None:
    """Stored runs of the local target embed the task descriptions (overlap); load the encoder
    before any in-process pytester run, which would drop its modules afterwards."""
    from evalkit.emulator.classifier import encode

    encode(["warm up"])


@pytest.fixture
def isolated(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose runs load only the evalkit plugin, explicitly (installed or not)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return pytester


def test_entry_point_is_declared():
    data = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert data["project"]["entry-points"]["pytest11"]["evalkit"] == "evalkit.pytest_plugin"


@pytest.fixture
def stored_run(tmp_path: Path) -> Path:
    rows = [result(f"r{i}", "reasoning", "reasoning" if i < 6 else "fallback") for i in range(10)]
    rows += [result(f"c{i}", "classify", "classify") for i in range(10)]
    return make_run(tmp_path / "stored" / "run-1", rows, gates=["accuracy >= 0.7"])


def test_one_test_per_gate_of_a_stored_run(isolated: pytest.Pytester, stored_run: Path):
    res = isolated.runpytest("-p", "evalkit.pytest_plugin", "--evalkit-run", str(stored_run),
                             "--evalkit-gate", "recall[reasoning] >= 0.9", "--evalkit-gate", "error_rate <= 0", "-v")
    # accuracy 16/20 passes; reasoning recall 6/10 fails; no errors.
    res.assert_outcomes(passed=2, failed=1)
    res.stdout.fnmatch_lines([
        "*evalkit/demo::accuracy >= 0.7 PASSED*",
        "*evalkit/demo::recall[[]reasoning[]] >= 0.9 FAILED*",
        "*Gate 'recall[[]reasoning[]] >= 0.9' failed: 0.600 (n=10, 95% CI*",
    ])
    assert "Traceback" not in res.stdout.str()


def test_keyword_selection_and_collect_only(isolated: pytest.Pytester, stored_run: Path):
    res = isolated.runpytest("-p", "evalkit.pytest_plugin", "--evalkit-run", str(stored_run),
                             "--evalkit-gate", "error_rate <= 0", "-k", "error_rate")
    res.assert_outcomes(passed=1, deselected=1)
    collected = isolated.runpytest("-p", "evalkit.pytest_plugin", "--evalkit-run", str(stored_run), "--collect-only", "-q")
    collected.stdout.fnmatch_lines(["evalkit/demo::accuracy >= 0.7"])


def test_fixture_hands_the_finished_run_to_a_test(isolated: pytest.Pytester, stored_run: Path):
    isolated.makepyfile(test_router="""
        def test_support(evalkit_run):
            assert evalkit_run.summary["per_task"]["reasoning"]["support"] == 10
            assert len(evalkit_run.results) == 20

        def test_gate_helper(evalkit_gate):
            verdict = evalkit_gate("recall[classify] >= 0.9")
            assert verdict.n == 10
            evalkit_gate("recall[reasoning] >= 0.7")
    """)
    res = isolated.runpytest("-p", "evalkit.pytest_plugin", "--evalkit-run", str(stored_run), "-k", "test_")
    res.assert_outcomes(passed=1, failed=1)
    res.stdout.fnmatch_lines(["*Gate 'recall[[]reasoning[]] >= 0.7' failed: 0.600*"])


def test_malformed_gate_is_a_usage_error(isolated: pytest.Pytester, stored_run: Path):
    res = isolated.runpytest("-p", "evalkit.pytest_plugin", "--evalkit-run", str(stored_run),
                             "--evalkit-gate", "accuracy => 1")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*malformed gate expression*", "*METRIC OP VALUE*"])


def test_relative_gates_use_the_baseline_option(isolated: pytest.Pytester, stored_run: Path, tmp_path: Path):
    base = make_run(tmp_path / "stored" / "base", [result(f"c{i}", "classify", "classify") for i in range(20)])
    missing = isolated.runpytest("-p", "evalkit.pytest_plugin", "--evalkit-run", str(stored_run),
                                 "--evalkit-gate", "accuracy >= baseline - 0.1")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["*--evalkit-baseline*"])
    res = isolated.runpytest("-p", "evalkit.pytest_plugin", "--evalkit-run", str(stored_run),
                             "--evalkit-gate", "accuracy >= baseline - 0.1", "--evalkit-baseline", str(base))
    res.assert_outcomes(passed=1, failed=1)  # 0.8 < 1.0 - 0.1
    res.stdout.fnmatch_lines(["*Gate 'accuracy >= baseline - 0.1' failed: 0.800 vs threshold 0.900*"])


def test_without_options_the_plugin_collects_nothing(isolated: pytest.Pytester):
    isolated.makepyfile(test_plain="def test_ok():\n    pass\n")
    res = isolated.runpytest("-p", "evalkit.pytest_plugin")
    res.assert_outcomes(passed=1)


@pytest.fixture
def ungated_run(tmp_path: Path) -> Path:
    rows = [result(f"r{i}", "reasoning", "reasoning" if i < 6 else "fallback") for i in range(10)]
    rows += [result(f"c{i}", "classify", "classify" if i < 9 else "reasoning") for i in range(10)]
    return make_run(tmp_path / "stored" / "run-ungated", rows)


def test_a_run_without_gates_gets_one_recall_test_per_task(isolated: pytest.Pytester, ungated_run: Path):
    res = isolated.runpytest("-p", "evalkit.pytest_plugin", "--evalkit-run", str(ungated_run), "-v", "-rs")
    # classify 9/10 and reasoning 6/10 clear the 0.5 floor; no case expects customer-qa or fallback.
    res.assert_outcomes(passed=2, skipped=2)
    res.stdout.fnmatch_lines([
        "*evalkit/demo::recall[[]classify[]] >= 0.5 PASSED*",
        "*evalkit/demo::recall[[]customer-qa[]] >= 0.5 SKIPPED*",
        "*evalkit/demo::recall[[]reasoning[]] >= 0.5 PASSED*",
        "*suite demo has no gates: one test per task, its recall >= 0.5*add gates to suite.yaml*",
        "*no case of suite demo expects fallback*",
    ])
    assert res.ret == pytest.ExitCode.OK


def test_the_recall_floor_can_be_raised_and_says_how_to_add_gates(isolated: pytest.Pytester, ungated_run: Path):
    res = isolated.runpytest("-p", "evalkit.pytest_plugin", "--evalkit-run", str(ungated_run),
                             "--evalkit-min-recall", "0.7")
    res.assert_outcomes(passed=1, failed=1, skipped=2)
    res.stdout.fnmatch_lines(["*Gate 'recall[[]reasoning[]] >= 0.7' failed: 0.600 (n=10*",
                              "*has no gates, so each task's recall is checked against the default floor*"])
    bad = isolated.runpytest("-p", "evalkit.pytest_plugin", "--evalkit-run", str(ungated_run),
                             "--evalkit-min-recall", "high")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--evalkit-min-recall must be a number between 0 and 1, got 'high'*"])


@pytest.mark.slow
def test_the_documented_command_on_the_bundled_suite_tests_something(isolated: pytest.Pytester, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch):
    """`pytest --evalkit-suite suites/saas-support` (docs/ci.md): that suite has no gates."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "reports"
    res = isolated.runpytest_subprocess("-p", "evalkit.pytest_plugin", "--evalkit-suite",
                                        str(ROOT / "suites" / "saas-support"), "--evalkit-out", str(out))
    assert res.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), res.stdout.str()
    (run,) = (out / "saas-support").iterdir()
    import json

    per_task = json.loads((run / "summary.json").read_text())["per_task"]
    below = [t for t, v in per_task.items() if v["recall"] < 0.5]
    res.assert_outcomes(passed=len(per_task) - len(below), failed=len(below))
    assert res.ret == (pytest.ExitCode.TESTS_FAILED if below else pytest.ExitCode.OK)


@pytest.mark.slow
def test_suite_runs_once_against_the_local_router(isolated: pytest.Pytester, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    suite = slice_suite(tmp_path / "tiny", per_task=2, gates=["accuracy >= 0.0", "recall[reasoning] >= 1.01"])
    out = tmp_path / "reports"
    isolated.makepyfile(test_uses_run="""
        def test_same_run(evalkit_run):
            assert evalkit_run.summary["n_cases"] == 8
            assert [g["expr"] for g in evalkit_run.summary["gates"]] == ["accuracy >= 0.0", "recall[reasoning] >= 1.01"]
    """)
    # A real pytest process, as a user's CI job starts it: the plugin runs the suite there (the
    # local router and its embedding model included), not in this session's already-warm process.
    res = isolated.runpytest_subprocess("-p", "evalkit.pytest_plugin", "--evalkit-suite", str(suite),
                                        "--evalkit-out", str(out))
    res.assert_outcomes(passed=2, failed=1)
    res.stdout.fnmatch_lines(["*Gate 'recall[[]reasoning[]] >= 1.01' failed*"])
    assert len(list((out / "tiny").iterdir())) == 1  # one run shared by the gates and the fixture


def test_gates_of_an_incomplete_run_fail_unless_allowed(isolated: pytest.Pytester, stored_run: Path):
    import json

    manifest = json.loads((stored_run / "manifest.json").read_text())
    manifest["counts"] = {"planned": 30}  # stopped after 20 of 30 cases
    (stored_run / "manifest.json").write_text(json.dumps(manifest))
    (stored_run / "summary.json").unlink()
    res = isolated.runpytest("-p", "evalkit.pytest_plugin", "--evalkit-run", str(stored_run), "-v")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*incomplete: 10 of 30 planned cases have no result*"])
    res = isolated.runpytest("-p", "evalkit.pytest_plugin", "--evalkit-run", str(stored_run),
                             "--evalkit-allow-incomplete", "-v")
    res.assert_outcomes(passed=1)


@pytest.mark.parametrize("options, says", [
    (["--evalkit-target", "openai"], ["*--evalkit-target openai needs --evalkit-base-url*"]),
    (["--evalkit-base-url", "http://127.0.0.1:9/v1"],
     ["*--evalkit-base-url is for a remote router, but the target is the embedded local router "
      "(--evalkit-target local, the default)*", "*fix: add --evalkit-target openai*or leave --evalkit-base-url out*"]),
])
@pytest.mark.parametrize("collect_only", [False, True])
def test_bad_target_options_are_a_usage_error_in_the_plugins_words(isolated: pytest.Pytester, tmp_path: Path,
                                                                     options: list[str], says: list[str],
                                                                     collect_only: bool):
    suite = slice_suite(tmp_path / "tiny", per_task=1)
    out = tmp_path / "reports"
    res = isolated.runpytest("-p", "evalkit.pytest_plugin", "--evalkit-suite", str(suite), "--evalkit-out", str(out),
                             *options, *(["--collect-only"] if collect_only else []))
    # Not a failed gate (exit 1): options the run refuses are a usage error, like a missing suite.
    assert res.ret == pytest.ExitCode.USAGE_ERROR, res.stdout.str()
    res.stderr.fnmatch_lines(says)
    assert " --base-url" not in res.stderr.str() and " --target" not in res.stderr.str()
    assert not out.exists()  # refused before a run directory was made


@pytest.mark.parametrize("router", ["unreachable", "key refused"])
def test_a_run_that_cannot_complete_is_a_collection_error_not_a_failed_gate(isolated: pytest.Pytester, tmp_path: Path,
                                                                            router: str):
    from evalkit.emulator.server import free_port
    from tests.fake_openai import FakeOpenAI, Reply

    suite = slice_suite(tmp_path / "tiny", per_task=3)  # no gates: one recall test per task
    out = tmp_path / "reports"
    with FakeOpenAI(Reply(status=401, error_message="invalid api key")) as fake:
        url = f"http://127.0.0.1:{free_port()}/v1" if router == "unreachable" else fake.base_url
        res = isolated.runpytest("-p", "evalkit.pytest_plugin", "--evalkit-suite", str(suite), "--evalkit-out", str(out),
                                 "--evalkit-target", "openai", "--evalkit-base-url", url)
    text = res.stdout.str()
    assert res.ret == pytest.ExitCode.INTERRUPTED, text  # "Interrupted: 1 error during collection", not exit 1
    res.assert_outcomes(errors=1)
    (run_dir,) = (out / "tiny").iterdir()
    resume = f"`evalkit run {suite} --target openai --base-url {url} --resume {run_dir}`"
    res.stdout.fnmatch_lines(["*ERROR collecting evalkit/tiny*",
                              "*could not be reached*" if router == "unreachable" else "*refused the API key*",
                              f"*finish the run with {resume}, then gate it with `pytest --evalkit-run {run_dir}`*",
                              "*Interrupted: 1 error during collection*"])
    assert "RUN_DIR" not in text and "SUITE" not in text
    assert "has no gates" not in text  # no gate was judged: the default-floor hint has nothing to say
    if router == "unreachable":
        assert "the base URL (--evalkit-base-url) is right" in text


def test_the_pytest_extra_installs_what_the_plugin_needs_and_docs_name_it():
    """`pip install -e .` (the README) brings no pytest; docs/ci.md names the extra that does."""
    root = Path(__file__).resolve().parents[1]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert [r for r in extras["pytest"] if r.replace(" ", "").startswith("pytest>=")], extras.get("pytest")
    ci = (root / "docs" / "ci.md").read_text()
    section = ci[ci.index("\n## pytest"):]
    assert "pip install -e '.[pytest]'" in section and "unrecognized arguments: --evalkit-suite" in section
