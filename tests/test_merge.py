"""Sharding a suite (`evalkit run --shard I/N`) and joining shard runs (`evalkit merge`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from evalkit.errors import UsageError
from evalkit.records import Case
from evalkit.shard import parse_shard, shard_cases
from tests.conftest import run_cli
from tests.run_helpers import make_run, result, slice_suite

# Figures that depend on timing or on where the local router listened, not on routing.
VOLATILE = {"run_id", "latency", "target"}


def case(cid: str, session: str | None = None, turn: int | None = None) -> Case:
    return Case(id=cid, prompt=f"p {cid}", expected_route="classify", session=session, turn=turn)


def test_parse_shard():
    assert parse_shard("2/4") == (2, 4) and parse_shard(" 1 / 1 ") == (1, 1)
    for bad in ("0/4", "5/4", "2of4", "2/0", "", "a/b"):
        with pytest.raises(UsageError, match="I/N"):
            parse_shard(bad)


def test_shards_partition_the_suite_by_id_hash_and_keep_sessions_whole():
    cases = [case(f"c{i}") for i in range(200)]
    cases += [case(f"s{s}-t{t}", session=f"s{s}", turn=t) for s in range(20) for t in range(1, 4)]
    shards = [shard_cases(cases, i, 4) for i in range(1, 5)]
    ids = [c.id for shard in shards for c in shard]
    assert sorted(ids) == sorted(c.id for c in cases) and len(ids) == len(set(ids))
    assert all(30 < len(s) < 90 for s in shards)  # roughly even
    for i, shard in enumerate(shards, start=1):
        for c in shard:
            key = f"session:{c.session}" if c.session else f"case:{c.id}"
            assert int(hashlib.sha256(key.encode()).hexdigest(), 16) % 4 + 1 == i
        sessions = {c.session for c in shard if c.session}
        for other in shards[:i - 1] + shards[i:]:
            assert not sessions & {c.session for c in other if c.session}
    # The same share whatever the order of the file.
    assert [c.id for c in shard_cases(list(reversed(cases)), 2, 4)] == [c.id for c in reversed(shards[1])]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """A whole run and four shard runs of the same suite (sessions included), in-process."""
    from evalkit.cost import load_prices
    from evalkit.run import TargetSpec, run_suite
    from evalkit.suites import load_suite

    root = tmp_path_factory.mktemp("shards")
    suite = load_suite(slice_suite(root / "mixed", per_task=12, sessions=True,
                                   gates=["accuracy >= 0.3", "recall[reasoning] >= 0.9"]))
    prices = load_prices()
    whole = run_suite(suite, TargetSpec(kind="local"), out=root / "whole", prices=prices, concurrency=4).run_dir
    shards = [run_suite(suite, TargetSpec(kind="local"), out=root / "shards", prices=prices, concurrency=4,
                        shard=(i, 4)).run_dir for i in (3, 1, 4, 2)]
    return {"root": root, "whole": whole, "shards": shards, "suite": suite}


@pytest.mark.slow
def test_shard_runs_record_their_share_and_defer_gates(sharded):
    sizes = []
    for run in sharded["shards"]:
        manifest = json.loads((run / "manifest.json").read_text())
        summary = json.loads((run / "summary.json").read_text())
        assert manifest["options"]["shard"] in {"1/4", "2/4", "3/4", "4/4"}
        assert manifest["options"]["gates"] == ["accuracy >= 0.3", "recall[reasoning] >= 0.9"]
        assert summary["gates"] == []
        sizes.append(summary["n_cases"])
    assert sum(sizes) == len(sharded["suite"].cases) and all(sizes)


@pytest.mark.slow
def test_four_shards_merged_report_as_the_whole_run(sharded, tmp_path: Path):
    proc = run_cli("merge", *sharded["shards"], "--out", tmp_path / "merged", "--json")
    assert proc.returncode == 1, proc.stderr  # recall[reasoning] >= 0.9 fails, as on the whole run
    merged_summary = json.loads(proc.stdout)
    (merged,) = (tmp_path / "merged" / "mixed").iterdir()
    whole = json.loads((sharded["whole"] / "summary.json").read_text())
    stored = json.loads((merged / "summary.json").read_text())
    assert stored == merged_summary
    assert {k: v for k, v in stored.items() if k not in VOLATILE} == {k: v for k, v in whole.items() if k not in VOLATILE}
    assert [g["passed"] for g in stored["gates"]] == [True, False]
    manifest = json.loads((merged / "manifest.json").read_text())
    assert "shard" not in manifest["options"] and len(manifest["options"]["merged_from"]) == 4
    assert manifest["counts"]["cases"] == len(sharded["suite"].cases)
    for name in ("results.jsonl", "router.json", "report.html", "summary.md", "junit.xml"):
        assert (merged / name).is_file(), name
    # Sessions stay whole and in turn order within the merged results.
    rows = [json.loads(line) for line in (merged / "results.jsonl").read_text().splitlines()]
    assert len(rows) == len({r["id"] for r in rows}) == len(sharded["suite"].cases)


@pytest.mark.slow
def test_merge_refuses_runs_that_do_not_make_a_whole(sharded, tmp_path: Path):
    shards = sharded["shards"]
    for args, needle in ((shards[:3], "missing"), ([*shards, shards[0]], "given twice"),
                         ([shards[0], sharded["whole"]], "without --shard")):
        proc = run_cli("merge", *args, "--out", tmp_path / "m")
        assert proc.returncode == 2, (needle, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr
    other = make_run(tmp_path / "other" / "r1", [result("x", "classify", "classify")], suite="other", suite_hash="zz",
                     options={"shard": "1/4"})
    proc = run_cli("merge", shards[0], other, "--out", tmp_path / "m")
    assert proc.returncode == 2 and "different suites" in proc.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_a_missing_shard_is_merged_with_allow_incomplete_and_every_report_says_how_to_complete_it(sharded,
                                                                                                  tmp_path: Path):
    shards = sharded["shards"]  # shards 3, 1, 4, 2 of 4
    refused = run_cli("merge", *shards[:3], "--out", tmp_path / "m")
    assert refused.returncode == 2 and "2/4 missing" in refused.stderr and "--allow-incomplete" in refused.stderr
    assert not (tmp_path / "m").exists()

    proc = run_cli("merge", *shards[:3], "--out", tmp_path / "m", "--allow-incomplete")
    assert proc.returncode == 1, proc.stderr  # recall[reasoning] >= 0.9 still fails on the cases there are
    (merged,) = (tmp_path / "m" / "mixed").iterdir()
    n_missing = len((shards[3] / "results.jsonl").read_text().splitlines())
    n_all = len(sharded["suite"].cases)
    stderr = " ".join(proc.stderr.split())
    assert f"shard(s) 2/4 missing: {n_missing} of {n_all} cases were not run" in stderr
    manifest = json.loads((merged / "manifest.json").read_text())
    summary = json.loads((merged / "summary.json").read_text())
    assert manifest["options"]["missing_shards"] == ["2/4"] and manifest["options"]["allow_incomplete"] is True
    assert summary["run"]["n_planned"] == n_all and summary["run"]["n_not_run"] == n_missing
    assert summary["n_cases"] == n_all - n_missing
    assert [g["passed"] for g in summary["gates"]] == [True, False]  # evaluated, not failed for being incomplete
    # The terminal, both reports and `evalkit report` say how to complete it: resume the merged run
    # (the command works as printed) or run the missing shard and merge again.
    hint = "or run the missing shard (2/4) and merge again"
    terminal = " ".join(proc.stdout.replace("│", " ").split())  # the table's cells wrap
    assert hint in terminal and "--resume" in terminal
    import shlex

    assert f"--resume {shlex.quote(str(merged))}</code>, {hint}" in (merged / "report.html").read_text()
    assert f"--resume {shlex.quote(str(merged))}`, {hint}" in (merged / "summary.md").read_text()
    again = run_cli("report", merged)
    warning = " ".join(again.stderr.split())
    assert again.returncode == 0 and hint in warning

    command = shlex.split(warning[warning.index("`evalkit run") + 1:warning.index("`, or run")])
    assert command[-2:] == ["--resume", str(merged)]
    finished = run_cli(*command[1:])
    assert finished.returncode == 1, finished.stderr  # complete now: recall[reasoning] >= 0.9 fails as on the whole run
    rows = (merged / "results.jsonl").read_text().splitlines()
    assert len(rows) == n_all and len({json.loads(r)["id"] for r in rows}) == n_all


@pytest.mark.slow
def test_merge_joins_unsharded_runs_of_disjoint_cases(tmp_path: Path):
    a = make_run(tmp_path / "a", [result("1", "classify", "classify"), result("2", "classify", "fallback")])
    b = make_run(tmp_path / "b", [result("3", "reasoning", "reasoning")],
                 judge=[{"id": "3", "criterion": "correctness", "score": 4, "status": "scored",
                         "judge_model": "judge-m", "prompt_version": "v1"}])
    proc = run_cli("merge", a, b, "--out", tmp_path / "m", "--gate", "accuracy >= 0.6")
    assert proc.returncode == 0, proc.stderr
    (merged,) = (tmp_path / "m" / "demo").iterdir()
    summary = json.loads((merged / "summary.json").read_text())
    assert summary["n_cases"] == 3 and summary["accuracy"] == pytest.approx(2 / 3)
    assert summary["gates"][0]["passed"] is True
    merged_grade = json.loads((merged / "judge.jsonl").read_text())
    assert (merged_grade["id"], merged_grade["criterion"], merged_grade["score"]) == ("3", "correctness", 4)
    dup = run_cli("merge", a, a, "--out", tmp_path / "m2")
    assert dup.returncode == 2 and "more than one run" in dup.stderr


def _judged_shard(run_dir: Path, shard: str, ids: list[str], *, pairwise: bool = True) -> Path:
    """A shard run made with --baseline-model and judged (pairwise too): every per-case file there."""
    grade = {"status": "scored", "judge_model": "judge-m", "prompt_version": "v1", "prompt_tokens": 10,
             "completion_tokens": 2, "cost_usd": 0.001}
    results = [result(i, "classify", "classify", content=f"answer {i}") for i in ids]
    make_run(run_dir, results, finalize=False,
             options={"shard": shard, "baseline_model": "base-m"},
             judge=[{**grade, "id": i, "criterion": c, "score": 4} for i in ids for c in ("correctness", "completeness")])
    baseline = [result(i, "classify", None, content=f"baseline answer {i}", served_model="base-m") for i in ids]
    (run_dir / "baseline.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in baseline))
    (run_dir / "baseline_judge.jsonl").write_text("".join(
        json.dumps({**grade, "id": i, "criterion": c, "score": 2}) + "\n" for i in ids for c in ("correctness", "completeness")))
    if pairwise:
        (run_dir / "pairwise.jsonl").write_text("".join(
            json.dumps({"id": i, "winner": "router", "status": "scored", "orders": ["router", "router"],
                        "judge_model": "judge-m", "prompt_version": "v1", "cost_usd": 0.002}) + "\n" for i in ids))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["judge"] = {"model": "judge-m", "status": "done", "pairwise": pairwise, "samples": 1,
                         "counts": {"scored": 4 * len(ids)}, "calls": 6 * len(ids),
                         "prompt_tokens": 40 * len(ids), "completion_tokens": 8 * len(ids), "cost_usd": 0.006 * len(ids)}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


def test_merge_carries_the_baseline_answers_their_grades_and_the_pairwise_verdicts(tmp_path: Path):
    """Shards made with --baseline-model and judged pairwise keep every per-case file when merged."""
    one = _judged_shard(tmp_path / "s1", "1/2", ["1", "2"])
    two = _judged_shard(tmp_path / "s2", "2/2", ["3"])
    proc = run_cli("merge", one, two, "--out", tmp_path / "m", "--json")
    assert proc.returncode == 0, proc.stderr
    (merged,) = (tmp_path / "m" / "demo").iterdir()
    for name, n_lines in (("results.jsonl", 3), ("judge.jsonl", 6), ("baseline.jsonl", 3),
                          ("baseline_judge.jsonl", 6), ("pairwise.jsonl", 3)):
        rows = [json.loads(line) for line in (merged / name).read_text().splitlines()]
        assert len(rows) == n_lines, name
        assert sorted({r["id"] for r in rows}) == ["1", "2", "3"], name
    summary = json.loads((merged / "summary.json").read_text())
    baseline = summary["judge"]["baseline"]
    assert baseline["n_cases"] == 3
    quality = baseline["overall"]["quality"]["correctness"]
    assert (quality["n_pairs"], quality["router_mean"], quality["baseline_mean"]) == (3, 4.0, 2.0)
    assert baseline["overall"]["pairwise"] == {"router_wins": 3, "baseline_wins": 0, "ties": 0, "unscored": 0, "n": 3}
    # The merged manifest's judge block counts the judging of every shard, not of the first one only.
    judge = json.loads((merged / "manifest.json").read_text())["judge"]
    assert judge["counts"] == {"scored": 12} and judge["calls"] == 18
    assert judge["cost_usd"] == pytest.approx(0.018)


def test_merge_refuses_shards_judged_with_different_judges(tmp_path: Path):
    one = _judged_shard(tmp_path / "s1", "1/2", ["1"])
    two = _judged_shard(tmp_path / "s2", "2/2", ["3"])
    manifest = json.loads((two / "manifest.json").read_text())
    manifest["judge"]["model"] = "another-judge"
    (two / "manifest.json").write_text(json.dumps(manifest))
    proc = run_cli("merge", one, two, "--out", tmp_path / "m")
    assert proc.returncode == 2 and "judged with different judges" in proc.stderr, proc.stderr
    assert not (tmp_path / "m").exists()
