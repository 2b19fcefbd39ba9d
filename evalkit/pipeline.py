"""The run job, end to end: load, start the target, run, store, analyse, render.

This is the glue between the edges (suites, targets, store) and the pure analysis; the CLI
calls it and only adds argument parsing, progress display and exit codes.

Memory: results are appended to ``results.jsonl`` as they complete; the in-memory list holds the
result records (answers included: the judge reads them), never the raw responses.

Resume (``resume=RUN_DIR``): the stored results are read back, a torn last line is cut off, and
only cases without a result are sent, appended to the same ``results.jsonl``. A session whose
turns partly completed continues with its remaining turns: the history of the completed turns is
rebuilt from their stored results (the same messages and answers an uninterrupted run would
have carried) and the same ``X-Model-Affinity`` id is sent, so no completed turn is sent again.
Only a case whose request was in flight when the run died (sent, result not yet written) is sent
a second time; at most ``--concurrency`` such cases per interruption.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import Counter
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from evalkit import SCHEMA_VERSION, __version__
from evalkit.cost import Price
from evalkit.errors import RunDirError, RunError, UsageError
from evalkit.gate import GateResult, check_tasks, evaluate_gate, parse_gates
from evalkit.judge import (BASELINE_FILE, JudgeSettings, judge_run_dir, load_judgement, make_judge_client,
                           resolve_judge_key, skipped_block)
from evalkit.records import Case, CaseResult, Manifest, RouterInfo, SuiteInfo, TargetInfo
from evalkit.router_config import RouterConfig
from evalkit.report import write_reports
from evalkit.report.junit import DEFAULT_JUNIT_CASES, check_junit_cases
from evalkit.runner import (DEFAULT_BACKOFF_BASE_S, DEFAULT_RETRIES, ErrorBudgetExceeded, RunOptions, run_cases,
                            session_history)
from evalkit.shard import shard_cases
from evalkit.store import (MANIFEST, RESULTS, ROUTER, SUMMARY, ResultWriter, create_run_dir, iter_results,
                           load_diff, load_manifest, load_run, repair_results, utc_now, write_json)
from evalkit.suites import Suite
from evalkit.summary import build_summary
from evalkit.targets import (DO_INFERENCE_URL, DO_KEY_ENV, OpenAITarget, api_key_from_env, make_endpoint,
                             resolve_route_header, wait_until_answers)

TARGET_KINDS = ("local", "do", "openai")
DO_DEFAULT_RPM = 900  # DigitalOcean routers allow 1,000 requests a minute; stay below it


@dataclass
class Reliability:
    """How the run meets faults: retries, rate limit, deadline, error budget, cache, resume."""

    retries: int = DEFAULT_RETRIES
    backoff_base: float = DEFAULT_BACKOFF_BASE_S
    rpm: float | None = None             # None: the target's default (do: 900/min, others: unlimited); 0: unlimited
    max_error_rate: float | None = None  # None: no budget
    cache: bool = False
    cache_dir: str | Path | None = None  # None: $EVALKIT_CACHE_DIR/responses or ~/.cache/evalkit/responses
    resume: str | Path | None = None     # a run directory to finish
    seed: int | None = None

    def check(self) -> None:
        if self.retries < 0 or self.retries > 20:
            raise UsageError("retries must be between 0 and 20", where="--retries", got=str(self.retries),
                             fix="e.g. --retries 3 (the default)")
        if not (self.backoff_base >= 0 and self.backoff_base <= 60):
            raise UsageError("the backoff base must be between 0 and 60 seconds", where="--backoff",
                             got=str(self.backoff_base), fix="e.g. --backoff 0.5 (the default)")
        if self.rpm is not None and not (self.rpm >= 0 and self.rpm <= 1_000_000):
            raise UsageError("requests per minute must be 0 (no limit) or a positive number", where="--rpm",
                             got=str(self.rpm), fix="e.g. --rpm 900 (DigitalOcean allows 1,000 a minute)")
        if self.max_error_rate is not None and not (0 <= self.max_error_rate <= 1):
            raise UsageError("the error budget is a share of the cases, between 0 and 1", where="--max-error-rate",
                             got=str(self.max_error_rate), fix="e.g. --max-error-rate 0.05 (stop after 5% errors)")


@dataclass
class TargetSpec:
    """How to reach the router under test (never holds a key)."""

    kind: str = "local"
    base_url: str | None = None
    model: str | None = None
    router_name: str | None = None
    route_header: str | None = None
    api_key_env: str | None = None
    threshold: float | None = None
    classifier: str = "embedding"
    classifier_model: str | None = None
    classifier_base_url: str | None = None
    classifier_api_key_env: str | None = None
    upstreams: dict[str, str] = field(default_factory=dict)
    timeout: float = 120.0
    stream: bool = False
    candidate: RouterConfig | None = None  # do: create this config as a temporary router for the run
    api_url: str | None = None             # do: control-plane root URL (token from DIGITALOCEAN_TOKEN)
    ready_timeout: float = 120.0           # do + candidate: seconds to wait for the new router to answer


@dataclass
class RunOutcome:
    run_dir: Path
    manifest: Manifest
    results: list[CaseResult]
    summary: dict[str, Any]


@contextlib.contextmanager
def open_target(spec: TargetSpec, suite: Suite, prices: dict[str, Price], *, concurrency: int,
                status: Callable[[str], None] = lambda s: None) -> Iterator[OpenAITarget]:
    """Start (for ``local``) and connect to the target; stop it afterwards."""
    import os

    if spec.kind not in TARGET_KINDS:
        raise UsageError(f"unknown target '{spec.kind}'", where="--target", fix=f"use one of: {', '.join(TARGET_KINDS)}")
    header = resolve_route_header(spec.route_header)
    router_name = spec.router_name or suite.router.name
    if spec.kind == "local":
        from evalkit.emulator import LocalRouter, create_app
        from evalkit.emulator.classifier import MODEL_CLASSIFIERS, classifier_from_options, load_encoder
        from evalkit.emulator.upstream import check_keys, parse_upstreams

        check_keys(parse_upstreams(spec.upstreams))
        classifier = classifier_from_options(spec.classifier, threshold=spec.threshold, model=spec.classifier_model,
                                             base_url=spec.classifier_base_url,
                                             api_key_env=spec.classifier_api_key_env, upstreams=spec.upstreams)
        threshold = None if spec.classifier in MODEL_CLASSIFIERS else classifier.threshold
        if spec.classifier == "embedding":
            status("loading the local router's embedding model")
            load_encoder()
        app = create_app([suite.router], classifier=classifier, prices=prices, upstreams=spec.upstreams)
        local = LocalRouter(app).start()
        info = TargetInfo(kind="local", base_url=local.base_url, model=f"router:{router_name}",
                          route_header=header, router_name=router_name, classifier=spec.classifier,
                          threshold=threshold, note=local_router_note(classifier))
        client = make_endpoint(local.base_url, "evalkit-local", timeout=spec.timeout, concurrency=concurrency)
        try:
            yield OpenAITarget(client, model=info.model, route_header=header, info=info, stream=spec.stream)
        finally:
            local.stop()
        return
    if spec.kind == "do":
        base_url = spec.base_url or os.environ.get("EVALKIT_DO_INFERENCE_URL", DO_INFERENCE_URL)
        key = api_key_from_env(spec.api_key_env or DO_KEY_ENV, target="do")
        if spec.candidate is not None:
            with candidate_target(spec, base_url, key, header, concurrency=concurrency, status=status) as target:
                yield target
            return
        model = spec.model or f"router:{router_name}"
    else:
        if not spec.base_url:
            raise UsageError("--target openai needs --base-url", where="--base-url",
                             fix="give the router's OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
        base_url = spec.base_url
        model = spec.model or f"router:{router_name}"
        key = api_key_from_env(spec.api_key_env, target="openai") if spec.api_key_env else "none"
    info = TargetInfo(kind=spec.kind, base_url=base_url, model=model, route_header=header, router_name=router_name)
    client = make_endpoint(base_url, key, timeout=spec.timeout, concurrency=concurrency)
    yield OpenAITarget(client, model=model, route_header=header, info=info, stream=spec.stream)


def local_router_note(classifier: Any) -> str:
    """The manifest's note on the local router: what classified (model and URL for a model classifier)."""
    describe = getattr(classifier, "describe", None)
    if describe is None:
        return "embedded local router (a proxy for the real classifier)"
    return f"embedded local router, classifier {classifier.name}: {describe()}"


