"""Gate expressions and their verdicts (pure).

A gate is ``METRIC OP VALUE``: ``OP`` one of ``>= <= > <``; ``METRIC`` a figure of
``summary.json`` by name (``accuracy``, ``error_rate``), a per-task figure
(``recall[reasoning]``, ``precision[classify]``, ``f1[customer-qa]``) or a dotted path into the
summary (``latency.p95_ms``, ``cost.total_usd``, ``judge.per_path.classify.correctness``);
``VALUE`` a number (``0.9`` or ``90%``) or a baseline run's value of the same metric, optionally
shifted (``baseline - 0.02``).

Each verdict says what was measured and how sure the figure is: for proportions the number of
cases behind it and its 95% Wilson interval, so a failure near the threshold reads as such::

    Gate 'recall[reasoning] >= 0.85' failed: 0.812 (n=48, 95% CI 0.70-0.90)
"""

from __future__ import annotations

import math
import operator
import re
from typing import Any, Callable, Literal, Mapping, Sequence, Union, cast

from pydantic import BaseModel, ConfigDict, Field

from evalkit.errors import UsageError
from evalkit.metrics import wilson_interval
from evalkit.records import FALLBACK, Document
from evalkit.validation import did_you_mean

Op = Literal[">=", "<=", ">", "<"]
OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
}
EXPECTED_FORM = ("METRIC OP VALUE with OP one of >= <= > <, e.g. 'accuracy >= 0.90', "
                 "'recall[reasoning] >= 0.85', 'error_rate <= 2%', 'accuracy >= baseline - 0.02'")

# Figures at the top level of summary.json that a gate may name.
SCALAR_METRICS = ("accuracy", "macro_f1", "cohen_kappa", "match_rate", "fallback_rate", "missing_rate",
                  "false_fallback_rate", "false_match_rate", "error_rate", "n_cases", "n_scored",
                  "n_errors", "n_missing_route")
TASK_METRICS = ("precision", "recall", "f1", "support")
# Sections of summary.json a dotted metric may reach into.
DOTTED_ROOTS = ("latency", "cost", "judge", "per_tag", "per_task")

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?%?"
_GATE_RE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w.\-]*)(?:\[(?P<task>[^\[\]]+)\])?\s*"
    r"(?P<op>>=|<=|>|<)\s*"
    r"(?:(?P<baseline>baseline)\s*(?:(?P<sign>[-+])\s*(?P<offset>" + _NUMBER + r"))?|(?P<value>" + _NUMBER + r"))\s*$"
)


class Gate(BaseModel):
    """A parsed gate expression."""

    model_config = ConfigDict(frozen=True)

    expr: str
    metric: str
    task: str | None = None
    op: Op
    value: float | None = None  # absolute threshold; None for a baseline-relative gate
    offset: float = 0.0  # baseline-relative: threshold = baseline value + offset

    @property
    def relative(self) -> bool:
        return self.value is None

    @property
    def name(self) -> str:
        """The metric as written: ``recall[reasoning]``, ``accuracy``."""
        return f"{self.metric}[{self.task}]" if self.task else self.metric


class GateResult(Document):
    """One gate's verdict, as stored under ``gates`` in summary.json."""

    expr: str
    metric: str
    value: float | None
    threshold: float | None
    baseline: float | None = None
    passed: bool
    n: int | None = None
    ci95: list[float] | None = None
    message: str


class GateReport(Document):
    """The verdicts of a list of gates on one run (``evalkit.gate``, ``evalkit gate --json``)."""

    run: str | None = None
    passed: bool
    gates: list[GateResult] = Field(default_factory=list)

    @property
    def failed(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]


# A run's summary: the typed ``summary.Summary``, or the mapping summary.json holds.
SummaryLike = Union[Document, Mapping[str, Any]]


def as_mapping(summary: SummaryLike) -> Mapping[str, Any]:
    """The summary as summary.json holds it: metrics are named by their JSON paths (``latency.p95_ms``)."""
    return summary.to_json() if isinstance(summary, Document) else summary


def _number(text: str) -> float:
    if text.endswith("%"):
        return float(text[:-1]) / 100
    return float(text)


