"""``run_suite``: one run end to end. Check the inputs, start the target, send the cases (and the
baseline model's), store each result as it completes, judge, analyse, write the reports.

Memory: results are appended to ``results.jsonl`` as they complete; the in-memory list holds the
result records (answers included: the judge reads them), never the raw responses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Coroutine, Sequence

from evalkit import SCHEMA_VERSION, __version__
from evalkit.cost import Price
from evalkit.errors import Interrupted, RunError, Terminated, UsageError
from evalkit.judge import JudgeSettings, resolve_judge_key
from evalkit.records import Case, CaseResult, Manifest, RouterInfo, SuiteInfo, TargetInfo
from evalkit.report.junit import DEFAULT_JUNIT_CASES, check_junit_cases
from evalkit.run.finalize import finalize, judge_stored
from evalkit.run.gating import check_baseline_cases, gate_expressions, gating_options
from evalkit.run.resume import Prior, check_budget_left, read_prior
from evalkit.run.spec import Reliability, TargetSpec
from evalkit.run.startup import cache_scope, open_target
from evalkit.runner import ErrorBudgetExceeded, RunOptions, StoppedEarly, run_cases
from evalkit.shard import shard_cases
from evalkit.store import BASELINE, Run, RunDir, check_out_dir, utc_now
from evalkit.suites import Suite
from evalkit.redact import safe_url
from evalkit.targets import OpenAITarget


@dataclass
class _Plan:
    """Where this run writes and what it still has to send (all of it, or a resumed run's rest)."""

    run_dir: RunDir
    manifest: Manifest
    results: list[CaseResult]
    todo: list[Case]
    base_todo: list[Case]


def run_suite(suite: Suite, spec: TargetSpec, *, out: str | Path, prices: dict[str, Price],
              concurrency: int = 16, on_result: Callable[[CaseResult], None] = lambda r: None,
              status: Callable[[str], None] = lambda s: None, judge: JudgeSettings | None = None,
              baseline_model: str | None = None, gates: Sequence[str] = (), baseline: Run | None = None,
              shard: tuple[int, int] | None = None, reliability: Reliability | None = None,
              junit_cases: str = DEFAULT_JUNIT_CASES, allow_incomplete: bool = False) -> Run:
    """Run ``suite`` against the target and write the whole run directory (or finish one).

    With ``baseline_model`` every case is also sent to that fixed model through the same
    endpoint (``baseline.jsonl``); with ``judge`` the answers are judged once the run is stored
    (skipped, and said so in the report, when the judge's key is not set).
    ``gates`` are added to suite.yaml's; relative ones read ``baseline`` (a stored run), which the
    run is also compared with (``diff.json``, ``compare.html`` in the run directory).
    ``shard=(I, N)`` runs only that share of the cases (gates then wait for ``evalkit merge``).
    ``reliability`` sets retries, rate limit, error budget, cache and ``resume`` (a run directory
    to finish). ``junit_cases``: ``regressed`` (misroutes fail only against a baseline) or ``all``.
    ``allow_incomplete``: gates pass or fail on the cases that have a result even when the run
    stopped before every case had one (otherwise every gate of an incomplete run fails).
    ``on_result`` may have a ``begin(total, stored)`` method (the command line's progress has): it is
    called before the first request with the number of cases of the run and the results it already
    has (a resumed run's), so that a progress count ends at ``total``.
    """
    rel = reliability or Reliability()
    judge_key = _check_inputs(spec, rel, out, concurrency=concurrency, judge=judge, junit_cases=junit_cases,
                              suite_name=suite.name)
    gate_exprs = gate_expressions(suite, gates, baseline_given=baseline is not None or shard is not None)
    cases = suite.cases if shard is None else shard_cases(suite.cases, *shard)
    if baseline is not None:
        check_baseline_cases(baseline, suite, cases)
    # The run directory's writer lock is held from here to the end. A resumed run is checked first
    # (writing nothing, so bad input leaves the folder as it was), then locked and read again, so
    # that no other writer can add to its results between the read and the appends.
    locked: list[RunDir] = []
    if rel.resume is not None:
        check_budget_left(read_prior(RunDir(rel.resume), suite, spec, cases, shard, baseline_model), cases,
                          rel.max_error_rate)
        locked.append(RunDir(rel.resume).lock_for_run("evalkit run --resume"))
    try:
        return _run_locked(suite, spec, rel, cases, locked, out=out, prices=prices, concurrency=concurrency,
                           on_result=on_result, status=status, judge=judge, judge_key=judge_key,
                           baseline_model=baseline_model, gate_exprs=gate_exprs, baseline=baseline, shard=shard,
                           junit_cases=junit_cases, allow_incomplete=allow_incomplete)
    finally:
        for run_dir in locked:
            run_dir.unlock()


def _run_locked(suite: Suite, spec: TargetSpec, rel: Reliability, cases: Sequence[Case], locked: list[RunDir], *,
                out: str | Path, prices: dict[str, Price], concurrency: int, on_result: Callable[[CaseResult], None],
                status: Callable[[str], None], judge: JudgeSettings | None, judge_key: str | None,
                baseline_model: str | None, gate_exprs: list[str], baseline: Run | None,
                shard: tuple[int, int] | None, junit_cases: str, allow_incomplete: bool) -> Run:
    """``run_suite`` once its inputs are checked; a run directory it locks is added to ``locked``."""
    prior = read_prior(locked[0], suite, spec, cases, shard, baseline_model) if locked else None
    options = _runner_options(suite, spec, rel, concurrency=concurrency, prices=prices, n_planned=len(cases),
                              status=status)
    with open_target(spec, suite, prices, concurrency=concurrency, status=status) as target:
        options.cache_scope = cache_scope(target.info, suite, spec)
        if prior is None:
            manifest_options = {
                "concurrency": concurrency, "defaults": suite.spec.defaults, "stream": spec.stream,
                "prices": prices_used(prices, suite), **({"baseline_model": baseline_model} if baseline_model else {}),
                **({"router": suite.router_path} if suite.router_path else {}),
                "retries": rel.retries, "timeout_s": spec.timeout, "rpm": options.rpm,
                "max_error_rate": rel.max_error_rate, "cache": rel.cache,
                **gating_options(gate_exprs, str(baseline.path) if baseline is not None else None, shard, junit_cases,
                                 allow_incomplete)}
            plan = _new_run(suite, target.info, cases, out=out, options=manifest_options, locked=locked)
        else:
            plan = _resumed_run(prior, cases, options, baseline_model=baseline_model, status=status)
            plan.manifest.options.pop("allow_incomplete", None)  # as this invocation says
            if allow_incomplete:
                plan.manifest.options["allow_incomplete"] = True
        options.affinity_prefix = f"evalkit-{plan.run_dir.name}"
        plan.run_dir.write_manifest(plan.manifest)
        begin = getattr(on_result, "begin", None)
        if callable(begin):
            begin(len(cases), list(plan.results))
        had = f" (the other {len(plan.results)} of {len(cases)} have a result)" if plan.results else ""
        status(f"running {len(plan.todo)} cases{had} against {target.info.kind} ({safe_url(target.info.base_url)})")
        fresh, stopped = _send(plan, target, options, baseline_model=baseline_model, prior=prior,
                               on_result=on_result, status=status)
    return _finish(plan, suite, cases, target, fresh, stopped, prices=prices, cache=options.cache, judge=judge,
                   judge_key=judge_key, baseline=baseline, status=status)


def _check_inputs(spec: TargetSpec, rel: Reliability, out: str | Path, *, concurrency: int,
                  judge: JudgeSettings | None, junit_cases: str, suite_name: str | None = None) -> str | None:
    """Every option checked before any traffic; returns the judge's key (None: judging is skipped)."""
    if concurrency < 1:
        raise UsageError("concurrency must be at least 1", where="--concurrency", got=str(concurrency),
                         fix="e.g. --concurrency 16")
    spec.check()
    rel.check()
    check_junit_cases(junit_cases)
    if rel.resume is None and Path(out).exists() and not Path(out).is_dir():
        raise UsageError("the output folder is a file", where=f"--out {out}",
                         fix="give a folder (it is created when missing), e.g. --out reports")
    if rel.resume is None:
        check_out_dir(out, suite_name)
    if judge is None:
        return None
    judge.validate()
    return resolve_judge_key(judge)


def _runner_options(suite: Suite, spec: TargetSpec, rel: Reliability, *, concurrency: int,
                    prices: dict[str, Price], n_planned: int,
                    status: Callable[[str], None] = lambda s: None) -> RunOptions:
    cache = None
    if rel.cache:
        from evalkit.cache import ResponseCache

        cache = ResponseCache(rel.cache_dir)
    defaults = suite.spec.defaults
    return RunOptions(concurrency=concurrency, max_completion_tokens=defaults.get("max_completion_tokens"),
                      temperature=defaults.get("temperature"), prices=prices, retries=rel.retries,
                      backoff_base=rel.backoff_base, timeout=spec.timeout, rpm=rel.rpm_for(spec.kind),
                      max_error_rate=rel.max_error_rate, n_planned=n_planned, seed=rel.seed, cache=cache,
                      status=status, key_hint=key_hint(spec))


def key_hint(spec: TargetSpec) -> str:
    """Where the target's key comes from, as a refused key's message names it (never the key itself)."""
    from evalkit.targets import DO_KEY_ENV

    if spec.kind == "local":
        return "the upstream keys (--upstream SLUG=URL@ENVVAR: the key in $ENVVAR)"
    if spec.api_key_env:
        return f"the key in ${spec.api_key_env} (--api-key-env {spec.api_key_env})"
    if spec.kind == "do":
        return f"the key in ${DO_KEY_ENV} (or name another variable with --api-key-env)"
    return ("the key: none was sent; put the router's key in an environment variable and name it with "
            "--api-key-env VAR")


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


def _new_run(suite: Suite, target: TargetInfo, cases: Sequence[Case], *, out: str | Path,
             options: dict[str, Any], locked: list[RunDir]) -> _Plan:
    run_dir = RunDir.create(out, suite.name)
    locked.append(run_dir)  # released by run_suite, however the run ends
    manifest = new_manifest(run_dir.name, suite, target, options)
    manifest.counts["planned"] = len(cases)  # a run killed before its end still knows what it planned
    run_dir.write_router(suite.router)
    return _Plan(run_dir=run_dir, manifest=manifest, results=[], todo=list(cases), base_todo=list(cases))


def _resumed_run(prior: Prior, cases: Sequence[Case], options: RunOptions, *, baseline_model: str | None,
                 status: Callable[[str], None]) -> _Plan:
    run_dir, manifest, results = prior.run_dir.lock_for_run(), prior.manifest, prior.results
    repaired = run_dir.repair_results()
    if baseline_model:
        run_dir.repair_results(BASELINE)
    done = {r.id for r in results}
    todo = [c for c in cases if c.id not in done]
    options.histories = prior.histories
    options.prior_errors = sum(1 for r in results if r.status == "error")
    manifest.stopped = None
    manifest.options.setdefault("resumes", []).append(
        {"at": utc_now(), "had_results": len(results), "sent": len(todo), "repair": repaired})
    status(f"resuming {run_dir.path}: {len(results)} of {len(cases)} cases have a result"
           + (f" ({repaired})" if repaired else ""))
    return _Plan(run_dir=run_dir, manifest=manifest, results=results, todo=todo,
                 base_todo=[c for c in cases if c.id not in prior.baseline_done])


def _send(plan: _Plan, target: OpenAITarget, options: RunOptions, *, baseline_model: str | None,
          prior: Prior | None, on_result: Callable[[CaseResult], None],
          status: Callable[[str], None]) -> tuple[list[CaseResult], RunError | None]:
    """Send the cases still to do (then the baseline model's), storing each result as it completes.

    Returns the results of this invocation and, when the run was stopped early (error budget, a
    router that cannot be reached), why.
    """
    seen = {r.id for r in plan.results}
    fresh: list[CaseResult] = []
    with plan.run_dir.result_writer() as writer:
        def record(result: CaseResult) -> None:
            if result.id in seen:  # the runner's contract; a break here would double-count a case
                raise RunError(f"case {result.id} got a second result", where=str(plan.run_dir.path),
                               fix="this is a bug of evalkit: please report it; results.jsonl keeps the first result")
            seen.add(result.id)
            try:
                writer.write(result)
            except OSError as exc:  # a full disk, a removed folder: the run cannot go on
                raise RunError(f"cannot append to results.jsonl: {exc.strerror or exc}", where=str(plan.run_dir.path),
                               fix="free disk space or fix the folder, then finish the run with --resume") from None
            plan.results.append(result)
            fresh.append(result)
            on_result(result)

        async def go() -> None:
            try:
                await run_cases(plan.todo, target, options, record)
                if baseline_model and plan.base_todo:
                    status(f"sending {len(plan.base_todo)} cases to the baseline model {baseline_model}")
                    # The baseline is a reference, not the run under test: no error budget, and
                    # resumed sessions carry the baseline's own answers.
                    base_options = dataclasses.replace(options, max_error_rate=None, cache=None,
                                                       histories=prior.baseline_histories if prior else {})
                    with plan.run_dir.result_writer(BASELINE) as base_writer:
                        baseline_target = OpenAITarget(target.client, model=baseline_model,
                                                       route_header=target.route_header, info=target.info,
                                                       stream=target.stream)
                        await run_cases(plan.base_todo, baseline_target, base_options, base_writer.write)
            finally:
                await target.close()

        try:
            run_stoppable(go())
        except StoppedEarly as exc:
            if isinstance(exc, ErrorBudgetExceeded):
                exc.for_resume(remaining=len(plan.todo) - len(fresh))
            return fresh, exc
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated): keep what is complete
            return fresh, Interrupted(signal_name="SIGTERM" if isinstance(exc, Terminated) else "SIGINT",
                                      run_dir=str(plan.run_dir.path), n_done=len(plan.results),
                                      n_planned=len(plan.results) + len(plan.todo) - len(fresh))
    return fresh, None


