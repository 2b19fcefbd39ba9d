"""The local router's HTTP server: OpenAI chat completions with the DigitalOcean route headers.

``POST /v1/chat/completions`` with ``"model": "router:<name>"`` classifies the last user
message, picks a model from the matched task's pool by its selection policy and answers with
``x-model-router-selected-route`` and the served model in the body. With no upstream for the
model it answers in route-only mode (empty content, zero completion tokens,
``x-evalkit-route-only: true``). ``GET /v1/models`` lists routers and models.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from evalkit.cost import Price, load_prices
from evalkit.emulator.classifier import EmbeddingClassifier
from evalkit.emulator.policies import LatencyStats, order_pool
from evalkit.records import FALLBACK, message_text
from evalkit.router_config import RouterConfig

# Chosen by measurement on suites/saas-support and suites/clinc150-domains (README: "Fallback threshold").
DEFAULT_THRESHOLD = 0.10
ROUTE_HEADER = "x-model-router-selected-route"


@dataclass
class RouterState:
    """Everything the server knows: routers by name, the classifier, prices, upstreams."""

    routers: dict[str, RouterConfig]
    classifier: Any
    prices: dict[str, Price]
    upstreams: dict[str, str] = field(default_factory=dict)
    latency: LatencyStats = field(default_factory=LatencyStats)


def openai_error(status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> JSONResponse:
    """An error body in the OpenAI error format."""
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": code}},
                        status_code=status)


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token) for route-only usage."""
    return max(1, round(len(text) / 4)) if text else 0


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            return message_text(m)
    return ""


def create_app(routers: list[RouterConfig], *, classifier: Any = None, threshold: float = DEFAULT_THRESHOLD,
               prices: dict[str, Price] | None = None, upstreams: dict[str, str] | None = None) -> Starlette:
    """The ASGI app of the local router."""
    state = RouterState(
        routers={r.name: r for r in routers},
        classifier=classifier or EmbeddingClassifier(threshold),
        prices=prices if prices is not None else load_prices(),
        upstreams=dict(upstreams or {}),
    )

    async def chat_completions(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except Exception:
            return openai_error(400, "request body is not valid JSON")
        if not isinstance(body, dict):
            return openai_error(400, "request body must be a JSON object")
        model = body.get("model")
        messages = body.get("messages")
        if not isinstance(model, str) or not model:
            return openai_error(400, "'model' is required", param="model")
        if not isinstance(messages, list) or not messages:
            return openai_error(400, "'messages' must be a non-empty list", param="messages")
        text = last_user_text(messages)
        headers: dict[str, str] = {}
        affinity = request.headers.get("x-model-affinity")
        if affinity:
            headers["x-model-affinity"] = affinity
        if model.startswith("router:"):
            name = model[len("router:"):]
            router = state.routers.get(name)
            if router is None:
                return openai_error(404, f"model router '{name}' not found", code="model_not_found", param="model")
            decision = await state.classifier.classify(text, router)
            if decision.route == FALLBACK:
                pool, prefer = router.fallback_models, None
            else:
                task = router.task(decision.route)
                pool, prefer = task.models, task.prefer
            served = order_pool(pool, prefer, prices=state.prices, latency=state.latency)[0]
            headers[ROUTE_HEADER] = decision.route
            headers["x-evalkit-route-score"] = f"{decision.score:.4f}"
        else:
            served = model
        headers["x-evalkit-route-only"] = "true"
        prompt_tokens = sum(estimate_tokens(message_text(m)) for m in messages if isinstance(m, dict))
        payload = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": served,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 0, "total_tokens": prompt_tokens},
        }
        return JSONResponse(payload, headers=headers)

    async def list_models(request: Request) -> JSONResponse:
        ids: list[str] = [f"router:{n}" for n in state.routers]
        for r in state.routers.values():
            for m in [*(m for t in r.tasks for m in t.models), *r.fallback_models]:
                if m not in ids:
                    ids.append(m)
        return JSONResponse({"object": "list", "data": [
            {"id": i, "object": "model", "created": 0, "owned_by": "evalkit-local"} for i in ids]})

    app = Starlette(routes=[
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
    ])
    app.state.router_state = state
    return app


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LocalRouter:
    """Runs the local router in a background thread on a free loopback port.

    >>> with LocalRouter(create_app([cfg])) as lr:  # doctest: +SKIP
    ...     lr.base_url   # 'http://127.0.0.1:PORT/v1'
    """

    def __init__(self, app: Starlette, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="off",
                                access_log=False, timeout_keep_alive=30)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="evalkit-local-router", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "LocalRouter":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if self._error is not None or not self.thread.is_alive():
                raise RuntimeError(f"local router failed to start on {self.host}:{self.port}: {self._error}")
            if time.monotonic() > deadline:
                raise RuntimeError("local router did not start within 30 s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> "LocalRouter":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
