"""`evalkit run SUITE`: run a suite against a router, write the run directory, print the summary,
exit by the gates (1), bad input (2) or a run that could not complete (3)."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.markup import escape

from evalkit.commands.console import err, out
from evalkit.commands.options import judge_settings_from_options, parse_upstreams, ranged
from evalkit.commands.output import (append_step_summary, print_compare, print_interrupted, print_json, print_judge_skipped,
                                     print_review_warning, print_route_header_warning, print_run_verdict,
                                     print_summary, print_unstreamed_note, progress_bar, status_printer)
from evalkit.errors import Interrupted, Terminated, UsageError


def run(
    ctx: typer.Context,
    suite: Path = typer.Argument(..., help="Suite folder (holding suite.yaml) or a suite.yaml file."),
    target: str = typer.Option("local", "--target", help="local (embedded router), do (DigitalOcean) or openai (any OpenAI-compatible router)."),
    router: Optional[Path] = typer.Option(None, "--router", help="Use this router config instead of the one the suite names."),
    out_dir: Path = typer.Option(Path("reports"), "--out", help="Parent folder of the new run directory."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Base URL of the router (openai target; overrides do)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model to request (default router:<name>)."),
    router_name: Optional[str] = typer.Option(None, "--router-name", help="Router name for router:<name> (default: name in router.json)."),
    route_header: Optional[str] = typer.Option(None, "--route-header", help="Response header holding the route, or a preset: do, vllm-sr, litellm."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Environment variable holding the API key (do: MODEL_ACCESS_KEY)."),
    concurrency: int = typer.Option(16, "--concurrency", "-c", callback=ranged("--concurrency"), help="Requests in flight at once."),
    threshold: Optional[float] = typer.Option(None, "--threshold", callback=ranged("--threshold"), help="Local router: fallback similarity threshold."),
    upstream: Optional[list[str]] = typer.Option(None, "--upstream", help="Local router: forward a model to an OpenAI-compatible server, SLUG=URL or SLUG=URL@ENVVAR (key in $ENVVAR); repeatable; SLUG '*' for every model."),
    classifier: str = typer.Option("embedding", "--classifier", help="Local router: route classifier, embedding | tfidf | llm | arch-router (katanemo/Arch-Router-1.5B with its model card's prompt, served by Ollama, llama.cpp or vLLM)."),
    classifier_model: Optional[str] = typer.Option(None, "--classifier-model", help="Local router, llm / arch-router classifier: the routing model's name (arch-router default: katanemo/Arch-Router-1.5B)."),
    classifier_base_url: Optional[str] = typer.Option(None, "--classifier-base-url", help="Local router, llm / arch-router classifier: OpenAI-compatible base URL of the routing model (default: its --upstream)."),
    classifier_api_key_env: Optional[str] = typer.Option(None, "--classifier-api-key-env", help="Local router, llm / arch-router classifier: environment variable holding the routing model's key."),
    prices: Optional[Path] = typer.Option(None, "--prices", help="Price catalog YAML replacing the packaged one."),
    timeout: float = typer.Option(120.0, "--timeout", callback=ranged("--timeout"), help="Per-request timeout in seconds (each attempt)."),
    retries: int = typer.Option(3, "--retries", callback=ranged("--retries"), help="Retries of a retryable failure (429, 5xx, timeout, dropped connection, malformed body), with exponential backoff and jitter."),
    backoff: float = typer.Option(0.5, "--backoff", callback=ranged("--backoff"), help="First retry waits 0.5-1x this many seconds, doubling each retry (a 429's Retry-After wins when longer)."),
    rpm: Optional[float] = typer.Option(None, "--rpm", callback=ranged("--rpm"), help="Requests started per minute, retries included (default: 900 for --target do, else unlimited; 0: unlimited)."),
    max_error_rate: Optional[float] = typer.Option(None, "--max-error-rate", callback=ranged("--max-error-rate"), help="Error budget: stop the run (exit 3, reports written) once more than this share of the cases failed, e.g. 0.05."),
    cache: bool = typer.Option(False, "--cache/--no-cache", help="Reuse stored responses for identical requests (off by default: a cache hides router changes). Stored in $EVALKIT_CACHE_DIR/responses (default ~/.cache/evalkit/responses)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Finish an interrupted run: send only the cases of RUN_DIR without a result, appending to it."),
    stream: bool = typer.Option(False, "--stream", help="Request streamed responses and measure time to first token (TTFT)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print summary.json on stdout instead of the table."),
    judge: Optional[str] = typer.Option(None, "--judge", help="Judge every answer's correctness and completeness (1-5) with this model."),
    judge_base_url: Optional[str] = typer.Option(None, "--judge-base-url", help="Judge's OpenAI-compatible base URL (default: DigitalOcean serverless inference)."),
    judge_api_key_env: str = typer.Option("MODEL_ACCESS_KEY", "--judge-api-key-env", help="Environment variable holding the judge's key; judging is skipped when it is not set."),
    judge_samples: int = typer.Option(1, "--judge-samples", callback=ranged("--judge-samples"), help="Judge each answer K times and take the median (reports agreement)."),
    judge_pairwise: bool = typer.Option(False, "--judge-pairwise", help="With --baseline-model: also ask the judge which answer is better, in both orders."),
    judge_cache: bool = typer.Option(True, "--judge-cache/--no-judge-cache", help="Reuse cached verdicts ($EVALKIT_CACHE_DIR/judge)."),
    baseline_model: Optional[str] = typer.Option(None, "--baseline-model", help="Also send every case to this fixed model (same endpoint) to compare quality and cost per path."),
    gate: Optional[list[str]] = typer.Option(None, "--gate", help="Gate METRIC OP VALUE, added to suite.yaml's gates (repeatable); a failed gate exits 1."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A stored run to compare with (relative gates; compare.html in the run directory); a significant regression exits 1."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Run share I of N of the cases (e.g. 2/4, by case id hash); join shard runs with `evalkit merge`."),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="Evaluate the gates on the cases that have a result even when the run stopped before every case had one (by default every gate of an incomplete run fails)."),
    junit_cases: str = typer.Option("regressed", "--junit-cases", help="junit.xml test cases besides the gates: regressed (with --baseline, the cases the change broke fail and the fixed ones pass; misroutes are listed, not failed) or all (every misrouted case fails)."),
    candidate: Optional[Path] = typer.Option(None, "--candidate", help="do: create this router config as a temporary router <name>-evalkit-<id>, run the suite through it, delete it afterwards (token in DIGITALOCEAN_TOKEN)."),
    against: Optional[str] = typer.Option(None, "--against", help="With --candidate: 'deployed' also runs the suite on the deployed router (named in the suite's router.json) and writes the comparison report."),
    api_url: Optional[str] = typer.Option(None, "--api-url", help="do: control-plane root URL (default $EVALKIT_DO_API_URL or https://api.digitalocean.com)."),
    ready_timeout: float = typer.Option(120.0, "--ready-timeout", callback=ranged("--ready-timeout"), help="do + --candidate: seconds to wait for the temporary router to answer."),
) -> None:
    """Run a suite against a router, write the run directory and print the summary.

    Exits 1 when a gate fails or, with --baseline, when routing got significantly worse.
    Before deploying a description change, `--target do --candidate router.candidate.json
    --against deployed` tries it on DigitalOcean's own classifier as a temporary router and
    compares it with the live router, case by case (exit 1 on a significant regression).
    """
    from evalkit.cost import load_prices
    from evalkit.report.junit import check_junit_cases
    from evalkit.run import Reliability, TargetSpec, check_candidate_options, gate_expressions, run_suite
    from evalkit.runner import RESUME_PLACEHOLDER, StoppedEarly
    from evalkit.shard import parse_shard
    from evalkit.store import load_run
    from evalkit.suites import load_suite

    check_candidate_options(target=target, candidate=candidate, against=against, router=router, model=model,
                            ready_timeout=ready_timeout, baseline=baseline, shard=shard)
    loaded = load_suite(suite, router_path=candidate or router)
    catalog = load_prices(prices)
    # Gating, baseline and sharding are read before any traffic so bad input fails fast.
    shard_spec = parse_shard(shard) if shard else None
    check_junit_cases(junit_cases)
    gate_expressions(loaded, gate or [], baseline_given=baseline is not None or shard is not None)
    base_run = load_run(baseline) if baseline is not None else None
    if base_run is not None and shard_spec:
        raise UsageError("--baseline and --shard do not go together: a shard is only part of the suite",
                         where="--baseline", fix="merge the shards first, then: evalkit compare BASELINE MERGED")
    spec = TargetSpec(kind=target, base_url=base_url, model=model, router_name=router_name,
                      route_header=route_header, api_key_env=api_key_env, threshold=threshold,
                      classifier=classifier, classifier_model=classifier_model,
                      classifier_base_url=classifier_base_url, classifier_api_key_env=classifier_api_key_env,
                      upstreams=parse_upstreams(upstream), timeout=timeout, stream=stream,
                      candidate=loaded.router if candidate else None, api_url=api_url, ready_timeout=ready_timeout)
    judge_settings = judge_settings_from_options(judge, base_url=judge_base_url, api_key_env=judge_api_key_env,
                                                 samples=judge_samples, pairwise=judge_pairwise, cache=judge_cache,
                                                 concurrency=concurrency, timeout=timeout,
                                                 baseline_model=baseline_model)
    reliability = Reliability(retries=retries, backoff_base=backoff, rpm=rpm, max_error_rate=max_error_rate,
                              cache=cache, resume=resume)
    run_options: dict[str, Any] = dict(judge=judge_settings, baseline_model=baseline_model, reliability=reliability,
                                       gates=list(gate or []), shard=shard_spec, junit_cases=junit_cases,
                                       baseline=base_run, allow_incomplete=allow_incomplete)
    if against:
        raise typer.Exit(_against_deployed(suite, loaded, spec, out_dir=out_dir, prices=catalog,
                                           concurrency=concurrency, quiet=quiet, as_json=as_json,
                                           run_options=run_options))
    try:
        with sigterm_as_interrupt(), progress_bar(quiet)(loaded.name, len(loaded.cases)) as on_result:
            result = run_suite(loaded, spec, out=out_dir, prices=catalog, concurrency=concurrency,
                               on_result=on_result, status=status_printer(quiet), **run_options)
    except Interrupted as stop:
        print_interrupted(stop, resume_command(ctx, stop.run_dir))
        raise typer.Exit(stop.exit_code) from None
    except StoppedEarly as stop:  # budget, dead router, refused key: the exact command that finishes it
        if stop.where and stop.fix:
            stop.fix = stop.fix.replace(RESUME_PLACEHOLDER,
                                        f"`{resume_command(ctx, stop.where, stop.resume_overrides)}`")
        raise
    if as_json:
        print_json(result.summary)
        print_judge_skipped(result.summary.judge)
        print_review_warning(result.summary)
        print_route_header_warning(result.summary, result.results)
        print_unstreamed_note(result.manifest, result.results)
    else:
        print_summary(result)
    raise typer.Exit(print_run_verdict(result, as_json=as_json))


def _against_deployed(suite: Path, candidate_suite: Any, spec: Any, *, out_dir: Path, prices: Any, concurrency: int,
                      quiet: bool, as_json: bool, run_options: dict[str, Any]) -> int:
    """``--candidate X --against deployed``: both runs and their comparison, printed; the exit code
    (1 when a gate of either run fails or the candidate routes significantly worse)."""
    from evalkit.run import run_against_deployed

    done = run_against_deployed(suite, candidate_suite, spec, out=out_dir, prices=prices, concurrency=concurrency,
                                run_options=run_options, status=status_printer(quiet),
                                notice=lambda note: err.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False),
                                progress=progress_bar(quiet))
    if as_json:
        print_json({"candidate": done.candidate.summary.to_json(), "deployed": done.deployed.summary.to_json(),
                    "config_diff": done.config_diff, "comparison": done.comparison.to_json(),
                    "compare_dir": str(done.folder)})
    else:
        out.print("deployed router:", style="bold")
        print_summary(done.deployed)
        out.print("candidate (temporary router):", style="bold")
        print_summary(done.candidate)
    failed = [print_run_verdict(r, as_json=as_json) for r in (done.deployed, done.candidate)]
    if not as_json:
        print_compare(done.comparison, done.paths, labels=("deployed", "candidate"))  # the config diff first
    append_step_summary(done.paths["markdown"])
    return 1 if any(failed) or done.comparison.failed else 0


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a run is in flight, SIGTERM stops it as Ctrl-C does (``Terminated``, exit 143), so that
    what is complete gets written; the previous handler comes back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def resume_command(ctx: typer.Context, run_dir: str, overrides: dict[str, str] | None = None) -> str:
    """The command that finishes an interrupted run: ``evalkit run`` with every option the user gave
    on the command line (long names), ``--resume RUN_DIR`` last; shell-quoted. ``overrides`` (option
    name -> value) replace or add options, e.g. a larger ``max_error_rate``."""
    from evalkit.finish import command_line

    args = ["evalkit", "run"]
    overrides = dict(overrides or {})
    for param in ctx.command.params:
        if param.name in overrides:
            args += [max(param.opts, key=len), overrides.pop(param.name)]
            continue
        source = ctx.get_parameter_source(param.name or "")
        if param.name == "resume" or source is None or source.name != "COMMANDLINE":
            continue
        value = ctx.params[param.name or ""]
        if param.param_type_name == "argument":
            args.append(str(value))
            continue
        long_name = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            secondary = getattr(param, "secondary_opts", [])
            if value:
                args.append(long_name)
            elif secondary:
                args.append(max(secondary, key=len))
            continue
        for item in (value if param.multiple else [value]):
            args += [long_name, str(item)]
    return command_line([*args, "--resume", run_dir])  # URLs shown without credentials


def register(app: typer.Typer) -> None:
    app.command()(run)
