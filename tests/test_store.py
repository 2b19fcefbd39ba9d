"""The run directory (``store.RunDir``) and the typed documents it reads and writes: run
directories written by evalkit 0.1.0 (``tests/data/runs-v1``) load, read back unchanged, and
re-render to the same files byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import evalkit
from evalkit.comparison import Comparison
from evalkit.errors import RunDirError
from evalkit.store import (BASELINE, BASELINE_JUDGE, JUDGE, PAIRWISE, PER_CASE_FILES, RESULTS, RunDir, load_run)
from evalkit.summary import Summary
from tests.conftest import ROOT, run_cli

V1 = ROOT / "tests" / "data" / "runs-v1"
JUDGED = V1 / "judged"        # --baseline-model, --judge, --judge-pairwise, a gate
COMPARED = V1 / "compared"    # --baseline JUDGED: diff.json, compare.md


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def read_jsonl(path: Path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("name", ["judged", "compared"])
def test_a_summary_json_reads_and_writes_back_unchanged(name):
    stored = read_json(V1 / name / "summary.json")
    assert Summary.model_validate(stored).to_json() == stored


def test_a_diff_json_reads_and_writes_back_unchanged():
    stored = read_json(COMPARED / "diff.json")
    assert Comparison.model_validate(stored).to_json() == stored


def test_an_old_run_loads_typed():
    run = load_run(JUDGED)
    stored = read_json(JUDGED / "summary.json")
    assert run.manifest.schema_version == 1 and run.manifest.evalkit_version == "0.1.0"
    assert [r.id for r in run.results] == [r["id"] for r in read_jsonl(JUDGED / "results.jsonl")]
    summary = run.summary
    assert summary.accuracy == stored["accuracy"] and summary.n_cases == stored["n_cases"] == 16
    assert summary.per_task["reasoning"].recall == stored["per_task"]["reasoning"]["recall"]
    assert [g.expr for g in summary.gates] == ["accuracy >= 0.5"] and summary.gates[0].passed
    judge = summary.judge
    assert judge is not None and judge.done and judge.model == "judge-model-x"
    assert judge.per_path["classify"]["correctness"].mean == stored["judge"]["per_path"]["classify"]["correctness"]["mean"]
    assert judge.baseline.overall.pairwise.n == stored["judge"]["baseline"]["overall"]["pairwise"]["n"]
    assert run.manifest.judge.status == "done" and run.manifest.judge.api_key_env == "JUDGE_KEY"
    # The judge's files, typed: the grades, the baseline model's answers and grades, pairwise verdicts.
    assert [(g.id, g.criterion, g.score) for g in run.grades] == [
        (g["id"], g["criterion"], g["score"]) for g in read_jsonl(JUDGED / "judge.jsonl")]
    assert len(run.judgement.baseline_results) == len(read_jsonl(JUDGED / "baseline.jsonl"))
    assert len(run.judgement.baseline_records) == len(read_jsonl(JUDGED / "baseline_judge.jsonl"))
    assert [p.winner for p in run.judgement.pairs] == [p.get("winner") for p in read_jsonl(JUDGED / "pairwise.jsonl")]
    assert run.comparison is None


def test_the_documents_read_like_the_json_they_are_stored_as():
    summary = load_run(JUDGED).summary
    stored = read_json(JUDGED / "summary.json")
    assert summary["per_task"]["reasoning"]["support"] == stored["per_task"]["reasoning"]["support"]
    assert summary["gates"][0]["expr"] == "accuracy >= 0.5"
    assert summary.get("no such key", "absent") == "absent" and "accuracy" in summary
    with pytest.raises(KeyError):
        summary["no such key"]


def test_an_old_comparison_loads_with_ids_and_details():
    run = load_run(COMPARED)
    stored = read_json(COMPARED / "diff.json")
    diff = run.comparison
    assert diff is not None and diff.a.run_id == read_json(JUDGED / "manifest.json")["run_id"]
    assert diff.regressed == [f["id"] for f in stored["regressed"]]
    assert diff.fixed == [f["id"] for f in stored["fixed"]]
    assert diff.mcnemar_p == stored["mcnemar"]["p_value"]
    assert diff.metric("accuracy").delta == next(m["delta"] for m in stored["metrics"] if m["metric"] == "accuracy")
    assert diff.failed is stored["verdict"]["failed"]


def same_document(got, want, where="") -> None:
    """Equal JSON documents: the same keys in the same order, floats equal to the last bits or so
    (an analysis may sum in another order than the evalkit that wrote the file)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
        for key in want:
            same_document(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            same_document(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15), where
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r} != {want!r}"


@pytest.mark.parametrize("name", ["judged", "compared"])
def test_an_old_run_re_renders_to_the_same_files(name, tmp_path: Path):
    copy = tmp_path / name
    shutil.copytree(V1 / name, copy)
    proc = run_cli("report", copy)
    assert proc.returncode == 0, proc.stderr
    for file in ("summary.json", "manifest.json", "diff.json"):
        if (V1 / name / file).is_file():
            same_document(read_json(copy / file), read_json(V1 / name / file), file)
    for file in ("summary.md", "junit.xml", "compare.md"):
        if (V1 / name / file).is_file():
            assert (copy / file).read_bytes() == (V1 / name / file).read_bytes(), file


