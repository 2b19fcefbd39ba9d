"""The local router's HTTP server: both planes of the DigitalOcean Inference Router on one port.

Inference plane (OpenAI-compatible, ``/v1``):

- ``POST /v1/chat/completions`` with ``"model": "router:<name>"`` classifies the last user
  message, orders the matched task's pool by its selection policy and tries each model, then
  ``fallback_models``, until one answers. The response carries ``x-model-router-selected-route``
  (the task, or ``fallback``), the served model in the body's ``model``, ``x-evalkit-attempts``
  (how many models were tried) and ``x-evalkit-attempt-log`` (``model=outcome, ...``). When every
  model fails: HTTP 502 with an OpenAI error body. A plain model slug goes straight to that model.
  A model without an upstream answers in route-only mode (empty content, zero completion tokens,
  ``x-evalkit-route-only: true``). ``stream: true`` answers with server-sent events carrying the
  same headers. ``X-Model-Affinity`` pins a session to the model that served its first turn.
  A classifier that fails (its model unreachable, or an answer that names no task) makes the
  call an HTTP 502 with code ``classifier_failed`` or ``classifier_bad_answer``: never a route.
- ``GET /v1/models`` lists the routers (``router:<name>``) and their models.

Control plane (DigitalOcean's paths and bodies): ``POST/GET /v2/gen-ai/models/routers`` and
``GET/PUT/DELETE /v2/gen-ai/models/routers/{uuid}`` (see ``control_plane``).

Limits (docs/reliability.md): a request body over ``max_body_bytes`` (``DEFAULT_MAX_BODY_BYTES``,
4 MiB; ``evalkit serve --max-body-mb``) is refused with 413 after reading at most that much of it;
a body nested too deeply to parse is a 400, both in the plane's own error format; a classifier
reads at most ``MAX_CLASSIFIER_CHARS`` characters of each message.

``create_app`` builds the ASGI app; ``LocalRouter`` runs it on a free loopback port in a
background thread, for ``evalkit run --target local`` and for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Mapping

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from evalkit.cost import Price, load_prices
from evalkit.emulator.affinity import DEFAULT_AFFINITY_TTL_S, AffinityStore, Pin
from evalkit.emulator.classifier import DEFAULT_THRESHOLD, EmbeddingClassifier, LlmClassifierError
from evalkit.emulator.faults import DEFAULT_FAULT_TIMEOUT_S, RETRY_AFTER_S, FaultConfig, FaultInjector, parse_fault_kinds
from evalkit.emulator.policies import LatencyStats, order_pool
from evalkit.emulator.state import RouterStore
from evalkit.errors import RunError, short
from evalkit.emulator.upstream import (DEFAULT_UPSTREAM_TIMEOUT_S, WILDCARD, Upstream, UpstreamClient, UpstreamFailure,
                                       UpstreamReply, parse_upstreams)
from evalkit.records import FALLBACK, message_text
from evalkit.router_config import RouterConfig

__all__ = ["DEFAULT_THRESHOLD", "ROUTE_HEADER", "LocalRouter", "RouterState", "create_app", "free_port"]

ROUTE_HEADER = "x-model-router-selected-route"
AFFINITY_HEADER = "x-model-affinity"
ATTEMPTS_HEADER = "x-evalkit-attempts"
ATTEMPT_LOG_HEADER = "x-evalkit-attempt-log"
ROUTER_PREFIX = "router:"
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024  # a request body larger than this is refused with 413
# The classifier reads at most this many characters of a message: the embedding model reads its
# first 256 tokens anyway (about 1,000 words), and tokenising megabytes would hold the event loop.
MAX_CLASSIFIER_CHARS = 16_384

log = logging.getLogger("evalkit.emulator")


@dataclass
class RouterState:
    """Everything the server knows: the router store, the classifier, prices, upstreams, pins, faults."""

    store: RouterStore
    classifier: Any
    prices: dict[str, Price]
    upstreams: dict[str, Upstream] = field(default_factory=dict)
    latency: LatencyStats = field(default_factory=LatencyStats)
    affinity: AffinityStore = field(default_factory=AffinityStore)
    faults: FaultInjector = field(default_factory=lambda: FaultInjector(FaultConfig()))
    upstream_client: UpstreamClient = field(default_factory=UpstreamClient)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @property
    def routers(self) -> dict[str, RouterConfig]:
        """Routers by name (a snapshot)."""
        return {c.name: c for c in self.store.configs()}

    def upstream_for(self, model: str) -> Upstream | None:
        return self.upstreams.get(model) or self.upstreams.get(WILDCARD)


def openai_error(status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    """An error body in the OpenAI error format."""
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": code}},
                        status_code=status, headers=headers)


class BodyError(Exception):
    """A request body refused before it is used: too large (413), not JSON or nested too deeply (400)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _too_large(limit: int) -> BodyError:
    return BodyError(413, f"request body is larger than the local router's limit of {limit:,} bytes "
                          "(evalkit serve --max-body-mb)")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, read chunk by chunk: past ``limit`` bytes (or a larger Content-Length) the
    rest is never read and ``BodyError(413)`` is raised, so a huge body is never held whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_body(raw: bytes) -> Any:
    """The JSON of a request body; ``BodyError(400)`` when it is not JSON or nests too deeply to parse."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise BodyError(400, "request body is nested too deeply (JSON arrays and objects inside each other)") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise BodyError(400, f"request body is not valid JSON: {exc}") from None


def bounded_text(text: str) -> str:
    """What a classifier reads of one message: its first ``MAX_CLASSIFIER_CHARS`` characters."""
    return text[:MAX_CLASSIFIER_CHARS]


def bounded_messages(messages: list[Any]) -> list[Any]:
    """The conversation as a classifier reads it: every message's text cut to ``MAX_CLASSIFIER_CHARS``."""
    return [{"role": m.get("role"), "content": bounded_text(message_text(m))} if isinstance(m, dict) else m
            for m in messages]


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token) for route-only usage."""
    return max(1, round(len(text) / 4)) if text else 0


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            return message_text(m)
    return ""


def candidate_models(router: RouterConfig, route: str, state: RouterState) -> list[str]:
    """The models tried for ``route``, in order: the task's pool by its policy, then fallback_models."""
    if route == FALLBACK:
        pool: list[str] = []
    else:
        task = router.task(route)
        pool = order_pool(task.models, task.prefer, prices=state.prices, latency=state.latency)
    return [*pool, *(m for m in router.fallback_models if m not in pool)]