@contextlib.contextmanager
def candidate_target(spec: TargetSpec, base_url: str, key: str, header: str, *, concurrency: int,
                     status: Callable[[str], None] = lambda s: None) -> Iterator[OpenAITarget]:
    """``--target do --candidate``: the candidate config as a temporary router, deleted afterwards.

    The model access key goes only to the inference URL (the readiness probe and the run); the
    token only to the control plane (create and delete).
    """
    from evalkit.control_plane import ControlPlane, LeftoverRouterError, temporary_router

    assert spec.candidate is not None
    candidate = spec.candidate
    made: list[OpenAITarget] = []
    try:
        with ControlPlane.from_env(spec.api_url) as plane, \
                temporary_router(plane, candidate, status=status) as temp:
            model = f"router:{temp.name}"
            status(f"waiting for {model} to answer on {base_url}")
            wait_until_answers(base_url, key, model, timeout=spec.ready_timeout, status=status)
            info = TargetInfo(kind="do", base_url=base_url, model=model, route_header=header, router_name=temp.name,
                              note=f"temporary router {temp.name} ({temp.uuid}) made from the candidate config "
                                   f"{candidate.source or candidate.name} on {plane.base_url}; deleted after the run")
            client = make_endpoint(base_url, key, timeout=spec.timeout, concurrency=concurrency)
            made.append(OpenAITarget(client, model=model, route_header=header, info=info, stream=spec.stream))
            yield made[0]
    except LeftoverRouterError as exc:
        if not made:
            raise
        # the run itself succeeded: run_suite raises this once the run directory is complete
        made[0].leftover = exc  # type: ignore[attr-defined]


