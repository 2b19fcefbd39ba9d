"""How long `compare_runs` takes, and how much memory its paired bootstrap holds, as runs grow.

The bootstrap draws resample counts in chunks of at most 2 million cells, so memory stays flat
while time grows linearly with cases x resamples. Prints one line per size.

    python bench/compare_bootstrap.py
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np

from evalkit.comparison import RunSide, compare_runs
from evalkit.records import CaseResult

LABELS = ["classify", "customer-qa", "reasoning", "fallback"]


def synthetic(n: int, seed: int) -> tuple[list[CaseResult], list[CaseResult]]:
    rng = np.random.default_rng(seed)
    expected = rng.choice(LABELS, size=n)
    route_a = np.where(rng.random(n) < 0.85, expected, rng.choice(LABELS, size=n))
    route_b = np.where(rng.random(n) < 0.9, route_a, rng.choice(LABELS, size=n))
    a = [CaseResult(id=str(i), expected_route=e, route=r, status="ok", cost_usd=1e-5) for i, (e, r) in enumerate(zip(expected, route_a))]
    b = [CaseResult(id=str(i), expected_route=e, route=r, status="ok", cost_usd=2e-5) for i, (e, r) in enumerate(zip(expected, route_b))]
    return a, b


def main() -> None:
    compare_runs(*(RunSide(run_id=x, results=r, labels=LABELS) for x, r in zip("ab", synthetic(50, 1))))  # warm-up: imports
    print(f"{'cases':>8} {'resamples':>9} {'seconds':>8} {'peak MB':>8}")
    for n in (250, 2_500, 25_000, 100_000):
        a, b = synthetic(n, 0)
        sa = RunSide(run_id="a", results=a, labels=LABELS)
        sb = RunSide(run_id="b", results=b, labels=LABELS)
        tracemalloc.start()
        t0 = time.perf_counter()
        compare_runs(sa, sb, n_boot=2000)
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"{n:>8} {2000:>9} {elapsed:>8.2f} {peak / 1e6:>8.1f}")


if __name__ == "__main__":
    main()
