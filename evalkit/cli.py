"""The ``evalkit`` command line: argument parsing, progress, exit codes. No logic of its own.

Exit codes: 0 success; 1 a gate failed; 2 bad usage or bad input; 3 the run could not complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape as escape_markup
from rich.table import Table

from evalkit import __version__
from evalkit.errors import EvalkitError, UsageError

app = typer.Typer(
    name="evalkit",
    help="Measure the routing quality of semantic LLM routers: confusion matrix, overlapping task "
         "descriptions, judge scores, cost and latency per path.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _bind_consoles() -> None:
    """Re-read ``out`` and ``err``'s settings for this invocation of ``main``.

    A rich Console writes to whatever ``sys.stdout`` / ``sys.stderr`` is when it prints, but reads
    NO_COLOR, COLUMNS, TERM and whether its stream is a terminal once, when it is built. The console
    script calls ``main`` once, right after import, where this changes nothing; a program that calls
    ``main`` several times in one process with other streams or environment (the test suite) gets
    consoles that match each call. The objects stay the same: the command modules import them.
    """
    out.__init__(soft_wrap=True)  # type: ignore[misc]
    err.__init__(stderr=True, soft_wrap=True)  # type: ignore[misc]


def parse_upstreams(values: list[str] | None) -> dict[str, str]:
    """``SLUG=URL`` or ``SLUG=URL@ENVVAR`` pairs (``*`` as SLUG: every model without its own upstream)."""
    from evalkit.emulator.upstream import parse_upstream

    result: dict[str, str] = {}
    for value in values or []:
        slug, sep, url = value.partition("=")
        if not sep or not slug.strip() or not url.strip():
            raise UsageError("an upstream must be SLUG=URL or SLUG=URL@ENVVAR", where="--upstream", got=value,
                             fix="e.g. --upstream openai-gpt-oss-20b=http://127.0.0.1:8001/v1")
        parse_upstream(slug.strip(), url.strip())  # validates; the key variable is read later
        result[slug.strip()] = url.strip()
    return result


def judge_settings_from_options(model: str | None, *, base_url: str | None, api_key_env: str, samples: int,
                                pairwise: bool, cache: bool, concurrency: int, timeout: float,
                                baseline_model: str | None = None) -> Any:
    """The judge settings of ``--judge*`` options (None when no judge was asked for)."""
    import os

    from evalkit.judge import JudgeSettings
    from evalkit.targets import DO_INFERENCE_URL

    if model is None:
        if pairwise:
            raise UsageError("--judge-pairwise needs a judge", where="--judge-pairwise",
                             fix="add --judge MODEL (and --baseline-model SLUG to compare against)")
        return None
    if pairwise and not baseline_model:
        raise UsageError("--judge-pairwise compares the router with a baseline model", where="--judge-pairwise",
                         fix="add --baseline-model SLUG")
    settings = JudgeSettings(model=model, base_url=base_url or os.environ.get("EVALKIT_DO_INFERENCE_URL", DO_INFERENCE_URL),
                             api_key_env=api_key_env, samples=samples, pairwise=pairwise, cache=cache,
                             concurrency=max(1, concurrency), timeout=timeout)
    settings.validate()
    return settings


def append_step_summary(markdown: Path) -> None:
    """Append a markdown report to ``$GITHUB_STEP_SUMMARY`` when that variable is set (GitHub Actions)."""
    import os

    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target or not markdown.is_file():
        return
    with open(target, "a", encoding="utf-8") as fh:
        fh.write("\n" + markdown.read_text(encoding="utf-8").strip("\n") + "\n")


def fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def print_summary(summary: dict[str, Any], run_dir: Path) -> None:
    """The short terminal table after a run."""
    ci = summary["accuracy_ci95"]
    head = Table(title=f"{summary['suite']} · {summary['target']['kind']} · run {summary['run_id']}",
                 show_header=False, title_justify="left")
    head.add_column(style="bold")
    head.add_column()
    head.add_row("accuracy", f"{fmt_pct(summary['accuracy'])}  (95% CI {fmt_pct(ci[0])}-{fmt_pct(ci[1])}, "
                             f"n={summary['n_scored']})")
    head.add_row("macro-F1 / kappa", f"{summary['macro_f1'] if summary['macro_f1'] is None else round(summary['macro_f1'], 3)}"
                                     f" / {summary['cohen_kappa'] if summary['cohen_kappa'] is None else round(summary['cohen_kappa'], 3)}")
    head.add_row("fallback rate", f"{fmt_pct(summary['fallback_rate'])}  (false fallback "
                                  f"{fmt_pct(summary['false_fallback_rate'])}, false match {fmt_pct(summary['false_match_rate'])})")
    n_classifier = (summary.get("run") or {}).get("n_classifier_errors") or 0
    head.add_row("errors", f"{summary['n_errors']} ({fmt_pct(summary['error_rate'])}"
                           + (f", {n_classifier} from the local router's classifier" if n_classifier else "")
                           + f"), missing route {summary.get('n_missing_route', 0)}")
    out.print(head)
    table = Table(title="per task", title_justify="left")
    for col in ("task", "precision", "recall", "f1", "support"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for task, v in summary["per_task"].items():
        table.add_row(task, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"]))
    out.print(table)
    if summary.get("judge"):
        from evalkit.commands.judge import print_judge

        print_judge(summary["judge"])
    out.print(f"report: {run_dir / 'report.html'}")
    print_review_warning(summary)


def print_review_warning(summary: dict[str, Any]) -> None:
    """On stderr, so it shows with --json too: a suite whose labels nobody reviewed grades the router against itself."""
    warning = (summary.get("review") or {}).get("warning")
    if warning:
        err.print(f"[bold yellow]warning:[/bold yellow] {escape_markup(warning)}", highlight=False)


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        out.print(f"evalkit {__version__}")
        raise typer.Exit(0)


@app.command()
def run(
    suite: Path = typer.Argument(..., help="Suite folder (holding suite.yaml) or a suite.yaml file."),
    target: str = typer.Option("local", "--target", help="local (embedded router), do (DigitalOcean) or openai (any OpenAI-compatible router)."),
    router: Optional[Path] = typer.Option(None, "--router", help="Use this router config instead of the one the suite names."),
    out_dir: Path = typer.Option(Path("reports"), "--out", help="Parent folder of the new run directory."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Base URL of the router (openai target; overrides do)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model to request (default router:<name>)."),
    router_name: Optional[str] = typer.Option(None, "--router-name", help="Router name for router:<name> (default: name in router.json)."),
    route_header: Optional[str] = typer.Option(None, "--route-header", help="Response header holding the route, or a preset: do, vllm-sr, litellm."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Environment variable holding the API key (do: MODEL_ACCESS_KEY)."),
    concurrency: int = typer.Option(16, "--concurrency", "-c", help="Requests in flight at once."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Local router: fallback similarity threshold."),
    upstream: Optional[list[str]] = typer.Option(None, "--upstream", help="Local router: forward a model to an OpenAI-compatible server, SLUG=URL or SLUG=URL@ENVVAR (key in $ENVVAR); repeatable; SLUG '*' for every model."),
    classifier: str = typer.Option("embedding", "--classifier", help="Local router: route classifier, embedding | tfidf | llm | arch-router (katanemo/Arch-Router-1.5B with its model card's prompt, served by Ollama, llama.cpp or vLLM)."),
    classifier_model: Optional[str] = typer.Option(None, "--classifier-model", help="Local router, llm / arch-router classifier: the routing model's name (arch-router default: katanemo/Arch-Router-1.5B)."),
    classifier_base_url: Optional[str] = typer.Option(None, "--classifier-base-url", help="Local router, llm / arch-router classifier: OpenAI-compatible base URL of the routing model (default: its --upstream)."),
    classifier_api_key_env: Optional[str] = typer.Option(None, "--classifier-api-key-env", help="Local router, llm / arch-router classifier: environment variable holding the routing model's key."),
    prices: Optional[Path] = typer.Option(None, "--prices", help="Price catalog YAML replacing the packaged one."),
    timeout: float = typer.Option(120.0, "--timeout", help="Per-request timeout in seconds (each attempt)."),
    retries: int = typer.Option(3, "--retries", help="Retries of a retryable failure (429, 5xx, timeout, dropped connection, malformed body), with exponential backoff and jitter."),
    backoff: float = typer.Option(0.5, "--backoff", help="First retry waits 0.5-1x this many seconds, doubling each retry (a 429's Retry-After wins when longer)."),
    rpm: Optional[float] = typer.Option(None, "--rpm", help="Requests started per minute, retries included (default: 900 for --target do, else unlimited; 0: unlimited)."),
    max_error_rate: Optional[float] = typer.Option(None, "--max-error-rate", help="Error budget: stop the run (exit 3, reports written) once more than this share of the cases failed, e.g. 0.05."),
    cache: bool = typer.Option(False, "--cache/--no-cache", help="Reuse stored responses for identical requests (off by default: a cache hides router changes). Stored in $EVALKIT_CACHE_DIR/responses (default ~/.cache/evalkit/responses)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Finish an interrupted run: send only the cases of RUN_DIR without a result, appending to it."),
    stream: bool = typer.Option(False, "--stream", help="Request streamed responses and measure time to first token (TTFT)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print summary.json on stdout instead of the table."),
    judge: Optional[str] = typer.Option(None, "--judge", help="Judge every answer's correctness and completeness (1-5) with this model."),
    judge_base_url: Optional[str] = typer.Option(None, "--judge-base-url", help="Judge's OpenAI-compatible base URL (default: DigitalOcean serverless inference)."),
    judge_api_key_env: str = typer.Option("MODEL_ACCESS_KEY", "--judge-api-key-env", help="Environment variable holding the judge's key; judging is skipped when it is not set."),
    judge_samples: int = typer.Option(1, "--judge-samples", help="Judge each answer K times and take the median (reports agreement)."),
    judge_pairwise: bool = typer.Option(False, "--judge-pairwise", help="With --baseline-model: also ask the judge which answer is better, in both orders."),
    judge_cache: bool = typer.Option(True, "--judge-cache/--no-judge-cache", help="Reuse cached verdicts ($EVALKIT_CACHE_DIR/judge)."),
    baseline_model: Optional[str] = typer.Option(None, "--baseline-model", help="Also send every case to this fixed model (same endpoint) to compare quality and cost per path."),
    gate: Optional[list[str]] = typer.Option(None, "--gate", help="Gate METRIC OP VALUE, added to suite.yaml's gates (repeatable); a failed gate exits 1."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A stored run to compare with (relative gates; compare.html in the run directory); a significant regression exits 1."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Run share I of N of the cases (e.g. 2/4, by case id hash); join shard runs with `evalkit merge`."),
    junit_cases: str = typer.Option("regressed", "--junit-cases", help="junit.xml test cases besides the gates: regressed (with --baseline, the cases the change broke fail and the fixed ones pass; misroutes are listed, not failed) or all (every misrouted case fails)."),
    candidate: Optional[Path] = typer.Option(None, "--candidate", help="do: create this router config as a temporary router <name>-evalkit-<id>, run the suite through it, delete it afterwards (token in DIGITALOCEAN_TOKEN)."),
    against: Optional[str] = typer.Option(None, "--against", help="With --candidate: 'deployed' also runs the suite on the deployed router (named in the suite's router.json) and writes the comparison report."),
    api_url: Optional[str] = typer.Option(None, "--api-url", help="do: control-plane root URL (default $EVALKIT_DO_API_URL or https://api.digitalocean.com)."),
    ready_timeout: float = typer.Option(120.0, "--ready-timeout", help="do + --candidate: seconds to wait for the temporary router to answer."),
) -> None:
    """Run a suite against a router, write the run directory and print the summary.

    Exits 1 when a gate fails or, with --baseline, when routing got significantly worse.
    Before deploying a description change, `--target do --candidate router.candidate.json
    --against deployed` tries it on DigitalOcean's own classifier as a temporary router and
    compares it with the live router, case by case (exit 1 on a significant regression).
    """
    from evalkit.cost import load_prices
    from evalkit.pipeline import Reliability, TargetSpec, check_candidate_options
    from evalkit.suites import load_suite

    check_candidate_options(target=target, candidate=candidate, against=against, router=router, model=model,
                            ready_timeout=ready_timeout)
    if against and (baseline is not None or shard is not None):
        raise UsageError("--against deployed cannot be combined with --baseline or --shard",
                         where="--baseline" if baseline is not None else "--shard",
                         fix="--against deployed runs the whole suite on both routers and compares them itself")
    loaded = load_suite(suite, router_path=candidate or router)
    catalog = load_prices(prices)
    # Gating, baseline and sharding are read before any traffic so bad input fails fast.
    from evalkit.commands.compare import load_side
    from evalkit.commands.gate import finish_run
    from evalkit.pipeline import gate_expressions
    from evalkit.shard import parse_shard

    from evalkit.report.junit import check_junit_cases

    gating = {"gates": list(gate or []), "shard": parse_shard(shard) if shard else None,
              "junit_cases": check_junit_cases(junit_cases)}
    gate_expressions(loaded, gating["gates"], baseline_given=baseline is not None or shard is not None)
    base_side = load_side(baseline) if baseline is not None else None
    if base_side is not None:
        if gating["shard"]:
            raise UsageError("--baseline and --shard do not go together: a shard is only part of the suite",
                             where="--baseline", fix="merge the shards first, then: evalkit compare BASELINE MERGED")
        gating.update(baseline=base_side.summary, baseline_path=str(baseline))
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
    run_options = dict(judge=judge_settings, baseline_model=baseline_model, reliability=reliability, **gating)
    if against:
        raise typer.Exit(_run_against_deployed(suite, loaded, spec, out_dir=out_dir, prices=catalog,
                                               concurrency=concurrency, quiet=quiet, as_json=as_json,
                                               run_options=run_options))
    outcome = _run_with_progress(loaded, spec, out_dir=out_dir, prices=catalog, concurrency=concurrency, quiet=quiet,
                                 run_options=run_options)
    if as_json:
        out.print_json(json.dumps(outcome.summary, default=str))
        print_review_warning(outcome.summary)
    else:
        print_summary(outcome.summary, outcome.run_dir)
    raise typer.Exit(finish_run(outcome, baseline=base_side, as_json=as_json))


def _run_with_progress(loaded: Any, spec: Any, *, out_dir: Path, prices: Any, concurrency: int, quiet: bool,
                       run_options: dict[str, Any], label: str | None = None) -> Any:
    """``run_suite`` with a progress bar on stderr (when it is a terminal) and status lines."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from evalkit.pipeline import run_suite

    show = not quiet and err.is_terminal
    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("{task.fields[misrouted]} misrouted, {task.fields[errors]} errors"),
                        TimeElapsedColumn(), console=err, disable=not show, transient=False)
    counters = {"misrouted": 0, "errors": 0}
    with progress:
        task_id = progress.add_task(label or loaded.name, total=len(loaded.cases), misrouted=0, errors=0)

        def on_result(result: Any) -> None:
            if result.status == "error":
                counters["errors"] += 1
            elif result.route != result.expected_route:
                counters["misrouted"] += 1
            progress.update(task_id, advance=1, **counters)

        def status(message: str) -> None:
            if not quiet:
                err.print(f"[dim]{message}[/dim]")

        return run_suite(loaded, spec, out=out_dir, prices=prices, concurrency=concurrency,
                         on_result=on_result, status=status, **run_options)