class BearerAuth:
    """ASGI middleware: with a key set, every request needs ``Authorization: Bearer <key>`` (else 401)."""

    def __init__(self, app: Any, key: str | None) -> None:
        self.app = app
        self.key = key

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.key:
            await self.app(scope, receive, send)
            return
        auth = ""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                auth = value.decode("latin-1")
                break
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.key.encode()):
            await self.app(scope, receive, send)
            return
        if scope.get("path", "").startswith("/v2/"):
            response: Response = JSONResponse({"id": "unauthorized", "message": "Unable to authenticate you"},
                                              status_code=401)
        else:
            response = openai_error(401, "missing or wrong API key: send Authorization: Bearer <key>",
                                    type_="invalid_request_error", code="invalid_api_key",
                                    headers={"www-authenticate": "Bearer"})
        await response(scope, receive, send)


def create_app(routers: list[RouterConfig] | None = None, *, classifier: Any = None,
               threshold: float = DEFAULT_THRESHOLD, prices: dict[str, Price] | None = None,
               upstreams: "Mapping[str, str | Upstream] | None" = None, state_dir: str | Path | None = None,
               api_key: str | None = None, fault_rate: float = 0.0, fault_kinds: "str | list[str] | None" = None,
               latency_ms: float = 0.0, seed: int | None = None, fault_timeout_s: float = DEFAULT_FAULT_TIMEOUT_S,
               affinity_ttl_s: float = DEFAULT_AFFINITY_TTL_S, affinity: AffinityStore | None = None,
               upstream_timeout_s: float = DEFAULT_UPSTREAM_TIMEOUT_S,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Starlette:
    """The ASGI app of the local router (inference plane and control plane on the same port).

    ``routers`` are loaded into the store (replacing stored routers of the same name);
    ``state_dir`` persists routers created through the control plane; ``upstreams`` maps model
    slugs (or ``*``) to ``URL`` / ``URL@ENVVAR`` / ``Upstream``; ``api_key`` makes every request
    without that bearer key a 401; ``fault_*``, ``latency_ms`` and ``seed`` inject faults;
    ``max_body_bytes`` is the largest request body accepted (413 above it).
    """
    from evalkit.emulator.control_plane import control_plane_routes

    store = RouterStore(state_dir)
    for config in routers or []:
        store.put_config(config)
    state = RouterState(
        store=store,
        classifier=classifier if classifier is not None else EmbeddingClassifier(threshold),
        prices=prices if prices is not None else load_prices(),
        upstreams=parse_upstreams(upstreams),
        affinity=affinity if affinity is not None else AffinityStore(affinity_ttl_s),
        faults=FaultInjector(FaultConfig(rate=fault_rate, kinds=parse_fault_kinds(fault_kinds),
                                         latency_ms=latency_ms, seed=seed, timeout_s=fault_timeout_s)),
        upstream_client=UpstreamClient(upstream_timeout_s),
        max_body_bytes=max_body_bytes,
    )

    async def chat(request: Request) -> Response:
        try:
            return await chat_completions(state, request)
        except RecursionError:  # a body that parsed but nests too deeply to handle (re-encoding it)
            return openai_error(400, "request body is nested too deeply (JSON arrays and objects inside each other)")

    async def models(request: Request) -> JSONResponse:
        return list_models(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await state.upstream_client.aclose()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            *control_plane_routes(state),
        ],
        middleware=[Middleware(BearerAuth, key=api_key)],
        exception_handlers={ClientDisconnect: client_gone, UnicodeEncodeError: header_unsendable},
        lifespan=lifespan,
    )
    app.state.router_state = state
    return app


