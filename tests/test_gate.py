"""Gate expressions: parsing, verdicts and their messages, `evalkit gate`, and gates on `evalkit run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from statsmodels.stats.proportion import proportion_confint

from evalkit.errors import UsageError
from evalkit.gates import evaluate_gate, parse_gate
from evalkit.metrics import routing_metrics
from tests.conftest import run_cli
from tests.run_helpers import make_run, result, slice_suite

LABELS = ["classify", "customer-qa", "reasoning", "fallback"]


def summary_of(results):
    return routing_metrics(results, labels=LABELS)


def reasoning_results(hits: int, total: int = 48):
    """``total`` reasoning cases of which ``hits`` are routed right, plus 10 correct classify cases."""
    rows = [result(f"r{i}", "reasoning", "reasoning" if i < hits else "customer-qa") for i in range(total)]
    rows += [result(f"c{i}", "classify", "classify") for i in range(10)]
    return rows


@pytest.mark.parametrize("expr, metric, task, op, value, offset", [
    ("accuracy >= 0.90", "accuracy", None, ">=", 0.90, 0.0),
    ("recall[reasoning]>=85%", "recall", "reasoning", ">=", 0.85, 0.0),
    ("error_rate <= 0.02", "error_rate", None, "<=", 0.02, 0.0),
    ("  false_match_rate < .1 ", "false_match_rate", None, "<", 0.1, 0.0),
    ("accuracy >= baseline - 0.02", "accuracy", None, ">=", None, -0.02),
    ("macro_f1 > baseline", "macro_f1", None, ">", None, 0.0),
    ("precision[customer-qa] >= baseline + 1%", "precision", "customer-qa", ">=", None, 0.01),
    ("latency.p95_ms < 800", "latency.p95_ms", None, "<", 800.0, 0.0),
])
def test_parse_accepts_the_documented_forms(expr, metric, task, op, value, offset):
    gate = parse_gate(expr)
    assert (gate.metric, gate.task, gate.op) == (metric, task, op)
    assert gate.value == pytest.approx(value) if value is not None else gate.value is None
    assert gate.offset == pytest.approx(offset)


@pytest.mark.parametrize("expr", ["accuracy => 0.9", "accuracy", "accuracy >= ", "accuracy >= high",
                                  "recall[reasoning >= 0.8", "accuracy == 0.9", ">= 0.9", "accuracy >= baseline * 2"])
def test_malformed_expression_names_the_expected_form(expr):
    with pytest.raises(UsageError, match="malformed gate expression") as info:
        parse_gate(expr)
    assert "METRIC OP VALUE" in info.value.message
    assert "accuracy >= baseline - 0.02" in info.value.message


def test_unknown_metric_and_misplaced_task_are_rejected():
    with pytest.raises(UsageError, match="unknown metric 'acuracy'"):
        parse_gate("acuracy >= 0.9")
    with pytest.raises(UsageError, match="'accuracy' is not a per-task metric"):
        parse_gate("accuracy[classify] >= 0.9")
    with pytest.raises(UsageError, match=r"did you mean 'recall\[TASK\]'"):
        parse_gate("recall >= 0.9")


def test_unknown_names_in_gates_get_the_near_name():
    with pytest.raises(UsageError, match=r"unknown metric 'acuracy' \(did you mean 'accuracy'\?\)"):
        parse_gate("acuracy >= 0.9")
    with pytest.raises(UsageError, match=r"'recal' is not a per-task metric \(did you mean 'recall'\?\)"):
        parse_gate("recal[reasoning] >= 0.9")
    with pytest.raises(UsageError, match=r"unknown metric 'latncy.p95_ms' \(did you mean 'latency.p95_ms'\?\)"):
        parse_gate("latncy.p95_ms <= 900")


def test_failed_proportion_gate_reports_n_and_wilson_interval():
    summary = summary_of(reasoning_results(39))
    verdict = evaluate_gate(parse_gate("recall[reasoning] >= 0.85"), summary)
    lo, hi = proportion_confint(39, 48, alpha=0.05, method="wilson")
    assert not verdict.passed
    assert verdict.value == pytest.approx(39 / 48)
    assert verdict.n == 48
    assert verdict.message == f"Gate 'recall[reasoning] >= 0.85' failed: 0.812 (n=48, 95% CI {lo:.2f}-{hi:.2f})"


def test_accuracy_gate_counts_scored_cases_only():
    rows = reasoning_results(39) + [result("e1", "classify", None, status="error"), result("e2", "classify", None, status="error")]
    verdict = evaluate_gate(parse_gate("accuracy >= 0.8"), summary_of(rows))
    # 39 + 10 right out of 58 scored; the 2 errors are not misroutes.
    lo, hi = proportion_confint(49, 58, method="wilson")
    assert verdict.passed and verdict.n == 58
    assert verdict.ci95 == pytest.approx([lo, hi])
    error_gate = evaluate_gate(parse_gate("error_rate <= 2%"), summary_of(rows))
    assert not error_gate.passed and error_gate.n == 60 and error_gate.value == pytest.approx(2 / 60)


def test_boundaries_follow_the_operator():
    summary = summary_of(reasoning_results(36))  # recall exactly 0.75
    assert evaluate_gate(parse_gate("recall[reasoning] >= 0.75"), summary).passed
    assert not evaluate_gate(parse_gate("recall[reasoning] > 0.75"), summary).passed
    assert evaluate_gate(parse_gate("recall[reasoning] <= 75%"), summary).passed
    assert not evaluate_gate(parse_gate("recall[reasoning] < 0.75"), summary).passed


def test_relative_gate_reads_the_baseline_value():
    baseline = summary_of(reasoning_results(40))  # accuracy 50/58
    worse = summary_of(reasoning_results(38))  # 48/58: 0.0345 lower
    slightly = summary_of(reasoning_results(39))  # 49/58: 0.0172 lower
    gate = parse_gate("accuracy >= baseline - 0.02")
    failed = evaluate_gate(gate, worse, baseline=baseline)
    assert not failed.passed
    assert failed.baseline == pytest.approx(50 / 58)
    assert failed.threshold == pytest.approx(50 / 58 - 0.02)
    assert "baseline 0.862 - 0.02" in failed.message
    assert evaluate_gate(gate, slightly, baseline=baseline).passed
    with pytest.raises(UsageError, match="no baseline run was given"):
        evaluate_gate(gate, worse)


def test_gate_on_unknown_task_or_absent_figure():
    summary = summary_of(reasoning_results(39))
    with pytest.raises(UsageError, match="unknown task 'billing'"):
        evaluate_gate(parse_gate("recall[billing] >= 0.5"), summary)
    # No case expects fallback: false_match_rate has no value, so the gate cannot pass.
    verdict = evaluate_gate(parse_gate("false_match_rate <= 0.1"), summary)
    assert verdict.value is None and not verdict.passed and "no value" in verdict.message


def test_dotted_metric_reaches_judge_scores_with_their_interval():
    summary = summary_of(reasoning_results(39))
    summary["judge"] = {"per_path": {"reasoning": {"correctness": {"mean": 3.4, "ci95": [3.1, 3.7], "n": 39}}}}
    verdict = evaluate_gate(parse_gate("judge.per_path.reasoning.correctness >= 3.5"), summary)
    assert not verdict.passed
    assert verdict.message == "Gate 'judge.per_path.reasoning.correctness >= 3.5' failed: 3.400 (n=39, 95% CI 3.10-3.70)"
    with pytest.raises(UsageError, match="not in this run's summary.json"):
        evaluate_gate(parse_gate("judge.per_path.classify.correctness >= 3"), summary)


# --- the command line ------------------------------------------------------------------------------

@pytest.fixture
def stored_run(tmp_path: Path) -> Path:
    return make_run(tmp_path / "runs" / "run-a", reasoning_results(39))


def test_gate_command_exit_codes_and_messages(stored_run: Path):
    before = (stored_run / "summary.json").read_bytes()
    failed = run_cli("gate", stored_run, "recall[reasoning] >= 0.85", "accuracy >= 0.8")
    assert failed.returncode == 1, failed.stderr
    assert "FAIL Gate 'recall[reasoning] >= 0.85' failed: 0.812 (n=48" in failed.stdout
    assert "PASS Gate 'accuracy >= 0.8' passed" in failed.stdout
    passed = run_cli("gate", stored_run, "recall[reasoning] >= 0.80", "--json")
    assert passed.returncode == 0, passed.stderr
    doc = json.loads(passed.stdout)
    assert doc["passed"] is True and doc["gates"][0]["n"] == 48
    bad = run_cli("gate", stored_run, "recall[reasoning] => 0.85")
    assert bad.returncode == 2
    assert "METRIC OP VALUE" in bad.stderr and "Traceback" not in bad.stderr
    typo = run_cli("gate", stored_run, "accurcy >= 0.5")
    assert typo.returncode == 2 and "did you mean 'accuracy'?" in typo.stderr
    task = run_cli("gate", stored_run, "recall[reasonin] >= 0.5")
    assert task.returncode == 2 and "did you mean 'reasoning'?" in task.stderr
    assert (stored_run / "summary.json").read_bytes() == before


def test_gate_command_relative_gate_needs_baseline(tmp_path: Path, stored_run: Path):
    base = make_run(tmp_path / "runs" / "run-base", reasoning_results(44))
    no_base = run_cli("gate", stored_run, "accuracy >= baseline - 0.02")
    assert no_base.returncode == 2 and "--baseline" in no_base.stderr
    # 49/58 against 54/58: 0.086 lower, more than 0.02.
    rel = run_cli("gate", stored_run, "accuracy >= baseline - 0.02", "--baseline", base)
    assert rel.returncode == 1 and "baseline 0.931 - 0.02" in rel.stdout


@pytest.mark.slow
def test_run_with_gates_writes_everything_then_exits_1(tmp_path: Path):
    suite = slice_suite(tmp_path / "gated", per_task=3, gates=["accuracy >= 0.0"])
    step = tmp_path / "step-summary.md"
    step.write_text("earlier step\n")
    from tests.conftest import cli_env

    proc = run_cli("run", suite, "--out", tmp_path / "out", "-q", "--gate", "recall[reasoning] >= 1.01",
                   env=cli_env(GITHUB_STEP_SUMMARY=str(step)))
    assert proc.returncode == 1, proc.stderr
    assert "FAIL Gate 'recall[reasoning] >= 1.01' failed" in proc.stdout
    (run_dir,) = (tmp_path / "out" / "gated").iterdir()
    for name in ("manifest.json", "results.jsonl", "summary.json", "report.html", "summary.md", "junit.xml", "router.json"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [(g["expr"], g["passed"]) for g in summary["gates"]] == [("accuracy >= 0.0", True),
                                                                    ("recall[reasoning] >= 1.01", False)]
    assert json.loads((run_dir / "router.json").read_text())["name"] == "cost-governance-demo"
    text = step.read_text()
    assert text.startswith("earlier step\n\n## evalkit: gated\n") and "recall[reasoning] >= 1.01" in text
    assert "&gt;" not in text and "&lt;" not in text  # markdown, not HTML entities


def test_run_rejects_bad_gates_before_any_traffic(tmp_path: Path):
    suite = slice_suite(tmp_path / "s", per_task=1)
    base = make_run(tmp_path / "base", reasoning_results(40))
    for args, needle in ((("--gate", "accuracy >> 0.9"), "METRIC OP VALUE"),
                         (("--shard", "1/2", "--baseline", str(base)), "do not go together"),
                         (("--baseline", str(tmp_path / "missing")), "run directory not found"),
                         (("--gate", "recall[billing] >= 0.9"), "unknown task 'billing'"),
                         (("--gate", "recall[reasonin] >= 0.9"), "did you mean 'reasoning'?"),
                         (("--gate", "acuracy >= 0.9"), "did you mean 'accuracy'?"),
                         (("--gate", "accuracy >= baseline - 0.02"), "--baseline"),
                         (("--shard", "5/4"), "I/N")):
        proc = run_cli("run", suite, "--out", tmp_path / "out", "-q", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_malformed_gate_in_suite_yaml_names_the_file(tmp_path: Path):
    suite = slice_suite(tmp_path / "s", per_task=1, gates=["accuracy >= 0.9", "recall(reasoning) >= 0.5"])
    proc = run_cli("run", suite, "--out", tmp_path / "out", "-q")
    assert proc.returncode == 2
    assert "suite.yaml:6: malformed gate expression" in proc.stderr  # the line of the second gate
    assert "recall(reasoning) >= 0.5" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
