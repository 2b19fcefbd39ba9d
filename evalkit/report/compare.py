"""The comparison report: ``compare_context`` (pure) turns a diff.json document into the plain
dict that ``compare.html.jinja2`` (autoescaped, self-contained) and ``compare.md.jinja2`` print."""

from __future__ import annotations

from typing import Any

from evalkit.report.context import num, pct, usd
from evalkit.report.render import _md_environment, environment

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


def compare_context(diff: dict[str, Any]) -> dict[str, Any]:
    """Everything the comparison templates print, formatted."""
    metrics = []
    for m in diff["metrics"]:
        as_pct = m["metric"] != "macro_f1"
        direction = m["direction"]
        delta = m["delta"]
        trend = ""
        if delta and direction:
            trend = "better" if delta * direction > 0 else "worse"
            if m["ci95"] and m["ci95"][0] <= 0 <= m["ci95"][1]:
                trend += " (CI spans 0)"
        fmt = pct if as_pct else num
        metrics.append({"metric": m["metric"], "a": fmt(m["a"]), "b": fmt(m["b"]),
                        "delta": _signed(delta, as_pct=as_pct), "ci": _ci(m["ci95"], as_pct=as_pct),
                        "trend": trend, "worse": trend.startswith("worse"), "better": trend.startswith("better"),
                        "per_task": "[" in m["metric"], "changed": bool(delta)})

    def flips(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "tags": ", ".join(r.get("tags") or [])} for r in rows[:MAX_LISTED]]

    judge_rows = []
    judge = diff.get("judge")
    if judge:
        for crit, v in (judge.get("overall") or {}).items():
            judge_rows.append({"path": "all matched cases", "criterion": crit, **_judge_row(v)})
        for path, crits in (judge.get("per_path") or {}).items():
            for crit, v in crits.items():
                judge_rows.append({"path": path, "criterion": crit, **_judge_row(v)})
    cost_rows = []
    cost = diff.get("cost")
    if cost:
        for path, v in [("all matched cases", cost["overall"]), *cost["per_path"].items()]:
            cost_rows.append({"path": path, "n": v["n"], "a": usd(v["a_total_usd"]), "b": usd(v["b_total_usd"]),
                              "delta": _usd_delta(v["b_total_usd"] - v["a_total_usd"]),
                              "mean_delta": _usd_delta(v["delta"]),
                              "ci": f"{_usd_delta(v['ci95'][0])} to {_usd_delta(v['ci95'][1])}" if v["ci95"] else ""})
    mc = diff["mcnemar"]
    return {
        "title": f"evalkit compare: {diff['a']['run_id']} vs {diff['b']['run_id']}",
        "a": diff["a"], "b": diff["b"],
        "warnings": diff["warnings"],
        "n_matched": diff["n_matched"], "n_only_a": len(diff["only_in_a"]), "n_only_b": len(diff["only_in_b"]),
        "metrics": metrics,
        "mcnemar": {**mc, "p": f"{mc['p_value']:.4g}"},
        "regressed": flips(diff["regressed"]), "fixed": flips(diff["fixed"]), "changed": flips(diff["changed"]),
        "n_regressed": len(diff["regressed"]), "n_fixed": len(diff["fixed"]), "n_changed": len(diff["changed"]),
        "max_listed": MAX_LISTED,
        "judge_rows": judge_rows, "judge_paired": bool(judge and judge.get("paired")),
        "cost_rows": cost_rows,
        "config": diff.get("config"),
        "checks": diff["checks"],
        "verdict": diff["verdict"],
        "settings": diff["settings"],
    }


def _judge_row(v: dict[str, Any]) -> dict[str, Any]:
    return {"n": v.get("n") if v.get("n") is not None else f"{v.get('a_n')}/{v.get('b_n')}",
            "a": num(v.get("a_mean"), 2), "b": num(v.get("b_mean"), 2),
            "delta": _signed(v.get("delta"), as_pct=False), "ci": _ci(v.get("ci95"), as_pct=False)}


def render_compare_html(diff: dict[str, Any]) -> str:
    return environment().get_template("compare.html.jinja2").render(**compare_context(diff))


def render_compare_markdown(diff: dict[str, Any]) -> str:
    return _md_environment().get_template("compare.md.jinja2").render(**compare_context(diff))