def parse_gate(expr: str, *, where: str = "gate") -> Gate:
    """Parse ``METRIC OP VALUE``; a malformed expression is a ``UsageError`` naming the form."""
    if not isinstance(expr, str):
        raise UsageError("a gate must be a string expression", where=where, got=repr(expr), fix=f"write {EXPECTED_FORM}")
    m = _GATE_RE.match(expr)
    if not m:
        raise UsageError("malformed gate expression", where=where, got=repr(expr), fix=f"write {EXPECTED_FORM}")
    metric, task = m["metric"], m["task"]
    if task is not None:
        task = task.strip()
        if metric not in TASK_METRICS:
            raise UsageError(f"'{metric}' is not a per-task metric{did_you_mean(metric, TASK_METRICS)}", where=where, got=repr(expr),
                             fix=f"per-task metrics are {', '.join(TASK_METRICS)}, e.g. 'recall[reasoning] >= 0.85'")
    elif "." in metric:
        root = metric.split(".", 1)[0]
        if root not in DOTTED_ROOTS:
            raise UsageError(f"unknown metric '{metric}'{did_you_mean(metric, [r + metric[len(root):] for r in DOTTED_ROOTS])}", where=where,
                             got=repr(expr), fix=f"dotted metrics start with one of {', '.join(DOTTED_ROOTS)} (e.g. latency.p95_ms)")
    elif metric not in SCALAR_METRICS:
        hint = (f"; did you mean '{metric}[TASK]'?" if metric in TASK_METRICS
                else did_you_mean(metric, SCALAR_METRICS) or did_you_mean(metric, TASK_METRICS).replace("'?)", "[TASK]'?)"))
        raise UsageError(f"unknown metric '{metric}'{hint}", where=where, got=repr(expr),
                         fix=f"use a summary.json figure ({', '.join(SCALAR_METRICS)}), a per-task one "
                             f"({'/'.join(TASK_METRICS)}[TASK]) or a dotted path such as latency.p95_ms")
    if m["baseline"]:
        offset = _number(m["offset"]) if m["offset"] else 0.0
        if m["sign"] == "-":
            offset = -offset
        return Gate(expr=expr.strip(), metric=metric, task=task, op=cast(Op, m["op"]), value=None, offset=offset)
    return Gate(expr=expr.strip(), metric=metric, task=task, op=cast(Op, m["op"]), value=_number(m["value"]))


def parse_gates(exprs: Sequence[str], *, where: str = "gate") -> list[Gate]:
    return [parse_gate(e, where=where) for e in exprs]


def check_tasks(gates: Sequence[Gate], labels: Sequence[str], *, where: str = "gate") -> None:
    """Reject a per-task gate naming a task the router does not have (before any traffic)."""
    for g in gates:
        if g.task is not None and g.task not in labels:
            raise UsageError(f"gate names unknown task '{g.task}'{did_you_mean(g.task, labels)}", where=where, got=repr(g.expr),
                             fix=f"the router's tasks are: {', '.join(labels)}")


def lookup(summary: SummaryLike, gate: Gate) -> tuple[float | None, int | None, list[float] | None]:
    """The gate's metric in ``summary``: (value, n, 95% interval or None)."""
    summary = as_mapping(summary)
    if gate.task is not None:
        per_task = summary.get("per_task") or {}
        if gate.task not in per_task:
            raise UsageError(f"gate names unknown task '{gate.task}'{did_you_mean(gate.task, list(per_task))}", where=f"gate '{gate.expr}'",
                             fix=f"the run's tasks are: {', '.join(per_task) or '(none)'}")
        value = per_task[gate.task].get(gate.metric)
        return _with_interval(summary, gate, value)
    if "." in gate.metric:
        node: Any = summary
        for part in gate.metric.split("."):
            if not isinstance(node, dict) or part not in node:
                raise UsageError(f"metric '{gate.metric}' is not in this run's summary.json",
                                 where=f"gate '{gate.expr}'", got=f"no key '{part}'",
                                 fix="check the path against summary.json (the section may be absent from this run)")
            node = node[part]
        if isinstance(node, dict) and "mean" in node:  # judge score: {mean, ci95, n}
            ci = node.get("ci95")
            return _float(node.get("mean")), node.get("n"), list(ci) if ci else None
        if isinstance(node, dict) or isinstance(node, list):
            raise UsageError(f"metric '{gate.metric}' is a section, not a number", where=f"gate '{gate.expr}'",
                             fix="name a number inside it, e.g. latency.p95_ms")
        return _float(node), None, None
    return _with_interval(summary, gate, summary.get(gate.metric))


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def proportion_base(summary: Mapping[str, Any], metric: str, task: str | None = None) -> int | None:
    """How many cases a proportion is taken over, from the confusion matrix; None if not a proportion."""
    conf = summary.get("confusion") or {}
    labels, columns, matrix = conf.get("labels", []), conf.get("columns", []), conf.get("matrix", [])
    n_scored = summary.get("n_scored")
    tasks = [lab for lab in labels if lab != FALLBACK]
    if task is not None:
        if metric == "recall" and task in labels:
            return sum(matrix[labels.index(task)])
        if metric == "precision" and task in columns:
            j = columns.index(task)
            return sum(row[j] for row in matrix)
        return None
    if metric in ("accuracy", "match_rate", "fallback_rate", "missing_rate"):
        return n_scored
    if metric == "error_rate":
        return summary.get("n_cases")
    if metric == "false_fallback_rate":
        return sum(sum(matrix[i]) for i, lab in enumerate(labels) if lab in tasks)
    if metric == "false_match_rate":
        return sum(matrix[labels.index(FALLBACK)]) if FALLBACK in labels else None
    return None


