"""Crash safety and resume: whole-line appends, torn last lines, kill -9 at random points."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from evalkit.records import CaseResult
from evalkit.store import RESULTS, ResultWriter, iter_results, repair_results
from tests.conftest import ROOT, TUTORIAL_ROUTER, cli_env, run_cli
from tests.fake_openai import FakeOpenAI, Reply
from tests.fault_helpers import Recorder, make_cases, ok_reply, write_case_suite


def result(cid: str, **kw) -> CaseResult:
    return CaseResult(id=cid, expected_route="classify", route="classify", status="ok", **kw)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the results file -------------------------------------------------------------------------

def test_writer_appends_whole_lines(tmp_path):
    with ResultWriter(tmp_path) as w:
        w.write(result("a", content="x" * 100_000))  # far beyond any buffer size
        w.write(result("b"))
    lines = (tmp_path / RESULTS).read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3
    assert [json.loads(l)["id"] for l in lines[:2]] == ["a", "b"]


def test_a_torn_last_line_is_skipped_and_then_cut_off(tmp_path):
    path = tmp_path / RESULTS
    whole = result("a").model_dump_json() + "\n"
    path.write_text(whole + result("b").model_dump_json()[:37])
    assert [r.id for r in iter_results(path)] == ["a"]
    assert repair_results(path).startswith("dropped a torn last line")
    assert path.read_text() == whole


def test_a_complete_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / RESULTS
    path.write_text(result("a").model_dump_json() + "\n" + result("b").model_dump_json())
    assert repair_results(path) == "completed the last line"
    assert [r.id for r in iter_results(path)] == ["a", "b"]
    assert path.read_text().endswith("}\n")


def test_a_whole_file_is_left_alone(tmp_path):
    path = tmp_path / RESULTS
    path.write_text(result("a").model_dump_json() + "\n")
    before = path.read_bytes()
    assert repair_results(path) is None and path.read_bytes() == before


def test_a_torn_only_line_leaves_an_empty_file(tmp_path):
    path = tmp_path / RESULTS
    path.write_text('{"id": "a", "expec')
    repair_results(path)
    assert path.read_bytes() == b""


# --- resume through the CLI ------------------------------------------------------------------

def openai_args(fake: FakeOpenAI, out: Path, *extra: str) -> list[str]:
    return ["--target", "openai", "--base-url", fake.base_url, "--out", str(out), "-q", "--retries", "0", *extra]


def test_resume_sends_only_cases_without_a_result_and_rebuilds_session_history(tmp_path):
    cases = make_cases(6, sessions=1, turns=3)
    suite = write_case_suite(tmp_path / "s", cases)
    rec = Recorder(lambda cid, attempt, body: ok_reply(cid))
    with FakeOpenAI(rec) as fake:
        proc = run_cli("run", suite, *openai_args(fake, tmp_path / "runs"))
        assert proc.returncode == 0, proc.stderr
        run_dir = next((tmp_path / "runs").glob("*/*"))
        full = {r.id: r for r in iter_results(run_dir / RESULTS)}
        uninterrupted = {cid: bodies[-1]["messages"] for cid, bodies in rec.bodies.items()}
        # Keep c000, c002, c004 and the session's first turn; tear the line after them.
        keep = ["c000", "c002", "c004", "s0t1"]
        lines = [l for l in (run_dir / RESULTS).read_text().splitlines() if json.loads(l)["id"] in keep]
        (run_dir / RESULTS).write_text("\n".join(lines) + "\n" + lines[0][:20])
        rec.log.clear()
        rec.bodies.clear()
        proc = run_cli("run", suite, *openai_args(fake, tmp_path / "runs", "--resume", str(run_dir)))
        assert proc.returncode == 0, proc.stderr
    sent = [cid for cid, _ in rec.log]
    assert sorted(sent) == ["c001", "c003", "c005", "s0t2", "s0t3"]
    # The resumed session turns carry exactly the history an uninterrupted run sent.
    assert rec.bodies["s0t2"][0]["messages"] == uninterrupted["s0t2"]
    assert rec.bodies["s0t3"][0]["messages"] == uninterrupted["s0t3"]
    resumed = list(iter_results(run_dir / RESULTS))
    assert sorted(r.id for r in resumed) == sorted(full)
    assert {r.id: (r.status, r.route) for r in resumed} == {k: (v.status, v.route) for k, v in full.items()}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["options"]["resumes"][0]["sent"] == 5
    assert manifest["options"]["resumes"][0]["repair"].startswith("dropped a torn last line")
    assert json.loads((run_dir / "summary.json").read_text())["n_cases"] == 9


def test_resume_with_a_changed_suite_is_refused_and_leaves_the_run_untouched(tmp_path):
    cases = make_cases(4)
    suite = write_case_suite(tmp_path / "s", cases)
    with FakeOpenAI(Recorder(lambda cid, a, b: ok_reply(cid))) as fake:
        assert run_cli("run", suite, *openai_args(fake, tmp_path / "runs")).returncode == 0
        run_dir = next((tmp_path / "runs").glob("*/*"))
        with (run_dir / RESULTS).open("a") as fh:
            fh.write('{"id": "c00')  # a torn line: must survive a refused resume byte for byte
        before = snapshot(tmp_path)
        write_case_suite(tmp_path / "s", make_cases(5))
        before_suite = snapshot(tmp_path)
        proc = run_cli("run", suite, *openai_args(fake, tmp_path / "runs", "--resume", str(run_dir)))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "not of the suite given" in proc.stderr and "manifest.json" in proc.stderr
    assert snapshot(tmp_path) == before_suite
    assert {k: v for k, v in before.items() if k.startswith("runs")} == \
        {k: v for k, v in snapshot(tmp_path).items() if k.startswith("runs")}


def test_resume_with_another_router_config_names_the_router_config(tmp_path):
    """The suite's hash covers its router config: when that is what changed (--router), the
    refusal says so and names --router, not only "not of the suite given"."""
    suite = write_case_suite(tmp_path / "s", make_cases(4))
    other = json.loads(json.dumps(TUTORIAL_ROUTER))
    other["policies"][0]["custom_task"]["description"] += " Also invoices."  # same tasks, another config
    (tmp_path / "other.json").write_text(json.dumps(other))
    with FakeOpenAI(Recorder(lambda cid, a, b: ok_reply(cid))) as fake:
        assert run_cli("run", suite, *openai_args(fake, tmp_path / "runs")).returncode == 0
        run_dir = next((tmp_path / "runs").glob("*/*"))
        proc = run_cli("run", suite, *openai_args(fake, tmp_path / "runs", "--resume", str(run_dir),
                                                  "--router", str(tmp_path / "other.json")))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "the router config differs from the run's" in proc.stderr
    assert f"--router {tmp_path / 'other.json'}" in proc.stderr and "resume with no --router" in proc.stderr


# --- kill -9 at random points ----------------------------------------------------------------

def count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def stored_ids(run_dir: Path) -> list[str]:
    return [r.id for r in iter_results(run_dir / RESULTS)]


@pytest.mark.slow
def test_kill_minus_nine_and_resume_matches_an_uninterrupted_run(tmp_path):
    """Kill the run 6 times at seeded random points, resume each time, compare with a clean run.

    The guarantee checked: a case that has a result is never sent again; a case is sent again only
    when its request was in flight at the kill (sent, result not yet written), at most
    --concurrency of them per kill; at the end every case has exactly one result.
    """
    concurrency = 4
    cases = make_cases(44, sessions=4, turns=4)  # 60 cases
    n = len(cases)
    suite = write_case_suite(tmp_path / "s", cases)
    rng = random.Random(20261127)
    thresholds = sorted(rng.sample(range(2, n - 4), 5)) + [n]  # the last kill races the finish
    env = cli_env()

    def start(fake, extra=()):
        # A real process: the point is SIGKILL at a random moment, with no cleanup of any kind.
        args = [sys.executable, "-m", "evalkit", "run", str(suite), *openai_args(fake, tmp_path / "runs"),
                "--concurrency", str(concurrency), *extra]
        log = (tmp_path / f"log-{time.monotonic_ns()}.txt").open("w")
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    rec = Recorder(lambda cid, attempt, body: ok_reply(cid, delay_s=0.08))
    segments = []  # (ids sent in the segment, ids stored before it, ids stored after it)
    with FakeOpenAI(rec, own_server=True) as fake:  # its own server: wait_idle watches its connections
        run_dir = None
        stored_before: list[str] = []
        for k, threshold in enumerate(thresholds):
            mark = len(rec.log)
            proc = start(fake, () if run_dir is None else ("--resume", str(run_dir)))
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                if run_dir is None:
                    found = list((tmp_path / "runs").glob("*/*"))
                    run_dir = found[0] if found else None
                if run_dir is not None and count_lines(run_dir / RESULTS) >= threshold:
                    break
                time.sleep(0.005)
            proc.kill()  # SIGKILL: no cleanup, no flush, nothing
            proc.wait()
            fake.wait_idle()  # requests already on the wire reach the server log
            after = stored_ids(run_dir)
            segments.append(([cid for cid, _ in rec.log[mark:]], stored_before, after))
            stored_before = after
        mark = len(rec.log)
        proc = run_cli("run", suite, *openai_args(fake, tmp_path / "runs"), "--concurrency", str(concurrency),
                       "--resume", run_dir)  # the last resume is not killed: in-process is enough
        assert proc.returncode == 0, proc.stderr
        final = stored_ids(run_dir)
        segments.append(([cid for cid, _ in rec.log[mark:]], stored_before, final))
        resumed_bodies = {cid: bodies[-1]["messages"] for cid, bodies in rec.bodies.items()}
        sends = Counter(cid for cid, _ in rec.log)

        clean_rec = Recorder(lambda cid, attempt, body: ok_reply(cid))
        with FakeOpenAI(clean_rec) as clean_fake:
            proc = run_cli("run", suite, *openai_args(clean_fake, tmp_path / "clean"), "--concurrency", str(concurrency))
            assert proc.returncode == 0, proc.stderr
        clean_dir = next((tmp_path / "clean").glob("*/*"))

    assert len(segments) == 7
    resent = Counter()
    for sent, before, after in segments:
        assert not set(sent) & set(before), "a case with a stored result was sent again"
        assert len(sent) == len(set(sent)), "a case was sent twice within one process"
        lost = set(sent) - set(after)  # in flight at the kill: sent, result never written
        assert len(lost) <= concurrency
        resent.update(lost)
        assert len(after) == len(set(after)), "duplicate result lines"
    assert sum(resent.values()) > 0  # the kills did catch requests in flight
    # Every send beyond the first is explained by a kill that caught the case in flight.
    assert all(sends[c.id] == 1 + resent[c.id] for c in cases)
    assert sorted(final) == sorted(c.id for c in cases)

    clean = {r.id: r for r in iter_results(clean_dir / RESULTS)}
    assert sorted(clean) == sorted(final)
    for r in iter_results(run_dir / RESULTS):
        assert (r.status, r.route, r.content) == (clean[r.id].status, clean[r.id].route, clean[r.id].content)
    clean_bodies = {cid: bodies[-1]["messages"] for cid, bodies in clean_rec.bodies.items()}
    assert resumed_bodies == clean_bodies  # sessions resumed with the same history
    s1 = json.loads((run_dir / "summary.json").read_text())
    s2 = json.loads((clean_dir / "summary.json").read_text())
    for key in ("n_cases", "n_errors", "accuracy", "confusion", "per_task"):
        assert s1[key] == s2[key]
    assert s1["run"]["resumes"] == 6 and s1["run"]["n_not_run"] == 0


def test_a_run_stopped_by_the_error_budget_is_finished_by_resume(tmp_path):
    cases = make_cases(12)
    suite = write_case_suite(tmp_path / "s", cases)
    outage = {"on": True}

    def decide(cid, attempt, body):
        return Reply(status=503) if outage["on"] and cid in ("c003", "c004", "c005") else ok_reply(cid)

    rec = Recorder(decide)
    with FakeOpenAI(rec) as fake:
        proc = run_cli("run", suite, *openai_args(fake, tmp_path / "runs", "--max-error-rate", "0.1",
                                                  "--concurrency", "1"))
        assert proc.returncode == 3, proc.stderr
        run_dir = next((tmp_path / "runs").glob("*/*"))
        stopped = json.loads((run_dir / "summary.json").read_text())
        outage["on"] = False
        proc = run_cli("run", suite, *openai_args(fake, tmp_path / "runs", "--resume", str(run_dir)))
        assert proc.returncode == 0, proc.stderr
    # 12 cases at 0.1 allow one error; c003 and c004 fail, so the run stops after 5 cases.
    assert stopped["n_cases"] == 5 and stopped["run"]["n_not_run"] == 7 and stopped["run"]["stopped"]
    final = json.loads((run_dir / "summary.json").read_text())
    assert final["n_cases"] == 12 and final["n_errors"] == 2 and final["run"]["n_not_run"] == 0
    assert final["run"]["stopped"] is None
    assert sorted(stored_ids(run_dir)) == sorted(c.id for c in cases)
    assert rec.count("c003") == 1 and rec.count("c005") == 1  # stored errors are results: not resent


def test_resume_completes_the_baseline_file_too(tmp_path):
    cases = make_cases(6)
    suite = write_case_suite(tmp_path / "s", cases)
    rec = Recorder(lambda cid, attempt, body: ok_reply(cid))
    with FakeOpenAI(rec) as fake:
        args = openai_args(fake, tmp_path / "runs", "--baseline-model", "base-m")
        assert run_cli("run", suite, *args).returncode == 0
        run_dir = next((tmp_path / "runs").glob("*/*"))
        base = run_dir / "baseline.jsonl"
        lines = base.read_text().splitlines()
        base.write_text("\n".join(lines[:2]) + "\n" + lines[2][:15])  # two whole lines and a torn one
        kept = {json.loads(l)["id"] for l in lines[:2]}
        rec.log.clear()
        rec.bodies.clear()
        proc = run_cli("run", suite, *args, "--resume", str(run_dir))
        assert proc.returncode == 0, proc.stderr
        models = {cid: [b["model"] for b in bodies] for cid, bodies in rec.bodies.items()}
        no_baseline = run_cli("run", suite, *openai_args(fake, tmp_path / "runs", "--resume", str(run_dir)))
    assert all(m == ["base-m"] for m in models.values())  # the router's results were all there
    assert set(models) == {c.id for c in cases} - kept
    assert sorted(r.id for r in iter_results(base)) == sorted(c.id for c in cases)
    assert no_baseline.returncode == 2 and "--baseline-model" in no_baseline.stderr
