"""A 200-task router: summary.json, report.html and `evalkit overlap` stay bounded (every flagged
pair kept, the strongest of the others, a count of the rest); the misroute and confusion grids of
report.html show the cells with cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evalkit.overlap import KEPT_BELOW_MEDIUM, SHOWN_BELOW_MEDIUM, find_overlaps
from evalkit.records import CaseResult
from evalkit.router_config import parse_router_config
from tests.conftest import run_cli
from tests.run_helpers import make_run

N_TASKS = 200
HALF = N_TASKS // 2
N_AREAS = 20
MB = 1_000_000


def big_router() -> dict[str, Any]:
    """Task i and task i+100 have the same description (100 near-identical pairs: high); tasks of the
    same area (i mod 20) share one salient term (800 more pairs: low); every other pair shares none."""
    policies = []
    for i in range(N_TASKS):
        k = i % HALF
        description = (f"Answer questions about quux{k} and zorp{k} in the area{k % N_AREAS} area, "
                       "and reply with a short prose answer.")
        policies.append({"custom_task": {"name": f"task-{i:03d}", "description": description},
                         "models": ["openai-gpt-oss-20b" if i % 2 else "llama3.3-70b-instruct"]})
    return {"name": "big200", "description": "", "policies": policies, "fallback_models": ["llama3.3-70b-instruct"]}


def twin(a: str, b: str) -> bool:
    return abs(int(a[5:]) - int(b[5:])) == HALF


def big_results(names: list[str]) -> list[CaseResult]:
    """Three cases a task: two routed right, one to the next task (200 misroute cells with cases)."""
    return [CaseResult(id=f"{t}-{k}", expected_route=t, route=t if k else names[(i + 1) % len(names)], status="ok",
                       prompt=f"prompt {k} of {t}", served_model="openai-gpt-oss-20b", prompt_tokens=50,
                       completion_tokens=100, cost_usd=0.0001)
            for i, t in enumerate(names) for k in range(3)]


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    body = big_router()
    names = [p["custom_task"]["name"] for p in body["policies"]]
    run_dir = make_run(tmp_path_factory.mktemp("big") / "run", big_results(names), router=body, finalize=False)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["target"]["kind"] = "openai"  # a remote run: TF-IDF evidence, no model load
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    proc = run_cli("report", run_dir)  # writes summary.json and report.html from the stored files
    assert proc.returncode == 0, proc.stderr
    return run_dir, body


def test_summary_keeps_every_flagged_pair_and_counts_the_rest(big_run: tuple[Path, dict[str, Any]]) -> None:
    run_dir, body = big_run
    summary = json.loads((run_dir / "summary.json").read_text())
    # the full analysis, unbounded, as `evalkit overlap --run --json` gives it
    config = parse_router_config(body)
    full = find_overlaps(config, results=big_results(config.task_names)).pairs
    assert len(full) == N_TASKS * (N_TASKS - 1) // 2
    flagged = {tuple(p.tasks) for p in full if p.severity in ("high", "medium")}
    assert flagged == {tuple(p.tasks) for p in full if twin(*p.tasks)}  # the 100 twins, by construction
    kept = summary["overlap"]
    kept_flagged = {tuple(p["tasks"]) for p in kept if p["severity"] in ("high", "medium")}
    assert kept_flagged == flagged  # nothing flagged is dropped
    below = [p for p in kept if p["severity"] not in ("high", "medium")]
    assert len(below) == KEPT_BELOW_MEDIUM and {p["severity"] for p in below} == {"low"}  # 800 low ones to pick from
    assert summary["overlap_omitted"] == len(full) - len(kept)
    # the others kept are the strongest, in the analysis' order (most confused, then most similar):
    # here pairs the run confused (each task sent one case to the next)
    others = [tuple(p.tasks) for p in full if tuple(p.tasks) not in flagged]
    assert [tuple(p["tasks"]) for p in below] == others[:KEPT_BELOW_MEDIUM]
    assert all(p["evidence"]["run"]["a_to_b"] + p["evidence"]["run"]["b_to_a"] == 1 for p in below)
    assert len(json.dumps(summary["overlap"])) < MB // 2
    # cost.misroute is kept whole (201 rows of 202 cells); everything else in summary.json is small
    misroute = summary["cost"].pop("misroute")
    assert len(misroute["rows"]) == N_TASKS + 1 and all(len(r["cells"]) == N_TASKS + 2 for r in misroute["rows"])
    assert len(json.dumps(summary, indent=2)) < 2 * MB


def test_report_html_is_bounded_and_says_what_it_leaves_out(big_run: tuple[Path, dict[str, Any]]) -> None:
    run_dir, _ = big_run
    html = (run_dir / "report.html").read_text()
    assert len(html.encode()) < 2 * MB  # 27 MB before: every pair, 40,602 misroute cells, 40,602 heatmap cells
    text = " ".join(html.split())
    omitted = json.loads((run_dir / "summary.json").read_text())["overlap_omitted"]
    assert f"{omitted} more pairs, all low or none" in text and "--all" in text
    for i in range(HALF):  # every flagged pair is shown, with its reason
        assert f"<strong>task-{i:03d} / task-{i + HALF:03d}</strong> (medium)" in text
    # misroute costs: the 200 cells with cases are listed, not the 40,602-cell grid
    assert "listed are the 200 cells with misrouted cases" in text and "(40,602 cells)" in text
    assert text.count("1 of 3</td>") == N_TASKS
    # confusion heatmap: the 400 cells with cases (200 right, 200 misrouted) drawn one by one, the empty ones as one pattern
    assert text.count("<title>expected ") == 2 * N_TASKS and "40,202 empty cells" in text


@pytest.mark.slow
def test_overlap_command_lists_flagged_pairs_then_a_few_low_ones(tmp_path: Path) -> None:
    path = tmp_path / "router.json"
    path.write_text(json.dumps(big_router()))
    proc = run_cli("overlap", path, "--tfidf-only")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert len(out) < 300_000  # 4.5 MB before
    rows = [line for line in out.splitlines() if line.startswith("│ task-")]
    severities = [line.split("│")[2].strip() for line in rows]
    assert severities.count("high") == HALF and severities.count("low") == SHOWN_BELOW_MEDIUM
    assert "none" not in severities
    for i in range(HALF):
        assert f"high task-{i:03d} / task-{i + HALF:03d}:" in out
    n_pairs = N_TASKS * (N_TASKS - 1) // 2
    left = n_pairs - HALF - SHOWN_BELOW_MEDIUM
    assert (f"{left} more pairs not listed (low {800 - SHOWN_BELOW_MEDIUM}, none {n_pairs - HALF - 800}; "
            "every medium and high pair is listed): --all lists every pair, --json prints them all") in out
    every = run_cli("overlap", path, "--tfidf-only", "--all")
    assert sum(1 for line in every.stdout.splitlines() if line.startswith("│ task-")) == n_pairs
    assert "more pairs not listed" not in every.stdout
