"""One headless Chromium for many pages, driven over the DevTools protocol on a pipe.

``chromium --dump-dom URL`` starts a browser for every page (about two seconds each). ``Chromium``
starts one with ``--remote-debugging-pipe`` (DevTools messages as NUL-terminated JSON on file
descriptors 3 and 4: no websocket client needed) and ``dump_dom(url)`` does what ``--dump-dom
--virtual-time-budget=MS`` does, the way Chromium's own headless command handler does it: a
virtual-time budget that waits for the page's network fetches, the navigation, then the document
serialised by ``Runtime.evaluate``. Each page gets its own browser context (no cache, cookies or
storage shared with the pages before it) and is closed afterwards.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
# What --dump-dom prints: the doctype, then the document element's markup.
DUMP_DOM_JS = ("(document.doctype ? new XMLSerializer().serializeToString(document.doctype) + '\\n' : '')"
               " + document.documentElement.outerHTML")


class ChromiumError(AssertionError):
    pass


class Chromium:
    """A headless Chromium process; use as a context manager."""

    def __init__(self, profile: Path, *, timeout: float = 120) -> None:
        self.timeout = timeout
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_pipes() -> None:  # in the child: the pipe ends become descriptors 3 (commands) and 4 (replies)
            read_end = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)  # out of the way of 3 and 4 first
            write_end = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(read_end, 3)  # inheritable: these two, and the standard streams, are all Chromium gets
            os.dup2(write_end, 4)

        self._log = tempfile.TemporaryFile()
        # close_fds=False: descriptors 3 and 4 only exist once wire_pipes has run; everything else
        # Python opens is close-on-exec already (PEP 446).
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
                                      "about:blank"], stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, close_fds=False, preexec_fn=wire_pipes)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self.send("Target.setDiscoverTargets", discover=False)  # the first answer: the browser is up

    # -- the protocol ---------------------------------------------------------------------------

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChromiumError(f"Chromium did not answer within {self.timeout:g} s")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise ChromiumError(f"Chromium exited: {self._stderr_tail()}")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events that arrive meanwhile are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ChromiumError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def wait_event(self, method: str, session: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, event in enumerate(self._events):
                if event["method"] == method and event.get("sessionId") == session:
                    return self._events.pop(i)
            reply = self._read_message(deadline)
            if "method" in reply:
                self._events.append(reply)

    # -- pages -----------------------------------------------------------------------------------

    def dump_dom(self, url: str, *, virtual_time_budget_ms: int = 3000) -> str:
        """The page's DOM once it has loaded and ``virtual_time_budget_ms`` of virtual time passed."""
        context = self.send("Target.createBrowserContext")["browserContextId"]
        target = self.send("Target.createTarget", url="about:blank", browserContextId=context)["targetId"]
        try:
            session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self.send("Page.enable", session)
            self.send("Page.navigate", session, url=url)
            self.wait_event("Page.loadEventFired", session)
            # Then the page's timers get the budget, which stands still while a fetch is pending.
            self.send("Emulation.setVirtualTimePolicy", session, policy="pauseIfNetworkFetchesPending",
                      budget=virtual_time_budget_ms)
            self.wait_event("Emulation.virtualTimeBudgetExpired", session)
            result = self.send("Runtime.evaluate", session, expression=DUMP_DOM_JS, returnByValue=True)
            if "exceptionDetails" in result:
                raise ChromiumError(f"could not serialise the page at {url}: {result['result'].get('description')}")
            return result["result"]["value"]
        finally:
            self.send("Target.closeTarget", targetId=target)
            self.send("Target.disposeBrowserContext", browserContextId=context)
            self._events.clear()

    # -- life ------------------------------------------------------------------------------------

    def _stderr_tail(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (ChromiumError, OSError):
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        self._log.close()

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["CHROMIUM", "Chromium", "ChromiumError"]
