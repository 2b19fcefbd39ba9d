"""Integrity of runs: one writer per run directory (an OS lock), no duplicate case ids, resumes of
the same target only, incomplete runs fail their gates, unwritable output folders and full disks
give messages (issue 18)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.errors import RunDirError
from evalkit.store import LOCK, RESULTS, RunDir, iter_results
from tests.conftest import ROOT, cli_env, run_cli
from tests.fake_openai import FakeOpenAI, Reply
from tests.fault_helpers import Recorder, make_cases, ok_reply, write_case_suite
from tests.run_helpers import make_run, result


def openai_args(fake: FakeOpenAI, out: Path, *extra: str) -> list[str]:
    return ["--target", "openai", "--base-url", fake.base_url, "--out", str(out), "-q", "--retries", "0", *extra]


@pytest.fixture
def finished_run(tmp_path: Path):
    """A 5-case suite run once against a scripted router: (suite, run_dir, recorder, fake server)."""
    suite = write_case_suite(tmp_path / "s", make_cases(5))
    rec = Recorder(lambda cid, attempt, body: ok_reply(cid))
    with FakeOpenAI(rec) as fake:
        proc = run_cli("run", suite, *openai_args(fake, tmp_path / "runs"))
        assert proc.returncode == 0, proc.stderr
        run_dir = next((tmp_path / "runs").glob("*/*"))
        rec.log.clear()
        yield suite, run_dir, rec, fake


HOLDER = """
import sys
from evalkit.store import RunDir
RunDir(sys.argv[1]).lock_for_run("evalkit run --resume")
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our stdin
"""


# --- 8. one writer per run directory ---------------------------------------------------------

def test_a_second_writer_is_refused_while_another_process_holds_the_run_directory(finished_run, tmp_path: Path):
    suite, run_dir, rec, fake = finished_run
    # The lock is released at the end of a run: the file stays, empty (removing it could let two writers in).
    assert (run_dir / LOCK).is_file() and (run_dir / LOCK).read_bytes() == b""
    lines = (run_dir / RESULTS).read_text().splitlines()
    (run_dir / RESULTS).write_text("\n".join(lines[:2]) + "\n")  # an interrupted run: 2 of 5 cases
    kept = {json.loads(line)["id"] for line in lines[:2]}
    # A real second process holds the lock, as a first `--resume` still running would.
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], cwd=ROOT, env=cli_env(),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for args in (["run", suite, *openai_args(fake, tmp_path / "runs", "--resume", str(run_dir))],
                     ["report", run_dir]):
            proc = run_cli(*args)
            assert proc.returncode == 2, proc.stderr
            assert "being written by another process" in proc.stderr and "Traceback" not in proc.stderr
            assert f"pid {holder.pid}" in proc.stderr and "evalkit run --resume" in proc.stderr
        assert rec.log == []  # refused before any traffic
        assert len((run_dir / RESULTS).read_text().splitlines()) == 2
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # Once the holder is gone (its lock died with it), the resume finishes the run: 5 lines, not 8.
    proc = run_cli("run", suite, *openai_args(fake, tmp_path / "runs", "--resume", str(run_dir)))
    assert proc.returncode == 0, proc.stderr
    assert sorted(r.id for r in iter_results(run_dir / RESULTS)) == [f"c{i:03d}" for i in range(5)]
    assert sorted(cid for cid, _ in rec.log) == sorted({f"c{i:03d}" for i in range(5)} - kept)


def test_judge_is_refused_while_another_process_holds_the_run_directory(finished_run, tmp_path: Path):
    """`evalkit judge` writes judge.jsonl, the manifest and the summary: beside a resume still
    running it would write a summary of the results as they were when it started."""
    suite, run_dir, rec, fake = finished_run
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], cwd=ROOT, env=cli_env(),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    with FakeOpenAI(lambda body, headers: Reply(content="Fine.\nVERDICT: 4")) as judge:
        args = ["judge", run_dir, "--judge", "judge-x", "--judge-base-url", judge.base_url,
                "--judge-api-key-env", "JUDGE_KEY", "-q"]
        env = cli_env(JUDGE_KEY="judge-key-0000", EVALKIT_CACHE_DIR=str(tmp_path / "cache"))
        try:
            assert holder.stdout.readline().strip() == "locked"
            proc = run_cli(*args, env=env)
            assert proc.returncode == 2, proc.stdout + proc.stderr
            assert "being written by another process" in proc.stderr and f"pid {holder.pid}" in proc.stderr
            assert judge.requests == [] and not (run_dir / "judge.jsonl").exists()
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)
        proc = run_cli(*args, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len((run_dir / "judge.jsonl").read_text().splitlines()) == 2 * 5  # two criteria per answer
    assert (run_dir / LOCK).read_bytes() == b""  # released


def test_two_lock_attempts_in_one_process_conflict_and_unlock_releases(tmp_path: Path):
    run_dir = make_run(tmp_path / "r", [result("a", "classify", "classify")], finalize=False)
    first = RunDir(run_dir).lock_for_run("evalkit run --resume")
    try:
        with pytest.raises(RunDirError) as refused:
            RunDir(run_dir).lock_for_run("evalkit report")
        assert f"pid {os.getpid()}: evalkit run --resume" in refused.value.message
        assert json.loads((run_dir / LOCK).read_text())["pid"] == os.getpid()
    finally:
        first.unlock()
    with RunDir(run_dir).lock_for_run("evalkit report") as again:
        assert again.locked
    assert (run_dir / LOCK).read_bytes() == b""


def test_the_lock_file_leaves_load_report_gate_and_merge_alone(tmp_path: Path):
    a = make_run(tmp_path / "a", [result("1", "classify", "classify")])
    b = make_run(tmp_path / "b", [result("2", "reasoning", "reasoning")])
    RunDir(a).lock_for_run().unlock()  # leaves an (empty) lock file behind, as every run does
    assert (a / LOCK).is_file()
    assert run_cli("report", a).returncode == 0
    assert run_cli("gate", a, "accuracy >= 0.5").returncode == 0
    proc = run_cli("merge", a, b, "--out", tmp_path / "m")
    assert proc.returncode == 0, proc.stderr
    (merged,) = (tmp_path / "m" / "demo").iterdir()
    assert sorted(r.id for r in iter_results(merged / RESULTS)) == ["1", "2"]


def test_report_gate_and_merge_refuse_duplicate_case_ids(tmp_path: Path):
    dup = make_run(tmp_path / "dup", [result("a", "classify", "classify"), result("b", "classify", "classify"),
                                      result("a", "classify", "reasoning"), result("c", "reasoning", "reasoning"),
                                      result("c", "reasoning", "reasoning")], finalize=False)
    other = make_run(tmp_path / "other", [result("z", "classify", "classify")])
    before = (dup / RESULTS).read_bytes()
    for args in (["report", dup], ["gate", dup, "accuracy >= 0.1"], ["merge", dup, other, "--out", tmp_path / "m"]):
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "'a'" in proc.stderr and "'c'" in proc.stderr and "'b'" not in proc.stderr
        assert str(dup / RESULTS) in proc.stderr.replace("\n", "") and "Traceback" not in proc.stderr
    assert (dup / RESULTS).read_bytes() == before and not (tmp_path / "m").exists()


# --- 10. incomplete runs fail their gates ------------------------------------------------------

def _as_if_killed(run_dir: Path, *, planned: int, suite_cases: int | None = None) -> Path:
    """Make a stored run look like one stopped early: ``planned`` cases planned, no summary written."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["counts"] = {"planned": planned}
    manifest["finished_at"] = None
    if suite_cases is not None:
        manifest["suite"]["n_cases"] = suite_cases
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    for name in ("summary.json", "report.html", "summary.md", "junit.xml"):
        (run_dir / name).unlink(missing_ok=True)
    return run_dir


