"""A small scripted OpenAI-compatible server on 127.0.0.1 for tests (upstream models, judge, routers).

``FakeOpenAI(handler)`` is served over real HTTP by a server in a background thread;
``handler(body, headers)`` returns a ``Reply`` (or a list of replies is played in order, the last
one repeating). Every request body and its headers are recorded in ``.requests``. Streaming
requests (``"stream": true``) get server-sent events built from the same reply.

Every ``FakeOpenAI`` of the session is served by one shared server, each under its own path
(``base_url`` is ``http://127.0.0.1:PORT/fake-N/v1``): a fresh handler and request log for each,
without starting and stopping a server for each. Once one is closed, requests to its path get
HTTP 410, so a late request of a finished test never reaches the next one. ``own_server=True``
gives one its own server, for a test that watches the server's connections (``wait_idle``);
``port=N`` (implies ``own_server``) serves it on that port, for a test that starts a router where
a run found none.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
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


class _SharedServer:
    """The one server behind every ``FakeOpenAI`` without ``own_server``: lease N under /fake-N/v1."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._open: dict[int, "FakeOpenAI"] = {}
        self._server: LocalRouter | None = None

    def lease(self) -> tuple[int, str]:
        """A new path on the shared server (started on first use): (lease number, base URL)."""
        with self._lock:
            if self._server is None:
                app = Starlette(routes=[
                    Route("/fake-{lease:int}/v1/chat/completions", self._chat, methods=["POST"]),
                    Route("/fake-{lease:int}/v1/models", self._models, methods=["GET"])])
                self._server = LocalRouter(app).start()
                atexit.register(self._server.stop)
            number = next(self._numbers)
            return number, f"{self._server.root_url}/fake-{number}/v1"

    def open(self, number: int, fake: "FakeOpenAI") -> None:
        self._open[number] = fake

    def close(self, number: int) -> None:
        self._open.pop(number, None)

    def _fake(self, request: Request) -> "FakeOpenAI | None":
        return self._open.get(request.path_params["lease"])

    async def _chat(self, request: Request) -> Response:
        fake = self._fake(request)
        return await fake._chat(request) if fake is not None else _closed()

    async def _models(self, request: Request) -> Response:
        fake = self._fake(request)
        return await fake._models(request) if fake is not None else _closed()


def _closed() -> JSONResponse:
    return JSONResponse({"error": {"message": "this fake server was closed", "type": "gone", "param": None,
                                   "code": None}}, status_code=410)


_SHARED = _SharedServer()


class FakeOpenAI:
    """Scripted OpenAI-compatible server. Use as a context manager."""

    def __init__(self, handler: Handler | list[Reply] | Reply | None = None, *, own_server: bool = False,
                 port: int | None = None) -> None:
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
        self.request_queries: list[str] = []  # the query string of each chat request
        self._server: LocalRouter | None = None
        self._lease: int | None = None
        if own_server or port is not None:
            app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"]),
                                    Route("/v1/models", self._models, methods=["GET"])])
            self._server = LocalRouter(app, port=port)
            self._base_url = self._server.base_url
        else:
            self._lease, self._base_url = _SHARED.lease()

    async def _models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model", "created": 0, "owned_by": "test"}]})

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(body)
        self.request_headers.append(headers)
        self.request_queries.append(request.url.query)
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
        return self._base_url

    def wait_idle(self, *, settle_s: float = 0.1, timeout_s: float = 10.0) -> None:
        """Return once no connection is open and no request is being handled, ``settle_s`` in a row.

        After a client process is killed, this is the moment everything it had put on the wire has
        been read and handled (its sockets are closed by the kernel; the server notices once it has
        read what came before the close).
        """
        assert self._server is not None, "wait_idle watches a server of its own: FakeOpenAI(..., own_server=True)"
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
        if self._server is not None:
            self._server.start()
        else:
            _SHARED.open(self._lease, self)  # type: ignore[arg-type]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()
        else:
            _SHARED.close(self._lease)  # type: ignore[arg-type]
