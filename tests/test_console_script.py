"""The command line as real processes: the installed console script and ``python -m evalkit``.

Everywhere else the CLI runs in-process (``run_cli``), which is only as good as its likeness to the
real thing; these tests are the process boundary itself: the entry points, their exit statuses,
and a whole run end to end. They also check that ``run_cli`` gives what the real process gives.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit import __version__
from tests.conftest import TUTORIAL_ROUTER, cli_env, run_cli, run_cli_subprocess, write_suite
from tests.fake_openai import FakeOpenAI, Reply
from tests.fault_helpers import ROUTE

pytestmark = pytest.mark.slow

CONSOLE_SCRIPT = Path(sys.executable).parent / "evalkit"

CASES = [
    {"id": "c1", "prompt": "Classify this customer support message: I was billed twice.", "expected_route": "classify"},
    {"id": "c2", "prompt": "Perform complex multi-step reasoning with intermediate conclusions.",
     "expected_route": "reasoning"},
]


def console_script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The ``evalkit`` command that ``pip install`` wrote next to this interpreter."""
    assert CONSOLE_SCRIPT.is_file(), f"no console script at {CONSOLE_SCRIPT}: install the project (pip install -e .)"
    return subprocess.run([str(CONSOLE_SCRIPT), *map(str, args)], cwd=cwd, env=cli_env(), capture_output=True,
                          text=True, timeout=300)


def test_module_entry_point_prints_the_version():
    proc = run_cli_subprocess("--version")
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, f"evalkit {__version__}", "")


@pytest.mark.parametrize("args, code", [
    (["lint", "{router}"], 0),
    (["lint", "{bad}"], 2),
    (["run", "{tmp}", "--concurrency", "lots"], 2),
    (["no-such-command"], 2),
])
def test_console_script_and_in_process_cli_agree(tmp_path: Path, args: list[str], code: int):
    (tmp_path / "router.json").write_text(json.dumps(TUTORIAL_ROUTER))
    (tmp_path / "bad.json").write_text(json.dumps({**TUTORIAL_ROUTER, "fallback_models": "one"}))
    argv = [a.format(router=tmp_path / "router.json", bad=tmp_path / "bad.json", tmp=tmp_path) for a in args]
    real = console_script(*argv, cwd=tmp_path)
    here = run_cli(*argv, cwd=tmp_path)
    assert real.returncode == code, real.stderr
    assert (here.returncode, here.stdout, here.stderr) == (real.returncode, real.stdout, real.stderr)
    assert "Traceback" not in real.stderr


def test_a_whole_run_in_a_real_process_writes_the_run_and_exits_by_its_gates(tmp_path: Path):
    suite = write_suite(tmp_path / "mini", CASES, suite_yaml="name: mini\nrouter: router.json\ncases: cases.jsonl\n"
                                                             "gates:\n  - accuracy >= 1.01\n")
    with FakeOpenAI(lambda body, headers: Reply(headers={ROUTE: "classify"})) as fake:
        proc = run_cli_subprocess("run", suite, "--target", "openai", "--base-url", fake.base_url,
                                  "--out", tmp_path / "out", "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # the impossible gate fails: a result, not a crash
    summary = json.loads(proc.stdout)
    [run_dir] = list((tmp_path / "out" / "mini").iterdir())
    assert summary["run_id"] == run_dir.name and summary["n_cases"] == 2 and summary["accuracy"] == 0.5
    assert [g["passed"] for g in summary["gates"]] == [False]
    for name in ("manifest.json", "results.jsonl", "summary.json", "report.html", "summary.md", "junit.xml"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "summary.json").read_text())["accuracy"] == summary["accuracy"]


def test_a_ctrl_c_while_the_commands_are_imported_is_an_interruption_not_a_traceback(tmp_path: Path):
    """Ctrl-C in the first moment of `evalkit run` (while the commands load) exits 130 with a word."""
    script = ("import sys, evalkit.commands.run as run\n"
              "def register(app):\n    raise KeyboardInterrupt\n"
              "run.register = register\n"
              "from evalkit.cli import main\n"
              "sys.exit(main(['--version']))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=cli_env(), capture_output=True,
                          text=True, timeout=120)
    assert (proc.returncode, proc.stderr.strip()) == (130, "interrupted"), proc.stderr


def test_help_loads_no_run_machinery() -> None:
    # A fresh interpreter is the point: what `evalkit --help` (and every command's start) imports
    # before a command runs. The run machinery (pydantic records, the runner, httpx, numpy) loads
    # only when a command needs it; `evalkit --help` stays near the interpreter's own start time.
    code = ("import sys\nfrom evalkit.cli import main\nsys.argv = ['evalkit', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = ('pydantic', 'numpy', 'httpx', 'openai', 'onnxruntime', 'jinja2', 'evalkit.records', "
            "'evalkit.runner', 'evalkit.targets', 'evalkit.store')\n"
            "print(sorted(m for m in sys.modules if m in heavy), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    assert "Usage: evalkit" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("expr, normal_exit", [("accuracy >= 0.5", 0), ("accuracy >= 0.99", 1)])
def test_stdout_closed_by_its_reader_is_exit_141_not_a_failed_gate(tmp_path: Path, expr: str, normal_exit: int) -> None:
    # A real process and a real pipe are the point: `evalkit gate RUN EXPR | head` where head has
    # gone. Exit 1 would read as "a gate failed" in CI; a closed stdout is 141, as for any Unix tool.
    import os

    from tests.run_helpers import make_run, result

    run_dir = make_run(tmp_path / "r", [result("a", "classify", "classify"), result("b", "classify", "fallback")])
    args = [sys.executable, "-m", "evalkit", "gate", str(run_dir), expr]
    assert subprocess.run(args, env=cli_env(), capture_output=True, timeout=60).returncode == normal_exit
    read, write = os.pipe()
    os.close(read)  # the reader is gone before evalkit writes a byte
    try:
        proc = subprocess.run(args, env=cli_env(), stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
