"""How long the judge's summary figures take, and how much memory they need, as runs grow.

Synthetic run: N cases over 4 tasks (15% misrouted), 3 tags, 5% unscored grades, two criteria,
human grades on 10% of the cases, a baseline with pairwise records. Prints seconds and peak
traced memory (numpy allocations included; the inputs themselves not counted) of
``judge_summary`` per N.

    python bench/judge_aggregate.py [N ...]
"""

from __future__ import annotations

import random
import sys
import time
import tracemalloc

from evalkit.judge import JudgeRecord, PairRecord, judge_summary
from evalkit.records import CaseResult

TASKS = ["classify", "customer-qa", "reasoning", "fallback"]


def synthetic(n: int, seed: int = 1):
    rnd = random.Random(seed)
    results, records, base, base_records, pairs = [], [], [], [], []
    for i in range(n):
        expected = rnd.choice(TASKS)
        route = expected if rnd.random() > 0.15 else rnd.choice(TASKS)
        human = {"correctness": rnd.randint(1, 5)} if rnd.random() < 0.1 else None
        results.append(CaseResult(id=f"c{i}", expected_route=expected, route=route, status="ok", content="x",
                                  cost_usd=1e-4, tags=[rnd.choice(["a", "b", "c"])], human=human))
        base.append(CaseResult(id=f"c{i}", expected_route=expected, status="missing_route", content="y", cost_usd=3e-4))
        for c in ("correctness", "completeness"):
            for out in (records, base_records):
                ok = rnd.random() > 0.05
                out.append(JudgeRecord(id=f"c{i}", criterion=c, score=rnd.randint(1, 5) if ok else None,
                                       status="scored" if ok else "unscored", judge_model="j", prompt_version="1"))
        pairs.append(PairRecord(id=f"c{i}", winner=rnd.choice(["router", "baseline", "tie"]), status="scored",
                                judge_model="j", prompt_version="1"))
    return results, records, base, base_records, pairs


def main(sizes: list[int]) -> None:
    warm = synthetic(10)
    judge_summary(warm[0], warm[1])  # imports (numpy, scikit-learn) outside the timings
    print(f"{'cases':>7} {'seconds':>8} {'peak MiB':>9}")
    for n in sizes:
        results, records, base, base_records, pairs = synthetic(n)
        start = time.perf_counter()
        judge_summary(results, records, baseline=base, baseline_records=base_records, pairs=pairs,
                      baseline_model="m")
        seconds = time.perf_counter() - start
        tracemalloc.start()  # a second, traced pass for memory (tracing slows it down)
        judge_summary(results, records, baseline=base, baseline_records=base_records, pairs=pairs,
                      baseline_model="m")
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(f"{n:>7} {seconds:>8.2f} {peak:>9.1f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [252, 2000, 10000, 50000])