def _six_of_twenty(tmp_path: Path) -> Path:
    rows = [result(f"c{i}", "classify", "classify") for i in range(6)]
    return _as_if_killed(make_run(tmp_path / "r", rows, gates=["accuracy >= 0.5"], finalize=False), planned=20)


def test_gate_fails_on_a_run_stopped_after_6_of_20_cases_unless_allowed(tmp_path: Path):
    run_dir = _six_of_twenty(tmp_path)
    proc = run_cli("gate", run_dir, "accuracy >= 0.9")
    assert proc.returncode == 1, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "FAIL" in text and "incomplete: 14 of 20 planned cases have no result" in text and "--allow-incomplete" in text
    proc = run_cli("gate", run_dir, "accuracy >= 0.9", "--allow-incomplete")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import evalkit

    assert evalkit.gate(run_dir, "accuracy >= 0.9").passed is False
    assert evalkit.gate(run_dir, "accuracy >= 0.9", allow_incomplete=True).passed is True


def test_a_summary_older_than_its_results_is_not_trusted(finished_run):
    """results.jsonl cut short (or torn) after the run wrote summary.json: gate, compare and the
    Python API read the figures of the results there are, not the stale summary."""
    import evalkit

    _, run_dir, _, _ = finished_run
    assert run_cli("gate", run_dir, "accuracy >= 0.9").returncode == 0  # whole: 5 of 5 routed right
    stale = (run_dir / "summary.json").read_text()
    path = run_dir / "results.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + lines[2][:15])  # two results and a torn third
    proc = run_cli("gate", run_dir, "accuracy >= 0.9")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "incomplete: 3 of 5 planned cases have no result" in " ".join(proc.stdout.split())
    run = evalkit.load_run(run_dir)
    assert run.summary.n_cases == 2 and run.summary.run.n_not_run == 3
    assert (run_dir / "summary.json").read_text() == stale  # reading never rewrites the run