def test_same_document_tells_documents_apart():
    same_document({"a": [1, 0.1 + 0.2], "b": "x"}, {"a": [1, 0.3], "b": "x"})
    for got in ({"a": [1, 0.31], "b": "x"}, {"b": "x", "a": [1, 0.3]}, {"a": [1.0, 0.3], "b": "x"}, {"a": [1, 0.3]}):
        with pytest.raises(AssertionError):
            same_document(got, {"a": [1, 0.3], "b": "x"})


def test_a_summary_from_a_newer_evalkit_is_refused(tmp_path: Path):
    copy = tmp_path / "run"
    shutil.copytree(JUDGED, copy)
    summary = read_json(copy / "summary.json")
    summary["schema_version"] = evalkit.SCHEMA_VERSION + 1
    (copy / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(RunDirError, match="newer than this evalkit"):
        load_run(copy).summary


def test_a_missing_or_damaged_summary_is_recomputed_from_the_records(tmp_path: Path):
    copy = tmp_path / "run"
    shutil.copytree(JUDGED, copy)
    stored = read_json(copy / "summary.json")
    (copy / "summary.json").write_text('{"schema_version": 1, "suite": "mini"')  # torn
    recomputed = load_run(copy).summary
    assert recomputed.accuracy == stored["accuracy"] and recomputed.per_task == Summary.model_validate(stored).per_task
    assert recomputed.judge.overall["correctness"].mean == stored["judge"]["overall"]["correctness"]["mean"]
    (copy / "summary.json").unlink()
    assert load_run(copy).summary.n_cases == stored["n_cases"]


def test_run_dir_reads_every_per_case_file_typed():
    run_dir = RunDir(JUDGED)
    assert PER_CASE_FILES == (RESULTS, JUDGE, BASELINE, BASELINE_JUDGE, PAIRWISE)
    for name in PER_CASE_FILES:
        records = run_dir.read_records(name)
        assert [r.id for r in records] == [r["id"] for r in read_jsonl(JUDGED / name)], name
    assert RunDir(COMPARED).read_records(JUDGE) == []  # absent: none
    with pytest.raises(ValueError, match="not a per-case file"):
        run_dir.read_records("summary.json")


def test_a_damaged_judge_file_names_its_line(tmp_path: Path):
    copy = tmp_path / "run"
    shutil.copytree(JUDGED, copy)
    lines = (copy / "judge.jsonl").read_text().splitlines(keepends=True)
    (copy / "judge.jsonl").write_text("".join([lines[0], '{"id": "x"}\n', *lines[1:]]))
    with pytest.raises(RunDirError, match="line 2 is not a valid record") as info:
        load_run(copy).grades
    assert info.value.where.endswith("judge.jsonl:2")


def test_a_judge_line_cut_short_says_so(tmp_path: Path):
    copy = tmp_path / "run"
    shutil.copytree(JUDGED, copy)
    lines = (copy / "judge.jsonl").read_text().splitlines(keepends=True)
    (copy / "judge.jsonl").write_text("".join([lines[0], lines[1][:20] + "\n", *lines[2:]]))
    with pytest.raises(RunDirError, match="line 2 ends before its JSON object does") as info:
        load_run(copy).grades
    assert info.value.where.endswith("judge.jsonl:2")


def test_to_pandas_has_one_row_per_case_and_a_column_per_judged_criterion():
    run = load_run(JUDGED)
    frame = run.to_pandas()
    rows = read_jsonl(JUDGED / "results.jsonl")
    assert list(frame["id"]) == [r["id"] for r in rows]
    assert list(frame["route"]) == [r["route"] for r in rows]
    assert list(frame["cost_usd"]) == pytest.approx([r["cost_usd"] for r in rows], nan_ok=True)
    for column in ("expected_route", "status", "served_model", "latency_ms", "prompt_tokens", "completion_tokens",
                   "tags", "judge_correctness", "judge_completeness"):
        assert column in frame.columns, column
    grades = {(g["id"], g["criterion"]): g for g in read_jsonl(JUDGED / "judge.jsonl")}
    for _, row in frame.iterrows():
        grade = grades.get((row["id"], "correctness"))
        if grade is None or grade["status"] != "scored":
            assert row["judge_correctness"] != row["judge_correctness"]  # NaN: not scored
        else:
            assert row["judge_correctness"] == grade["score"]


def test_a_new_summary_json_has_every_key_of_its_model(tmp_path: Path):
    """to_json writes the keys a document was built with: a summary built by evalkit has them all,
    its gate verdicts too (also the verdict of a relative gate whose baseline run is gone)."""
    from evalkit.gates import GateResult
    from tests.run_helpers import make_run, result

    run_dir = make_run(tmp_path / "run", [result("1", "classify", "classify"), result("2", "reasoning", "fallback")],
                       gates=["accuracy >= 0.5", "accuracy >= baseline - 0.1"],
                       options={"baseline": str(tmp_path / "gone")})
    stored = read_json(run_dir / "summary.json")
    assert list(stored) == list(Summary.model_fields)
    assert [g["expr"] for g in stored["gates"]] == ["accuracy >= 0.5", "accuracy >= baseline - 0.1"]
    for gate in stored["gates"]:
        assert list(gate) == list(GateResult.model_fields)
    assert stored["gates"][1]["passed"] is False and "baseline run is not available" in stored["gates"][1]["message"]