def run_stoppable(main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run(main)``, stopped by SIGTERM as asyncio stops it on Ctrl-C: the event loop
    cancels ``main`` between two of its steps, never in the middle of the run's own code (a result
    half recorded, the client half closed, a task left pending with a traceback printed at exit);
    once ``main`` has cleaned up, the SIGTERM handler installed before (the CLI's raises
    ``Terminated``) runs. Without a Python SIGTERM handler, or off the main thread, plain ``asyncio.run``."""
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous) or threading.current_thread() is not threading.main_thread():
        asyncio.run(main)
        return
    terminated: list[bool] = []

    async def guarded() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def stop() -> None:
            terminated.append(True)
            if task is not None:
                task.cancel()
        loop.add_signal_handler(signal.SIGTERM, stop)
        try:
            await main
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, previous)

    try:
        asyncio.run(guarded())
    except asyncio.CancelledError:
        if not terminated:
            raise
    if terminated:
        previous(signal.SIGTERM, None)  # the CLI's handler raises Terminated


def _finish(plan: _Plan, suite: Suite, cases: Sequence[Case], target: OpenAITarget, fresh: list[CaseResult],
            stopped: RunError | None, *, prices: dict[str, Price], cache: Any,
            judge: JudgeSettings | None, judge_key: str | None, baseline: Run | None,
            status: Callable[[str], None]) -> Run:
    """Record how the run ended, judge it, write the summary and reports; raise what stopped it."""
    run_dir, manifest, results = plan.run_dir, plan.manifest, plan.results
    manifest.finished_at = utc_now()
    manifest.counts = count_statuses(results)
    manifest.counts["planned"] = len(cases)
    manifest.counts["not_run"] = len(cases) - len(results)
    if cache is not None:
        manifest.options["cache_hits"] = cache.hits
    if isinstance(stopped, Interrupted):
        manifest.stopped = f"interrupted ({stopped.signal_name})"
    elif stopped is not None:
        manifest.stopped = stopped.what
    # A router may serve models outside its config's pools: record their prices too.
    manifest.options["prices"] = prices_used(prices, suite, served=[r.served_model for r in results if r.served_model])
    run_dir.write_manifest(manifest)
    if judge is not None and stopped is None:
        judge_stored(run_dir, manifest, results, judge, key=judge_key, prices=prices, status=status)
    summary = finalize(run_dir, manifest, results, baseline=baseline if stopped is None else None,
                       router=suite.router)
    leftover = getattr(target, "leftover", None)  # a temporary router that could not be deleted
    if leftover is not None:
        raise leftover
    if stopped is not None:
        stopped.where = str(run_dir.path)
        raise stopped
    check_measured(results, fresh, url=target.info.base_url, header=target.route_header, run_dir=run_dir.path)
    return Run(run_dir.path, manifest, results, summary=summary)


def check_measured(results: Sequence[CaseResult], fresh: Sequence[CaseResult], *, url: str, header: str,
                   run_dir: Path) -> None:
    """Raise (exit 3) when a finished run measured nothing: every case of this invocation failed
    to connect or timed out, no case was scored, or no answer carried the route header."""
    from evalkit.metrics import route_header_notice

    if fresh and all(r.status == "error" and r.http_status is None for r in fresh):
        timed_out = [r for r in fresh if (r.error or "").startswith("request timed out")]
        what = ("the router did not answer: every case timed out" if len(timed_out) == len(fresh) else
                "the router could not be reached: every case failed to connect" if not timed_out else
                "the router could not be reached: every case failed to connect or timed out")
        fix = ("check that the router is up and answering, or allow slow answers more time with --timeout"
               if timed_out else "check that the router is running and the base URL is right")
        raise RunError(what, where=safe_url(url), got=fresh[0].error, fix=f"{fix}; the run is in {run_dir}")
    if results and all(r.status == "error" for r in results):
        statuses = Counter(f"HTTP {r.http_status}" if r.http_status is not None else "no answer" for r in results)
        raise RunError(f"no case was scored: all {len(results)} cases failed", where=safe_url(url),
                       got=", ".join(f"{k} x{v}" for k, v in statuses.most_common(5)) + f"; first: {results[0].error}",
                       fix="the errors are listed in report.html and results.jsonl; an HTML page or a redirect "
                           "usually means the base URL is not the router's API, HTTP 401/403 a wrong key, "
                           f"HTTP 429 a rate limit (try --rpm); the run is in {run_dir}")
    notice = route_header_notice(results, header=header)
    if notice is not None and notice["all"]:
        raise RunError(f"no answer carried the route header '{header}': routing was not measured",
                       where=safe_url(url),
                       got=f"{notice['n_missing']} answered cases; headers that came back: "
                           + (", ".join(notice["names"]) or "none recorded"),
                       fix=f"name the router's route header with --route-header NAME (presets: do, vllm-sr, "
                           f"litellm); the run is in {run_dir}")


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
