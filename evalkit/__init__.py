"""evalkit: measure the routing quality of semantic LLM routers.

The Python API (docs/python-api.md)::

    import evalkit

    run = evalkit.load_run("reports/saas-support/<run-id>")      # a stored run, typed
    run.summary.accuracy, run.summary.per_task["reasoning"].recall
    frame = run.to_pandas()                                       # one row per case
    diff = evalkit.compare(run_a, run_b)                          # diff.fixed, diff.regressed, diff.mcnemar_p
    evalkit.gate(run, ["accuracy >= 0.9"]).passed
    run = evalkit.run_suite("suites/saas-support")                # a new run on the local router

Names are imported on first use, so ``import evalkit`` (and ``evalkit --help``) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"
SCHEMA_VERSION = 1

# public name -> the module that defines it
_EXPORTS = {
    "load_run": "evalkit.store", "Run": "evalkit.store",
    "compare": "evalkit.api", "gate": "evalkit.api", "run_suite": "evalkit.api",
    "Summary": "evalkit.summary", "Comparison": "evalkit.comparison", "MetricDelta": "evalkit.comparison",
    "GateReport": "evalkit.gates", "GateResult": "evalkit.gates",
    "CaseResult": "evalkit.records", "Manifest": "evalkit.records",
    "JudgeRecord": "evalkit.judge.records", "JudgeSummary": "evalkit.judge.records",
    "JudgeSettings": "evalkit.judge", "TargetSpec": "evalkit.run.spec", "Reliability": "evalkit.run.spec",
    "EvalkitError": "evalkit.errors", "InputError": "evalkit.errors", "RunError": "evalkit.errors",
}

__all__ = ["__version__", "SCHEMA_VERSION", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
