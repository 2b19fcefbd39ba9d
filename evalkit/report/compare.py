"""The comparison report: ``compare_context`` (pure) turns a comparison (diff.json) into the plain
dict that ``compare.html.jinja2`` (autoescaped, self-contained) and ``compare.md.jinja2`` print;
``write_compare`` writes diff.json and the reports into a folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from evalkit.records import CaseResult

from evalkit.report.context import num, pct, usd
from evalkit.report.render import _md_environment, environment

if TYPE_CHECKING:
    from evalkit.comparison import Comparison, Flip, MeanDelta

MAX_LISTED = 300


def _signed(value: float | None, *, as_pct: bool) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:+.1f} pts" if as_pct else f"{value:+.3f}"


def _ci(ci: list[float] | None, *, as_pct: bool) -> str:
    if not ci:
        return ""
    if as_pct:
        return f"{ci[0] * 100:+.1f} to {ci[1] * 100:+.1f}"
    return f"{ci[0]:+.3f} to {ci[1]:+.3f}"


def _usd_delta(value: float | None) -> str:
    if value is None:
        return "n/a"
    return ("+" if value >= 0 else "-") + usd(abs(value))


def compare_context(diff: Comparison) -> dict[str, Any]:
    """Everything the comparison templates print, formatted (``diff`` also as diff.json's mapping)."""
    from evalkit.comparison import Comparison

    diff = Comparison.coerce(diff)
    metrics = []
    for m in diff.metrics:
        as_pct = m.metric != "macro_f1"
        trend = ""
        if m.delta and m.direction:
            trend = "better" if m.delta * m.direction > 0 else "worse"
            if m.ci95 and m.ci95[0] <= 0 <= m.ci95[1]:
                trend += " (CI spans 0)"
        fmt = pct if as_pct else num
        metrics.append({"metric": m.metric, "a": fmt(m.a), "b": fmt(m.b),
                        "delta": _signed(m.delta, as_pct=as_pct), "ci": _ci(m.ci95, as_pct=as_pct),
                        "trend": trend, "worse": trend.startswith("worse"), "better": trend.startswith("better"),
                        "per_task": "[" in m.metric, "changed": bool(m.delta)})

    def flips(rows: list[Flip]) -> list[dict[str, Any]]:
        return [{**r.to_json(), "tags": ", ".join(r.tags)} for r in rows[:MAX_LISTED]]

    judge_rows = []
    judge = diff.judge
    if judge:
        for crit, v in judge.overall.items():
            judge_rows.append({"path": "all matched cases", "criterion": crit, **_judge_row(v)})
        for path, crits in judge.per_path.items():
            for crit, v in crits.items():
                judge_rows.append({"path": path, "criterion": crit, **_judge_row(v)})
    cost_rows = []
    if diff.cost:
        for path, c in [("all matched cases", diff.cost.overall), *diff.cost.per_path.items()]:
            cost_rows.append({"path": path, "n": c.n, "a": usd(c.a_total_usd), "b": usd(c.b_total_usd),
                              "delta": _usd_delta(c.b_total_usd - c.a_total_usd),
                              "mean_delta": _usd_delta(c.delta),
                              "ci": f"{_usd_delta(c.ci95[0])} to {_usd_delta(c.ci95[1])}" if c.ci95 else ""})
    return {
        "title": f"evalkit compare: {diff.a.run_id} vs {diff.b.run_id}",
        "a": diff.a.to_json(), "b": diff.b.to_json(),
        "warnings": diff.warnings,
        "n_matched": diff.n_matched, "n_only_a": len(diff.only_in_a), "n_only_b": len(diff.only_in_b),
        "metrics": metrics,
        "mcnemar": {**diff.mcnemar.to_json(), "p": f"{diff.mcnemar_p:.4g}"},
        "regressed": flips(diff.regressed_cases), "fixed": flips(diff.fixed_cases), "changed": flips(diff.changed),
        "n_regressed": len(diff.regressed_cases), "n_fixed": len(diff.fixed_cases), "n_changed": len(diff.changed),
        "max_listed": MAX_LISTED,
        "judge_rows": judge_rows, "judge_paired": bool(judge and judge.paired),
        "cost_rows": cost_rows,
        "config": diff.config,
        "checks": [c.to_json() for c in diff.checks],
        "verdict": diff.verdict.to_json(),
        "settings": diff.settings,
    }


def _judge_row(v: MeanDelta) -> dict[str, Any]:
    return {"n": v.n if v.n is not None else f"{v.a_n}/{v.b_n}",  # unpaired: each side's n
            "a": num(v.a_mean, 2), "b": num(v.b_mean, 2),
            "delta": _signed(v.delta, as_pct=False), "ci": _ci(v.ci95, as_pct=False)}


def render_compare_html(diff: Comparison) -> str:
    return environment().get_template("compare.html.jinja2").render(**compare_context(diff))


def render_compare_markdown(diff: Comparison) -> str:
    return _md_environment().get_template("compare.md.jinja2").render(**compare_context(diff))


def write_compare(diff: Comparison, folder: str | Path, *, junit_results: Sequence[CaseResult] | None = None,
                  junit_cases: str = "regressed") -> dict[str, Path]:
    """diff.json, compare.html and compare.md into ``folder`` (each written atomically); with
    ``junit_results`` (run B's results) also junit.xml: the checks, the regressed and fixed cases."""
    from evalkit.store import COMPARE_HTML, COMPARE_MD, JUNIT, write_comparison, write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_comparison(folder, diff), "html": folder / COMPARE_HTML, "markdown": folder / COMPARE_MD}
    write_text(paths["html"], render_compare_html(diff))
    write_text(paths["markdown"], render_compare_markdown(diff))
    if junit_results is not None:
        from evalkit.report.junit import render_compare_junit

        paths["junit"] = folder / JUNIT
        write_text(paths["junit"], render_compare_junit(diff, junit_results, cases=junit_cases))
    return paths