AGAINST_VALUES = ("deployed",)


def check_candidate_options(*, target: str, candidate: str | Path | None, against: str | None,
                            router: str | Path | None = None, model: str | None = None,
                            ready_timeout: float = 120.0) -> None:
    """Reject combinations of ``--candidate`` / ``--against`` that cannot mean anything (pure)."""
    if against is not None:
        if against not in AGAINST_VALUES:
            raise UsageError(f"unknown --against value '{against}'", where="--against",
                             fix="use --against deployed (the router named in the suite's router.json)")
        if candidate is None:
            raise UsageError("--against deployed compares a candidate with the deployed router: give --candidate too",
                             where="--against", fix="add --candidate router.candidate.json")
    if candidate is None:
        return
    if target != "do":
        raise UsageError(f"--candidate creates a temporary router on DigitalOcean, which --target {target} has no use for",
                         where="--candidate", fix="add --target do, or use --router FILE to try a config on the local router")
    if router is not None:
        raise UsageError("--candidate and --router both name the router config to run", where="--router",
                         fix="keep --candidate (the temporary router's config); the suite's router.json is the deployed one")
    if model is not None:
        raise UsageError("--model cannot be combined with --candidate: the run calls router:<temporary name>",
                         where="--model", fix="drop --model")
    if not ready_timeout > 0:
        raise UsageError("the ready timeout must be a positive number of seconds", where="--ready-timeout",
                         got=str(ready_timeout), fix="e.g. --ready-timeout 120")


def deployed_router(spec: TargetSpec, name: str, *, like: RouterConfig | None = None) -> RouterConfig:
    """The live config of the deployed router ``name`` (read through the control plane).

    When ``like`` (the suite's router.json) leaves ``regions`` out, the API's default regions
    are left out of the result too, so they do not show up as a change.
    """
    from evalkit.control_plane import ControlPlane

    with ControlPlane.from_env(spec.api_url) as plane:
        found = plane.find(name)
        if found is None:
            names = ", ".join(r.name for r in plane.list() if not r.temporary) or "none"
            raise UsageError(f"no deployed router named '{name}' on the control plane", where="--against deployed",
                             got=f"routers there: {names}",
                             fix="deploy it first (`evalkit router create router.json`), or name it with --router-name")
    config = found.to_config()
    if like is not None and like.regions is None:
        config = config.model_copy(update={"regions": None})
    return config