def test_report_of_an_incomplete_run_says_so_and_its_stored_gates_fail(tmp_path: Path):
    run_dir = _six_of_twenty(tmp_path)
    proc = run_cli("report", run_dir)
    assert proc.returncode == 0, proc.stderr
    assert "incomplete" in proc.stdout and "14 of 20 planned cases have no result" in " ".join(proc.stdout.split())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [g["passed"] for g in summary["gates"]] == [False]
    assert "14 of 20" in summary["gates"][0]["message"]
    junit = (run_dir / "junit.xml").read_text()
    assert "<failure" in junit and "14 of 20" in junit


def test_merge_missing_a_shards_cases_fails_its_gates_unless_allowed(tmp_path: Path):
    one = make_run(tmp_path / "s1", [result(f"a{i}", "classify", "classify") for i in range(5)],
                   options={"shard": "1/2"}, finalize=False)
    two = make_run(tmp_path / "s2", [result(f"b{i}", "classify", "classify") for i in range(3)],
                   options={"shard": "2/2"}, finalize=False)
    _as_if_killed(one, planned=5, suite_cases=10)
    _as_if_killed(two, planned=5, suite_cases=10)  # stopped after 3 of its 5 cases
    proc = run_cli("merge", one, two, "--out", tmp_path / "m", "--gate", "accuracy >= 0.9")
    assert proc.returncode == 1, proc.stderr
    assert "2 of 10 planned cases have no result" in " ".join(proc.stdout.split())
    proc = run_cli("merge", one, two, "--out", tmp_path / "m2", "--gate", "accuracy >= 0.9", "--allow-incomplete")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "incomplete" in proc.stdout  # still said, not gated


# --- 9. a resume reaches the router the run started with -----------------------------------------

