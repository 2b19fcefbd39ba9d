"""Run the `evalkit` commands of a shell script in the test process.

A test that executes a shell script as a CI runner would (a workflow step) puts a shim named
``evalkit`` first on the script's PATH. The shim sends its arguments, working directory and
environment to the test process over a loopback socket and waits; the test process runs the
command with ``run_cli`` (in-process: the same ``evalkit.cli.main``, sharing the session's imports
and embedding model) and sends back stdout, stderr and the exit code, which the shim writes and
exits with. To the script it is the ``evalkit`` command; the shell itself (``set -e``, exit
statuses, redirections, ``$GITHUB_OUTPUT``) runs for real.

The commands run on the thread that called ``CliRelay.run``, one at a time, while the script waits.
"""

from __future__ import annotations

import json
import selectors
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHIM = """#!{python} -I
# evalkit, relayed to the test process that started this script (tests/cli_relay.py).
import json, os, socket, sys

request = json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}).encode()
with socket.create_connection(("127.0.0.1", {port})) as conn:
    conn.sendall(request + b"\\n")
    conn.shutdown(socket.SHUT_WR)
    reply = json.loads(b"".join(iter(lambda: conn.recv(65536), b"")))
sys.stdout.write(reply["stdout"])
sys.stderr.write(reply["stderr"])
sys.exit(reply["returncode"])
"""


class CliRelay:
    """Writes the ``evalkit`` shim into ``bindir`` and answers it while ``run`` executes a script."""

    def __init__(self, bindir: Path) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        port = self.listener.getsockname()[1]
        bindir.mkdir(parents=True, exist_ok=True)
        self.shim = bindir / "evalkit"
        self.shim.write_text(SHIM.format(python=sys.executable, port=port))
        self.shim.chmod(self.shim.stat().st_mode | stat.S_IEXEC)
        self.calls: list[list[str]] = []

    def close(self) -> None:
        self.listener.close()

    def __enter__(self) -> "CliRelay":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, args: list[str], *, cwd: Path, env: dict[str, str],
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run ``args`` (a shell) to the end, answering every ``evalkit`` it starts on the way."""
        from tests.conftest import run_cli

        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
            deadline = time.monotonic() + timeout
            with selectors.DefaultSelector() as sel:
                sel.register(self.listener, selectors.EVENT_READ)
                try:
                    while proc.poll() is None:
                        if time.monotonic() > deadline:
                            raise subprocess.TimeoutExpired(args, timeout)
                        if sel.select(timeout=0.05):
                            self._answer(run_cli)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(args, proc.returncode, out.read(), err.read())

    def _answer(self, run_cli: Any) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        with conn:
            conn.setblocking(True)
            data = b"".join(iter(lambda: conn.recv(65536), b""))
            request = json.loads(data)
            self.calls.append(request["argv"])
            result = run_cli(*request["argv"], cwd=Path(request["cwd"]), env=request["env"])
            conn.sendall(json.dumps({"returncode": result.returncode, "stdout": result.stdout,
                                     "stderr": result.stderr}).encode())


__all__ = ["CliRelay"]
