"""`evalkit suite from-traffic|review`: build a suite from a request log, review its labels in a browser."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from evalkit.commands.console import err, out
from evalkit.commands.options import ranged

suite_app = typer.Typer(
    name="suite",
    help="Build a suite from a router's request log and review its labels in the browser.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@suite_app.command("from-traffic")
def from_traffic(
    log: Path = typer.Argument(..., help="Request log: JSON Lines, CSV or Parquet, one request per row."),
    router: Path = typer.Option(..., "--router", help="The router config (router.json) that served this traffic."),
    out_dir: Path = typer.Option(..., "--out", help="The new suite folder (must not exist, or be empty)."),
    route_field: str = typer.Option("route", "--route-field", help="Field holding the route the router returned (dotted path into nested JSON, e.g. response.headers.x-model-router-selected-route)."),
    messages_field: Optional[str] = typer.Option(None, "--messages-field", help="Field holding the OpenAI messages list (default: messages)."),
    prompt_field: Optional[str] = typer.Option(None, "--prompt-field", help="Field holding a plain-text prompt (default: prompt, when there are no messages)."),
    session_field: Optional[str] = typer.Option(None, "--session-field", help="Field naming the conversation of a row (e.g. an X-Model-Affinity value); without it, rows that carry an earlier row's messages as history continue its conversation."),
    sample: int = typer.Option(300, "--sample", callback=ranged("--sample"), help="Cases in the suite (multi-turn conversations count each turn)."),
    floor: int = typer.Option(10, "--floor", callback=ranged("--floor"), help="At least this many cases per observed route (all of them when a route has fewer)."),
    seed: int = typer.Option(0, "--seed", callback=ranged("--seed"), help="Seed of the sampling: the same log, options and seed give the same suite."),
    near_duplicate: float = typer.Option(0.95, "--near-duplicate", callback=ranged("--near-duplicate"), help="Prompts whose embeddings are at least this similar (cosine) count as duplicates."),
    phone_region: str = typer.Option("US", "--phone-region", help="Numbering plan for phone numbers written without a country code (ISO 3166 code)."),
    skip_unknown_routes: bool = typer.Option(False, "--skip-unknown-routes", help="Leave out requests whose route is not a task of --router (default: an error)."),
    name: Optional[str] = typer.Option(None, "--name", help="Suite name (default: the --out folder's name)."),
    labeler: Optional[str] = typer.Option(None, "--labeler", help="A model (OpenAI-compatible) that proposes a second label per case; disagreements are tagged labeler-disagrees."),
    labeler_base_url: Optional[str] = typer.Option(None, "--labeler-base-url", help="Labeler's OpenAI-compatible base URL (default: DigitalOcean serverless inference, like the judge)."),
    labeler_api_key_env: str = typer.Option("MODEL_ACCESS_KEY", "--labeler-api-key-env", help="Environment variable holding the labeler's key."),
    labeler_concurrency: int = typer.Option(8, "--labeler-concurrency", callback=ranged("--labeler-concurrency"), help="Labeler requests in flight at once."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No status lines."),
    as_json: bool = typer.Option(False, "--json", help="Print what was done as one JSON document."),
) -> None:
    """Turn a request log into a suite: sample by route, remove duplicates, scrub personal data,
    pre-label each case with the route the router returned (unreviewed until `evalkit suite review`)."""
    from evalkit.targets import DO_INFERENCE_URL
    from evalkit.traffic import LabelerSettings, LogFields, TrafficOptions, build_suite

    settings = None
    key = None
    if labeler:
        base = labeler_base_url or os.environ.get("EVALKIT_DO_INFERENCE_URL", DO_INFERENCE_URL)
        settings = LabelerSettings(model=labeler, base_url=base, api_key_env=labeler_api_key_env,
                                   concurrency=max(1, labeler_concurrency))
        key = os.environ.get(labeler_api_key_env) or None
        from evalkit.redact import register, register_url

        register(key)
        register_url(base)
    options = TrafficOptions(
        fields=LogFields(route=route_field, prompt=prompt_field, messages=messages_field, session=session_field),
        sample=sample, floor=floor, seed=seed, near_duplicate=near_duplicate, phone_region=phone_region,
        skip_unknown_routes=skip_unknown_routes, name=name, labeler=settings)

    def status(message: str) -> None:
        if not quiet:
            err.print(f"[dim]{message}[/dim]", highlight=False)

    report = build_suite(log, router, out_dir, options, labeler_key=key, status=status)
    if report.malformed_lines:  # a rotated or truncated log's cut-off line: left out, said so
        from evalkit.traffic.build import malformed_lines

        n = report.skipped["malformed"]
        err.print(f"[yellow]warning:[/yellow] {escape(str(log))}: left out {n} malformed line{'s' if n > 1 else ''} "
                  f"({malformed_lines(report)}): not a JSON object (the cut-off line of a rotated or truncated "
                  "log?)", highlight=False)
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
        return
    _print_traffic_report(report)


def _print_traffic_report(report: Any) -> None:
    s = report.sample
    out.print(f"wrote {report.out}: {report.n_cases} cases from {report.n_requests} requests "
              f"({report.n_rows} rows)", markup=False, highlight=False)
    out.print(f"  removed {s.n_exact_duplicates} exact and {s.n_near_duplicates} near-duplicates; "
              f"floor {s.floor} cases per route", markup=False, highlight=False)
    routes = ", ".join(f"{r} {report.case_routes.get(r, 0)}/{n}" for r, n in report.observed_routes.items())
    out.print(f"  cases per route (in suite/in log): {routes}", markup=False, highlight=False)
    scrubbed = ", ".join(f"{k} {n}" for k, n in report.scrubbed_log.items()) or "nothing"
    out.print(f"  scrubbed: {scrubbed}", markup=False, highlight=False)
    if report.skipped:
        from evalkit.traffic.build import malformed_lines

        skipped = ", ".join(f"{k} {n}" + (f" ({malformed_lines(report)})" if k == "malformed" else "")
                            for k, n in report.skipped.items())
        out.print(f"  rows left out: {skipped}", markup=False, highlight=False)
    if report.labeler:
        lab = report.labeler
        out.print(f"  labeler {lab['model']}: {lab['n_proposed']} proposals, {lab['n_disagreements']} disagreements "
                  f"with the router, {lab['n_errors']} failed calls, {lab['n_unparseable']} unparseable",
                  markup=False, highlight=False)
    out.print(f"next: evalkit suite review {report.out}   (labels are the router's own until reviewed)",
              markup=False, highlight=False)


@suite_app.command("review")
def review(
    suite: Path = typer.Argument(..., help="A suite folder (holding suite.yaml) whose cases are JSON Lines."),
    port: int = typer.Option(0, "--port", callback=ranged("--port", "--port (0: a free one)"), help="Port on 127.0.0.1 (default: a free one)."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
    threshold: Optional[float] = typer.Option(None, "--threshold", callback=ranged("--threshold"), help="The local classifier's fallback threshold (default 0.10)."),
) -> None:
    """Review a suite's labels in the browser: a local page (127.0.0.1 only) listing the cases,
    the most informative first, with the router's pre-label, the labeler's and the local
    classifier's top two tasks. Saving writes cases.jsonl atomically."""
    from evalkit.errors import UsageError
    from evalkit.review import ReviewServer, open_review

    if not 0 <= port < 65536:
        raise UsageError("the port must be between 0 (a free one) and 65535", where="--port", got=str(port),
                         fix="e.g. --port 8765, or leave it out")
    session = open_review(suite, threshold=threshold,
                          status=lambda message: err.print(f"[dim]{escape(message)}[/dim]", highlight=False))
    server = ReviewServer(session, port=port or None)
    server.start()
    url = server.url
    err.print(f"reviewing {session.n_cases} cases of {session.suite_name}: {url}", markup=False, highlight=False)
    err.print("press Ctrl-C to stop (unsaved edits are kept in a journal and come back next time)",
              markup=False, highlight=False)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def register(app: typer.Typer) -> None:
    app.add_typer(suite_app, name="suite")
