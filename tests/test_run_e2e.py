"""evalkit run end to end: the bundled suite on the embedded local router, figures checked
independently with scikit-learn from results.jsonl; sessions; the tutorial's client snippet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT, TUTORIAL_ROUTER, run_cli, write_suite
from fake_openai import FakeOpenAI, Reply


@pytest.fixture(scope="module")
def bundled_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    proc = run_cli("run", ROOT / "suites" / "saas-support", "--out", out, "-q")
    assert proc.returncode == 0, proc.stderr
    runs = list((out / "saas-support").iterdir())
    assert len(runs) == 1
    return runs[0]


@pytest.mark.slow
def test_run_writes_the_run_directory(bundled_run: Path):
    for name in ("manifest.json", "results.jsonl", "summary.json", "report.html", "summary.md"):
        assert (bundled_run / name).is_file(), name
    manifest = json.loads((bundled_run / "manifest.json").read_text())
    assert manifest["target"]["kind"] == "local"
    assert manifest["suite"]["name"] == "saas-support"
    assert manifest["counts"]["cases"] == manifest["suite"]["n_cases"]


@pytest.mark.slow
def test_summary_figures_equal_sklearn_on_results(bundled_run: Path):
    from sklearn.metrics import (accuracy_score, cohen_kappa_score, confusion_matrix, f1_score,
                                 precision_recall_fscore_support)

    summary = json.loads((bundled_run / "summary.json").read_text())
    rows = [json.loads(line) for line in (bundled_run / "results.jsonl").read_text().splitlines()]
    scored = [r for r in rows if r["status"] != "error"]
    y_true = [r["expected_route"] for r in scored]
    y_pred = [r["route"] if r["route"] is not None else "(missing)" for r in scored]
    labels = ["classify", "customer-qa", "reasoning", "fallback"]
    assert summary["labels"] == labels
    assert summary["n_cases"] == len(rows)
    assert summary["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert summary["cohen_kappa"] == pytest.approx(cohen_kappa_score(y_true, y_pred))
    assert summary["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    cols = summary["confusion"]["columns"]
    expected_matrix = confusion_matrix(y_true, y_pred, labels=cols)[: len(labels)].tolist()
    assert summary["confusion"]["matrix"] == expected_matrix
    p, rcl, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    for i, lab in enumerate(labels):
        assert summary["per_task"][lab] == pytest.approx(
            {"precision": p[i], "recall": rcl[i], "f1": f[i], "support": s[i]})
    n = len(scored)
    assert summary["fallback_rate"] == pytest.approx(sum(p == "fallback" for p in y_pred) / n)
    assert summary["match_rate"] == pytest.approx(sum(p in labels[:3] for p in y_pred) / n)


@pytest.mark.slow
def test_report_html_is_self_contained_and_shows_the_matrix(bundled_run: Path):
    html = (bundled_run / "report.html").read_text()
    assert "<svg" in html and "Confusion matrix" in html
    import re
    # nothing is loaded from elsewhere: no src/href to a URL, no stylesheet link, no CSS url()
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:|//)", html, re.I)
    assert "<link" not in html and "url(" not in html and "@import" not in html
    assert "<script" not in html
    summary = json.loads((bundled_run / "summary.json").read_text())
    first_misrouted = next(json.loads(l) for l in (bundled_run / "results.jsonl").read_text().splitlines()
                           if json.loads(l)["route"] != json.loads(l)["expected_route"])
    assert first_misrouted["id"] in html
    assert f"{summary['accuracy'] * 100:.1f}%" in html
    md = (bundled_run / "summary.md").read_text()
    assert "| Task | Precision |" in md


@pytest.mark.slow
def test_report_command_rerenders_the_same_summary(bundled_run: Path):
    before = json.loads((bundled_run / "summary.json").read_text())
    (bundled_run / "report.html").unlink()
    proc = run_cli("report", bundled_run)
    assert proc.returncode == 0, proc.stderr
    after = json.loads((bundled_run / "summary.json").read_text())
    assert after["confusion"] == before["confusion"] and after["accuracy"] == before["accuracy"]
    assert (bundled_run / "report.html").is_file()


def test_sessions_run_in_order_with_history_and_affinity(tmp_path: Path):
    calls = []

    def handler(body, headers):
        calls.append((body, headers))
        turn = sum(1 for m in body["messages"] if m["role"] == "user")
        return Reply(content=f"answer {turn}", headers={"x-model-router-selected-route": "customer-qa"})

    cases = [
        {"id": "t1", "prompt": "Can I add seats?", "expected_route": "customer-qa", "session": "s1", "turn": 1},
        {"id": "t2", "prompt": "and remove them?", "expected_route": "customer-qa", "session": "s1", "turn": 2},
        {"id": "t3", "prompt": "refund?", "expected_route": "customer-qa", "session": "s1", "turn": 3},
        {"id": "x", "prompt": "a poem", "expected_route": "fallback"},
    ]
    folder = write_suite(tmp_path / "sess", cases)
    with FakeOpenAI(handler) as fake:
        proc = run_cli("run", folder, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "o", "-q")
    assert proc.returncode == 0, proc.stderr
    by_prompt = {b["messages"][-1]["content"]: (b, h) for b, h in calls}
    third, headers3 = by_prompt["refund?"]
    assert [m["content"] for m in third["messages"]] == [
        "Can I add seats?", "answer 1", "and remove them?", "answer 2", "refund?"]
    affinity = {h.get("x-model-affinity") for b, h in calls if b["messages"][-1]["content"] != "a poem"}
    assert len(affinity) == 1 and None not in affinity
    assert by_prompt["a poem"][1].get("x-model-affinity") is None
    summary = json.loads(next((tmp_path / "o" / "sess").iterdir()).joinpath("summary.json").read_text())
    # three customer-qa right, the poem misrouted to customer-qa by this scripted router
    assert summary["accuracy"] == pytest.approx(3 / 4)


def test_missing_route_header_is_its_own_column(tmp_path: Path):
    folder = write_suite(tmp_path / "m", [{"id": "a", "prompt": "hi", "expected_route": "classify"}])
    with FakeOpenAI(Reply(content="x")) as fake:
        proc = run_cli("run", folder, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "o", "-q")
    # No answer carried the route header: the run measured no routing (exit 3), and is still written.
    assert proc.returncode == 3, proc.stderr
    assert "no answer carried the route header" in proc.stderr and "--route-header" in proc.stderr
    run = next((tmp_path / "o" / "m").iterdir())
    row = json.loads((run / "results.jsonl").read_text())
    assert row["status"] == "missing_route" and row["route"] is None
    summary = json.loads((run / "summary.json").read_text())
    assert summary["confusion"]["matrix"][0][-1] == 1 and summary["n_errors"] == 0


def test_custom_route_header_preset(tmp_path: Path):
    folder = write_suite(tmp_path / "h", [{"id": "a", "prompt": "hi", "expected_route": "classify"}])
    with FakeOpenAI(Reply(headers={"x-vsr-selected-decision": "classify"})) as fake:
        proc = run_cli("run", folder, "--target", "openai", "--base-url", fake.base_url,
                       "--route-header", "vllm-sr", "--out", tmp_path / "o", "-q")
    assert proc.returncode == 0, proc.stderr
    run = next((tmp_path / "o" / "h").iterdir())
    assert json.loads((run / "results.jsonl").read_text())["route"] == "classify"


@pytest.mark.slow
def test_unreachable_router_exits_3(tmp_path: Path):
    from evalkit.emulator.server import free_port

    folder = write_suite(tmp_path / "u", [{"id": "a", "prompt": "hi", "expected_route": "classify"}])
    proc = run_cli("run", folder, "--target", "openai", "--base-url", f"http://127.0.0.1:{free_port()}/v1",
                   "--out", tmp_path / "o", "-q", "--timeout", "5")
    assert proc.returncode == 3, proc.stderr
    assert "could not be reached" in proc.stderr and "Traceback" not in proc.stderr


def test_do_target_without_key_is_a_usage_error(tmp_path: Path):
    from conftest import cli_env

    folder = write_suite(tmp_path / "d", [{"id": "a", "prompt": "hi", "expected_route": "classify"}])
    env = cli_env()
    env.pop("MODEL_ACCESS_KEY", None)
    proc = run_cli("run", folder, "--target", "do", "--out", tmp_path / "o", "-q", env=env)
    assert proc.returncode == 2
    assert "MODEL_ACCESS_KEY" in proc.stderr


def test_tutorial_snippet_works_against_the_local_router():
    """The tutorial's client code, unchanged apart from the base URL and key."""
    from openai import OpenAI

    from evalkit.emulator import LocalRouter, create_app
    from evalkit.router_config import parse_router_config

    with LocalRouter(create_app([parse_router_config(TUTORIAL_ROUTER)])) as router:
        client = OpenAI(base_url=router.base_url, api_key="local-key")
        raw = client.chat.completions.with_raw_response.create(
            model="router:cost-governance-demo",
            messages=[{"role": "user", "content": "Classify this support ticket: My invoice shows a duplicate charge"}],
            max_completion_tokens=50,
        )
        route = raw.headers.get("x-model-router-selected-route")
        response = raw.parse()
        assert route == "classify"
        assert response.model == "openai-gpt-oss-20b"  # cheapest of the classify pool
        assert raw.headers.get("x-evalkit-route-only") == "true"
        assert response.usage.completion_tokens == 0
        with pytest.raises(Exception) as info:
            client.chat.completions.create(model="router:nope", messages=[{"role": "user", "content": "x"}])
        assert getattr(info.value, "status_code", None) == 404


def test_foreign_jsonl_suite_with_columns_mapping_runs(tmp_path: Path):
    rows = [{"text": "what's the capital of peru", "label": "fallback", "intent": "oos"},
            {"text": "Categorize this ticket: cannot log in", "label": "classify", "intent": "x"}]
    folder = write_suite(tmp_path / "foreign", rows, suite_yaml=(
        "name: foreign\nrouter: router.json\ncases: cases.jsonl\ncolumns: {prompt: text, expected_route: label}\n"))
    with FakeOpenAI(Reply(headers={"x-model-router-selected-route": "classify"})) as fake:
        proc = run_cli("run", folder, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "o", "-q")
        sent = [b["messages"][-1]["content"] for b in fake.requests]
    assert proc.returncode == 0, proc.stderr
    assert sorted(sent) == sorted(r["text"] for r in rows)
    run = next((tmp_path / "o" / "foreign").iterdir())
    results = [json.loads(l) for l in (run / "results.jsonl").read_text().splitlines()]
    assert {r["id"]: r["expected_route"] for r in results} == {"row-1": "fallback", "row-2": "classify"}
