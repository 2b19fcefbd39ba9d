"""Benchmark: what `evalkit run` costs on top of the requests themselves.

Starts `evalkit serve ROUTER --classifier tfidf` (a fast router: no model, no upstream) on a free
loopback port, then, interleaved and each as a fresh process (imports included):

- bare: a minimal asyncio + httpx loop sending the suite's requests (same bodies, same
  concurrency) and checking the route header, nothing else;
- evalkit: `evalkit run SUITE --target openai --base-url URL` (results.jsonl, summary, reports);
- run30: the same `evalkit run` on the suite's first 30 cases (the fixed cost of a run).

Prints the median of each, the throughput ratio bare/evalkit (goal >= 0.8) and run30 against
its goal (< 1.5 s). Defaults: suites/clinc150-domains (3,000 cases), concurrency 16.

    python bench/run_overhead.py [--suite suites/clinc150-domains] [--concurrency 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RATIO_GOAL, RUN30_GOAL_S = 0.8, 1.5


async def bare_loop(base_url: str, bodies: list[dict], concurrency: int) -> int:
    import httpx

    queue = iter(bodies)
    ok = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        async def worker() -> None:
            nonlocal ok
            for body in queue:
                resp = await client.post("/chat/completions", json=body)
                resp.json()
                if resp.status_code == 200 and "x-model-router-selected-route" in resp.headers:
                    ok += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


def request_bodies(suite: Path) -> list[dict]:
    sys.path.insert(0, str(ROOT))
    from evalkit.suites import load_suite

    loaded = load_suite(suite)
    tokens = loaded.spec.defaults.get("max_completion_tokens") if loaded.spec.defaults else None
    bodies = []
    for case in loaded.cases:
        body: dict = {"model": f"router:{loaded.router.name}", "messages": case.own_messages()}
        if case.max_completion_tokens or tokens:
            body["max_completion_tokens"] = case.max_completion_tokens or tokens
        bodies.append(body)
    return bodies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"evalkit serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit("evalkit serve did not answer in time")


CPU: dict[str, list[float]] = {}


def timed(cmd: list[str], env: dict[str, str], label: str = "") -> float:
    """Wall time of ``cmd`` as a fresh process; its CPU time (user + system) goes to ``CPU[label]``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    CPU.setdefault(label, []).append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall


def write_slice(src: Path, folder: Path, n: int) -> Path:
    """The suite's first ``n`` cases as a suite of their own (same router, same defaults)."""
    folder.mkdir(parents=True)
    (folder / "router.json").write_bytes((src / "router.json").read_bytes())
    spec = (src / "suite.yaml").read_text(encoding="utf-8")
    (folder / "suite.yaml").write_text(spec, encoding="utf-8")
    lines = (src / "cases.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    (folder / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=ROOT / "suites" / "clinc150-domains")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bare", nargs=2, metavar=("URL", "CONCURRENCY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:  # the child process of the bare side
        ok = asyncio.run(bare_loop(args.bare[0], request_bodies(args.suite), int(args.bare[1])))
        print(ok)
        return

    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", NO_COLOR="1")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "evalkit", "serve", str(args.suite / "router.json"),
                               "--classifier", "tfidf", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(url, server)
        n_cases = len(request_bodies(args.suite))
        with tempfile.TemporaryDirectory() as tmp:
            small = write_slice(args.suite, Path(tmp) / "run30", 30)
            run = [sys.executable, "-m", "evalkit", "run", "--target", "openai", "--base-url", f"{url}/v1", "-q",
                   "--out", str(Path(tmp) / "out"), "--concurrency", str(args.concurrency)]
            bare = [sys.executable, str(Path(__file__).resolve()), "--suite", str(args.suite),
                    "--bare", f"{url}/v1", str(args.concurrency)]
            timed(bare, env)  # warm the server (and the page cache) once
            bares, runs, smalls = [], [], []
            for _ in range(args.repeats):
                bares.append(timed(bare, env, "bare"))
                runs.append(timed([*run, str(args.suite)], env, "evalkit"))
                smalls.append(timed([*run, str(small)], env, "run30"))
    finally:
        server.terminate()
        server.wait(timeout=30)
    b, r, s = statistics.median(bares), statistics.median(runs), statistics.median(smalls)
    load = os.getloadavg()[0]
    print(f"suite {args.suite.name}: {n_cases} cases, concurrency {args.concurrency}, server: evalkit serve "
          f"--classifier tfidf; median of {args.repeats}; load average {load:.1f} on {os.cpu_count()} CPUs")
    print(f"bare asyncio + httpx loop: {b:6.2f} s  ({n_cases / b:6.0f} req/s)  runs: {', '.join(f'{x:.2f}' for x in bares)}")
    print(f"evalkit run --target openai: {r:6.2f} s  ({n_cases / r:6.0f} req/s)  runs: {', '.join(f'{x:.2f}' for x in runs)}")
    paired = statistics.median(x / y for x, y in zip(bares, runs))  # each pair ran back to back
    print(f"throughput ratio evalkit/bare: {paired:.2f} (median of paired runs; {b / r:.2f} from the medians)  "
          f"(goal >= {RATIO_GOAL})")
    cpu = {k: statistics.median(v) for k, v in CPU.items()}
    print(f"client CPU (user + system), median: bare {cpu['bare']:.2f} s, evalkit {cpu['evalkit']:.2f} s "
          f"(ratio {cpu['bare'] / cpu['evalkit']:.2f}), 30-case run {cpu['run30']:.2f} s")
    print(f"30-case run, whole process: {s:.2f} s  (goal < {RUN30_GOAL_S} s, ratio {s / RUN30_GOAL_S:.2f})  "
          f"runs: {', '.join(f'{x:.2f}' for x in smalls)}")


if __name__ == "__main__":
    main()
