"""One retry policy for every HTTP client of evalkit: the runner's calls to the target
(``runner.send_case``), the judge's (``judge.client``), the DigitalOcean control plane's
(``control_plane.ControlPlane``) and the readiness probe of a new router
(``targets.wait_until_answers``).

- What is retried: a connection failure or a timeout, HTTP 408, 409, 429 and any 5xx
  (``is_retryable_status``). A client may retry more (the runner: a body that is not a chat
  completion) or less (the control plane: only idempotent requests; readiness: all but 401/403).
- How long to wait before attempt ``k + 1``: exponential backoff with jitter, between half and
  all of ``base * 2**(k-1)``, at most ``cap``; a server's ``Retry-After`` wins when it asks for
  longer, cut to ``retry_after_max`` (``backoff_delay``).
- ``Retry-After`` is read in both of its forms, delay-seconds and an HTTP date
  (``retry_after_seconds``, the one parser).
- The runner adds one thing on top, its shared pause (``runner.RateLimiter.pause``): a 429's
  ``Retry-After`` holds every worker, because a rate limit belongs to the key, not to one request.

The local router's routing-model classifiers (``emulator.classifier.LlmClassifier``,
``emulator.arch_router``) are a server's upstream calls, not a client's job: they keep the
OpenAI SDK's own retries (backoff with jitter, ``Retry-After`` honoured), bounded by the
request's deadline.

``RetryPolicy`` carries the numbers, the jitter's generator and the sleep functions (injectable,
so a test can record the waits the policy chose instead of sleeping them).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_BASE_S = 0.5
DEFAULT_BACKOFF_MAX_S = 30.0
RETRY_AFTER_MAX_S = 120.0


def is_retryable_status(status: int | None) -> bool:
    """A failure worth another attempt: no answer (None), 408, 409, 429 or any 5xx."""
    return status is None or status in (408, 409, 429) or status >= 500


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delay-seconds or an HTTP date (a date in the past is
    0); None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from datetime import datetime, timezone
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None  # NaN is unreadable


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random,
                  retry_after: float | None = None, retry_after_max: float = RETRY_AFTER_MAX_S) -> float:
    """Seconds to wait before attempt ``attempt + 1``.

    Exponential backoff with jitter: between half and all of ``base * 2**(attempt-1)``, at most
    ``cap``. A server's ``Retry-After`` wins when it asks for longer (cut to ``retry_after_max``).
    """
    ceiling = min(cap, base * 2 ** (attempt - 1))
    delay = ceiling * rng.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, min(retry_after, retry_after_max))
    return delay


@dataclass
class RetryPolicy:
    """How one client retries: ``retries`` attempts after the first, backoff and Retry-After."""

    retries: int = DEFAULT_RETRIES
    base: float = DEFAULT_BACKOFF_BASE_S
    cap: float = DEFAULT_BACKOFF_MAX_S
    retry_after_max: float = RETRY_AFTER_MAX_S
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep
    async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def allows(self, attempt: int) -> bool:
        """Whether attempt ``attempt`` (1-based), which failed retryably, may be followed by another."""
        return attempt <= self.retries

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (``backoff_delay``)."""
        return backoff_delay(attempt, base=self.base, cap=self.cap, rng=self.rng, retry_after=retry_after,
                             retry_after_max=self.retry_after_max)

    def wait(self, attempt: int, retry_after: float | None = None) -> None:
        """Sleep before the next attempt (blocking clients)."""
        self.sleep(self.delay(attempt, retry_after))

    async def wait_async(self, attempt: int, retry_after: float | None = None) -> None:
        """Sleep before the next attempt (asyncio clients)."""
        await self.async_sleep(self.delay(attempt, retry_after))
