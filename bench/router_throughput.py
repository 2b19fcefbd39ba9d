"""Route-only throughput of the local router against one raw bulk encode of the same prompts, in one process.

Both sides embed the same prompts (the bundled saas-support suite, cycled to --n requests: mixed
lengths, from ten-token tickets to 256-token reasoning prompts, 42 tokens on average):

- raw: ``evalkit.embedding.encode(prompts)`` in one call (sorted by length over the whole list,
  so its batches pad least), the ceiling for this machine;
- server: ``--concurrency`` clients POST ``/v1/chat/completions`` to ``router:<name>`` over
  loopback HTTP (route-only, no upstream), so the figure includes HTTP, JSON, the micro-batching
  queue and the decision.

Prints both throughputs and their ratio (goal: at least 0.8). Usage:

    python bench/router_throughput.py [--n 1024] [--concurrency 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_prompts(n: int) -> list[str]:
    lines = (ROOT / "suites" / "saas-support" / "cases.jsonl").read_text(encoding="utf-8").splitlines()
    prompts = [json.loads(line)["prompt"] for line in lines if line.strip() and "prompt" in json.loads(line)]
    return [prompts[i % len(prompts)] for i in range(n)]


def raw_throughput(prompts: list[str]) -> float:
    from evalkit.embedding import encode

    start = time.perf_counter()
    encode(prompts)
    return len(prompts) / (time.perf_counter() - start)


async def _drive(base_url: str, model: str, prompts: list[str], concurrency: int) -> float:
    import httpx

    queue: asyncio.Queue[str] = asyncio.Queue()
    for p in prompts:
        queue.put_nowait(p)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        async def worker() -> None:
            while not queue.empty():
                prompt = queue.get_nowait()
                resp = await client.post("/chat/completions",
                                         json={"model": model, "messages": [{"role": "user", "content": prompt}]})
                if resp.status_code != 200 or "x-model-router-selected-route" not in resp.headers:
                    raise RuntimeError(f"bad answer: {resp.status_code} {resp.text[:200]}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(prompts) / (time.perf_counter() - start)


def server_throughput(prompts: list[str], concurrency: int) -> float:
    from evalkit.emulator import EmbeddingClassifier, LocalRouter, create_app
    from evalkit.router_config import load_router_config

    router = load_router_config(ROOT / "suites" / "saas-support" / "router.json")
    app = create_app([router], classifier=EmbeddingClassifier())
    with LocalRouter(app) as lr:
        asyncio.run(_drive(lr.base_url, f"router:{router.name}", prompts[: concurrency * 2], concurrency))  # warm-up
        return asyncio.run(_drive(lr.base_url, f"router:{router.name}", prompts, concurrency))


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024, help="requests (prompts) per measurement")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each side; the median is reported")
    args = parser.parse_args()

    import onnxruntime

    from evalkit.embedding import default_threads

    prompts = load_prompts(args.n)
    raw_throughput(prompts[:128])  # load the model and warm up
    raws, servers = [], []
    for _ in range(args.repeats):  # interleaved, so load on the machine hits both sides alike
        raws.append(raw_throughput(prompts))
        servers.append(server_throughput(prompts, args.concurrency))
    raw, server = statistics.median(raws), statistics.median(servers)
    print(f"commit {commit()} · python {platform.python_version()} · onnxruntime {onnxruntime.__version__} "
          f"({default_threads()} threads) · {os.cpu_count()} CPUs · load average {os.getloadavg()[0]:.1f}")
    print(f"prompts: {args.n} from suites/saas-support, concurrency {args.concurrency}, median of {args.repeats}")
    print(f"raw bulk encode:                {raw:8.1f} prompts/s   runs: {', '.join(f'{x:.1f}' for x in raws)}")
    print(f"local router (route-only HTTP): {server:8.1f} requests/s  runs: {', '.join(f'{x:.1f}' for x in servers)}")
    paired = statistics.median(s / r for s, r in zip(servers, raws))  # each pair ran back to back
    print(f"ratio server/raw: {paired:.2f} (median of paired runs; {server / raw:.2f} from the medians)  (goal >= 0.80)")


if __name__ == "__main__":
    main()