def _run_against_deployed(suite: Path, candidate_suite: Any, spec: Any, *, out_dir: Path, prices: Any,
                          concurrency: int, quiet: bool, as_json: bool, run_options: dict[str, Any]) -> int:
    """``--candidate X --against deployed``: the candidate's run, the deployed router's run, the
    comparison; returns the exit code (1 when a gate of either run fails or the candidate routes
    significantly worse than the deployed router)."""
    import dataclasses

    from evalkit.commands.gate import finish_run
    from evalkit.pipeline import compare_with_deployed, deployed_router
    from evalkit.suites import load_suite

    deployed_suite = load_suite(suite)
    deployed_name = spec.router_name or deployed_suite.router.name
    live = deployed_router(spec, deployed_name, like=deployed_suite.router)  # fails before anything is created
    if live.hash != deployed_suite.router.hash:
        err.print(f"[yellow]note:[/yellow] the deployed router {deployed_name} differs from {deployed_suite.router.source}; "
                  "the comparison uses the deployed one", highlight=False)
    cand = _run_with_progress(candidate_suite, spec, out_dir=out_dir, prices=prices, concurrency=concurrency,
                              quiet=quiet, run_options=run_options, label=f"{candidate_suite.name} · candidate")
    if not quiet:
        err.print(f"[dim]now the deployed router {deployed_name}, on the same suite[/dim]")
    deployed_spec = dataclasses.replace(spec, candidate=None, router_name=deployed_name)
    dep = _run_with_progress(deployed_suite, deployed_spec, out_dir=out_dir, prices=prices, concurrency=concurrency,
                             quiet=quiet, run_options=run_options, label=f"{deployed_suite.name} · deployed")
    comparison = compare_with_deployed(dep, cand, deployed_config=live, candidate_config=candidate_suite.router,
                                       out=out_dir)
    if as_json:
        out.print_json(json.dumps({"candidate": cand.summary, "deployed": dep.summary,
                                   "config_diff": comparison.config_diff, "comparison": comparison.diff,
                                   "compare_dir": str(comparison.folder)}, default=str))
    else:
        from evalkit.commands.router import format_config_diff

        out.print("deployed router:", style="bold")
        print_summary(dep.summary, dep.run_dir)
        out.print("candidate (temporary router):", style="bold")
        print_summary(cand.summary, cand.run_dir)
    failed = [finish_run(o, baseline=None, as_json=as_json) for o in (dep, cand)]
    if not as_json:
        out.print(format_config_diff(comparison.config_diff, a_label="deployed", b_label="candidate"),
                  markup=False, highlight=False)
        from evalkit.commands.compare import print_compare

        print_compare(comparison.diff, comparison.paths)
    append_step_summary(comparison.paths["markdown"])
    return 1 if any(failed) or comparison.diff["verdict"]["failed"] else 0


