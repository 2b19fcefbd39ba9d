"""Calling the judge: an injected ``openai.AsyncOpenAI`` client, temperature 0, bounded
concurrency, retries for transient failures, and an on-disk verdict cache.

The cache key covers the judge model, the prompt-template version, the full prompt (which holds
the case and the answer) and the sample index, so judging the same run again costs nothing and
any change to the case, the answer or the templates misses the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.cost import Price, request_cost
from evalkit.errors import TargetError
from evalkit.httpclient import RetryPolicy, is_retryable_status, retry_after_seconds
from evalkit.judge.prompts import PROMPT_VERSION
from evalkit.redact import Redactor
from evalkit.targets import ResponseRefused, refusal_of

CACHE_ENV = "EVALKIT_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$EVALKIT_CACHE_DIR/judge``, else ``~/.cache/evalkit/judge``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "evalkit") / "judge"


class VerdictCache:
    """Judge replies on disk, one small JSON file per key; ``folder=None`` disables caching."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    @staticmethod
    def key(model: str, messages: list[dict[str, Any]], sample: int, *, version: str = PROMPT_VERSION) -> str:
        payload = json.dumps({"model": model, "prompt_version": version, "messages": messages,
                              "sample": sample}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if self.folder is None:
            return None
        path = self._path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # absent or damaged: call the judge again
        return data if isinstance(data, dict) and "text" in data else None

    def put(self, key: str, data: dict[str, Any]) -> None:
        if self.folder is None:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # a cache that cannot be written only costs a repeat call later


@dataclass
class Completion:
    """One judge reply; tokens and cost are what this call spent (zero when cached)."""

    text: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    cached: bool


class JudgeCallError(TargetError):
    """A judge call that failed after its retries."""

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class JudgeClient:
    """Sends judge prompts to one model through an injected ``AsyncOpenAI`` client.

    A judge may echo its key (in an error body or in its answer): replies and error messages go
    through a ``Redactor`` for ``secrets`` (and every key registered in ``evalkit.redact``)
    before they reach a record or the verdict cache.
    """

    def __init__(self, client: Any, *, model: str, cache: VerdictCache, price: Price | None,
                 concurrency: int = 8, max_attempts: int = 3, backoff_s: float = 0.5,
                 max_completion_tokens: int | None = None, policy: RetryPolicy | None = None,
                 secrets: list[str] | None = None) -> None:
        self.client = client
        key = getattr(client, "api_key", None)
        self.redactor = Redactor([*(secrets or []), key if isinstance(key, str) else None])
        self.model = model
        self.cache = cache
        self.price = price
        # The retry policy of every HTTP client (evalkit.httpclient): max_attempts in all, backoff
        # from backoff_s with jitter, a 429's or 503's Retry-After honoured.
        self.policy = policy or RetryPolicy(retries=max(1, max_attempts) - 1, base=backoff_s)
        self.max_completion_tokens = max_completion_tokens
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self.calls = 0

    async def complete(self, messages: list[dict[str, Any]], *, sample: int = 0) -> Completion:
        key = self.cache.key(self.model, messages, sample)
        hit = self.cache.get(key)
        if hit is not None:
            return Completion(self.redactor.text(hit["text"]), hit.get("finish_reason"), 0, 0, 0.0, cached=True)
        try:
            text, finish, pt, ct = await self._call(messages)
        except JudgeCallError as exc:
            exc.what = self.redactor.text(exc.what) or ""
            exc.args = (exc.message,)
            raise
        text = self.redactor.text(text)
        self.cache.put(key, {"text": text, "finish_reason": finish, "prompt_tokens": pt, "completion_tokens": ct,
                             "model": self.model, "prompt_version": PROMPT_VERSION})
        return Completion(text, finish, pt or 0, ct or 0, request_cost(self.price, pt, ct), cached=False)

    async def _call(self, messages: list[dict[str, Any]]) -> tuple[str | None, str | None, int | None, int | None]:
        import openai

        kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0}
        if self.max_completion_tokens:
            kwargs["max_completion_tokens"] = self.max_completion_tokens
        attempt = 0
        while True:
            attempt += 1
            retry_after = None
            try:
                async with self._slots:
                    self.calls += 1
                    completion = await self.client.chat.completions.create(**kwargs)
            except openai.APIStatusError as exc:
                last = JudgeCallError(f"judge HTTP {exc.status_code}: {_message(exc)}", http_status=exc.status_code)
                if not is_retryable_status(exc.status_code):
                    raise last from None
                retry_after = retry_after_seconds(exc.response.headers.get("retry-after"))
            except openai.APITimeoutError:
                last = JudgeCallError("judge request timed out")
            except openai.APIConnectionError as exc:
                refused = refusal_of(exc)  # wrapped by an older SDK
                if refused is not None:
                    raise JudgeCallError(f"judge reply refused: {refused.message}", http_status=refused.status) from None
                last = JudgeCallError(f"judge connection failed: {exc.__cause__ or exc}")
            except ResponseRefused as exc:  # too large once decompressed, or an encoding not asked for: no retry
                raise JudgeCallError(f"judge reply refused: {exc.message}", http_status=exc.status) from None
            except (ValueError, TypeError) as exc:
                last = JudgeCallError(f"judge reply is not a chat completion: {exc}", http_status=200)
            except RecursionError:  # JSON nested deeper than the parser goes: a hostile body, not a crash
                last = JudgeCallError("judge reply is not a chat completion: JSON nested too deeply", http_status=200)
            else:
                choices = getattr(completion, "choices", None) or []
                if choices:
                    choice = choices[0]
                    usage = getattr(completion, "usage", None)
                    return (choice.message.content if choice.message else None, choice.finish_reason,
                            getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None))
                last = JudgeCallError("judge reply has no choices", http_status=200)
            if not self.policy.allows(attempt):
                raise last
            await self.policy.wait_async(attempt, retry_after)

    async def close(self) -> None:
        await self.client.close()


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", exc))