@dataclass
class Comparison:
    """The comparison of a candidate run with the deployed router's run (``--against deployed``)."""

    config_diff: dict[str, Any]
    diff: dict[str, Any]
    folder: Path
    paths: dict[str, Path]


def compare_with_deployed(deployed: RunOutcome, candidate: RunOutcome, *, deployed_config: RouterConfig,
                          candidate_config: RouterConfig, out: str | Path) -> Comparison:
    """Deployed (A, before) against candidate (B, after), case by case, written under ``out/compare/``.

    The same paired comparison as ``evalkit compare A B``, with the deployed side's router
    config taken from the live router rather than from the run directory's router.json copy.
    """
    import dataclasses

    from evalkit.commands.compare import load_side, write_compare
    from evalkit.compare import compare_runs
    from evalkit.router_config import diff_configs

    side_a = dataclasses.replace(load_side(deployed.run_dir), router=deployed_config)
    # Both runs used the same suite.yaml and cases; the suite hash also covers the router file,
    # which is the one thing meant to differ here, so the deployed side's hash stands for both.
    side_b = dataclasses.replace(load_side(candidate.run_dir), router=candidate_config, suite_hash=side_a.suite_hash)
    diff = compare_runs(side_a, side_b)
    folder = Path(out) / "compare" / f"{deployed.manifest.run_id}-vs-{candidate.manifest.run_id}"
    return Comparison(config_diff=diff_configs(deployed_config, candidate_config), diff=diff, folder=folder,
                      paths=write_compare(diff, folder, junit_results=side_b.results,
                                          junit_cases=candidate.manifest.options.get("junit_cases") or DEFAULT_JUNIT_CASES))


def new_manifest(run_id: str, suite: Suite, target: TargetInfo, options: dict[str, Any]) -> Manifest:
    return Manifest(
        schema_version=SCHEMA_VERSION,
        evalkit_version=__version__,
        run_id=run_id,
        suite=SuiteInfo(name=suite.name, path=str(suite.folder), hash=suite.hash, n_cases=len(suite.cases)),
        router=RouterInfo(name=suite.router.name, hash=suite.router.hash, tasks=suite.router.task_names,
                          descriptions={t.name: t.description for t in suite.router.tasks}),
        target=target,
        started_at=utc_now(),
        options=options,
    )


