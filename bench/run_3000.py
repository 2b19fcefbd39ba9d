"""Benchmark: a 3,000-case suite through the embedded local router, end to end.

By default it runs the bundled 3,000-case suite `suites/clinc150-domains` (short real-world
queries). `python bench/run_3000.py saas [N]` instead builds an N-case suite (default 3,000) by
repeating the saas-support cases with fresh ids and session names: its prompts are four times
longer on average (long reasoning prompts), so it measures the encoder's worst case.
Each runs `python -m evalkit run` in a subprocess and prints wall time, peak memory (max RSS of
the child) and the ratio to the 60 s goal. Not a test: run it by hand and record the figures in
bench/RESULTS.md. Extra arguments after N go to `evalkit run` (e.g. --concurrency 32).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 60.0
SAAS_GOAL_S = 45.0  # the long-prompt variant (it took 69.6 s with the torch encoder)


def build_suite(folder: Path, n: int) -> None:
    src = ROOT / "suites" / "saas-support"
    rows = [json.loads(l) for l in (src / "cases.jsonl").read_text().splitlines() if l.strip()]
    folder.mkdir(parents=True)
    shutil.copy(src / "router.json", folder / "router.json")
    (folder / "suite.yaml").write_text(f"name: bench-{n}\nrouter: router.json\ncases: cases.jsonl\n")
    out = []
    copy = 0
    while len(out) < n:
        for row in rows:
            row = dict(row, id=f"{row['id']}-{copy}")
            if "session" in row:
                row["session"] = f"{row['session']}-{copy}"
            out.append(row)
        copy += 1
    # keep whole sessions: cut at a case that is not a later turn
    cut = n
    while cut < len(out) and out[cut].get("turn", 1) > 1:
        cut += 1
    (folder / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in out[:cut]))


def main() -> None:
    args = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        if args[:1] == ["saas"]:
            n = int(args[1]) if len(args) > 1 else 3000
            suite = Path(tmp) / "suite"
            build_suite(suite, n)
            extra = args[2:]
        else:
            suite = ROOT / "suites" / "clinc150-domains"
            extra = args
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "evalkit", "run", str(suite), "--out", str(Path(tmp) / "out"),
                               "-q", "--json", *extra], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            print(proc.stderr)
            raise SystemExit(proc.returncode)
        summary = json.loads(proc.stdout)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"cases: {summary['n_cases']}  errors: {summary['n_errors']}  accuracy: {summary['accuracy']:.3f}")
        goal = SAAS_GOAL_S if args[:1] == ["saas"] else GOAL_S
        print(f"wall time: {wall:.1f} s  (goal {goal:.0f} s, ratio {wall / goal:.2f}; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        print(f"peak memory (max RSS): {peak_mb:.0f} MB")
        print(f"throughput: {summary['n_cases'] / wall:.0f} cases/s")


if __name__ == "__main__":
    main()
