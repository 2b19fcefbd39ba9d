"""Optional report sections, each a pure function of (summary, results, manifest) -> dict.

``build_context`` stores each under its key; the template includes ``sections/<key>.html.jinja2``
when the dict is non-empty. Sections: overlap, judge, cost, compare (filled by their modules).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from evalkit.records import CaseResult, Manifest

Section = Callable[[dict[str, Any], Sequence[CaseResult], Manifest], dict[str, Any]]


def overlap_section(summary: dict[str, Any], results: Sequence[CaseResult], manifest: Manifest) -> dict[str, Any]:
    return {}


def judge_section(summary: dict[str, Any], results: Sequence[CaseResult], manifest: Manifest) -> dict[str, Any]:
    return {}


def cost_section(summary: dict[str, Any], results: Sequence[CaseResult], manifest: Manifest) -> dict[str, Any]:
    return {}


SECTIONS: dict[str, Section] = {
    "overlap": overlap_section,
    "judge": judge_section,
    "cost_detail": cost_section,
}