def run_suite(suite: Suite, spec: TargetSpec, *, out: str | Path, prices: dict[str, Price],
              concurrency: int = 16, on_result: Callable[[CaseResult], None] = lambda r: None,
              status: Callable[[str], None] = lambda s: None, judge: JudgeSettings | None = None,
              baseline_model: str | None = None, gates: Sequence[str] = (),
              baseline: dict[str, Any] | None = None, baseline_path: str | None = None,
              shard: tuple[int, int] | None = None, reliability: Reliability | None = None,
              junit_cases: str = DEFAULT_JUNIT_CASES) -> RunOutcome:
    """Run ``suite`` against the target and write the whole run directory (or finish one).

    With ``baseline_model`` every case is also sent to that fixed model through the same
    endpoint (``baseline.jsonl``); with ``judge`` the answers are judged once the run is stored
    (skipped, and said so in the report, when the judge's key is not set).
    ``gates`` are added to suite.yaml's; relative ones read ``baseline`` (a stored run's summary).
    ``shard=(I, N)`` runs only that share of the cases (gates then wait for ``evalkit merge``).
    ``reliability`` sets retries, rate limit, error budget, cache and ``resume`` (a run directory
    to finish). ``junit_cases``: ``regressed`` (misroutes fail only against a baseline) or ``all``.
    """
    rel = reliability or Reliability()
    if concurrency < 1:
        raise UsageError("concurrency must be at least 1", where="--concurrency", got=str(concurrency),
                         fix="e.g. --concurrency 16")
    if not spec.timeout > 0:
        raise UsageError("the per-request timeout must be a positive number of seconds", where="--timeout",
                         got=str(spec.timeout), fix="e.g. --timeout 120 (the default)")
    rel.check()
    check_junit_cases(junit_cases)
    if rel.resume is None and Path(out).exists() and not Path(out).is_dir():
        raise UsageError("the output folder is a file", where=f"--out {out}",
                         fix="give a folder (it is created when missing), e.g. --out reports")
    judge_key = None
    if judge is not None:
        judge.validate()
        judge_key = resolve_judge_key(judge)
    gate_exprs = gate_expressions(suite, gates, baseline_given=baseline is not None or shard is not None)
    cases = suite.cases if shard is None else shard_cases(suite.cases, *shard)
    cache = None
    if rel.cache:
        from evalkit.cache import ResponseCache

        cache = ResponseCache(rel.cache_dir)
    prior = _read_prior(Path(rel.resume), suite, spec, cases, shard, baseline_model) if rel.resume is not None else None
    defaults = suite.spec.defaults
    rpm = rel.rpm if rel.rpm is not None else (DO_DEFAULT_RPM if spec.kind == "do" else None)
    options = RunOptions(concurrency=concurrency, max_completion_tokens=defaults.get("max_completion_tokens"),
                         temperature=defaults.get("temperature"), prices=prices, retries=rel.retries,
                         backoff_base=rel.backoff_base, timeout=spec.timeout, rpm=rpm or None,
                         max_error_rate=rel.max_error_rate, n_planned=len(cases), seed=rel.seed,
                         cache=cache)
    with open_target(spec, suite, prices, concurrency=concurrency, status=status) as target:
        options.cache_scope = cache_scope(target.info, suite, spec)
        if prior is None:
            run_dir = create_run_dir(out, suite.name)
            run_options: dict[str, Any] = {"concurrency": concurrency, "defaults": defaults, "stream": spec.stream,
                                           "prices": prices_used(prices, suite),
                                           **({"baseline_model": baseline_model} if baseline_model else {}),
                                           "retries": rel.retries, "timeout_s": spec.timeout, "rpm": options.rpm,
                                           "max_error_rate": rel.max_error_rate, "cache": rel.cache}
            run_options.update(gating_options(gate_exprs, baseline_path, shard, junit_cases))
            manifest = new_manifest(run_dir.name, suite, target.info, run_options)
            write_json(run_dir / ROUTER, suite.router.to_body())
            results: list[CaseResult] = []
            todo = list(cases)
            base_todo = list(cases)
        else:
            run_dir, manifest, results = prior.run_dir, prior.manifest, prior.results
            repaired = repair_results(run_dir / RESULTS)
            if baseline_model:
                repair_results(run_dir / BASELINE_FILE)
            done = {r.id for r in results}
            todo = [c for c in cases if c.id not in done]
            base_todo = [c for c in cases if c.id not in prior.baseline_done]
            options.histories = prior.histories
            options.prior_errors = sum(1 for r in results if r.status == "error")
            manifest.stopped = None
            manifest.options.setdefault("resumes", []).append(
                {"at": utc_now(), "had_results": len(results), "sent": len(todo), "repair": repaired})
            status(f"resuming {run_dir}: {len(results)} of {len(cases)} cases have a result"
                   + (f" ({repaired})" if repaired else ""))
        options.affinity_prefix = f"evalkit-{run_dir.name}"
        write_json(run_dir / MANIFEST, manifest.model_dump(mode="json"))
        seen = {r.id for r in results}
        fresh: list[CaseResult] = []
        stopped: ErrorBudgetExceeded | None = None
        status(f"running {len(todo)} cases against {target.info.kind} ({target.info.base_url})")
        with ResultWriter(run_dir) as writer:
            def record(result: CaseResult) -> None:
                if result.id in seen:  # the runner's contract; a break here would double-count a case
                    raise RuntimeError(f"case {result.id} got a second result")
                seen.add(result.id)
                try:
                    writer.write(result)
                except OSError as exc:  # a full disk, a removed folder: the run cannot go on
                    raise RunError(f"cannot append to results.jsonl: {exc.strerror or exc}", where=str(run_dir),
                                   fix="free disk space or fix the folder, then finish the run with --resume") from None
                results.append(result)
                fresh.append(result)
                on_result(result)

            async def go() -> None:
                try:
                    await run_cases(todo, target, options, record)
                    if baseline_model and base_todo:
                        status(f"sending {len(base_todo)} cases to the baseline model {baseline_model}")
                        # The baseline is a reference, not the run under test: no error budget, and
                        # resumed sessions carry the baseline's own answers.
                        base_options = dataclasses.replace(options, max_error_rate=None, cache=None,
                                                           histories=prior.baseline_histories if prior else {})
                        with ResultWriter(run_dir, BASELINE_FILE) as base_writer:
                            baseline_target = OpenAITarget(target.client, model=baseline_model,
                                                           route_header=target.route_header, info=target.info,
                                                           stream=target.stream)
                            await run_cases(base_todo, baseline_target, base_options, base_writer.write)
                finally:
                    await target.close()

            try:
                asyncio.run(go())
            except ErrorBudgetExceeded as exc:
                stopped = exc
    manifest.finished_at = utc_now()
    manifest.counts = count_statuses(results)
    manifest.counts["planned"] = len(cases)
    manifest.counts["not_run"] = len(cases) - len(results)
    if cache is not None:
        manifest.options["cache_hits"] = cache.hits
    if stopped is not None:
        manifest.stopped = stopped.what
    # A router may serve models outside its config's pools: record their prices too.
    manifest.options["prices"] = prices_used(prices, suite, served=[r.served_model for r in results if r.served_model])
    write_json(run_dir / MANIFEST, manifest.model_dump(mode="json"))
    if judge is not None and stopped is None:
        judge_stored(run_dir, manifest, results, judge, key=judge_key, prices=prices, status=status)
    summary = finalize(run_dir, manifest, results, baseline=baseline, router=suite.router)
    leftover = getattr(target, "leftover", None)  # a temporary router that could not be deleted
    if leftover is not None:
        raise leftover
    if stopped is not None:
        stopped.where = str(run_dir)
        raise stopped
    if fresh and all(r.status == "error" and r.http_status is None for r in fresh):
        raise RunError("the router could not be reached: every case failed to connect",
                       where=target.info.base_url, got=fresh[0].error,
                       fix=f"check that the router is running and the base URL is right; the run is in {run_dir}")
    return RunOutcome(run_dir=run_dir, manifest=manifest, results=results, summary=summary)


