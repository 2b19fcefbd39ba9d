"""Peak memory of a large route-only run against the embedded local router.

Writes an N-case suite (default 100,000) over the saas-support router into a temporary folder,
runs ``python -m evalkit run SUITE --quiet`` in a child process and prints the child's peak
resident set size (``ru_maxrss``), wall time and throughput. Goal: peak RSS under 2 GB.

    python bench/memory_100k.py            # 100,000 cases
    python bench/memory_100k.py --cases 5000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SUBJECTS = {
    "classify": ["My invoice shows a duplicate charge", "The export button crashes the app",
                 "How do I reset two-factor login", "Please close my account", "Refund for last month"],
    "customer-qa": ["Can I switch from the monthly plan to yearly billing?", "Does the Pro plan include SSO?",
                    "How many seats come with the team subscription?", "Where do I change my billing email?"],
    "reasoning": ["Compare a sharded Postgres design with a single large instance for 40k writes per second",
                  "Work out the break-even point of reserved versus on-demand capacity over three years",
                  "Trace the failure modes of a two-phase commit across three services step by step"],
    "fallback": ["Write a short poem about autumn leaves", "Who won the 1998 football world cup?",
                 "Translate 'good morning' into Italian", "Give me a recipe for banana bread"],
}


def write_suite(folder: Path, n: int, seed: int = 7) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "suites" / "saas-support" / "router.json", folder / "router.json")
    (folder / "suite.yaml").write_text(f"name: big-{n}\nrouter: router.json\ncases: cases.jsonl\n")
    tasks = list(SUBJECTS)
    with (folder / "cases.jsonl").open("w") as fh:
        for i in range(n):
            task = tasks[i % len(tasks)]
            prompt = f"{rng.choice(SUBJECTS[task])} (ticket {i}, ref {rng.randrange(10**6)})"
            fh.write(json.dumps({"id": f"c{i:06d}", "prompt": prompt, "expected_route": task,
                                 "tags": [f"batch-{i % 7}"]}) + "\n")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="evalkit-mem-"))
    try:
        suite = write_suite(tmp / "suite", args.cases)
        env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "evalkit", "run", str(suite), "--out", str(tmp / "runs"),
                               "--quiet", "--concurrency", str(args.concurrency)],
                              env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if proc.returncode not in (0, 1):
            print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n")
            raise SystemExit(f"run failed with exit {proc.returncode}")
        run_dir = next((tmp / "runs").glob("*/*"))
        n_lines = sum(1 for _ in (run_dir / "results.jsonl").open())
        html_mb = (run_dir / "report.html").stat().st_size / 1e6
        print(f"cases: {args.cases:,}  results: {n_lines:,}  concurrency: {args.concurrency}")
        print(f"wall: {wall:.1f} s  throughput: {args.cases / wall:.0f} cases/s")
        print(f"peak RSS of the run process: {peak_mb:,.0f} MB  (goal < 2,048 MB)")
        print(f"report.html: {html_mb:.2f} MB")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
