"""Scale: long case lists are paged and capped in the report; full data stays in results.jsonl."""

from __future__ import annotations

from evalkit.records import CaseResult, Manifest, RouterInfo, SuiteInfo, TargetInfo
from evalkit.report import build_context, render_html
from evalkit.report.context import MAX_LISTED, MAX_PAGES, pages
from evalkit.summary import build_summary


def test_pages_cut_a_list_and_stop_at_the_limit():
    rows = [{"i": i} for i in range(705)]
    got = pages(rows, size=300, limit=10)
    assert [p["label"] for p in got] == ["1-300", "301-600", "601-705"]
    assert [len(p["rows"]) for p in got] == [300, 300, 105]
    capped = pages([{"i": i} for i in range(5000)], size=300, limit=3)
    assert len(capped) == 3 and capped[-1]["label"] == "601-900"


def manifest(n: int) -> Manifest:
    return Manifest(schema_version=1, evalkit_version="0", run_id="r", started_at="t",
                    suite=SuiteInfo(name="s", path="s", hash="h", n_cases=n),
                    router=RouterInfo(name="r", hash="h", tasks=["a", "b"]),
                    target=TargetInfo(kind="openai", base_url="u", model="m", route_header="x"))


def misrouted_results(n: int) -> list[CaseResult]:
    return [CaseResult(id=f"c{i}", expected_route="a", route="b", status="ok", prompt=f"prompt {i}")
            for i in range(n)]


def test_report_pages_misrouted_cases():
    results = misrouted_results(MAX_LISTED * 2 + 5)
    m = manifest(len(results))
    html = render_html(build_context(build_summary(m, results), results, m))
    assert html.count("<details><summary>Misrouted cases") == 2
    assert f"Misrouted cases {MAX_LISTED + 1}-{MAX_LISTED * 2}" in html and f"prompt {MAX_LISTED * 2 + 4}" in html
    assert "lists the first" not in html  # everything is listed


def test_report_caps_a_huge_list_with_a_note():
    n = MAX_LISTED * MAX_PAGES + 50
    results = misrouted_results(n)
    m = manifest(n)
    html = render_html(build_context(build_summary(m, results), results, m))
    assert f"prompt {MAX_LISTED * MAX_PAGES - 1}<" in html and f"prompt {MAX_LISTED * MAX_PAGES}<" not in html
    assert f"lists the first {MAX_LISTED * MAX_PAGES} of {n} misrouted cases" in html