def cache_scope(info: TargetInfo, suite: Suite, spec: TargetSpec) -> dict[str, Any]:
    """What identifies the target and router for the response cache (the local router's port is not)."""
    scope = info.model_dump(exclude={"note"})
    if info.kind == "local":
        scope.pop("base_url", None)
        scope["upstreams"] = dict(sorted(spec.upstreams.items()))
    scope["router_hash"] = suite.router.hash
    scope["stream"] = spec.stream
    return scope


@dataclass
class _Prior:
    run_dir: Path
    manifest: Manifest
    results: list[CaseResult]
    histories: dict[str, list[dict[str, Any]]]
    baseline_done: set[str] = field(default_factory=set)
    baseline_histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _read_prior(run_dir: Path, suite: Suite, spec: TargetSpec, cases: Sequence[Case],
                shard: tuple[int, int] | None, baseline_model: str | None) -> _Prior:
    """Read and check a run directory to resume, writing nothing (bad input leaves it untouched)."""
    manifest = load_manifest(run_dir)
    where = str(run_dir / MANIFEST)
    if manifest.suite.name != suite.name or manifest.suite.hash != suite.hash:
        raise RunDirError(
            f"this run is of suite '{manifest.suite.name}' (hash {manifest.suite.hash}), not of the suite "
            f"given ('{suite.name}', hash {suite.hash}): the suite, its router config or its cases changed",
            where=where, fix="resume with the suite the run started with, or start a new run without --resume")
    if manifest.target.kind != spec.kind:
        raise UsageError(f"this run used --target {manifest.target.kind}, not {spec.kind}", where="--target",
                         fix=f"resume with --target {manifest.target.kind} (and the same base URL and model)")
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
    results, answers = _stored(run_dir / RESULTS, cases)
    baseline_done: set[str] = set()
    baseline_histories: dict[str, list[dict[str, Any]]] = {}
    if baseline_model:
        base_results, base_answers = _stored(run_dir / BASELINE_FILE, cases)
        baseline_done = {r.id for r in base_results}
        baseline_histories = _session_histories(cases, base_answers)
    return _Prior(run_dir=run_dir, manifest=manifest, results=results,
                  histories=_session_histories(cases, answers), baseline_done=baseline_done,
                  baseline_histories=baseline_histories)


