"""The ``evalkit`` command line: argument parsing, progress, exit codes. No logic of its own.

Exit codes: 0 success; 1 a gate failed; 2 bad usage or bad input; 3 the run could not complete.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from evalkit import __version__
from evalkit.errors import EvalkitError, RunError, UsageError

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


def parse_upstreams(values: list[str] | None) -> dict[str, str]:
    """``SLUG=URL`` pairs."""
    result: dict[str, str] = {}
    for value in values or []:
        slug, sep, url = value.partition("=")
        if not sep or not slug or not url:
            raise UsageError("an upstream must be SLUG=URL", where="--upstream", got=value,
                             fix="e.g. --upstream openai-gpt-oss-20b=http://127.0.0.1:8001/v1")
        result[slug.strip()] = url.strip()
    return result


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
    head.add_row("errors", f"{summary['n_errors']} ({fmt_pct(summary['error_rate'])}), missing route "
                           f"{summary.get('n_missing_route', 0)}")
    out.print(head)
    table = Table(title="per task", title_justify="left")
    for col in ("task", "precision", "recall", "f1", "support"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for task, v in summary["per_task"].items():
        table.add_row(task, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"]))
    out.print(table)
    out.print(f"report: {run_dir / 'report.html'}")


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
    upstream: Optional[list[str]] = typer.Option(None, "--upstream", help="Local router: forward a model to an OpenAI-compatible server, SLUG=URL (repeatable)."),
    prices: Optional[Path] = typer.Option(None, "--prices", help="Price catalog YAML replacing the packaged one."),
    timeout: float = typer.Option(120.0, "--timeout", help="Per-request timeout in seconds."),
    stream: bool = typer.Option(False, "--stream", help="Request streamed responses and measure time to first token (TTFT)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print summary.json on stdout instead of the table."),
    candidate: Optional[Path] = typer.Option(None, "--candidate", help="do: create this router config as a temporary router <name>-evalkit-<id>, run the suite through it, delete it afterwards (token in DIGITALOCEAN_TOKEN)."),
    against: Optional[str] = typer.Option(None, "--against", help="With --candidate: 'deployed' also runs the suite on the deployed router (named in the suite's router.json) and writes the comparison report."),
    api_url: Optional[str] = typer.Option(None, "--api-url", help="do: control-plane root URL (default $EVALKIT_DO_API_URL or https://api.digitalocean.com)."),
    ready_timeout: float = typer.Option(120.0, "--ready-timeout", help="do + --candidate: seconds to wait for the temporary router to answer."),
) -> None:
    """Run a suite against a router, write the run directory and print the summary.

    Before deploying a description change: `evalkit run SUITE --target do --candidate
    router.candidate.json --against deployed` tries it on DigitalOcean's own classifier and
    compares it with the live router, case by case.
    """
    from evalkit.cost import load_prices
    from evalkit.pipeline import TargetSpec, check_candidate_options, run_suite
    from evalkit.suites import load_suite

    check_candidate_options(target=target, candidate=candidate, against=against, router=router, model=model,
                            ready_timeout=ready_timeout)
    loaded = load_suite(suite, router_path=candidate or router)
    catalog = load_prices(prices)
    spec = TargetSpec(kind=target, base_url=base_url, model=model, router_name=router_name,
                      route_header=route_header, api_key_env=api_key_env, threshold=threshold,
                      upstreams=parse_upstreams(upstream), timeout=timeout, stream=stream,
                      candidate=loaded.router if candidate else None, api_url=api_url, ready_timeout=ready_timeout)
    if against:
        _run_against_deployed(suite, loaded, spec, out_dir=out_dir, prices=catalog, concurrency=concurrency,
                              quiet=quiet, as_json=as_json)
        return
    outcome = _run_with_progress(loaded, spec, out_dir=out_dir, prices=catalog, concurrency=concurrency, quiet=quiet)
    if as_json:
        out.print_json(json.dumps(outcome.summary, default=str))
    else:
        print_summary(outcome.summary, outcome.run_dir)


def _run_with_progress(loaded: Any, spec: Any, *, out_dir: Path, prices: Any, concurrency: int, quiet: bool,
                       label: str | None = None) -> Any:
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
                         on_result=on_result, status=status)


def _run_against_deployed(suite: Path, candidate_suite: Any, spec: Any, *, out_dir: Path, prices: Any,
                          concurrency: int, quiet: bool, as_json: bool) -> None:
    """``--candidate X --against deployed``: the candidate's run, the deployed router's run, the comparison."""
    import dataclasses

    from evalkit.pipeline import compare_with_deployed, deployed_router
    from evalkit.suites import load_suite

    deployed_suite = load_suite(suite)
    deployed_name = spec.router_name or deployed_suite.router.name
    live = deployed_router(spec, deployed_name, like=deployed_suite.router)  # fails before anything is created if it is not there
    if live.hash != deployed_suite.router.hash:
        err.print(f"[yellow]note:[/yellow] the deployed router {deployed_name} differs from {deployed_suite.router.source}; "
                  "the comparison uses the deployed one", highlight=False)
    cand = _run_with_progress(candidate_suite, spec, out_dir=out_dir, prices=prices, concurrency=concurrency,
                              quiet=quiet, label=f"{candidate_suite.name} · candidate")
    deployed_spec = dataclasses.replace(spec, candidate=None, router_name=deployed_name)
    dep = _run_with_progress(deployed_suite, deployed_spec, out_dir=out_dir, prices=prices, concurrency=concurrency,
                             quiet=quiet, label=f"{deployed_suite.name} · deployed")
    comparison = compare_with_deployed(dep, cand, deployed_config=live, candidate_config=candidate_suite.router,
                                       out=out_dir)
    if as_json:
        out.print_json(json.dumps({"candidate": cand.summary, "deployed": dep.summary,
                                   "config_diff": comparison.config_diff, "comparison": comparison.diff,
                                   "compare_dir": str(comparison.folder) if comparison.folder else None,
                                   "missing": comparison.missing}, default=str))
    else:
        from evalkit.commands.router import format_config_diff

        out.print("deployed router:", style="bold")
        print_summary(dep.summary, dep.run_dir)
        out.print("candidate (temporary router):", style="bold")
        print_summary(cand.summary, cand.run_dir)
        out.print(format_config_diff(comparison.config_diff, a_label="deployed", b_label="candidate"),
                  markup=False, highlight=False)
        if comparison.diff is not None:
            from evalkit.commands.compare import print_compare

            print_compare(comparison.diff, comparison.paths)
    if comparison.diff is None:
        raise RunError(f"both runs are written ({dep.run_dir}, {cand.run_dir}) but {comparison.missing}",
                       fix=f"compare them with `evalkit compare {dep.run_dir} {cand.run_dir}` once it is available")
    if comparison.diff["verdict"]["failed"]:
        raise typer.Exit(1)


@app.command()
def report(run_dir: Path = typer.Argument(..., help="A run directory written by `evalkit run`.")) -> None:
    """Re-render a run's summary.json, report.html and summary.md from its stored files."""
    from evalkit.pipeline import rerender

    outcome = rerender(run_dir)
    print_summary(outcome.summary, outcome.run_dir)


