"""How long the cost and latency analysis takes on a large run (not a test).

Builds N synthetic results over a 3-task router (with misroutes, reasoning tokens and one
unpriced fallback model), then times ``cost_summary`` (per path + misroute matrix) and
``latency_summary``, and prints the time per case. Run: python bench/cost_bench.py [N]
"""

from __future__ import annotations

import platform
import random
import sys
import time

from evalkit.cost import cost_summary, load_prices, request_cost
from evalkit.latency import latency_summary
from evalkit.records import CaseResult

MODELS = {"classify": "openai-gpt-oss-20b", "customer-qa": "anthropic-claude-4.6-sonnet", "reasoning": "openai-gpt-5",
          "fallback": "house-model-7b"}


def synthetic(n: int) -> list[CaseResult]:
    rng = random.Random(1)
    prices = load_prices()
    labels = list(MODELS)
    out = []
    for i in range(n):
        expected = rng.choice(labels)
        route = expected if rng.random() < 0.85 else rng.choice(labels)
        model = MODELS[route]
        pt, ct = rng.randint(20, 200), rng.randint(10, 3500)
        out.append(CaseResult(id=str(i), expected_route=expected, route=route, served_model=model, status="ok",
                              latency_ms=rng.lognormvariate(6, 0.7), ttft_ms=rng.lognormvariate(5, 0.5),
                              prompt_tokens=pt, completion_tokens=ct, reasoning_tokens=ct // 2 if rng.random() < 0.5 else None,
                              cost_usd=request_cost(prices.get(model), pt, ct)))
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    results = synthetic(n)
    prices = load_prices()
    labels = list(MODELS)
    t0 = time.perf_counter()
    cost = cost_summary(results, labels=labels, prices=prices)
    t1 = time.perf_counter()
    latency_summary(results)
    t2 = time.perf_counter()
    print(f"machine: {platform.machine()} {platform.python_implementation()} {platform.python_version()}")
    print(f"cases: {n:,}")
    print(f"cost_summary (per path + misroute matrix): {t1 - t0:.2f} s  ({(t1 - t0) / n * 1e6:.1f} us/case)")
    print(f"latency_summary (overall + per path + ttft): {t2 - t1:.2f} s  ({(t2 - t1) / n * 1e6:.1f} us/case)")
    print(f"total known cost: ${cost['known_usd']:,.2f}, unknown-cost cases: {cost['n_unknown_cost']:,}")


if __name__ == "__main__":
    main()