def _stored(path: Path, cases: Sequence[Case]) -> tuple[list[CaseResult], dict[str, str | None]]:
    """The results already in ``path`` (checked against the cases), and the answers of session turns."""
    by_id = {c.id for c in cases}
    results: list[CaseResult] = []
    answers: dict[str, str | None] = {}
    if not path.is_file():
        return results, answers
    for r in iter_results(path):
        if r.id not in by_id:
            raise RunDirError(f"{path.name} holds case '{r.id}', which the suite (or this shard) does not have",
                              where=str(path), fix="resume with the suite (and --shard) the run started with")
        if r.session is not None:
            answers[r.id] = r.content
        results.append(r)
    twice = [i for i, n in Counter(r.id for r in results).items() if n > 1]
    if twice:
        twice = twice[0]
        raise RunDirError(f"{path.name} holds case '{twice}' twice", where=str(path),
                          fix="the run directory was edited by hand; start a new run")
    return results, answers


def _session_histories(cases: Sequence[Case], answers: dict[str, str | None]) -> dict[str, list[dict[str, Any]]]:
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


def prices_used(prices: dict[str, Price], suite: Suite, served: Sequence[str] = ()) -> dict[str, Any]:
    """The catalog entries of the router's models (and of any other model that served a case),
    recorded in the manifest so that a re-render (``evalkit report``) prices the run exactly as
    it was priced; unpriced models are listed as null."""
    from evalkit.cost import price_record

    router = suite.router
    slugs = [*(m for t in router.tasks for m in t.models), *router.fallback_models, *served]
    return {slug: price_record(prices.get(slug)) for slug in dict.fromkeys(slugs)}


def count_statuses(results: Sequence[CaseResult]) -> dict[str, int]:
    counts = {"cases": len(results), "ok": 0, "missing_route": 0, "error": 0}
    for r in results:
        counts[r.status] += 1
    return counts


def run_overlap(run_dir: Path, manifest: Manifest, results: Sequence[CaseResult],
                router: RouterConfig | None = None) -> dict[str, Any] | None:
    """Overlap evidence for a run: the descriptions (static) plus the run's confusion.

    The router is the one the run measured (``router.json`` in the run directory when not
    given). Embedding similarity is computed for local runs only, whose encoder is already
    loaded; other targets get TF-IDF and shared terms, so finishing a remote run never pays a
    model load. ``evalkit overlap ROUTER --run RUN`` gives the full evidence for any run.
    """
    from evalkit.overlap import find_overlaps
    from evalkit.router_config import load_router_config

    if router is None:
        path = run_dir / ROUTER
        if not path.is_file():
            return None
        router = load_router_config(path)
    if router.task_names != manifest.router.tasks:
        return None
    vectors = None
    if manifest.target.kind == "local":
        from evalkit.embedding import encode

        vectors = encode([t.description for t in router.tasks])
    return find_overlaps(router, description_vectors=vectors, results=results).to_dict()


def judge_stored(run_dir: Path, manifest: Manifest, results: Sequence[CaseResult], settings: JudgeSettings, *,
                 key: str | None, prices: dict[str, Price], status: Callable[[str], None] = lambda s: None,
                 client: Any = None) -> dict[str, Any]:
    """Judge a stored run (or record why not) and keep the judge's settings in the manifest."""
    if key is None:
        block = skipped_block(settings, str(run_dir))
        status(f"judging skipped: {block['reason']}; to turn it on: {block['fix']}")
    else:
        judge = make_judge_client(settings, key, prices, client=client)
        block = judge_run_dir(run_dir, results, settings, judge=judge, descriptions=manifest.router.descriptions,
                              status=status)
    manifest.judge = block
    write_json(run_dir / MANIFEST, manifest.model_dump(mode="json"))
    return block