def _with_interval(summary: Mapping[str, Any], gate: Gate, value: Any) -> tuple[float | None, int | None, list[float] | None]:
    value = _float(value)
    n = proportion_base(summary, gate.metric, gate.task)
    if n is None:
        n = summary.get("n_scored") if gate.metric in ("macro_f1", "cohen_kappa") else None
        if gate.task is not None and gate.metric in ("f1", "support"):
            n = (summary.get("per_task") or {}).get(gate.task, {}).get("support")
        return value, n, None
    if value is None:
        return None, n, None
    return value, n, wilson_interval(round(value * n), n)


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == int(value) and abs(value) >= 2:
        return str(int(value))
    return f"{value:.3f}" if abs(value) < 1000 else f"{value:.1f}"


def missing_cases(summary: SummaryLike) -> tuple[int, int]:
    """(cases without a result, cases planned) of a run: the summary's ``run`` section (a run stopped
    before every case had a result, a merge missing a shard's cases). (0, planned) when complete."""
    section = as_mapping(summary).get("run") or {}
    missing, planned = section.get("n_not_run") or 0, section.get("n_planned") or 0
    if not isinstance(missing, int) or isinstance(missing, bool) or missing < 0:
        missing = 0
    return missing, planned if isinstance(planned, int) and not isinstance(planned, bool) else 0


def incomplete_message(missing: int, planned: int) -> str:
    return (f"the run is incomplete: {missing} of {planned} planned cases have no result; finish it with "
            "`evalkit run SUITE --resume RUN_DIR` (or merge every shard), or pass --allow-incomplete to gate "
            "the cases it has")


def evaluate_gate(gate: Gate, summary: SummaryLike, *, baseline: SummaryLike | None = None,
                  allow_incomplete: bool = False) -> GateResult:
    """The verdict of one gate on a run's summary (and a baseline run's, for relative gates).

    On an incomplete run (cases planned without a result) every gate fails, saying how many cases
    are missing, unless ``allow_incomplete``: figures over part of a suite do not stand for it.
    """
    verdict = _evaluate(gate, summary, baseline=baseline)
    missing, planned = missing_cases(summary)
    if missing and not allow_incomplete:
        verdict.passed = False
        verdict.message = (f"Gate '{gate.expr}' failed: {incomplete_message(missing, planned)} "
                           f"(on those: {verdict.message.split(': ', 1)[-1]})")
    return verdict


def _evaluate(gate: Gate, summary: SummaryLike, *, baseline: SummaryLike | None) -> GateResult:
    value, n, ci = lookup(summary, gate)
    base_value = None
    if gate.relative:
        if baseline is None:
            raise UsageError(f"gate '{gate.expr}' compares with a baseline, but no baseline run was given",
                             where="gate", fix="pass --baseline RUN (a run directory), or use an absolute threshold")
        base_value, _, _ = lookup(baseline, gate)
        threshold = None if base_value is None else base_value + gate.offset
    else:
        threshold = gate.value
    passed = value is not None and threshold is not None and OPS[gate.op](value, threshold)
    detail = []
    if n is not None:
        detail.append(f"n={n}")
    if ci is not None:
        detail.append(f"95% CI {ci[0]:.2f}-{ci[1]:.2f}")
    shown = _fmt(value) if value is not None else "no value in this run"
    if gate.relative:
        sign = "-" if gate.offset < 0 else "+"
        base = f"baseline {_fmt(base_value)}" + (f" {sign} {abs(gate.offset):g}" if gate.offset else "")
        shown += f" vs threshold {_fmt(threshold)} ({base})"
    message = f"Gate '{gate.expr}' {'passed' if passed else 'failed'}: {shown}"
    if detail:
        message += f" ({', '.join(detail)})"
    return GateResult(expr=gate.expr, metric=gate.name, value=value, threshold=threshold, baseline=base_value,
                      passed=passed, n=n, ci95=ci, message=message)


def evaluate_gates(gates: Sequence[Gate | str], summary: SummaryLike, *,
                   baseline: SummaryLike | None = None, allow_incomplete: bool = False) -> list[GateResult]:
    parsed = [g if isinstance(g, Gate) else parse_gate(g) for g in gates]
    summary = as_mapping(summary)
    base = as_mapping(baseline) if baseline is not None else None
    return [evaluate_gate(g, summary, baseline=base, allow_incomplete=allow_incomplete) for g in parsed]


__all__ = ["Gate", "GateReport", "GateResult", "parse_gate", "parse_gates", "check_tasks", "evaluate_gate", "evaluate_gates",
           "missing_cases", "EXPECTED_FORM"]