async def header_unsendable(request: Request, exc: Exception) -> Response:
    """A response header value HTTP cannot carry (a name outside Latin-1, e.g. a model named in the
    request): a 500 saying so in the plane's error format, not a traceback. Router configs refuse
    task names and model slugs outside printable ASCII, so this is a last line of defence."""
    if not (isinstance(exc, UnicodeEncodeError) and exc.encoding == "latin-1"):
        raise exc
    value = exc.object if isinstance(exc.object, str) else ""
    message = (f"the router cannot send a response header holding {short(value)}: HTTP header values "
               "are ASCII; use ASCII names for models, routers and tasks")
    log.warning("%s %s: %s", request.method, request.url.path, message)
    if request.url.path.startswith("/v2/"):
        return JSONResponse({"id": "server_error", "message": message}, status_code=500)
    return openai_error(500, message, type_="server_error", code="header_not_encodable")


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client hung up while its request was being read (a run stopped with Ctrl-C): nobody is
    left to answer, and it is no error of the server's (no traceback in the log)."""
    return Response(status_code=499)


async def chat_completions(state: RouterState, request: Request) -> Response:
    """``POST /v1/chat/completions``: injected faults, then the route (``router:<name>``) or the
    model named, then the first candidate model that answers."""
    if state.faults.config.latency_ms:
        await asyncio.sleep(state.faults.config.latency_ms / 1000)
    fault = state.faults.draw()
    injected = await _injected_error(state, fault)
    if injected is not None:
        return injected
    body = await _chat_body(request)
    if isinstance(body, Response):
        return body
    model, messages = body["model"], body["messages"]
    stream = bool(body.get("stream"))
    headers: dict[str, str] = {}
    session = request.headers.get(AFFINITY_HEADER)
    if session:
        headers[AFFINITY_HEADER] = session
    route: str | None = None
    router_name: str | None = None
    if model.startswith(ROUTER_PREFIX):
        router_name = model[len(ROUTER_PREFIX):]
        routed = await _route(state, router_name, messages, session, headers)
        if isinstance(routed, Response):
            return routed
        route, candidates = routed
        if fault != "drop-header":
            headers[ROUTE_HEADER] = route
    else:
        candidates = [model]
    if fault == "malformed-json":
        return _malformed(headers, stream=stream)
    response, served = await serve_candidates(state, candidates, body, messages, stream, headers)
    if served is not None and router_name and session and route is not None:
        state.affinity.pin(router_name, session, route, served)
    return response


async def _injected_error(state: RouterState, fault: str | None) -> Response | None:
    """The error answer of an injected 429, 500 or timeout fault (None for the other faults)."""
    if fault == "429":
        return openai_error(429, "rate limit reached (injected fault)", type_="rate_limit_error",
                            code="rate_limit_exceeded", headers={"retry-after": str(RETRY_AFTER_S)})
    if fault == "500":
        return openai_error(500, "internal server error (injected fault)", type_="server_error")
    if fault == "timeout":
        await asyncio.sleep(state.faults.config.timeout_s)
        return openai_error(504, "upstream timed out (injected fault)", type_="server_error")
    return None


async def _chat_body(request: Request) -> dict[str, Any] | Response:
    """The request body, or the 400 (413: too large) answer saying what is wrong with it."""
    state: RouterState = request.app.state.router_state
    try:
        body = parse_json_body(await read_body(request, state.max_body_bytes))
    except BodyError as exc:
        return openai_error(exc.status, exc.message)
    if not isinstance(body, dict):
        return openai_error(400, "request body must be a JSON object")
    model = body.get("model")
    messages = body.get("messages")
    if not isinstance(model, str) or not model:
        return openai_error(400, "'model' is required", param="model")
    if not isinstance(messages, list) or not messages:
        return openai_error(400, "'messages' must be a non-empty list", param="messages")
    return body


