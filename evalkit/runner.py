"""Run a suite's cases against a target with bounded concurrency.

Single cases are independent work units; a session (multi-turn conversation) is one unit whose
turns run in order, each carrying the history of earlier turns and the session's
``X-Model-Affinity`` id. A fixed pool of workers pulls units from a queue, so memory stays flat
however large the suite. Every case ends with exactly one ``CaseResult``, handed to
``on_result`` as soon as it completes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from evalkit.cost import Price, request_cost
from evalkit.records import Case, CaseResult
from evalkit.targets import TargetCallError, TargetResponse


@dataclass
class RunOptions:
    concurrency: int = 16
    max_completion_tokens: int | None = None
    temperature: float | None = None
    affinity_prefix: str = "evalkit"
    prices: dict[str, Price] = field(default_factory=dict)


def work_units(cases: Iterable[Case]) -> list[list[Case]]:
    """Group cases into units: each single case alone, each session's turns together in order."""
    units: list[list[Case]] = []
    sessions: dict[str, list[Case]] = {}
    for case in cases:
        if case.session is None:
            units.append([case])
        elif case.session in sessions:
            sessions[case.session].append(case)
        else:
            sessions[case.session] = [case]
            units.append(sessions[case.session])
    for unit in units:
        unit.sort(key=lambda c: c.turn or 0)
    return units


def build_result(case: Case, response: TargetResponse | None, error: TargetCallError | None, *,
                 attempts: int, prices: dict[str, Price]) -> CaseResult:
    """The result record of one case (pure)."""
    common = dict(id=case.id, expected_route=case.expected_route, session=case.session, turn=case.turn,
                  tags=list(case.tags), expected_model=case.expected_model, prompt=case.user_text,
                  reference=case.reference, human=case.human, attempts=attempts)
    if response is None:
        assert error is not None
        return CaseResult(**common, status="error", error=error.message, http_status=error.http_status)
    served = response.served_model
    return CaseResult(
        **common,
        status="ok" if response.route is not None else "missing_route",
        route=response.route,
        served_model=served,
        http_status=response.http_status,
        latency_ms=round(response.latency_ms, 3),
        ttft_ms=round(response.ttft_ms, 3) if response.ttft_ms is not None else None,
        prompt_tokens=response.prompt_tokens,
        completion_tokens=response.completion_tokens,
        reasoning_tokens=response.reasoning_tokens,
        cost_usd=request_cost(prices.get(served) if served else None, response.prompt_tokens,
                              response.completion_tokens),
        content=response.content,
        finish_reason=response.finish_reason,
        route_only=response.route_only,
    )


async def run_cases(cases: Iterable[Case], target: Any, options: RunOptions,
                    on_result: Callable[[CaseResult], None]) -> None:
    """Send every case to ``target``; call ``on_result`` once per case as it completes."""
    queue: asyncio.Queue[list[Case] | None] = asyncio.Queue()
    for unit in work_units(cases):
        queue.put_nowait(unit)
    workers = max(1, options.concurrency)
    for _ in range(workers):
        queue.put_nowait(None)

    async def worker() -> None:
        while True:
            unit = await queue.get()
            if unit is None:
                return
            await run_unit(unit, target, options, on_result)

    await asyncio.gather(*(worker() for _ in range(workers)))


async def run_unit(unit: list[Case], target: Any, options: RunOptions,
                   on_result: Callable[[CaseResult], None]) -> None:
    history: list[dict[str, Any]] = []
    for case in unit:
        messages = [*history, *case.own_messages()]
        affinity = f"{options.affinity_prefix}-{case.session}" if case.session else None
        response, error, attempts = await send_case(case, messages, target, options, affinity)
        result = build_result(case, response, error, attempts=attempts, prices=options.prices)
        on_result(result)
        if case.session:
            history = [*messages, {"role": "assistant", "content": (response.content if response else "") or ""}]


async def send_case(case: Case, messages: list[dict[str, Any]], target: Any, options: RunOptions,
                    affinity: str | None) -> tuple[TargetResponse | None, TargetCallError | None, int]:
    """One case's call. Returns (response, error, attempts)."""
    try:
        response = await target.send(
            messages,
            max_completion_tokens=case.max_completion_tokens or options.max_completion_tokens,
            affinity=affinity,
            temperature=options.temperature,
        )
        return response, None, 1
    except TargetCallError as exc:
        return None, exc, 1