def test_resume_against_another_base_url_model_or_route_header_is_refused(finished_run, tmp_path: Path):
    suite, run_dir, rec, fake = finished_run
    lines = (run_dir / RESULTS).read_text().splitlines()
    (run_dir / RESULTS).write_text("\n".join(lines[:3]) + "\n")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    other_rec = Recorder(lambda cid, attempt, body: ok_reply(cid))
    with FakeOpenAI(other_rec) as other:
        for extra, option, was, now in (
                (["--base-url", other.base_url], "--base-url", fake.base_url.rstrip("/"), other.base_url.rstrip("/")),
                (["--model", "router:someone-else"], "--model", "router:cost-governance-demo", "router:someone-else"),
                (["--route-header", "litellm"], "--route-header", "x-model-router-selected-route",
                 "x-litellm-model-group")):
            args = openai_args(fake, tmp_path / "runs", "--resume", str(run_dir))
            proc = run_cli("run", suite, *args, *extra)  # the later --base-url wins
            assert proc.returncode == 2, (extra, proc.stderr)
            text = " ".join(proc.stderr.split())
            assert f"{option} {was}, not {now}" in text and f"resume with {option} {was}" in text, text
            assert "Traceback" not in proc.stderr
    assert rec.log == [] and other_rec.log == []
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    # The same router, its URL spelled with a trailing slash, finishes the run.
    proc = run_cli("run", suite, *openai_args(fake, tmp_path / "runs", "--resume", str(run_dir)),
                   "--base-url", fake.base_url.rstrip("/") + "/")
    assert proc.returncode == 0, proc.stderr
    assert len(list(iter_results(run_dir / RESULTS))) == 5


# --- 15. an --out that cannot hold a run directory ---------------------------------------------

def test_resume_of_a_local_run_with_another_classifier_or_threshold_is_refused(tmp_path: Path):
    """The embedded router is its classifier and threshold: another one would route the remaining
    cases differently under the first one's manifest."""
    suite = write_case_suite(tmp_path / "s", make_cases(4))
    out = tmp_path / "runs"
    proc = run_cli("run", suite, "--classifier", "tfidf", "--threshold", "0.2", "--out", out, "-q")
    assert proc.returncode == 0, proc.stderr
    run_dir = next(out.glob("*/*"))
    lines = (run_dir / RESULTS).read_text().splitlines()
    (run_dir / RESULTS).write_text("\n".join(lines[:2]) + "\n")  # stopped after 2 of 4
    for extra, option, was in ((["--threshold", "0.2"], "--classifier", "tfidf"),  # embedding, by default
                               (["--classifier", "tfidf"], "--threshold", "0.2"),  # tfidf's default, 0.05
                               (["--classifier", "tfidf", "--threshold", "0.3"], "--threshold", "0.2")):
        proc = run_cli("run", suite, *extra, "--out", out, "--resume", run_dir, "-q")
        message = " ".join(proc.stderr.split())
        assert proc.returncode == 2, message
        assert f"this run was made with {option} {was}" in message and f"resume with {option} {was}" in message
        assert len((run_dir / RESULTS).read_text().splitlines()) == 2
    proc = run_cli("run", suite, "--classifier", "tfidf", "--threshold", "0.2", "--out", out, "--resume", run_dir, "-q")
    assert proc.returncode == 0, proc.stderr
    assert len((run_dir / RESULTS).read_text().splitlines()) == 4


def test_an_out_folder_that_cannot_be_created_is_refused_before_any_traffic(tmp_path: Path):
    suite = write_case_suite(tmp_path / "s", make_cases(3))
    (tmp_path / "file").write_text("keep me")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "s").write_text("a file where the suite's folder goes")
    run = make_run(tmp_path / "r", [result("a", "classify", "classify")])
    rec = Recorder(lambda cid, attempt, body: ok_reply(cid))
    with FakeOpenAI(rec) as fake:
        for out, needle in ((tmp_path / "file" / "sub", f"{tmp_path / 'file'} is a file, not a folder"),
                            (tmp_path / "runs", f"{tmp_path / 'runs' / 's'} is a file, not a folder")):
            proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", out)
            text = " ".join(proc.stderr.split())
            assert proc.returncode == 2, proc.stderr
            assert needle in text and f"--out {out}" in text and "fix:" in text and "Traceback" not in text
    assert rec.log == []
    proc = run_cli("merge", run, "--out", tmp_path / "file" / "merged")
    assert proc.returncode == 2 and "is a file, not a folder" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "file").read_text() == "keep me"