async def _route(state: RouterState, router_name: str, messages: list[Any], session: str | None,
                 headers: dict[str, str]) -> tuple[str, list[str]] | Response:
    """The route of a ``router:<name>`` request (a session's pin, or the classifier's decision) and
    its candidate models in order; or the error answer (unknown router, failed classifier)."""
    stored = state.store.by_name(router_name)
    if stored is None:
        return openai_error(404, f"model router '{router_name}' not found", code="model_not_found", param="model")
    router = stored.config
    pin = state.affinity.get(router_name, session) if session else None
    candidates = valid_pin_candidates(pin, router, state) if pin else None
    if pin is not None and candidates is not None:
        headers["x-evalkit-pinned"] = "true"
        return pin.route, candidates
    try:
        if getattr(state.classifier, "reads_conversation", False):  # arch-router: the prior turns too
            decision = await state.classifier.classify_conversation(bounded_messages(messages), router)
        else:
            decision = await state.classifier.classify(bounded_text(last_user_text(messages)), router)
    except LlmClassifierError as exc:
        # never silently a route: the client sees the failure (and evalkit run counts it)
        return openai_error(502, str(exc), type_="server_error", code=getattr(exc, "code", "classifier_failed"))
    headers["x-evalkit-route-score"] = f"{decision.score:.4f}"
    if session:
        headers["x-evalkit-pinned"] = "false"
    return decision.route, candidate_models(router, decision.route, state)


def _malformed(headers: dict[str, str], *, stream: bool) -> Response:
    """An injected malformed-json fault: a body cut off mid-object."""
    headers[ATTEMPTS_HEADER] = "1"
    if stream:
        broken = 'data: {"id": "chatcmpl-broken", "object": "chat.completion.chunk", "choices": [{\n\ndata: [DONE]\n\n'
        return Response(broken, headers=headers, media_type="text/event-stream")
    return Response('{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index": 0, "mess',
                    headers=headers, media_type="application/json")


def list_models(state: RouterState) -> JSONResponse:
    """``GET /v1/models``: every router as ``router:<name>``, then the models of their pools and the upstreams."""
    ids: list[str] = []
    for r in state.store.configs():
        ids.append(f"{ROUTER_PREFIX}{r.name}")
    for r in state.store.configs():
        for m in [*(m for t in r.tasks for m in t.models), *r.fallback_models]:
            if m not in ids:
                ids.append(m)
    for slug in state.upstreams:
        if slug != WILDCARD and slug not in ids:
            ids.append(slug)
    return JSONResponse({"object": "list", "data": [
        {"id": i, "object": "model", "created": 0, "owned_by": "evalkit-local"} for i in ids]})


def valid_pin_candidates(pin: Pin, router: RouterConfig, state: RouterState) -> list[str] | None:
    """The pinned model first, then the rest of its route's candidates; None when the pin no longer fits."""
    if pin.route != FALLBACK and pin.route not in router.task_names:
        return None
    candidates = candidate_models(router, pin.route, state)
    if pin.model not in candidates:
        return None
    return [pin.model, *(m for m in candidates if m != pin.model)]


async def serve_candidates(state: RouterState, candidates: list[str], body: dict[str, Any],
                           messages: list[Any], stream: bool,
                           headers: dict[str, str]) -> tuple[Response, str | None]:
    """Try each candidate model in order; the first that answers serves. Returns (response, served model)."""
    attempts: list[str] = []

    def finish(extra: dict[str, str] | None = None) -> dict[str, str]:
        out = dict(headers)
        out[ATTEMPTS_HEADER] = str(len(attempts))
        out[ATTEMPT_LOG_HEADER] = ", ".join(attempts)
        out.update(extra or {})
        return out

    for model in candidates:
        up = state.upstream_for(model)
        if up is None:
            attempts.append(f"{model}=route-only")
            return route_only_response(model, body, messages, stream, finish({"x-evalkit-route-only": "true"})), model
        forward = dict(body)
        forward["model"] = model
        try:
            if stream:
                options: dict[str, Any] = (body["stream_options"] if isinstance(body.get("stream_options"), dict)
                                           else {})
                forward["stream_options"] = {**options, "include_usage": True}
                result = await state.upstream_client.stream(up, forward)
            else:
                result = await state.upstream_client.complete(up, forward)
        except UpstreamFailure as failure:
            attempts.append(f"{model}={failure.kind}")
            log.info("upstream %s failed (%s); trying the next model", model, failure.kind)
            continue
        attempts.append(f"{model}={getattr(result, 'status', 200)}")
        if isinstance(result, UpstreamReply):
            if result.status >= 400:  # the request's own fault: passed back, no failover
                return JSONResponse(result.body, status_code=result.status, headers=finish()), None
            state.latency.observe(model, result.latency_ms)
            payload = result.body
            if isinstance(payload, dict):
                payload["model"] = model
            return JSONResponse(payload, headers=finish()), model
        state.latency.observe(model, result.latency_ms)
        return StreamingResponse(result.chunks(), headers=finish(), media_type="text/event-stream"), model
    message = f"all {len(candidates)} models failed: {', '.join(attempts)}"
    return openai_error(502, message, type_="server_error", code="upstream_failed", headers=finish()), None


