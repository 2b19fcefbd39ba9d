"""Session affinity: ``X-Model-Affinity: <id>`` pins a session to the model that served its first turn.

A pin is kept per (router name, affinity id) and holds the task route and the served model.
Later calls with the same id skip classification. Pins expire ``ttl_s`` seconds after their
last use (sliding), and the oldest pins are dropped beyond ``max_entries``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

DEFAULT_AFFINITY_TTL_S = 600.0
DEFAULT_MAX_PINS = 10_000


@dataclass(frozen=True)
class Pin:
    route: str
    model: str


class AffinityStore:
    """Pins with a time-to-live; ``clock`` is injectable for tests."""

    def __init__(self, ttl_s: float = DEFAULT_AFFINITY_TTL_S, *, max_entries: int = DEFAULT_MAX_PINS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._pins: OrderedDict[tuple[str, str], tuple[Pin, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, router: str, session: str) -> Pin | None:
        """The live pin of a session (refreshing its expiry), or None."""
        key = (router, session)
        now = self.clock()
        with self._lock:
            entry = self._pins.get(key)
            if entry is None:
                return None
            pin, expires = entry
            if now >= expires:
                del self._pins[key]
                return None
            self._pins[key] = (pin, now + self.ttl_s)
            self._pins.move_to_end(key)
            return pin

    def pin(self, router: str, session: str, route: str, model: str) -> None:
        key = (router, session)
        with self._lock:
            self._pins[key] = (Pin(route, model), self.clock() + self.ttl_s)
            self._pins.move_to_end(key)
            while len(self._pins) > self.max_entries:
                self._pins.popitem(last=False)

    def drop_router(self, router: str) -> None:
        """Forget every pin of a router (it was deleted or its config changed)."""
        with self._lock:
            for key in [k for k in self._pins if k[0] == router]:
                del self._pins[key]

    def __len__(self) -> int:
        return len(self._pins)
