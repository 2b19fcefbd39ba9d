"""A second opinion on the router's labels: an OpenAI-compatible model proposes a task per case.

The labeler is called like the judge (``evalkit.judge.client.JudgeClient``: temperature 0,
bounded concurrency, retries of transient failures) with the judge's settings (base URL,
key variable). It gets the zero-shot routing prompt of the local router's ``llm`` classifier
(task names and descriptions, the conversation) and answers one task name or ``other``;
``other`` means ``fallback``. A reply that names no task is no proposal (``labeler_route:
null``), never a guess. The prompts it sees are already scrubbed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from evalkit.emulator.classifier import build_llm_prompt, parse_llm_route
from evalkit.router_config import RouterConfig

DEFAULT_CONCURRENCY = 8


@dataclass
class LabelerSettings:
    """Which model labels, where, and the name of the variable that holds its key (never the key)."""

    model: str
    base_url: str
    api_key_env: str = "MODEL_ACCESS_KEY"
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = 60.0


@dataclass
class LabelerOutcome:
    """Proposals per case index (None: no usable answer) and what the calls cost."""

    routes: list[str | None]
    failures: Counter[str] = field(default_factory=Counter)  # "error" | "unparseable"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_error: str | None = None


def transcript(messages: Sequence[dict[str, str]]) -> str:
    """What the labeler reads: the last user message, after the earlier turns when there are some."""
    turns = [m for m in messages if m["role"] in ("user", "assistant")]
    if len(turns) <= 1:
        return turns[-1]["content"] if turns else ""
    lines = [f"[{m['role']}] {m['content']}" for m in turns[:-1]]
    return ("Earlier turns of the conversation:\n" + "\n".join(lines)
            + "\n\nThe message to route (the last user message):\n" + turns[-1]["content"])


async def _label_all(client: Any, texts: Sequence[str], router: RouterConfig) -> LabelerOutcome:
    from evalkit.judge.client import JudgeCallError

    outcome = LabelerOutcome(routes=[None] * len(texts))

    async def one(i: int, text: str) -> None:
        prompt = build_llm_prompt(text, router)
        try:
            reply = await client.complete([{"role": "user", "content": prompt}])
        except JudgeCallError as exc:
            outcome.failures["error"] += 1
            outcome.first_error = outcome.first_error or exc.message
            return
        outcome.prompt_tokens += reply.prompt_tokens
        outcome.completion_tokens += reply.completion_tokens
        route = parse_llm_route(reply.text, router.task_names)
        if route is None:
            outcome.failures["unparseable"] += 1
        outcome.routes[i] = route

    await asyncio.gather(*(one(i, t) for i, t in enumerate(texts)))
    return outcome


def propose_labels(settings: LabelerSettings, key: str, texts: Sequence[str], router: RouterConfig, *,
                   client: Any = None) -> LabelerOutcome:
    """One proposal per text. ``client`` (an ``openai.AsyncOpenAI``) is injectable; by default one
    is built for ``settings.base_url`` with ``key``."""
    from evalkit.judge.client import JudgeClient, VerdictCache

    async def go() -> LabelerOutcome:
        import openai

        from evalkit.targets import capped_async_client

        # the labeling model's answers are read under the size cap of evalkit's clients (docs/reliability.md)
        raw = client or openai.AsyncOpenAI(base_url=settings.base_url, api_key=key, max_retries=0,
                                           timeout=settings.timeout,
                                           http_client=capped_async_client(settings.timeout, follow_redirects=True))
        labeler = JudgeClient(raw, model=settings.model, cache=VerdictCache(None), price=None,
                              concurrency=settings.concurrency, max_completion_tokens=None)
        try:
            return await _label_all(labeler, texts, router)
        finally:
            if client is None:
                await labeler.close()

    return asyncio.run(go())
