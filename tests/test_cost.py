"""Cost: the catalog, per-request cost, the tutorial's projection, per-path cost in summary.json,
the misroute cost matrix, unknown cost, and `evalkit cost`.

Expected values are computed here from the catalog's literal prices and the tokens, with
``fractions.Fraction`` (exact), never taken from evalkit's own output.
"""

from __future__ import annotations

from collections import Counter

import json
import re
import shlex
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT, TUTORIAL_ROUTER, run_cli, write_suite
from fake_openai import FakeOpenAI, Reply

CATALOG = yaml.safe_load((ROOT / "evalkit" / "data" / "prices.yaml").read_text())["models"]


def price(slug: str) -> tuple[Fraction, Fraction]:
    entry = CATALOG[slug]
    return Fraction(str(entry["input"])), Fraction(str(entry["output"]))


def hand_cost(slug: str, prompt: int | Fraction, completion: int | Fraction) -> Fraction:
    inp, outp = price(slug)
    return (Fraction(prompt) * inp + Fraction(completion) * outp) / 1_000_000


def cents(value: Fraction) -> str:
    """Round half up to the cent and format like $2,850.30."""
    c = (value * 100 + Fraction(1, 2)) // 1
    return f"${c // 100:,}.{c % 100:02d}"


# --- the catalog ---------------------------------------------------------------------------------

def test_catalog_has_the_tutorial_prices_with_source_and_date() -> None:
    expected = {"openai-gpt-oss-20b": (0.05, 0.45), "anthropic-claude-4.6-sonnet": (3.00, 15.00),
                "openai-gpt-5": (1.25, 10.00), "anthropic-claude-opus-4.7": (5.00, 25.00)}
    for slug, (inp, outp) in expected.items():
        assert (CATALOG[slug]["input"], CATALOG[slug]["output"]) == (inp, outp)
    for slug, entry in CATALOG.items():
        assert str(entry.get("source", "")).strip(), f"{slug} has no source"
        assert re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", str(entry.get("date", ""))), f"{slug} has no date"


def test_request_cost_is_exact_and_unknown_without_a_price() -> None:
    from evalkit.cost import exact_request_cost, load_prices, request_cost

    prices = load_prices()
    assert exact_request_cost(prices["openai-gpt-5"], 53, 3411) == hand_cost("openai-gpt-5", 53, 3411)
    assert str(exact_request_cost(prices["openai-gpt-oss-20b"], 94, 80)) == "0.0000407"
    assert request_cost(None, 10, 10) is None
    assert request_cost(prices["openai-gpt-5"], None, 10) is None


# --- the tutorial's table -------------------------------------------------------------------------

TUTORIAL = [("classify", 700_000, 94, 80, "openai-gpt-oss-20b"),
            ("customer-qa", 250_000, 24, 292, "anthropic-claude-4.6-sonnet"),
            ("reasoning", 50_000, 53, 3411, "openai-gpt-5")]
SINGLES = ["anthropic-claude-4.6-sonnet", "anthropic-claude-opus-4.7", "openai-gpt-5"]


def test_tutorial_table_is_reproduced_to_the_cent() -> None:
    from evalkit.cost import TaskProfile, load_prices, project

    result = project([TaskProfile(t, n, p, c, m) for t, n, p, c, m in TUTORIAL], load_prices(), compare=SINGLES)
    # By hand from the prices and tokens.
    per_request = {t: hand_cost(m, p, c) for t, n, p, c, m in TUTORIAL}
    routed = sum(per_request[t] * n for t, n, *_ in TUTORIAL)
    singles = {s: sum(hand_cost(s, p, c) * n for _, n, p, c, _ in TUTORIAL) for s in SINGLES}
    got = {t["task"]: t for t in result["tasks"]}
    for task, value in per_request.items():
        assert Fraction(str(got[task]["per_request_usd"])) == value
    assert Fraction(str(result["routed"]["monthly_usd"])) == routed
    for s in result["single_model"]:
        assert Fraction(str(s["monthly_usd"])) == singles[s["model"]]
        assert s["savings_pct"] == pytest.approx(float((singles[s["model"]] - routed) / singles[s["model"]] * 100))
    # And the tutorial's published figures, literally.
    assert [got[t]["per_request_text"] for t in ("classify", "customer-qa", "reasoning")] == [
        "$0.00004070", "$0.00445200", "$0.03417625"]
    assert cents(routed) == result["routed"]["monthly_text"] == "$2,850.30"
    published = {"anthropic-claude-4.6-sonnet": ("$4,716.60", "39.6%"), "anthropic-claude-opus-4.7": ("$7,861.00", "63.7%"),
                 "openai-gpt-5": ("$3,088.56", "7.7%")}
    for s in result["single_model"]:
        assert (s["monthly_text"], s["savings_text"]) == published[s["model"]]
        assert cents(singles[s["model"]]) == published[s["model"]][0]


