"""Resume an interrupted run (``--resume RUN_DIR``): read back and check what it stored.

The stored results are read back, a torn last line is cut off, and only cases without a result
are sent, appended to the same ``results.jsonl``. A session whose turns partly completed
continues with its remaining turns: the history of the completed turns is rebuilt from their
stored results (the same messages and answers an uninterrupted run would have carried) and the
same ``X-Model-Affinity`` id is sent, so no completed turn is sent again. Only a case whose
request was in flight when the run died (sent, result not yet written) is sent a second time; at
most ``--concurrency`` such cases per interruption.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import urlsplit

from evalkit.errors import RunDirError, UsageError
from evalkit.records import Case, CaseResult, Manifest, TargetInfo
from evalkit.run.spec import TargetSpec
from evalkit.runner import ErrorBudgetExceeded, session_history
from evalkit.store import BASELINE, MANIFEST, RESULTS, RunDir
from evalkit.suites import Suite
from evalkit.targets import DO_INFERENCE_URL, resolve_route_header


@dataclass
class Prior:
    """What an interrupted run stored, checked against the suite it is resumed with."""

    run_dir: RunDir
    manifest: Manifest
    results: list[CaseResult]
    histories: dict[str, list[dict[str, Any]]]
    baseline_done: set[str] = field(default_factory=set)
    baseline_histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def read_prior(run_dir: RunDir, suite: Suite, spec: TargetSpec, cases: Sequence[Case],
               shard: tuple[int, int] | None, baseline_model: str | None) -> Prior:
    """Read and check a run directory to resume, writing nothing (bad input leaves it untouched)."""
    manifest = run_dir.read_manifest()
    _check_same_run(manifest, str(run_dir.file(MANIFEST)), suite, spec, shard, baseline_model)
    results, answers = _stored(run_dir, RESULTS, cases)
    baseline_done: set[str] = set()
    baseline_histories: dict[str, list[dict[str, Any]]] = {}
    if baseline_model:
        base_results, base_answers = _stored(run_dir, BASELINE, cases)
        baseline_done = {r.id for r in base_results}
        baseline_histories = session_histories(cases, base_answers)
    return Prior(run_dir=run_dir, manifest=manifest, results=results, histories=session_histories(cases, answers),
                 baseline_done=baseline_done, baseline_histories=baseline_histories)


def _check_same_run(manifest: Manifest, where: str, suite: Suite, spec: TargetSpec,
                    shard: tuple[int, int] | None, baseline_model: str | None) -> None:
    """The run to resume must be of the same suite, target, shard and baseline model."""
    if manifest.suite.name != suite.name or manifest.suite.hash != suite.hash:
        run_router = manifest.options.get("router")
        if manifest.suite.name == suite.name and manifest.router.hash != suite.router.hash and (
                run_router or suite.router_path):
            ran, now = (f"--router {r}" if r else "the suite's own router config" for r in (run_router, suite.router_path))
            raise RunDirError(
                f"the router config differs from the run's: this run used {ran} (hash {manifest.router.hash}), "
                f"not {now if now != ran else 'its edited contents'} (hash {suite.router.hash})", where=where,
                fix=f"resume with {ran if run_router else 'no --router'} (the router config the run started with), "
                    "or start a new run without --resume")
        raise RunDirError(
            f"this run is of suite '{manifest.suite.name}' (hash {manifest.suite.hash}), not of the suite "
            f"given ('{suite.name}', hash {suite.hash}): the suite, its router config or its cases changed",
            where=where, fix="resume with the suite the run started with, or start a new run without --resume")
    if manifest.target.kind != spec.kind:
        raise UsageError(f"this run used --target {manifest.target.kind}, not {spec.kind}", where="--target",
                         fix=f"resume with --target {manifest.target.kind} (and the same base URL and model)")
    _check_same_target(manifest, suite, spec)
    run_shard = manifest.options.get("shard")
    given = f"{shard[0]}/{shard[1]}" if shard else None
    if run_shard != given:
        raise UsageError(f"this run was {'shard ' + run_shard if run_shard else 'not sharded'}, "
                         f"not {'shard ' + given if given else 'unsharded'}", where="--shard",
                         fix=f"resume with {'--shard ' + run_shard if run_shard else 'no --shard'}")
    if manifest.options.get("baseline_model") != baseline_model:
        raise UsageError(f"this run's baseline model was {manifest.options.get('baseline_model')!r}, "
                         f"not {baseline_model!r}", where="--baseline-model",
                         fix="resume with the same --baseline-model as the run started with")


def _check_same_target(manifest: Manifest, suite: Suite, spec: TargetSpec) -> None:
    """The resumed run must reach the router the run started with: the same base URL (not for the
    local router, whose port changes), model and route header, or its results would mix two routers
    under the first one's manifest."""
    stored = manifest.target
    given: list[tuple[str, str | None, str | None]] = [
        ("--route-header", stored.route_header, resolve_route_header(spec.route_header))]
    if spec.candidate is None:  # a temporary router's model name is made for each run
        router_name = spec.router_name or suite.router.name
        model = f"router:{router_name}" if spec.kind == "local" else (spec.model or f"router:{router_name}")
        given.append(("--model", stored.model, model))
    if spec.kind == "local":
        given += _local_router(stored, spec)
    else:
        base_url = spec.base_url
        if spec.kind == "do" and not base_url:
            base_url = os.environ.get("EVALKIT_DO_INFERENCE_URL", DO_INFERENCE_URL)
        if base_url is not None:
            given.append(("--base-url", url_identity(stored.base_url), url_identity(base_url)))
    for option, was, now in given:
        if was is not None and was != now:
            raise UsageError(f"this run was made with {option} {was}, not {now}: resuming would mix the answers of "
                             "two routers in one run", where=option,
                             fix=f"resume with {option} {was} (the value the run started with), or leave out "
                                 "--resume to start a new run against the other router")