@app.command()
def serve(
    routers: Optional[list[Path]] = typer.Argument(None, help="Router config files (router.json) to serve."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (default loopback only)."),
    port: int = typer.Option(8080, "--port", help="Port to listen on."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Fallback similarity threshold."),
    upstream: Optional[list[str]] = typer.Option(None, "--upstream", help="Forward a model to an OpenAI-compatible server, SLUG=URL (repeatable)."),
    prices: Optional[Path] = typer.Option(None, "--prices", help="Price catalog YAML for the cheapest policy."),
) -> None:
    """Start the embedded local router over HTTP (OpenAI chat completions with DigitalOcean headers)."""
    import uvicorn

    from evalkit.cost import load_prices
    from evalkit.emulator import DEFAULT_THRESHOLD, EmbeddingClassifier, create_app
    from evalkit.emulator.classifier import load_encoder
    from evalkit.router_config import load_router_config

    configs = [load_router_config(p) for p in routers or []]
    catalog = load_prices(prices)
    err.print("[dim]loading the embedding model[/dim]")
    load_encoder()
    app_ = create_app(configs, classifier=EmbeddingClassifier(DEFAULT_THRESHOLD if threshold is None else threshold),
                      prices=catalog, upstreams=parse_upstreams(upstream))
    for c in configs:
        err.print(f"serving router:{c.name} ({', '.join(c.task_names)}) at http://{host}:{port}/v1")
    uvicorn.run(app_, host=host, port=port, log_level="warning", lifespan="off")


def _register_commands() -> None:
    """Import the command modules so they register on ``app``."""
    from evalkit.commands import compare, cost, gate, judge, lint, merge, overlap, router  # noqa: F401


def main() -> None:
    """Console entry point: expected failures print their message (no traceback) and set the exit code."""
    import click

    _register_commands()
    try:
        rc = app(standalone_mode=False)
    except EvalkitError as exc:
        err.print(f"[bold red]error:[/bold red] {exc.message}", markup=True, highlight=False)
        sys.exit(exc.exit_code)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code not in (0, 1) else exc.exit_code or 2)
    except (click.exceptions.Abort, KeyboardInterrupt):
        err.print("interrupted")
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)