# --- 16. a full disk while the summary and reports are written ----------------------------------

def _disk_full_for(monkeypatch: pytest.MonkeyPatch, names: set[str]) -> list[str]:
    """The store's low-level file write fails with ENOSPC, half-way through, for the files in ``names``."""
    import errno

    from evalkit import store

    real = store._write_file
    failed: list[str] = []

    def write(tmp: Path, chunks) -> None:
        if tmp.name.removesuffix(".tmp") not in names:
            return real(tmp, chunks)
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write("".join(chunks)[:10])  # a part of it reached the disk
        failed.append(tmp.name)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store, "_write_file", write)
    return failed


def _no_tmp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*.tmp")]


@pytest.mark.parametrize("full", ["summary.json", "report.html"])
def test_report_on_a_full_disk_exits_3_removes_temporaries_and_keeps_the_run(full, tmp_path: Path, monkeypatch):
    run_dir = make_run(tmp_path / "r", [result("a", "classify", "classify"), result("b", "reasoning", "fallback")])
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    failed = _disk_full_for(monkeypatch, {full})
    proc = run_cli("report", run_dir)
    assert failed == [f"{full}.tmp"]
    assert proc.returncode == 3, proc.stderr
    text = " ".join(proc.stderr.split())
    assert f"cannot write {full}: No space left on device" in text and "evalkit report RUN_DIR" in text
    assert "Traceback" not in text
    assert _no_tmp_files(tmp_path)
    assert (run_dir / RESULTS).read_bytes() == before[RESULTS]
    assert (run_dir / full).read_bytes() == before[full]  # the earlier version stays whole
    monkeypatch.undo()
    assert run_cli("report", run_dir).returncode == 0  # once there is space, the reports are made again


def test_a_run_whose_summary_cannot_be_written_exits_3_with_its_results_intact(tmp_path: Path, monkeypatch):
    suite = write_case_suite(tmp_path / "s", make_cases(4))
    failed = _disk_full_for(monkeypatch, {"summary.json"})
    with FakeOpenAI(Recorder(lambda cid, attempt, body: ok_reply(cid))) as fake:
        proc = run_cli("run", suite, *openai_args(fake, tmp_path / "runs"))
    assert failed and proc.returncode == 3, proc.stderr
    assert "No space left on device" in proc.stderr and "Traceback" not in proc.stderr
    run_dir = next((tmp_path / "runs").glob("*/*"))
    assert sorted(r.id for r in iter_results(run_dir / RESULTS)) == [f"c{i:03d}" for i in range(4)]
    assert _no_tmp_files(tmp_path) and not (run_dir / "summary.json").exists()
    assert (run_dir / LOCK).read_bytes() == b""  # the lock is released on the way out


# --- 19. a result whose expected route the router config does not have ---------------------------

@pytest.mark.parametrize("tags", [None, ["billing", "vip"]])
def test_report_refuses_an_expected_route_missing_from_the_config(tags, tmp_path: Path):
    extra = {"tags": tags} if tags else {}
    run_dir = make_run(tmp_path / "r", [result("a", "classify", "classify", **extra),
                                        result("b", "billing-disputes", "classify", **extra),
                                        result("c", "reasoning", "reasoning", **extra)], finalize=False)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    for args in (["report", run_dir], ["gate", run_dir, "accuracy >= 0.1"]):
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        text = " ".join(proc.stderr.split())
        assert "case 'b' expects route 'billing-disputes'" in text and "router config 'cost-governance-demo'" in text
        assert str(run_dir / RESULTS) in text and "fix:" in text and "Traceback" not in text
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
