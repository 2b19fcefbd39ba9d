"""Shared fixtures: the CLI (in-process, or as a real subprocess), small suites written into tmp_path."""

from __future__ import annotations

import _thread
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One intra-op thread for the embedding model (the CLI's processes inherit it through cli_env): the
# tests share two cores with the local router's server thread and, often, other jobs, and two
# spinning threads on a busy machine took 7-8 s for 64 prompts where one took 3 s. Export another
# value to override.
os.environ.setdefault("EVALKIT_ENCODER_THREADS", "1")

TUTORIAL_ROUTER: dict[str, Any] = {
    "name": "cost-governance-demo",
    "description": "Three-path router of the DigitalOcean cost-governance tutorial",
    "policies": [
        {"custom_task": {"name": "classify", "description": "Classify a customer support message into exactly one of the following categories: billing, bug, how-to, or account. The message is a short text from a support ticket."},
         "models": ["openai-gpt-oss-20b", "llama3.3-70b-instruct"], "selection_policy": {"prefer": "cheapest"}},
        {"custom_task": {"name": "customer-qa", "description": "Answer a customer-facing question about the product, account settings, subscription plans, or service behavior. The question may be part of a multi-turn conversation with a user."},
         "models": ["anthropic-claude-4.6-sonnet", "llama3.3-70b-instruct"]},
        {"custom_task": {"name": "reasoning", "description": "Perform complex multi-step reasoning, mathematical analysis, or architectural evaluation that requires tracing through multiple steps and producing a detailed explanation with intermediate conclusions."},
         "models": ["openai-gpt-5"]},
    ],
    "fallback_models": ["llama3.3-70b-instruct"],
}


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def run_cli_subprocess(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                       timeout: float = 600, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m evalkit ARGS`` in a new process: the real entry point, its imports and exit.

    For the few tests where the process boundary is the point; every caller says why.
    """
    return subprocess.run([sys.executable, "-m", "evalkit", *map(str, args)], cwd=cwd or ROOT,
                          env=env or cli_env(), capture_output=True, text=True, timeout=timeout, input=input)


_CLI_LOCK = threading.Lock()
_HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` is exactly ``env`` inside, and what it was outside (evalkit reads it at call time)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _process_state(cwd: Path, stdin: io.StringIO, stdout: io.StringIO, stderr: io.StringIO) -> Iterator[None]:
    """The working directory, standard streams and signal handlers of one CLI call, restored after."""
    saved_cwd = os.getcwd()
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_handlers = {s: signal.getsignal(s) for s in _HANDLED_SIGNALS}
    os.chdir(cwd)
    sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
    try:
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.chdir(saved_cwd)
        for s, handler in saved_handlers.items():
            if handler is not None:
                signal.signal(s, handler)


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 600, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``evalkit`` command line in this process and return what ``run_cli_subprocess`` would.

    The same entry point as the console script (``evalkit.cli.main``), with this call's own
    environment (``env``, default ``cli_env()``), working directory, stdin, captured stdout and
    stderr, and exit code; an exception that escapes ``main`` prints its traceback to the captured
    stderr and gives exit code 1, as the interpreter would. Runs share the process's imports and its
    embedding model, which is what makes them fast. After ``timeout`` seconds the call is
    interrupted as Ctrl-C would (a hang fails its test instead of the whole session hanging).
    """
    from evalkit.cli import main

    argv = [str(a) for a in args]
    stdout, stderr = io.StringIO(), io.StringIO()
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        _thread.interrupt_main()

    watchdog = threading.Timer(timeout, interrupt)
    watchdog.daemon = True
    with _CLI_LOCK, _environment(env or cli_env()), \
            _process_state(Path(cwd or ROOT), io.StringIO(input or ""), stdout, stderr):
        if threading.current_thread() is threading.main_thread():
            watchdog.start()
        try:
            code = main(argv, prog_name="evalkit")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        except BaseException:  # noqa: BLE001 - an uncaught exception: a traceback and exit 1, like Python
            traceback.print_exc(file=sys.stderr)
            code = 1
        finally:
            watchdog.cancel()
        if fired.is_set():
            print(f"run_cli: interrupted after {timeout:g} s", file=sys.stderr)
    return subprocess.CompletedProcess(["evalkit", *argv], code, stdout.getvalue(), stderr.getvalue())


def write_suite(folder: Path, cases: list[dict[str, Any]] | str, *, router: dict[str, Any] | None = None,
                suite_yaml: str | None = None, cases_name: str = "cases.jsonl") -> Path:
    """A suite folder with router.json, suite.yaml and the given cases (list of dicts, or raw text)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "router.json").write_text(json.dumps(router or TUTORIAL_ROUTER, indent=2))
    (folder / "suite.yaml").write_text(suite_yaml or f"name: {folder.name}\nrouter: router.json\ncases: {cases_name}\n")
    text = cases if isinstance(cases, str) else "".join(json.dumps(c) + "\n" for c in cases)
    (folder / cases_name).write_text(text)
    return folder


@pytest.fixture(scope="session", autouse=True)
def _one_embedding_per_text() -> Iterator[None]:
    """Each distinct text is embedded once per session.

    The model is loaded once per process (``load_encoder``) and the in-process CLI shares it; on
    top of that, the suite's runs send the same prompts again and again (slices of the bundled
    suite: 1,247 texts embedded in a session, 284 of them distinct), and the model gives a text
    the same vector every time. So ``evalkit.emulator.classifier.encode`` keeps the vectors it
    returned: the real model still embeds every distinct text, through the same calls.
    """
    import numpy as np

    from evalkit.emulator import classifier

    real = classifier.encode
    vectors: dict[str, Any] = {}
    lock = threading.Lock()

    def encode(texts: list[str]) -> Any:
        with lock:
            missing = list(dict.fromkeys(t for t in texts if t not in vectors))
        if missing:
            fresh = real(missing)
            with lock:
                vectors.update(zip(missing, fresh))
        if not texts:
            return real(texts)
        with lock:
            return np.stack([vectors[t] for t in texts])

    classifier.encode = encode
    try:
        yield
    finally:
        classifier.encode = real


@pytest.fixture
def tutorial_router() -> dict[str, Any]:
    return json.loads(json.dumps(TUTORIAL_ROUTER))


@pytest.fixture(autouse=True)
def _forget_registered_keys() -> Iterator[None]:
    """Keys a test's commands registered for redaction (evalkit.redact) do not outlive the test."""
    yield
    from evalkit.redact import forget

    forget()