@app.command()
def report(run_dir: Path = typer.Argument(..., help="A run directory written by `evalkit run`.")) -> None:
    """Re-render a run's summary.json, report.html and summary.md from its stored files."""
    from evalkit.pipeline import rerender

    outcome = rerender(run_dir)
    print_summary(outcome.summary, outcome.run_dir)


@app.command()
def serve(
    routers: Optional[list[Path]] = typer.Argument(None, help="Router config files (router.json) to serve; with none it starts empty and routers are created through the control plane."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (default loopback only)."),
    port: int = typer.Option(8080, "--port", help="Port to listen on (inference plane /v1 and control plane /v2 share it)."),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="Folder where routers created through the control plane persist across restarts (default: memory only)."),
    upstream: Optional[list[str]] = typer.Option(None, "--upstream", help="Forward a model to an OpenAI-compatible server: SLUG=URL or SLUG=URL@ENVVAR (key read from $ENVVAR); repeatable; SLUG '*' for every model. Models without one answer route-only."),
    classifier: str = typer.Option("embedding", "--classifier", help="Route classifier: embedding (packaged MiniLM), tfidf (scikit-learn only), llm (zero-shot through a chat model) or arch-router (katanemo/Arch-Router-1.5B with its model card's prompt)."),
    classifier_model: Optional[str] = typer.Option(None, "--classifier-model", help="llm / arch-router classifier: the routing model's name (arch-router default: katanemo/Arch-Router-1.5B)."),
    classifier_base_url: Optional[str] = typer.Option(None, "--classifier-base-url", help="llm / arch-router classifier: OpenAI-compatible base URL of the routing model (default: its --upstream)."),
    classifier_api_key_env: Optional[str] = typer.Option(None, "--classifier-api-key-env", help="llm / arch-router classifier: environment variable holding the routing model's key."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Fallback similarity threshold (default: the classifier's own, 0.10 for embedding)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="EVALKIT_SERVE_API_KEY", show_envvar=True, help="Require Authorization: Bearer KEY on every request (both planes); others get 401."),
    prices: Optional[Path] = typer.Option(None, "--prices", help="Price catalog YAML for the cheapest policy."),
    affinity_ttl: float = typer.Option(600.0, "--affinity-ttl", help="Seconds a session pin (X-Model-Affinity) lives after its last use."),
    upstream_timeout: float = typer.Option(120.0, "--upstream-timeout", help="Seconds before an upstream attempt counts as timed out and the next model is tried."),
    fault_rate: float = typer.Option(0.0, "--fault-rate", help="Drills: share of chat requests (0-1) that get an injected fault."),
    fault_kinds: Optional[str] = typer.Option(None, "--fault-kinds", help="Drills: comma-separated fault kinds, of 429,500,timeout,drop-header,malformed-json (default: all)."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Drills: milliseconds added to every chat request."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Drills: seed of the fault draws (same seed, same faults in the same places)."),
    fault_timeout: float = typer.Option(30.0, "--fault-timeout", help="Drills: seconds a 'timeout' fault holds the request before answering 504."),
) -> None:
    """Start the embedded local router over HTTP: DigitalOcean's inference and control planes on one port."""
    import uvicorn

    from evalkit.cost import load_prices
    from evalkit.emulator import create_app
    from evalkit.emulator.classifier import classifier_from_options, load_encoder
    from evalkit.emulator.faults import FaultConfig, parse_fault_kinds
    from evalkit.emulator.server import exposure_warning
    from evalkit.emulator.upstream import check_keys, parse_upstreams as parse_upstream_specs
    from evalkit.router_config import load_router_config

    if not 0 < port < 65536:
        raise UsageError("the port must be between 1 and 65535", where="--port", got=str(port), fix="e.g. --port 8080")
    if affinity_ttl <= 0:
        raise UsageError("the affinity TTL must be positive", where="--affinity-ttl", got=str(affinity_ttl),
                         fix="e.g. --affinity-ttl 600")
    if upstream_timeout <= 0:
        raise UsageError("the upstream timeout must be positive", where="--upstream-timeout",
                         got=str(upstream_timeout), fix="e.g. --upstream-timeout 120")
    kinds = parse_fault_kinds(fault_kinds)
    FaultConfig(rate=fault_rate, kinds=kinds, latency_ms=latency_ms, seed=seed, timeout_s=fault_timeout).validate()
    configs = [load_router_config(p) for p in routers or []]
    catalog = load_prices(prices)
    specs = parse_upstreams(upstream)
    check_keys(parse_upstream_specs(specs))
    route_classifier = classifier_from_options(classifier, threshold=threshold, model=classifier_model,
                                               base_url=classifier_base_url, api_key_env=classifier_api_key_env,
                                               upstreams=specs, timeout_s=upstream_timeout)
    if classifier == "embedding":
        err.print("[dim]loading the embedding model[/dim]")
        load_encoder()
    app_ = create_app(configs, classifier=route_classifier, prices=catalog, upstreams=specs, state_dir=state_dir,
                      api_key=api_key, fault_rate=fault_rate, fault_kinds=list(kinds), latency_ms=latency_ms, seed=seed,
                      fault_timeout_s=fault_timeout, affinity_ttl_s=affinity_ttl, upstream_timeout_s=upstream_timeout)
    warning = exposure_warning(host, api_key)
    if warning:
        err.print(f"[bold yellow]warning:[/bold yellow] {warning}")
    root = f"http://{host}:{port}"
    state = app_.state.router_state
    for c in state.store.configs():
        err.print(f"router:{c.name} ({', '.join(c.task_names)})")
    for slug, up in state.upstreams.items():
        err.print(f"upstream {slug} -> {up.describe()}")
    describe = getattr(route_classifier, "describe", None)
    detail = describe() if describe else f"threshold {route_classifier.threshold:g}"
    err.print(f"inference plane: {root}/v1 (classifier {classifier}, {detail})", markup=False, highlight=False)
    err.print(f"control plane:   {root}/v2/gen-ai/models/routers"
              + (f" (state in {state_dir})" if state_dir else " (memory only: add --state-dir to persist)"))
    if fault_rate > 0 or latency_ms > 0:
        err.print(f"fault injection: rate {fault_rate:g}, kinds {','.join(kinds)}, latency {latency_ms:g} ms, seed {seed}")
    uvicorn.run(app_, host=host, port=port, log_level="warning", lifespan="on", access_log=False)


def _register_commands() -> None:
    """Import the command modules so they register on ``app``."""
    from evalkit.commands import compare, cost, gate, judge, lint, merge, overlap, router, suite  # noqa: F401


def _click_exceptions() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """Click's usage errors and aborts, from click itself and from the copy newer typer versions vendor."""
    import click

    errors: list[type[BaseException]] = [click.exceptions.ClickException]
    aborts: list[type[BaseException]] = [click.exceptions.Abort]
    try:  # newer typer versions ship their own copy of click
        from typer import exceptions as typer_exceptions
        from typer._click import exceptions as vendored

        errors.append(vendored.ClickException)
        aborts.append(typer_exceptions.Abort)
    except (ImportError, AttributeError):
        pass
    return tuple(errors), tuple(aborts)


def main(argv: list[str] | None = None, *, prog_name: str | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``) and return its exit code.

    Expected failures print their message (no traceback) and give their exit code. The console
    script and ``python -m evalkit`` exit with the returned code; tests call ``main`` in-process.
    """
    _register_commands()
    _bind_consoles()
    click_errors, aborts = _click_exceptions()
    try:
        rc = app(args=argv, prog_name=prog_name, standalone_mode=False)
    except EvalkitError as exc:
        from rich.markup import escape

        err.print(f"[bold red]error:[/bold red] {escape(exc.message)}", markup=True, highlight=False)
        return exc.exit_code
    except click_errors as exc:
        exc.show()  # type: ignore[attr-defined]
        code = getattr(exc, "exit_code", 2)
        return 2 if code not in (0, 1) else code or 2
    except (*aborts, KeyboardInterrupt):
        err.print("interrupted")
        return 130
    return rc if isinstance(rc, int) else 0