def finalize(run_dir: Path, manifest: Manifest, results: Sequence[CaseResult], *,
             baseline: dict[str, Any] | None = None, router: RouterConfig | None = None) -> dict[str, Any]:
    """Analyse a run's records and write summary.json and the reports."""
    summary = build_summary(manifest, results, judgement=load_judgement(run_dir),
                            overlap=run_overlap(run_dir, manifest, results, router))
    summary["gates"] = gate_verdicts(run_dir, manifest, summary, baseline)
    write_json(run_dir / SUMMARY, summary)
    # A re-render keeps the comparison that `--baseline` stored beside the run (summary.md, junit.xml).
    write_reports(run_dir, summary, results, manifest, diff=load_diff(run_dir))
    return summary


def rerender(run_dir: str | Path) -> RunOutcome:
    """``evalkit report RUN``: recompute the summary and reports from the stored files."""
    run = load_run(run_dir)
    summary = finalize(run.path, run.manifest, run.results)
    return RunOutcome(run_dir=run.path, manifest=run.manifest, results=run.results, summary=summary)


def gate_expressions(suite: Suite, extra: Sequence[str], *, baseline_given: bool = True) -> list[str]:
    """suite.yaml's gates, then the command line's; all parsed and checked before any traffic."""
    parse_gates(suite.spec.gates, where=f"{suite.folder / 'suite.yaml'} at gates")
    parse_gates(extra, where="--gate")
    exprs = [*suite.spec.gates, *extra]
    gates = parse_gates(exprs)
    check_tasks(gates, suite.router.labels, where="--gate / suite.yaml gates")
    relative = [g.expr for g in gates if g.relative]
    if relative and not baseline_given:
        raise UsageError(f"gate '{relative[0]}' compares with a baseline, but no baseline run was given",
                         where="--gate" if relative[0] in extra else f"{suite.folder / 'suite.yaml'} at gates",
                         fix="pass --baseline RUN (a stored run directory), or use an absolute threshold")
    return exprs


def gating_options(gates: Sequence[str], baseline_path: str | None, shard: tuple[int, int] | None,
                   junit_cases: str = DEFAULT_JUNIT_CASES) -> dict[str, Any]:
    """What a run records in manifest.options so that merge and re-rendering evaluate the same gates
    (and write junit.xml the same way)."""
    out: dict[str, Any] = {"gates": list(gates), "junit_cases": check_junit_cases(junit_cases)}
    if baseline_path:
        out["baseline"] = baseline_path
    if shard:
        out["shard"] = f"{shard[0]}/{shard[1]}"
    return out


def gate_verdicts(run_dir: Path, manifest: Manifest, summary: dict[str, Any],
                  baseline: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The run's gate verdicts; none for a shard (its gates are evaluated on the merged run).

    Re-rendering re-reads the baseline run named in the manifest; if it is gone, the verdicts
    stored earlier for relative gates are kept.
    """
    exprs = manifest.options.get("gates") or []
    if not exprs or manifest.options.get("shard"):
        return []
    gates = parse_gates(exprs)
    if baseline is None and any(g.relative for g in gates) and manifest.options.get("baseline"):
        try:
            baseline = load_run(manifest.options["baseline"]).summary
        except RunDirError:
            baseline = None
    previous: dict[str, Any] = {}
    if baseline is None and (run_dir / SUMMARY).is_file():
        with contextlib.suppress(ValueError, OSError):
            previous = {g["expr"]: g for g in json.loads((run_dir / SUMMARY).read_text("utf-8")).get("gates") or []}
    verdicts = []
    for g in gates:
        if g.relative and baseline is None and g.expr in previous:
            verdicts.append(previous[g.expr])
        elif g.relative and baseline is None:
            verdicts.append(GateResult(expr=g.expr, metric=g.name, value=None, threshold=None, passed=False,
                                       message=f"Gate '{g.expr}' failed: the baseline run is not available").model_dump())
        else:
            verdicts.append(evaluate_gate(g, summary, baseline=baseline).model_dump())
    return verdicts
