"""Seeded fault injection on the inference plane, for reliability tests and drills.

Every chat-completions request draws from one ``random.Random(seed)`` in arrival order: with
probability ``rate`` it gets one of the enabled fault kinds (uniformly). Two servers with the
same seed, fed the same requests one at a time, inject the same faults in the same places.

Kinds:

- ``429``: HTTP 429 with ``Retry-After`` and an OpenAI error body.
- ``500``: HTTP 500 with an OpenAI error body.
- ``timeout``: the server holds the request for ``timeout_s`` seconds, then answers 504.
- ``drop-header``: a normal answer without the route header.
- ``malformed-json``: HTTP 200 whose body is cut-off JSON (for streams: a broken data line).

``latency_ms`` is added to every chat-completions request, faulted or not.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from evalkit.errors import UsageError

FAULT_KINDS = ("429", "500", "timeout", "drop-header", "malformed-json")
DEFAULT_FAULT_TIMEOUT_S = 30.0
RETRY_AFTER_S = 1


def parse_fault_kinds(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """``"429,500"`` or a list of kinds; every kind when empty."""
    if value is None or value == "" or value == []:
        return FAULT_KINDS
    items = value.split(",") if isinstance(value, str) else list(value)
    kinds: list[str] = []
    for item in items:
        kind = str(item).strip().lower()
        if kind not in FAULT_KINDS:
            raise UsageError(f"unknown fault kind '{kind}'", where="--fault-kinds", got=str(item),
                             fix=f"use a comma-separated list of: {', '.join(FAULT_KINDS)}")
        if kind not in kinds:
            kinds.append(kind)
    return tuple(kinds)


@dataclass(frozen=True)
class FaultConfig:
    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    latency_ms: float = 0.0
    seed: int | None = None
    timeout_s: float = DEFAULT_FAULT_TIMEOUT_S

    def validate(self) -> "FaultConfig":
        if not 0.0 <= self.rate <= 1.0:
            raise UsageError("the fault rate must be between 0 and 1", where="--fault-rate", got=str(self.rate),
                             fix="e.g. --fault-rate 0.1 for one request in ten")
        if self.latency_ms < 0:
            raise UsageError("added latency cannot be negative", where="--latency-ms", got=str(self.latency_ms),
                             fix="e.g. --latency-ms 200")
        if self.timeout_s < 0:
            raise UsageError("the fault timeout cannot be negative", where="--fault-timeout", got=str(self.timeout_s),
                             fix="e.g. --fault-timeout 30")
        parse_fault_kinds(list(self.kinds))
        return self


class FaultInjector:
    """Draws the fault (or None) for each request, deterministically for a given seed."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config.validate()
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self.drawn = 0

    @property
    def active(self) -> bool:
        return self.config.rate > 0 and bool(self.config.kinds)

    def draw(self) -> str | None:
        if not self.active:
            return None
        with self._lock:
            self.drawn += 1
            # Always draw both numbers so the sequence does not depend on earlier outcomes.
            hit = self._rng.random() < self.config.rate
            kind = self.config.kinds[self._rng.randrange(len(self.config.kinds))]
        return kind if hit else None
