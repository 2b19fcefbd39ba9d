"""`evalkit serve`: the embedded local router over HTTP, DigitalOcean's inference and control planes on one port."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from evalkit.commands.console import err
from evalkit.commands.options import parse_upstreams, ranged
from evalkit.errors import UsageError


def serve(
    routers: Optional[list[Path]] = typer.Argument(None, help="Router config files (router.json) to serve; with none it starts empty and routers are created through the control plane."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (default loopback only)."),
    port: int = typer.Option(8080, "--port", callback=ranged("--port"), help="Port to listen on (inference plane /v1 and control plane /v2 share it)."),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="Folder where routers created through the control plane persist across restarts (default: memory only)."),
    upstream: Optional[list[str]] = typer.Option(None, "--upstream", help="Forward a model to an OpenAI-compatible server: SLUG=URL or SLUG=URL@ENVVAR (key read from $ENVVAR); repeatable; SLUG '*' for every model. Models without one answer route-only."),
    classifier: str = typer.Option("embedding", "--classifier", help="Route classifier: embedding (packaged MiniLM), tfidf (scikit-learn only), llm (zero-shot through a chat model) or arch-router (katanemo/Arch-Router-1.5B with its model card's prompt)."),
    classifier_model: Optional[str] = typer.Option(None, "--classifier-model", help="llm / arch-router classifier: the routing model's name (arch-router default: katanemo/Arch-Router-1.5B)."),
    classifier_base_url: Optional[str] = typer.Option(None, "--classifier-base-url", help="llm / arch-router classifier: OpenAI-compatible base URL of the routing model (default: its --upstream)."),
    classifier_api_key_env: Optional[str] = typer.Option(None, "--classifier-api-key-env", help="llm / arch-router classifier: environment variable holding the routing model's key."),
    threshold: Optional[float] = typer.Option(None, "--threshold", callback=ranged("--threshold"), help="Fallback similarity threshold (default: the classifier's own, 0.10 for embedding)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="EVALKIT_SERVE_API_KEY", show_envvar=True, help="Require Authorization: Bearer KEY on every request (both planes); others get 401."),
    prices: Optional[Path] = typer.Option(None, "--prices", help="Price catalog YAML for the cheapest policy."),
    affinity_ttl: float = typer.Option(600.0, "--affinity-ttl", callback=ranged("--affinity-ttl"), help="Seconds a session pin (X-Model-Affinity) lives after its last use."),
    upstream_timeout: float = typer.Option(120.0, "--upstream-timeout", callback=ranged("--upstream-timeout"), help="Seconds before an upstream attempt counts as timed out and the next model is tried."),
    max_body_mb: float = typer.Option(4.0, "--max-body-mb", callback=ranged("--max-body-mb"), help="Largest request body accepted, in MiB; larger ones get 413 without being read whole (docs/reliability.md)."),
    fault_rate: float = typer.Option(0.0, "--fault-rate", callback=ranged("--fault-rate"), help="Drills: share of chat requests (0-1) that get an injected fault."),
    fault_kinds: Optional[str] = typer.Option(None, "--fault-kinds", help="Drills: comma-separated fault kinds, of 429,500,timeout,drop-header,malformed-json (default: all)."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", callback=ranged("--latency-ms"), help="Drills: milliseconds added to every chat request."),
    seed: Optional[int] = typer.Option(None, "--seed", callback=ranged("--seed"), help="Drills: seed of the fault draws (same seed, same faults in the same places)."),
    fault_timeout: float = typer.Option(30.0, "--fault-timeout", callback=ranged("--fault-timeout"), help="Drills: seconds a 'timeout' fault holds the request before answering 504."),
) -> None:
    """Start the embedded local router over HTTP: DigitalOcean's inference and control planes on one port."""
    import uvicorn

    from evalkit.cost import load_prices
    from evalkit.emulator import create_app
    from evalkit.emulator.classifier import classifier_from_options, load_encoder
    from evalkit.emulator.faults import FaultConfig, parse_fault_kinds
    from evalkit.emulator.server import exposure_warning, listen_socket
    from evalkit.emulator.upstream import check_keys, parse_upstreams as parse_upstream_specs
    from evalkit.router_config import load_router_config

    if fault_kinds is not None and not fault_kinds.strip(" ,"):
        raise UsageError("--fault-kinds is empty", where="--fault-kinds", got=repr(fault_kinds),
                         fix="name the kinds, e.g. --fault-kinds 429,500, or leave the option out for every kind")
    kinds = parse_fault_kinds(fault_kinds)
    if seed is None and (fault_rate > 0 or latency_ms > 0):
        import random

        seed = random.SystemRandom().randrange(2**31)  # drawn here, so that it can be printed and replayed
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
                      fault_timeout_s=fault_timeout, affinity_ttl_s=affinity_ttl, upstream_timeout_s=upstream_timeout,
                      max_body_bytes=int(max_body_mb * 1024 * 1024))
    sock = listen_socket(host, port, fix="--port N")  # a port in use: exit 3 with a message
    from evalkit.redact import register

    register(api_key)
    warning = exposure_warning(host, api_key)
    if warning:
        err.print("[bold yellow]warning:[/bold yellow] " + escape(warning), highlight=False)
    root = f"http://{host}:{port}"
    state = app_.state.router_state
    for c in state.store.configs():
        err.print(f"router:{c.name} ({', '.join(c.task_names)})", markup=False, highlight=False)
    for slug, up in state.upstreams.items():
        err.print(f"upstream {slug} -> {up.describe()}", markup=False, highlight=False)
    describe = getattr(route_classifier, "describe", None)
    detail = describe() if describe else f"threshold {route_classifier.threshold:g}"
    err.print(f"inference plane: {root}/v1 (classifier {classifier}, {detail})", markup=False, highlight=False)
    err.print(f"control plane:   {root}/v2/gen-ai/models/routers"
              + (f" (state in {state_dir})" if state_dir else " (memory only: add --state-dir to persist)"))
    if fault_rate > 0 or latency_ms > 0:
        err.print(f"fault injection: rate {fault_rate:g}, kinds {','.join(kinds)}, latency {latency_ms:g} ms, seed {seed} "
                  f"(the same faults again: --seed {seed})")
    server = uvicorn.Server(uvicorn.Config(app_, host=host, port=port, log_level="warning", lifespan="on",
                                           access_log=False))
    try:  # as uvicorn.run, on the socket bound above
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


def register(app: typer.Typer) -> None:
    app.command()(serve)
