"""Helpers for the gate/compare/merge/junit tests: run directories built from hand-written results,
and small slices of the bundled suite for runs against the local router."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from evalkit import SCHEMA_VERSION, __version__
from evalkit.records import CaseResult, Manifest, RouterInfo, SuiteInfo, TargetInfo
from evalkit.router_config import parse_router_config
from evalkit.store import MANIFEST, ROUTER, ResultWriter, write_json
from tests.conftest import ROOT, TUTORIAL_ROUTER, write_suite

TASKS = ["classify", "customer-qa", "reasoning"]
BUNDLED = ROOT / "suites" / "saas-support"


def result(cid: str, expected: str, route: str | None, *, status: str | None = None, prompt: str | None = None,
           **extra: Any) -> CaseResult:
    """One case result: ``route`` None means no route header; ``status='error'`` an error."""
    if status is None:
        status = "ok" if route is not None else "missing_route"
    return CaseResult(id=cid, expected_route=expected, route=None if status == "error" else route, status=status,
                      prompt=prompt if prompt is not None else f"prompt of {cid}", **extra)


def make_run(run_dir: Path, results: Sequence[CaseResult], *, router: dict[str, Any] | None = None,
             gates: Sequence[str] = (), suite: str = "demo", suite_hash: str = "suitehash000",
             judge: Iterable[dict[str, Any]] | None = None, options: dict[str, Any] | None = None,
             finalize: bool = True) -> Path:
    """A run directory as `evalkit run` leaves it, from hand-written results."""
    from evalkit.run import finalize as finish

    body = router or TUTORIAL_ROUTER
    config = parse_router_config(json.dumps(body))
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(
        schema_version=SCHEMA_VERSION, evalkit_version=__version__, run_id=run_dir.name,
        suite=SuiteInfo(name=suite, path=str(run_dir), hash=suite_hash, n_cases=len(results)),
        router=RouterInfo(name=config.name, hash=config.hash, tasks=config.task_names),
        target=TargetInfo(kind="local", base_url="http://127.0.0.1:1/v1", model=f"router:{config.name}",
                          route_header="x-model-router-selected-route"),
        started_at="2026-01-01T00:00:00Z", finished_at="2026-01-01T00:01:00Z",
        options={"gates": list(gates), **(options or {})},
    )
    write_json(run_dir / MANIFEST, manifest.model_dump(mode="json"))
    write_json(run_dir / ROUTER, config.to_body())
    with ResultWriter(run_dir) as w:
        for r in results:
            w.write(r)
    if judge is not None:
        (run_dir / "judge.jsonl").write_text("".join(json.dumps(j) + "\n" for j in judge))
    if finalize:
        finish(run_dir, manifest, list(results))
    return run_dir


def bundled_cases() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (BUNDLED / "cases.jsonl").read_text().splitlines() if line.strip()]


def bundled_router() -> dict[str, Any]:
    return json.loads((BUNDLED / "router.json").read_text())


def slice_suite(folder: Path, *, per_task: int | dict[str, int], sessions: bool = False, gates: Sequence[str] = (),
                router: dict[str, Any] | None = None) -> Path:
    """A suite with the first ``per_task`` single-turn cases of each expected route of the bundled
    suite (a number, or one per route) plus, with ``sessions``, every multi-turn session whole."""
    picked: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for case in bundled_cases():
        if case.get("session") is not None:
            if sessions:
                picked.append(case)
            continue
        key = case["expected_route"]
        limit = per_task if isinstance(per_task, int) else per_task.get(key, 0)
        if counts.get(key, 0) < limit:
            counts[key] = counts.get(key, 0) + 1
            picked.append(case)
    yaml_text = f"name: {folder.name}\nrouter: router.json\ncases: cases.jsonl\n"
    if gates:
        yaml_text += "gates:\n" + "".join(f"  - {json.dumps(g)}\n" for g in gates)
    return write_suite(folder, picked, router=router or bundled_router(), suite_yaml=yaml_text)


def worse_router() -> dict[str, Any]:
    """The bundled router with the classify description rewritten into a customer-Q&A one."""
    body = bundled_router()
    body["policies"][0]["custom_task"]["description"] = (
        "Answer questions about billing, invoices and account settings for customers.")
    return body