def route_only_response(model: str, body: dict[str, Any], messages: list[Any], stream: bool,
                        headers: dict[str, str]) -> Response:
    """An answer without generation: empty content, estimated prompt tokens, zero completion tokens."""
    prompt_tokens = sum(estimate_tokens(message_text(m)) for m in messages if isinstance(m, dict))
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": 0, "total_tokens": prompt_tokens}
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if stream:
        options: dict[str, Any] = body["stream_options"] if isinstance(body.get("stream_options"), dict) else {}

        def chunk(delta: dict[str, Any], finish: str | None) -> str:
            data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(data)}\n\n"

        events = [chunk({"role": "assistant", "content": ""}, None), chunk({}, "stop")]
        if options.get("include_usage"):
            events.append(f"data: {json.dumps({'id': cid, 'object': 'chat.completion.chunk', 'created': created, 'model': model, 'choices': [], 'usage': usage})}\n\n")
        events.append("data: [DONE]\n\n")
        return Response("".join(events), headers=headers, media_type="text/event-stream")
    payload = {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
        "usage": usage,
    }
    return JSONResponse(payload, headers=headers)


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """The warning printed when the server listens beyond loopback without a key (None otherwise)."""
    if api_key or host in LOOPBACK_HOSTS or host.startswith("127."):
        return None
    return (f"listening on {host} without --api-key: anyone who can reach this port can use the router "
            "and its upstream keys, and change its routers; add --api-key (or EVALKIT_SERVE_API_KEY)")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listen_socket(host: str, port: int, *, fix: str = "") -> socket.socket:
    """A socket bound to ``host:port`` for uvicorn to serve on (``Server.serve(sockets=[...])``), so
    that a port in use is a ``RunError`` with a message (exit 3), where uvicorn would log it and exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto says TCP.
    # Without it Nagle holds each response's body until the client's delayed ACK, 40 ms a request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RunError("the local router cannot listen on its port", where=f"{host}:{port}",
                       got=exc.strerror or str(exc),
                       fix="stop whatever holds the port or choose another one" + (f" ({fix})" if fix else "")
                       ) from None
    return sock


def _startup_failure(error: BaseException | None) -> str:
    """What stopped the local router's thread: uvicorn exits (SystemExit) after logging why."""
    if error is None or isinstance(error, SystemExit):
        return "the server stopped during start-up"
    return f"{type(error).__name__}: {error}"


class LocalRouter:
    """Runs the local router in a background thread on a free loopback port.

    >>> with LocalRouter(create_app([cfg])) as lr:  # doctest: +SKIP
    ...     lr.base_url   # 'http://127.0.0.1:PORT/v1'
    """

    def __init__(self, app: Starlette, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="auto",
                                access_log=False, timeout_keep_alive=30)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="evalkit-local-router", daemon=True)
        self._sock: socket.socket | None = None  # bound by start()
        self._error: BaseException | None = None

    def _run(self) -> None:
        assert self._sock is not None
        try:
            asyncio.run(self.server.serve(sockets=[self._sock]))
        except BaseException as exc:  # surfaced by start()
            self._error = exc
        finally:
            self._sock.close()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "LocalRouter":
        self._sock = listen_socket(self.host, self.port, fix="leave --port out for a free one")
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if self._error is not None or not self.thread.is_alive():
                self.stop()
                raise RunError("the local router failed to start", where=self.root_url, got=_startup_failure(self._error),
                               fix="see the messages above; a start-up failure of the router's app is a bug to report")
            if time.monotonic() > deadline:
                self.stop()
                raise RunError("the local router did not start within 30 s", where=self.root_url,
                               fix="check the machine's load and try again")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=10)

    def __enter__(self) -> "LocalRouter":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