def documented_command(name: str) -> list[str]:
    """The `evalkit cost ...` command line documented in docs/cost.md."""
    text = (ROOT / "docs" / "cost.md").read_text()
    match = re.search(r"^evalkit cost --traffic examples/" + re.escape(name) + r"[^\n]*$", text, re.M)
    assert match, f"docs/cost.md does not document the {name} command"
    return shlex.split(match.group(0))[1:]


def test_documented_tutorial_command_prints_the_table() -> None:
    proc = run_cli(*documented_command("tutorial-traffic.yaml"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    row = {line.split()[0]: line for line in lines if line.strip()}
    assert "$0.00004070" in row["classify"] and "$28.49" in row["classify"]
    assert "$0.00445200" in row["customer-qa"] and "$1,113.00" in row["customer-qa"]
    assert "$0.03417625" in row["reasoning"] and "$1,708.81" in row["reasoning"]
    assert "$2,850.30" in row["routed"]
    assert re.search(r"anthropic-claude-4\.6-sonnet\s+\$4,716\.60\s+39\.6%", proc.stdout)
    assert re.search(r"anthropic-claude-opus-4\.7\s+\$7,861\.00\s+63\.7%", proc.stdout)
    assert re.search(r"openai-gpt-5\s+\$3,088\.56\s+7\.7%", proc.stdout)


def test_tutorial_command_json_and_flags_agree() -> None:
    by_file = run_cli("cost", "--traffic", "examples/tutorial-traffic.yaml", "--json")
    flags = []
    for task, n, p, c, m in TUTORIAL:
        flags += ["--requests", f"{task}={n:,}", "--tokens", f"{task}={p}/{c}", "--model", f"{task}={m}"]
    for s in SINGLES:
        flags += ["--compare", s]
    by_flags = run_cli("cost", *flags, "--json")
    assert by_file.returncode == 0 and by_flags.returncode == 0, by_file.stderr + by_flags.stderr
    a, b = json.loads(by_file.stdout), json.loads(by_flags.stdout)
    assert a["routed"] == b["routed"]
    assert a["routed"]["monthly_text"] == "$2,850.30"
    assert [s["monthly_text"] for s in a["single_model"]] == ["$4,716.60", "$7,861.00", "$3,088.56"]
    assert a["prices"]["openai-gpt-5"]["source"]


def test_unpriced_model_is_unknown_in_a_projection(tmp_path: Path) -> None:
    proc = run_cli("cost", "--requests", "a=1000", "--tokens", "a=10/10", "--model", "a=house-model-7b",
                   "--compare", "openai-gpt-5", "--compare", "no-such-model", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    task = data["tasks"][0]
    assert task["per_request_usd"] is None and task["monthly_usd"] is None and task["monthly_text"] == "unknown"
    assert data["routed"]["monthly_usd"] is None
    single = {s["model"]: s for s in data["single_model"]}
    assert single["openai-gpt-5"]["monthly_usd"] == pytest.approx(float(hand_cost("openai-gpt-5", 10, 10) * 1000))
    assert single["openai-gpt-5"]["savings_pct"] is None  # routed cost is unknown, so is the saving
    assert single["no-such-model"]["monthly_usd"] is None
    assert data["unpriced_models"] == ["house-model-7b", "no-such-model"]
    text = run_cli("cost", "--requests", "a=1000", "--tokens", "a=10/10", "--model", "a=house-model-7b")
    assert "unknown" in text.stdout and "$0.00 " not in text.stdout


def test_prices_file_overrides_the_catalog(tmp_path: Path) -> None:
    catalog = tmp_path / "prices.yaml"
    catalog.write_text("models:\n  house-model-7b: {input: 0.10, output: 0.30, source: internal, date: 2026-05}\n")
    proc = run_cli("cost", "--prices", catalog, "--requests", "a=1000", "--tokens", "a=100/50",
                   "--model", "a=house-model-7b", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    expected = (100 * Fraction("0.10") + 50 * Fraction("0.30")) / 1_000_000 * 1000
    assert Fraction(str(data["routed"]["monthly_usd"])) == expected
    # The replaced catalog no longer knows the packaged models.
    assert data["single_model"][0]["model"] == "house-model-7b"


@pytest.mark.parametrize("content,needle", [
    ("tasks:\n  a: {requests: 10, prompt_tokens: 1, completion_tokens: 1, model: m, colour: red}\n", "colour"),
    ("tasks:\n  a: {requests: -5, prompt_tokens: 1, completion_tokens: 1, model: m}\n", "tasks.a.requests"),
    ("tasks: [1, 2\n", "invalid YAML"),
    ("- just a list\n", "mapping"),
])
def test_bad_traffic_file_is_a_clear_error(tmp_path: Path, content: str, needle: str) -> None:
    bad = tmp_path / "traffic.yaml"
    bad.write_text(content)
    proc = run_cli("cost", "--traffic", bad)
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_a_traffic_file_reports_every_problem_with_near_names(tmp_path: Path) -> None:
    bad = tmp_path / "traffic.yaml"
    bad.write_text("tasks:\n  a: {requests: -5, prompt_tokens: x, completion_tokens: 1, model: m, modle: n}\n"
                   "compar: [m]\n")
    proc = run_cli("cost", "--traffic", bad)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    message = " ".join(proc.stderr.split())
    assert "traffic.yaml: 4 problems" in message
    for needle in ("at tasks.a.requests:", "at tasks.a.prompt_tokens:", "unknown key 'modle' (did you mean 'model'?)",
                   "unknown key 'compar' (did you mean 'compare'?)"):
        assert needle in message, needle


def test_missing_inputs_are_usage_errors() -> None:
    proc = run_cli("cost")
    assert proc.returncode == 2 and "nothing to do" in proc.stderr
    proc = run_cli("cost", "--requests", "a=10", "--model", "a=openai-gpt-5")
    assert proc.returncode == 2 and "no token profile for task 'a'" in proc.stderr
    proc = run_cli("cost", "--requests", "a=ten", "--tokens", "a=1/1", "--model", "a=openai-gpt-5")
    assert proc.returncode == 2 and "whole number" in proc.stderr
    proc = run_cli("cost", "--requests", "a=10", "--tokens", "a=1-1", "--model", "a=openai-gpt-5")
    assert proc.returncode == 2 and "PROMPT/COMPLETION" in proc.stderr


# --- a run with real tokens (a scripted OpenAI-compatible router) ------------------------------

UNPRICED = "mystery-model-9b"
# case id -> expected task, route the router reports, served model, prompt, completion, reasoning tokens
SCRIPT: dict[str, tuple[str, str, str, int, int, int | None]] = {
    "c1": ("classify", "classify", "openai-gpt-oss-20b", 94, 80, 64),
    "c2": ("classify", "classify", "openai-gpt-oss-20b", 90, 70, 60),
    "c3": ("classify", "classify", "openai-gpt-oss-20b", 100, 90, None),
    "c4": ("classify", "reasoning", "openai-gpt-5", 95, 2900, 2500),
    "q1": ("customer-qa", "customer-qa", "anthropic-claude-4.6-sonnet", 24, 292, None),
    "q2": ("customer-qa", "customer-qa", "anthropic-claude-4.6-sonnet", 30, 310, None),
    "q3": ("customer-qa", "classify", "openai-gpt-oss-20b", 26, 85, 70),
    "r1": ("reasoning", "reasoning", "openai-gpt-5", 53, 3411, 3000),
    "r2": ("reasoning", "reasoning", "openai-gpt-5", 60, 3000, 2600),
    "r3": ("reasoning", "classify", "openai-gpt-oss-20b", 55, 81, 66),
    "f1": ("fallback", "fallback", UNPRICED, 20, 40, None),
    "f2": ("fallback", "customer-qa", "anthropic-claude-4.6-sonnet", 22, 200, None),
}
ERROR_CASE = "e1"


def scripted_router(body: dict[str, Any], headers: dict[str, str]) -> Reply:
    text = body["messages"][-1]["content"]
    case_id = text.split(":", 1)[0]
    if case_id == ERROR_CASE:
        return Reply(status=400, error_message="bad request")
    _, route, model, pt, ct, rt = SCRIPT[case_id]
    return Reply(content=f"answer to {case_id}", model=model, prompt_tokens=pt, completion_tokens=ct,
                 reasoning_tokens=rt, headers={"x-model-router-selected-route": route}, delay_s=0.002)


def scripted_suite(folder: Path) -> Path:
    router = json.loads(json.dumps(TUTORIAL_ROUTER))
    router["fallback_models"] = [UNPRICED]
    cases = [{"id": cid, "prompt": f"{cid}: a prompt", "expected_route": exp} for cid, (exp, *_) in SCRIPT.items()]
    cases.append({"id": ERROR_CASE, "prompt": f"{ERROR_CASE}: fails", "expected_route": "classify"})
    return write_suite(folder, cases, router=router)


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("scripted")
    suite = scripted_suite(base / "scripted")
    with FakeOpenAI(scripted_router) as fake:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", base / "reports",
                       "-q", "--json", "--concurrency", "4")
    assert proc.returncode in (0, 1), proc.stderr
    (run_dir,) = (base / "reports" / "scripted").iterdir()
    return run_dir


def read_results(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]


def test_results_carry_cost_from_catalog_and_tokens(scripted_run: Path) -> None:
    results = {r["id"]: r for r in read_results(scripted_run)}
    for cid, (_, route, model, pt, ct, rt) in SCRIPT.items():
        r = results[cid]
        assert (r["route"], r["served_model"], r["prompt_tokens"], r["completion_tokens"]) == (route, model, pt, ct)
        assert r["reasoning_tokens"] == rt
        if model == UNPRICED:
            assert r["cost_usd"] is None  # unknown, never zero
        else:
            assert Fraction(str(r["cost_usd"])) == pytest.approx(hand_cost(model, pt, ct), rel=1e-12)
    assert results[ERROR_CASE]["status"] == "error" and results[ERROR_CASE]["cost_usd"] is None


def test_summary_cost_equals_independent_sums(scripted_run: Path) -> None:
    results = [r for r in read_results(scripted_run) if r["status"] != "error"]
    cost = json.loads((scripted_run / "summary.json").read_text())["cost"]
    paths = {r["route"] for r in results}
    assert set(cost["per_path"]) == paths
    known_total = sum(r["cost_usd"] for r in results if r["cost_usd"] is not None)
    for path in paths:
        rows = [r for r in results if r["route"] == path]
        known = [r["cost_usd"] for r in rows if r["cost_usd"] is not None]
        got = cost["per_path"][path]
        assert got["n"] == len(rows)
        assert got["known_usd"] == pytest.approx(sum(known), rel=1e-12, abs=0)
        assert got["n_unknown_cost"] == len(rows) - len(known)
        if len(known) == len(rows):
            assert got["total_usd"] == pytest.approx(sum(known), rel=1e-12)
        else:
            assert got["total_usd"] is None
        assert got["mean_usd"] == (pytest.approx(sum(known) / len(known), rel=1e-12) if known else None)
        assert got["share"] == pytest.approx(sum(known) / known_total, rel=1e-12)
        t = got["tokens"]
        assert t["prompt"] == sum(r["prompt_tokens"] for r in rows)
        assert t["completion"] == sum(r["completion_tokens"] for r in rows)
        hidden = sum(r["reasoning_tokens"] for r in rows if r["reasoning_tokens"] is not None)
        assert t["hidden_reasoning"] == hidden
        assert t["visible_completion"] == t["completion"] - hidden
        assert t["n_reasoning_reported"] == sum(1 for r in rows if r["reasoning_tokens"] is not None)
    # The unpriced fallback model makes the fallback path and the run total unknown, not zero.
    assert cost["per_path"]["fallback"]["total_usd"] is None
    assert cost["per_path"]["fallback"]["known_usd"] == 0.0
    assert cost["per_path"]["fallback"]["mean_usd"] is None
    assert cost["total_usd"] is None
    assert cost["known_usd"] == pytest.approx(known_total, rel=1e-12)
    assert cost["n_unknown_cost"] == 1 and cost["unpriced_models"] == [UNPRICED]
    assert cost["scope"] == "router" and "judge" in cost["note"]
    assert cost["route_only"] is False and cost["route_only_note"] is None


def test_classify_label_shows_hidden_reasoning_tokens(scripted_run: Path) -> None:
    """The tutorial's case: a one-word label billed for 80 completion tokens, 64 of them hidden."""
    cost = json.loads((scripted_run / "summary.json").read_text())["cost"]
    t = cost["per_path"]["classify"]["tokens"]
    # classify path: c1, c2, c3, q3, r3 -> reasoning reported for c1, c2, q3, r3
    assert t["hidden_reasoning"] == 64 + 60 + 70 + 66
    assert t["n_reasoning_reported"] == 4
    assert t["mean_hidden_reasoning"] == pytest.approx((64 + 60 + 70 + 66) / 4)
    assert t["visible_completion"] == (80 + 70 + 90 + 85 + 81) - (64 + 60 + 70 + 66)


def hand_matrix_cell(expected: str, route: str) -> Fraction | None:
    rows = [v for v in SCRIPT.values() if v[0] == expected and v[1] == route]
    if not rows or any(v[2] == UNPRICED for v in rows):
        return None
    return sum((hand_cost(v[2], v[3], v[4]) for v in rows), Fraction(0)) / len(rows)


def test_misroute_matrix_agrees_with_catalog_prices_and_the_runs_tokens(scripted_run: Path) -> None:
    m = json.loads((scripted_run / "summary.json").read_text())["cost"]["misroute"]
    n_scored = len(SCRIPT)
    rows = {row["expected"]: row for row in m["rows"]}
    assert m["columns"][:4] == ["classify", "customer-qa", "reasoning", "fallback"]
    assert m["basis"] == "suite mix" and m["monthly_requests"] == 1_000_000
    # Whole requests a month per task, as `evalkit cost` tables them: the suite's shares of
    # 1,000,000, floored, the requests left over going to the largest remainders.
    shares = {t: Fraction(1_000_000 * n, n_scored) for t, n in Counter(v[0] for v in SCRIPT.values()).items()}
    whole_mix = {t: int(f) for t, f in shares.items()}
    for t in sorted(shares, key=lambda t: shares[t] - whole_mix[t], reverse=True)[:1_000_000 - sum(whole_mix.values())]:
        whole_mix[t] += 1
    assert sum(whole_mix.values()) == 1_000_000
    for expected in ("classify", "customer-qa", "reasoning"):
        row = rows[expected]
        row_n = sum(1 for v in SCRIPT.values() if v[0] == expected)
        correct = hand_matrix_cell(expected, expected)
        assert row["correct_usd"] == pytest.approx(float(correct), rel=1e-9)
        monthly = Fraction(whole_mix[expected])
        effect_sum = Fraction(0)
        for cell in row["cells"]:
            count = sum(1 for v in SCRIPT.values() if v[0] == expected and v[1] == cell["route"])
            assert cell["count"] == count
            if count:
                observed = hand_matrix_cell(expected, cell["route"])
                assert cell["basis"] == "observed"
                assert cell["cost_usd"] == pytest.approx(float(observed), rel=1e-9)
                assert cell["delta_usd"] == pytest.approx(float(observed - correct), rel=1e-9, abs=1e-15)
                effect = (observed - correct) * monthly * Fraction(count, row_n)
                assert cell["monthly_delta_usd"] == pytest.approx(float(effect), rel=1e-9, abs=1e-12)
                if cell["route"] != expected:
                    effect_sum += effect
        assert row["monthly_misroute_usd"] == pytest.approx(float(effect_sum), rel=1e-9)
    # classify sent to customer-qa never happened: estimated from classify's correctly routed
    # tokens at the price of the model that served customer-qa in this run.
    cell = next(c for c in rows["classify"]["cells"] if c["route"] == "customer-qa")
    diag = [v for v in SCRIPT.values() if v[0] == "classify" and v[1] == "classify"]
    mean_pt = Fraction(sum(v[3] for v in diag), len(diag))
    mean_ct = Fraction(sum(v[4] for v in diag), len(diag))
    assert cell["basis"] == "estimated" and cell["count"] == 0 and cell["model"] == "anthropic-claude-4.6-sonnet"
    assert cell["cost_usd"] == pytest.approx(float(hand_cost("anthropic-claude-4.6-sonnet", mean_pt, mean_ct)), rel=1e-9)
    # reasoning sent to classify is cheaper a request, and says so.
    r_cls = next(c for c in rows["reasoning"]["cells"] if c["route"] == "classify")
    saving = hand_matrix_cell("reasoning", "reasoning") - hand_matrix_cell("reasoning", "classify")
    assert r_cls["text"].startswith(f"reasoning sent to classify saves ${float(saving):.4f} a request but")
    # The fallback row's correct cost is unknown (unpriced model): its deltas and the total are unknown.
    assert rows["fallback"]["correct_usd"] is None
    f_qa = next(c for c in rows["fallback"]["cells"] if c["route"] == "customer-qa")
    assert f_qa["cost_usd"] == pytest.approx(float(hand_cost("anthropic-claude-4.6-sonnet", 22, 200)), rel=1e-9)
    assert f_qa["delta_usd"] is None and f_qa["monthly_delta_usd"] is None
    assert rows["fallback"]["monthly_misroute_usd"] is None and m["monthly_misroute_usd"] is None


def test_misroute_monthly_effect_at_a_given_traffic_mix(scripted_run: Path, tmp_path: Path) -> None:
    traffic = tmp_path / "traffic.yaml"
    traffic.write_text(yaml.safe_dump({"tasks": {
        "classify": {"requests": 700000}, "customer-qa": {"requests": 250000}, "reasoning": {"requests": 50000}}}))
    proc = run_cli("cost", "--run", scripted_run, "--traffic", traffic, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    m = data["misroute"]
    assert m["basis"] == "traffic"
    rows = {row["expected"]: row for row in m["rows"]}
    correct = hand_matrix_cell("reasoning", "reasoning")
    observed = hand_matrix_cell("reasoning", "classify")
    expected = (observed - correct) * 50000 * Fraction(1, 3)
    cell = next(c for c in rows["reasoning"]["cells"] if c["route"] == "classify")
    assert cell["monthly_delta_usd"] == pytest.approx(float(expected), rel=1e-9)
    assert "a month at 50,000 reasoning requests" in cell["text"]
    # Token profiles and models come from the run (correctly routed cases), requests from the file.
    tasks = {t["task"]: t for t in data["tasks"]}
    assert set(tasks) == {"classify", "customer-qa", "reasoning"}
    assert tasks["reasoning"]["model"] == "openai-gpt-5"
    assert tasks["reasoning"]["prompt_tokens"] == pytest.approx((53 + 60) / 2)
    assert tasks["reasoning"]["completion_tokens"] == pytest.approx((3411 + 3000) / 2)
    assert tasks["reasoning"]["monthly_usd"] == pytest.approx(
        float(hand_cost("openai-gpt-5", Fraction(113, 2), Fraction(6411, 2)) * 50000), rel=1e-9)


def test_report_shows_cost_section_and_misroute_matrix(scripted_run: Path) -> None:
    html = (scripted_run / "report.html").read_text()
    assert "Misroute cost matrix" in html
    assert "reasoning sent to classify saves $" in html
    assert "unknown" in html and UNPRICED in html
    assert "Hidden reasoning tok." in html


# --- route-only (the embedded local router) -------------------------------------------------------

def test_route_only_run_says_its_costs_are_not_real(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "tiny", [
        {"id": "a", "prompt": "Classify this support ticket: my invoice shows a duplicate charge", "expected_route": "classify"},
        {"id": "b", "prompt": "Prove that the algorithm terminates, step by step, with intermediate conclusions",
         "expected_route": "reasoning"},
    ])
    proc = run_cli("run", suite, "--out", tmp_path / "reports", "-q", "--json")
    assert proc.returncode in (0, 1), proc.stderr
    (run_dir,) = (tmp_path / "reports" / "tiny").iterdir()
    cost = json.loads((run_dir / "summary.json").read_text())["cost"]
    assert cost["route_only"] is True
    assert "completion tokens are zero" in cost["route_only_note"]
    assert cost["tokens"]["completion"] == 0
    assert "completion tokens are zero" in (run_dir / "report.html").read_text()
    proc = run_cli("cost", "--run", run_dir)
    assert proc.returncode == 0, proc.stderr
    assert "route-only" in proc.stdout and "completion tokens are zero" in proc.stdout
    # the warning leads, and no savings figure rests on the zero completion tokens
    assert proc.stdout.lstrip().startswith("warning: route-only")
    single = proc.stdout[proc.stdout.index("Hard-coding one model"):proc.stdout.index("Misroute cost")]
    assert "%" not in single and "routing costs more" not in proc.stdout and "routing saves" not in single
    assert "no savings figures" in proc.stdout and "--tokens" in proc.stdout
    data = json.loads(run_cli("cost", "--run", run_dir, "--json").stdout)
    assert data["warnings"] and data["savings_withheld"]
    # the misroute lines count the same requests a month as the table above them
    table = {t["task"]: t["requests"] for t in data["tasks"]}
    assert {r["expected"]: r["monthly_requests"] for r in data["misroute"]["rows"] if r["expected"] in table} == table
    assert sum(table.values()) == 1_000_000
    assert data["single_model"] and all(s["savings_pct"] is None and s["savings_usd"] is None
                                        for s in data["single_model"])
    # with real token counts the savings are figures again (the route-only warning stays first)
    given = run_cli("cost", "--run", run_dir, "--tokens", "classify=30/80", "--tokens", "reasoning=130/900",
                    "--json")
    data = json.loads(given.stdout)
    assert data["savings_withheld"] is None
    assert all(s["savings_pct"] is not None for s in data["single_model"] if s["monthly_usd"])


def test_run_records_its_prices_and_a_rerender_keeps_the_figures(scripted_run: Path) -> None:
    manifest = json.loads((scripted_run / "manifest.json").read_text())
    recorded = manifest["options"]["prices"]
    assert recorded[UNPRICED] is None
    for slug in ("openai-gpt-oss-20b", "anthropic-claude-4.6-sonnet", "openai-gpt-5"):
        assert (recorded[slug]["input"], recorded[slug]["output"]) == (CATALOG[slug]["input"], CATALOG[slug]["output"])
    before = json.loads((scripted_run / "summary.json").read_text())["cost"]
    proc = run_cli("report", scripted_run)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((scripted_run / "summary.json").read_text())["cost"] == before
