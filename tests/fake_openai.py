"""A small scripted OpenAI-compatible server on 127.0.0.1 for tests (upstream models, judge, routers).

``FakeOpenAI(handler)`` runs a real HTTP server in a background thread; ``handler(body, headers)``
returns a ``Reply`` (or a list of replies is played in order, the last one repeating). Every
request body and its headers are recorded in ``.requests``. Streaming requests
(``"stream": true``) get server-sent events built from the same reply.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from evalkit.emulator.server import LocalRouter


@dataclass
class Reply:
    content: str | None = "ok"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    finish_reason: str = "stop"
    prompt_tokens: int = 10
    completion_tokens: int = 5
    reasoning_tokens: int | None = None
    model: str | None = None          # default: the requested model
    raw_body: str | None = None       # send this text instead of a JSON completion
    error_message: str = "scripted error"


Handler = Callable[[dict[str, Any], dict[str, str]], Reply]


class FakeOpenAI:
    """Scripted OpenAI-compatible server. Use as a context manager."""

    def __init__(self, handler: Handler | list[Reply] | Reply | None = None) -> None:
        if handler is None:
            handler = Reply()
        if isinstance(handler, Reply):
            single = handler
            handler = lambda body, headers: single  # noqa: E731
        elif isinstance(handler, list):
            replies = list(handler)
            lock = threading.Lock()

            def play(body: dict[str, Any], headers: dict[str, str]) -> Reply:
                with lock:
                    return replies.pop(0) if len(replies) > 1 else replies[0]
            handler = play
        self.handler: Handler = handler
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"]),
                                Route("/v1/models", self._models, methods=["GET"])])
        self._server = LocalRouter(app)

    async def _models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model", "created": 0, "owned_by": "test"}]})

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(body)
        self.request_headers.append(headers)
        reply = self.handler(body, headers)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.raw_body is not None:
            return Response(reply.raw_body, status_code=reply.status, headers=reply.headers,
                            media_type="application/json")
        if reply.status >= 400:
            return JSONResponse({"error": {"message": reply.error_message, "type": "server_error",
                                           "param": None, "code": None}},
                                status_code=reply.status, headers=reply.headers)
        model = reply.model or body.get("model", "fake")
        usage: dict[str, Any] = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                                 "total_tokens": reply.prompt_tokens + reply.completion_tokens}
        if reply.reasoning_tokens is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": reply.reasoning_tokens}
        cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        if body.get("stream"):
            return StreamingResponse(self._sse(cid, model, reply, usage), headers=reply.headers,
                                     media_type="text/event-stream")
        return JSONResponse({
            "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.content},
                         "finish_reason": reply.finish_reason}],
            "usage": usage,
        }, headers=reply.headers)

    async def _sse(self, cid: str, model: str, reply: Reply, usage: dict[str, Any]):  # type: ignore[no-untyped-def]
        def chunk(delta: dict[str, Any], finish: str | None = None, with_usage: bool = False) -> str:
            data: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
                                    "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if with_usage:
                data["usage"] = usage
            return f"data: {json.dumps(data)}\n\n"
        yield chunk({"role": "assistant", "content": ""})
        text = reply.content or ""
        for i in range(0, len(text), 8):
            yield chunk({"content": text[i:i + 8]})
        yield chunk({}, reply.finish_reason, with_usage=True)
        yield "data: [DONE]\n\n"

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def wait_idle(self, *, settle_s: float = 0.1, timeout_s: float = 10.0) -> None:
        """Return once no connection is open and no request is being handled, ``settle_s`` in a row.

        After a client process is killed, this is the moment everything it had put on the wire has
        been read and handled (its sockets are closed by the kernel; the server notices once it has
        read what came before the close).
        """
        state = self._server.server.server_state
        deadline = time.monotonic() + timeout_s
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            now = time.monotonic()
            if state.connections or state.tasks:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= settle_s:
                return
            time.sleep(0.01)
        raise AssertionError(f"the fake server still had {len(state.connections)} connections and "
                             f"{len(state.tasks)} requests in hand after {timeout_s} s")

    def __enter__(self) -> "FakeOpenAI":
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
