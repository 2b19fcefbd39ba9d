"""Fault drill: a 500-case suite against the local router with 20% mixed injected faults.

Starts ``evalkit serve`` with ``--fault-rate 0.2 --fault-kinds 429,500,timeout,drop-header,malformed-json``
(seeded), runs ``evalkit run --target openai`` against it, then a clean run against a server without
faults, and checks and prints:

- every case has exactly one final status (ids of results.jsonl == ids of the suite, no duplicates);
- dropped route headers are counted in the ``(missing)`` column, errors are left out of the matrix;
- errors are not misroutes: every case the faulted run scored as ``ok`` took the same route as in
  the clean run, so accuracy differs only by the cases lost to errors and missing headers.

    python bench/fault_drill.py [--cases 500] [--fault-rate 0.2] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from memory_100k import write_suite  # noqa: E402

KINDS = "429,500,timeout,drop-header,malformed-json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(router: Path, port: int, env: dict[str, str], *faults: str) -> subprocess.Popen:
    # `python -m` puts the working folder first on sys.path: run from the tree that should serve.
    log = tempfile.NamedTemporaryFile("w+", prefix="evalkit-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "evalkit", "serve", str(router), "--port", str(port), *faults],
                            env=env, cwd=env["PYTHONPATH"], stdout=subprocess.DEVNULL, stderr=log, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"evalkit serve exited: {Path(log.name).read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("evalkit serve did not start")


def run(suite: Path, port: int, out: Path, env: dict[str, str], *extra: str) -> tuple[Path, float, int]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "evalkit", "run", str(suite), "--target", "openai",
                           "--base-url", f"http://127.0.0.1:{port}/v1", "--out", str(out), "-q", *extra],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return next(out.glob("*/*")), wall, proc.returncode


def load(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def check(name: str, run_dir: Path, wall: float, rc: int, ids: list[str], clean: dict[str, dict]) -> bool:
    """Print one faulted run's figures and checks; True when every check passes."""
    faulted = load(run_dir)
    got = [r["id"] for r in faulted]
    statuses = Counter(r["status"] for r in faulted)
    attempts = Counter(r["attempts"] for r in faulted)
    errors_by = Counter(f"{r['http_status']}: {(r['error'] or '')[:50]}" for r in faulted if r["status"] == "error")
    summary = json.loads((run_dir / "summary.json").read_text())
    matrix = summary["confusion"]["matrix"]
    missing_col = summary["confusion"]["columns"].index("(missing)")
    changed = [r["id"] for r in faulted if r["status"] == "ok" and r["route"] != clean[r["id"]]["route"]]
    correct_ok = sum(1 for r in faulted if r["status"] == "ok" and r["route"] == r["expected_route"])
    checks = {
        "one final status per case": sorted(got) == sorted(ids) and len(got) == len(set(got)),
        "(missing) column == missing_route results": sum(row[missing_col] for row in matrix) == statuses["missing_route"],
        "errors left out of the matrix": sum(map(sum, matrix)) == len(ids) - statuses["error"] == summary["n_scored"],
        "errors not misroutes (accuracy = correct / scored)":
            abs(summary["accuracy"] - correct_ok / summary["n_scored"]) < 1e-12 and summary["n_errors"] == statuses["error"],
        "ok cases routed as in the clean run": not changed,
    }
    print(f"-- {name}: {wall:.1f} s, exit {rc}")
    print(f"   statuses: {dict(statuses)}")
    print(f"   attempts: {dict(sorted(attempts.items()))}  (retried cases: {sum(v for k, v in attempts.items() if k > 1)})")
    print(f"   final errors: {dict(errors_by.most_common())}")
    print(f"   accuracy {summary['accuracy']:.4f} over {summary['n_scored']} scored, error rate {summary['error_rate']:.3f}, "
          f"missing {summary['n_missing_route']}")
    for label, ok in checks.items():
        print(f"   [{'pass' if ok else 'FAIL'}] {label}")
    return all(checks.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=500)
    ap.add_argument("--fault-rate", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=3.0, help="evalkit run --timeout (per attempt)")
    ap.add_argument("--serve-from", type=Path, default=ROOT, help="source tree whose `evalkit serve` injects the faults")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="evalkit-drill-"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    serve_env = dict(env, PYTHONPATH=str(args.serve_from))
    faults = ("--fault-rate", str(args.fault_rate), "--fault-kinds", KINDS, "--seed", str(args.seed),
              "--fault-timeout", "10")
    try:
        suite = write_suite(tmp / "suite", args.cases)
        ids = [json.loads(line)["id"] for line in (suite / "cases.jsonl").read_text().splitlines()]
        runs = {}
        for name, server_args, run_args in (
                ("clean (no faults)", (), ()),
                ("faulted, default retries (3)", faults, ("--timeout", str(args.timeout))),
                ("faulted, --retries 0", faults, ("--timeout", str(args.timeout), "--retries", "0"))):
            port = free_port()
            server = serve(suite / "router.json", port, serve_env, *server_args)
            try:
                runs[name] = run(suite, port, tmp / f"run{len(runs)}", env, *run_args)
            finally:
                server.kill()
                server.wait()
        clean_dir, clean_wall, _ = runs.pop("clean (no faults)")
        clean = {r["id"]: r for r in load(clean_dir)}
        clean_summary = json.loads((clean_dir / "summary.json").read_text())
        print(f"cases: {len(ids)}  fault rate {args.fault_rate} ({KINDS}), seed {args.seed}, --timeout {args.timeout}")
        print(f"-- clean run: {clean_wall:.1f} s, accuracy {clean_summary['accuracy']:.4f} over {clean_summary['n_scored']}")
        ok = all([check(name, d, wall, rc, ids, clean) for name, (d, wall, rc) in runs.items()])
        if not ok:
            raise SystemExit(1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