def _local_router(stored: TargetInfo, spec: TargetSpec) -> list[tuple[str, str | None, str | None]]:
    """The embedded router's classifier and threshold, as stored and as given (the threshold with the
    classifier's default filled in): another classifier routes the rest of the cases differently."""
    from evalkit.emulator.classifier import DEFAULT_THRESHOLD, MODEL_CLASSIFIERS, TFIDF_DEFAULT_THRESHOLD

    pairs: list[tuple[str, str | None, str | None]] = [("--classifier", stored.classifier, spec.classifier)]
    if spec.classifier == stored.classifier and spec.classifier not in MODEL_CLASSIFIERS \
            and stored.threshold is not None:
        default = TFIDF_DEFAULT_THRESHOLD if spec.classifier == "tfidf" else DEFAULT_THRESHOLD
        given = default if spec.threshold is None else spec.threshold
        pairs.append(("--threshold", f"{stored.threshold:g}", f"{given:g}"))
    return pairs


def url_identity(url: str | None) -> str | None:
    """A base URL as compared on resume and shown in the message: scheme, host, port and path, without
    credentials (user:password@, query values) and a trailing slash."""
    if url is None:
        return None
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return url.strip().rstrip("/")
    if not parts.scheme or not host:
        return url.strip().rstrip("/")
    return f"{parts.scheme.lower()}://{host}{port}{parts.path.rstrip('/')}"


def _stored(run_dir: RunDir, name: str, cases: Sequence[Case]) -> tuple[list[CaseResult], dict[str, str | None]]:
    """The results already in file ``name`` (checked against the cases), and the answers of session turns."""
    path = run_dir.file(name)
    by_id = {c.id for c in cases}
    results: list[CaseResult] = []
    answers: dict[str, str | None] = {}
    if not run_dir.has(name):
        return results, answers
    for r in run_dir.iter_results(name):
        if r.id not in by_id:
            raise RunDirError(f"{name} holds case '{r.id}', which the suite (or this shard) does not have",
                              where=str(path), fix="resume with the suite (and --shard) the run started with")
        if r.session is not None:
            answers[r.id] = r.content
        results.append(r)
    twice = [i for i, n in Counter(r.id for r in results).items() if n > 1]
    if twice:
        raise RunDirError(f"{name} holds case '{twice[0]}' twice", where=str(path),
                          fix="the run directory was edited by hand; start a new run")
    return results, answers


def session_histories(cases: Sequence[Case], answers: dict[str, str | None]) -> dict[str, list[dict[str, Any]]]:
    """For each session whose turns partly completed: the history its next turn carries, rebuilt
    from the stored answers exactly as the runner builds it."""
    sessions: dict[str, list[Case]] = {}
    for case in cases:
        if case.session is not None:
            sessions.setdefault(case.session, []).append(case)
    histories: dict[str, list[dict[str, Any]]] = {}
    for sid, turns in sessions.items():
        turns.sort(key=lambda c: c.turn or 0)
        done = [c.id in answers for c in turns]
        if not any(done) or all(done):
            continue
        history: list[dict[str, Any]] = []
        for case in turns:
            if case.id not in answers:
                break
            history = session_history([*history, *case.own_messages()], answers[case.id])
        histories[sid] = history
    return histories


def check_budget_left(prior: Prior, cases: Sequence[Case], max_error_rate: float | None) -> None:
    """Refuse, before anything is sent, to resume with an error budget the stored errors already spend:
    failed cases keep their error (a resume sends only the cases without a result), so the first new
    error would stop the run again. The error's fix gives a budget that leaves room for the rest."""
    remaining = len(cases) - len(prior.results)
    if max_error_rate is None or not cases or remaining <= 0:
        return
    errors = sum(1 for r in prior.results if r.status == "error")
    allowed = math.floor(max_error_rate * len(cases))
    if errors > allowed:
        stop = ErrorBudgetExceeded(errors=errors, allowed=allowed, n_planned=len(cases), rate=max_error_rate,
                                   before_sending=True)
        stop.for_resume(remaining)
        stop.where = str(prior.run_dir.path)
        raise stop
