"""Small sharp edges a new user hits: `report` on a truncated results.jsonl, the judge model's
price, and the help text of every command."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT, run_cli
from tests.run_helpers import make_run, result


def test_report_on_a_truncated_results_file_warns_in_the_terminal_too(tmp_path: Path) -> None:
    results = [result(f"c{i}", "classify", "classify") for i in range(6)]
    run_dir = make_run(tmp_path / "run", results)
    path = run_dir / "results.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])  # 3 whole lines and a torn one
    proc = run_cli("report", run_dir)
    assert proc.returncode == 0, proc.stderr
    warning = " ".join(proc.stderr.split())
    assert "warning:" in warning and "3 of 6 cases have no result" in warning
    assert f"--resume {run_dir}" in warning and "the figures cover the 3 that do" in warning
    assert "torn line" in warning
    assert "Incomplete run" in (run_dir / "report.html").read_text()  # the report agrees

    path.write_text("".join(lines))  # whole again: no warning
    proc = run_cli("report", run_dir)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


def test_every_judge_model_of_the_docs_examples_has_a_price_with_its_source() -> None:
    from evalkit.cost import load_prices

    catalog = load_prices()
    models = set(re.findall(r"--judge\s+([a-z0-9][a-z0-9.\-]+)", (ROOT / "docs" / "judge.md").read_text()))
    assert "openai-gpt-oss-120b" in models
    for slug in models:
        assert slug in catalog, f"{slug} (docs/judge.md) is not in evalkit/data/prices.yaml"
        assert catalog[slug].source and catalog[slug].date, slug
