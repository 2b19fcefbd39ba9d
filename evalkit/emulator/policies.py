"""Selection policies: the order in which a task's pool is tried (pure apart from latency stats)."""

from __future__ import annotations

import threading

from evalkit.cost import Price

EWMA_ALPHA = 0.3


class LatencyStats:
    """Exponentially weighted mean of observed upstream latency per model."""

    def __init__(self, alpha: float = EWMA_ALPHA) -> None:
        self.alpha = alpha
        self._mean: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe(self, model: str, latency_ms: float) -> None:
        with self._lock:
            prev = self._mean.get(model)
            self._mean[model] = latency_ms if prev is None else self.alpha * latency_ms + (1 - self.alpha) * prev

    def get(self, model: str) -> float | None:
        return self._mean.get(model)


def order_pool(models: list[str], prefer: str | None, *, prices: dict[str, Price],
               latency: LatencyStats | None = None) -> list[str]:
    """Models in the order they are tried.

    Manual ranking (``prefer`` None) keeps list order. ``cheapest`` sorts by the catalog's
    input + output price per million tokens, unknown prices last, ties by list order.
    ``fastest`` puts untried models first (list order), then by mean observed latency.
    """
    indexed = list(enumerate(models))
    if prefer == "cheapest":
        def price_key(item: tuple[int, str]) -> tuple[int, float, int]:
            p = prices.get(item[1])
            return (1, 0.0, item[0]) if p is None else (0, p.input + p.output, item[0])
        return [m for _, m in sorted(indexed, key=price_key)]
    if prefer == "fastest":
        stats = latency or LatencyStats()

        def speed_key(item: tuple[int, str]) -> tuple[int, float, int]:
            mean = stats.get(item[1])
            return (0, 0.0, item[0]) if mean is None else (1, mean, item[0])
        return [m for _, m in sorted(indexed, key=speed_key)]
    return list(models)
