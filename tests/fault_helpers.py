"""Helpers for the reliability tests: scripted faulty routers built on FakeOpenAI, small suites."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable

from evalkit.records import Case, TargetInfo, message_text
from evalkit.targets import DEFAULT_ROUTE_HEADER, OpenAITarget, make_endpoint
from tests.conftest import TUTORIAL_ROUTER, write_suite
from tests.fake_openai import Reply

ROUTE = DEFAULT_ROUTE_HEADER
TASKS = ["classify", "customer-qa", "reasoning", "fallback"]
ID_RE = re.compile(r"^\[([^\]]+)\]")


def case_id_of(body: dict[str, Any]) -> str:
    """The case id a test prompt starts with: ``[c007] ...`` (the last user message)."""
    for m in reversed(body.get("messages", [])):
        if m.get("role") == "user":
            match = ID_RE.match(message_text(m))
            if match:
                return match.group(1)
    return "?"


def route_for(cid: str) -> str:
    """A deterministic route for a test case id: the id's number picks a task."""
    digits = "".join(ch for ch in cid if ch.isdigit()) or "0"
    return TASKS[int(digits) % len(TASKS)]


class Recorder:
    """A FakeOpenAI handler wrapper that records (case id, monotonic time) of every request."""

    def __init__(self, decide: Callable[[str, int, dict[str, Any]], Reply]) -> None:
        self.decide = decide
        self.log: list[tuple[str, float]] = []
        self.bodies: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        cid = case_id_of(body)
        with self._lock:
            self.log.append((cid, time.monotonic()))
            self.bodies.setdefault(cid, []).append(body)
            attempt = sum(1 for c, _ in self.log if c == cid)
        return self.decide(cid, attempt, body)

    def count(self, cid: str) -> int:
        return sum(1 for c, _ in self.log if c == cid)

    def times(self, cid: str) -> list[float]:
        return [t for c, t in self.log if c == cid]


def ok_reply(cid: str, **kw: Any) -> Reply:
    return Reply(**{"content": f"answer to {cid}", "headers": {ROUTE: route_for(cid)}, **kw})


def make_cases(n: int, *, sessions: int = 0, turns: int = 3) -> list[Case]:
    """``n`` single cases c000.. with expected route = route_for(id), plus sessions of ``turns`` turns."""
    cases = [Case(id=f"c{i:03d}", prompt=f"[c{i:03d}] question number {i}", expected_route=route_for(f"c{i:03d}"))
             for i in range(n)]
    for s in range(sessions):
        for t in range(1, turns + 1):
            cid = f"s{s}t{t}"
            cases.append(Case(id=cid, prompt=f"[{cid}] turn {t} of session {s}", expected_route=route_for(cid),
                              session=f"sess{s}", turn=t))
    return cases


def case_rows(cases: list[Case]) -> list[dict[str, Any]]:
    return [c.model_dump(exclude_none=True, exclude_defaults=True) | {"expected_route": c.expected_route}
            for c in cases]


def write_case_suite(folder: Path, cases: list[Case]) -> Path:
    return write_suite(folder, case_rows(cases), router=json.loads(json.dumps(TUTORIAL_ROUTER)))


def target_for(base_url: str, *, key: str = "test-key", timeout: float = 10.0) -> OpenAITarget:
    client = make_endpoint(base_url, key, timeout=timeout, concurrency=8)
    info = TargetInfo(kind="openai", base_url=base_url, model="router:cost-governance-demo", route_header=ROUTE)
    return OpenAITarget(client, model=info.model, route_header=ROUTE, info=info)
