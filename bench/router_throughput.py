"""Route-only throughput of the local router against one raw bulk encode of the same prompts, in one process.

Both sides embed the same prompts (the bundled saas-support suite, cycled to --n requests: mixed
lengths, from ten-token tickets to 256-token reasoning prompts, 42 tokens on average):

- raw: ``evalkit.embedding.encode(prompts)`` in one call (sorted by length over the whole list,
  so its batches pad least), the ceiling for this machine;
- server: ``--concurrency`` clients POST ``/v1/chat/completions`` to ``router:<name>`` over
  loopback HTTP (route-only, no upstream), so the figure includes HTTP, JSON, the micro-batching
  queue and the decision.

The clients run in the same process (2 cores: whatever they spend is taken from the encoder).
Two clients are measured: ``light``, a minimal HTTP/1.1 keep-alive client on asyncio streams
(about 0.15 ms of CPU per request), which measures the router; and ``httpx`` (the client
``evalkit run`` uses), which costs 4-6 ms of CPU per request on this machine, as much as
encoding the prompt, so its figure is bound by the client. Each side is also given in CPU
milliseconds per prompt (the process's CPU time), which moves less with the machine's load than
wall time; ``cpu ratio`` = raw CPU per prompt / router CPU per prompt.

Prints both throughputs and their ratio (goal: at least 0.8). Usage:

    python bench/router_throughput.py [--n 1024] [--concurrency 32] [--repeats 3] [--client light|httpx|both]
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


def raw_throughput(prompts: list[str]) -> tuple[float, float]:
    """Prompts per second and CPU milliseconds per prompt of one bulk ``encode``."""
    from evalkit.embedding import encode

    cpu, start = time.process_time(), time.perf_counter()
    encode(prompts)
    return len(prompts) / (time.perf_counter() - start), (time.process_time() - cpu) * 1000 / len(prompts)


async def _drive_light(host: str, port: int, model: str, prompts: list[str], concurrency: int) -> float:
    """The same requests through a minimal HTTP/1.1 keep-alive client (one connection per worker)."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for p in prompts:
        queue.put_nowait(p)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while not queue.empty():
                body = json.dumps({"model": model, "messages": [{"role": "user", "content": queue.get_nowait()}]}).encode()
                writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: %s:%d\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (host.encode(), port, len(body), body))
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in head[1:] if line)}
                data = await reader.readexactly(int(headers["content-length"]))
                if head[0].split()[1] != "200" or "x-model-router-selected-route" not in headers:
                    raise RuntimeError(f"bad answer: {head[0]} {data[:200]!r}")
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
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


def server_throughput(prompts: list[str], concurrency: int, client: str = "light") -> tuple[float, float]:
    """Requests per second and CPU milliseconds per request (server and client) of the local router."""
    from evalkit.emulator import EmbeddingClassifier, LocalRouter, create_app
    from evalkit.router_config import load_router_config

    router = load_router_config(ROOT / "suites" / "saas-support" / "router.json")
    app = create_app([router], classifier=EmbeddingClassifier())
    model = f"router:{router.name}"
    with LocalRouter(app) as lr:
        def drive(texts: list[str]) -> float:
            if client == "light":
                return asyncio.run(_drive_light(lr.host, lr.port, model, texts, concurrency))
            return asyncio.run(_drive(lr.base_url, model, texts, concurrency))

        drive(prompts[: concurrency * 2])  # warm-up
        cpu = time.process_time()
        rate = drive(prompts)
        return rate, (time.process_time() - cpu) * 1000 / len(prompts)


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
    parser.add_argument("--client", choices=["light", "httpx", "both"], default="both")
    args = parser.parse_args()

    import onnxruntime

    from evalkit.embedding import default_threads

    clients = ["light", "httpx"] if args.client == "both" else [args.client]
    prompts = load_prompts(args.n)
    raw_throughput(prompts[:128])  # load the model and warm up
    load_start = os.getloadavg()[0]
    raws: list[tuple[float, float]] = []
    servers: dict[str, list[tuple[float, float]]] = {c: [] for c in clients}
    for _ in range(args.repeats):  # interleaved, so load on the machine hits both sides alike
        raws.append(raw_throughput(prompts))
        for c in clients:
            servers[c].append(server_throughput(prompts, args.concurrency, c))
    print(f"commit {commit()} · python {platform.python_version()} · onnxruntime {onnxruntime.__version__} "
          f"({default_threads()} threads) · {os.cpu_count()} CPUs · load average {load_start:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"prompts: {args.n} from suites/saas-support, concurrency {args.concurrency}, median of {args.repeats}")
    print(f"raw bulk encode:         {statistics.median(r for r, _ in raws):7.1f} prompts/s   "
          f"runs: {', '.join(f'{r:.1f}' for r, _ in raws)}; CPU ms/prompt {', '.join(f'{c:.2f}' for _, c in raws)}")
    for c in clients:
        runs = servers[c]
        print(f"local router, {c:5s} client: {statistics.median(r for r, _ in runs):7.1f} requests/s  "
              f"runs: {', '.join(f'{r:.1f}' for r, _ in runs)}; CPU ms/request {', '.join(f'{x:.2f}' for _, x in runs)}")
        paired = [s[0] / r[0] for s, r in zip(runs, raws)]  # each pair ran back to back
        cpu = [r[1] / s[1] for s, r in zip(runs, raws)]
        print(f"  ratio router/raw ({c}): {statistics.median(paired):.2f} (paired runs: {', '.join(f'{x:.2f}' for x in paired)}); "
              f"cpu ratio {statistics.median(cpu):.2f} ({', '.join(f'{x:.2f}' for x in cpu)})  (goal >= 0.80)")

if __name__ == "__main__":
    main()
