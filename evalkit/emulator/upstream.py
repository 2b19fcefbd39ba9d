"""Upstreams: forwarding a chat completion to an OpenAI-compatible server.

``--upstream SLUG=URL`` forwards model ``SLUG`` to the server at ``URL`` (its ``/v1`` base);
``SLUG=URL@ENVVAR`` also sends ``Authorization: Bearer $ENVVAR``. The key is read from the
environment when a request is forwarded and never stored, printed or logged; an upstream that
echoes it (in an error body, an answer or a stream) has it redacted (``evalkit.redact``) before
the body is passed on. ``*=URL`` is the upstream of every model without one of its own.

A failure that another model might not have (HTTP 5xx or 429, a timeout, a refused
connection, a 200 whose body is not JSON) raises ``UpstreamFailure`` so the router fails over.
Other 4xx answers are the request's own fault and are passed back to the client unchanged.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping
from urllib.parse import urlsplit, urlunsplit

from evalkit.errors import TargetError, UsageError
from evalkit.redact import Redactor, register, register_url, safe_url

WILDCARD = "*"
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_UPSTREAM_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Upstream:
    """Where a model is served: an OpenAI-compatible base URL and the env var holding its key."""

    url: str
    key_env: str | None = None

    def key(self) -> str | None:
        key = os.environ.get(self.key_env, "") if self.key_env else ""
        register(key)
        register_url(self.url)
        return key or None

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        key = self.key()
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    def redactor(self) -> Redactor:
        """Redacts this upstream's key (and every registered one) from what it sends back."""
        return Redactor([self.key()])

    @property
    def chat_url(self) -> str:
        """The base URL + ``/chat/completions``, a query string (``?api-version=...``) kept at the end."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/chat/completions"))

    def describe(self) -> str:
        """For logs: the URL and the variable name, never the key."""
        url = safe_url(self.url) or ""
        return f"{url} (key from ${self.key_env})" if self.key_env else url


def parse_upstream(slug: str, value: "str | Upstream") -> Upstream:
    """``URL`` or ``URL@ENVVAR`` (an Upstream is returned as is)."""
    if isinstance(value, Upstream):
        return value
    text = value.strip()
    url, key_env = text, None
    head, sep, tail = text.rpartition("@")
    if sep and ENV_RE.match(tail) and "/" not in tail:
        url, key_env = head, tail
    if not re.match(r"^https?://[^\s/]+", url):
        raise UsageError(f"the upstream of '{slug}' is not an http(s) URL", where="--upstream", got=text,
                         fix=f"e.g. --upstream {slug}=http://127.0.0.1:8001/v1 or "
                             f"{slug}=https://api.example.com/v1@EXAMPLE_API_KEY")
    return Upstream(url=url, key_env=key_env)


def parse_upstreams(upstreams: "Mapping[str, str | Upstream] | None") -> dict[str, Upstream]:
    return {slug: parse_upstream(slug, value) for slug, value in (upstreams or {}).items()}


def check_keys(upstreams: dict[str, Upstream]) -> None:
    """Fail early (exit 2) when an upstream names a key variable that is not set."""
    for slug, up in upstreams.items():
        if up.key_env and not up.key():
            raise UsageError(f"environment variable {up.key_env} (the key of upstream '{slug}') is not set",
                             where="--upstream", got=f"{slug}=...@{up.key_env}",
                             fix=f"export {up.key_env}=<key> before starting, or drop @{up.key_env}")


class UpstreamFailure(TargetError):
    """An upstream attempt that should fail over: ``kind`` is the HTTP status, ``timeout`` or ``refused``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class UpstreamReply:
    """A finished upstream answer (non-streaming, or a 4xx of a streaming request)."""

    status: int
    body: Any
    latency_ms: float


@dataclass
class UpstreamStream:
    """An open streaming answer: relay ``chunks()`` to the client."""

    response: Any
    latency_ms: float  # time to the response headers
    redactor: Redactor | None = None
    # the answer's text not yet relayed, by choice index: a key the upstream echoes a few characters
    # per event is only whole (and redacted) once its events are joined
    _held: dict[int, str] = field(default_factory=dict)
    _last_event: dict[str, Any] = field(default_factory=dict)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The stream, relayed line by line (an echoed key never straddles what is redacted), the
        answer's text a little behind the upstream's (``_relay_content``)."""
        from evalkit.targets import ResponseRefused

        pending = b""
        try:
            async for chunk in self.response.aiter_bytes():
                if self.redactor is None:
                    yield chunk
                    continue
                pending += chunk
                head, sep, pending = pending.rpartition(b"\n")
                if sep:
                    yield b"".join(self._clean(line) for line in (head + sep).splitlines(keepends=True))
            if pending:
                yield self._clean(pending)
            if self.redactor is not None:
                yield self._flush()
        except ResponseRefused:  # past the size cap: the client sees the stream end there
            return
        finally:
            await self.response.aclose()

    def _clean(self, data: bytes) -> bytes:
        """One line of the stream, redacted; a ``data:`` event's text goes through ``_relay_content``."""
        assert self.redactor is not None
        original = text = data.decode("utf-8", "replace")
        body = text.rstrip("\r\n")
        flushed = b""
        if body.startswith("data:"):
            payload = body[5:].strip()
            if payload == "[DONE]":
                flushed = self._flush()
            else:
                text = self._relay_content(payload, text[len(body):]) or text
        cleaned = self.redactor.text(text)
        return flushed + (data if cleaned == original else (cleaned or "").encode("utf-8"))

    def _relay_content(self, payload: str, ending: str) -> str | None:
        """The event with each choice's ``delta.content`` replaced by the redacted text that can be
        relayed now: all of it at the choice's end, else all but the last characters, which could be
        the start of a key. None when the event carries no text."""
        assert self.redactor is not None
        try:
            event = json.loads(payload)
        except (ValueError, RecursionError):
            return None
        choices = event.get("choices") if isinstance(event, dict) else None
        if not isinstance(choices, list):
            return None
        keep = 3 * self.redactor.longest() + 16  # a key, base64- or URL-encoded, fits in what is held
        changed = False
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict) or not isinstance(delta.get("content"), str):
                continue
            index = choice.get("index") if isinstance(choice.get("index"), int) else 0
            held = self._held.get(index, "") + delta["content"]
            cut = len(held) if choice.get("finish_reason") else max(0, len(held) - keep)
            for start, end in self.redactor.spans(held):  # never relay a key's first part alone
                if start < cut < end:
                    cut = start
            delta["content"], self._held[index] = self.redactor.text(held[:cut]) or "", held[cut:]
            changed = True
        if not changed:
            return None
        self._last_event = event
        return "data: " + json.dumps(event) + ending

    def _flush(self) -> bytes:
        """The text still held, as one more event (before ``[DONE]``, or at the end of the stream)."""
        assert self.redactor is not None
        held = {i: self.redactor.text(text) for i, text in self._held.items() if text}
        self._held = {}
        if not held:
            return b""
        event = {k: v for k, v in self._last_event.items() if k in ("id", "object", "created", "model")}
        event["choices"] = [{"index": i, "delta": {"content": text}, "finish_reason": None} for i, text in held.items()]
        return f"data: {json.dumps(event)}\n\n".encode("utf-8")


class UpstreamClient:
    """One pooled httpx client per event loop, created on first use."""

    def __init__(self, timeout_s: float = DEFAULT_UPSTREAM_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._client: Any = None

    def _http(self) -> Any:
        from evalkit.targets import capped_async_client

        if self._client is None:
            # an upstream's answer is decompressed under the same cap as a router's (docs/reliability.md)
            self._client = capped_async_client(self.timeout_s, max_connections=256, max_keepalive=64)
        return self._client

    async def complete(self, up: Upstream, body: dict[str, Any]) -> UpstreamReply:
        import httpx

        from evalkit.targets import ResponseRefused

        start = time.perf_counter()
        try:
            resp = await self._http().post(up.chat_url, content=json.dumps(body), headers=up.headers())
        except ResponseRefused as exc:
            raise UpstreamFailure("too-large" if exc.code == "response_too_large" else "bad-body", exc.message) from None
        except httpx.TimeoutException:
            raise UpstreamFailure("timeout", f"timed out after {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise UpstreamFailure("refused", f"connection failed: {type(exc).__name__}") from None
        latency_ms = (time.perf_counter() - start) * 1000
        if resp.status_code >= 500 or resp.status_code == 429:
            raise UpstreamFailure(str(resp.status_code), f"HTTP {resp.status_code}")
        try:
            data = resp.json()
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
            if resp.status_code < 400:
                raise UpstreamFailure("bad-body", "the answer is not JSON") from None
            text = up.redactor().text(resp.text[:4096]) or ""  # before the cut: a cut key may be too short to recognise
            data = {"error": {"message": text[:500], "type": "upstream_error", "param": None, "code": None}}
        return UpstreamReply(resp.status_code, up.redactor().value(data), latency_ms)

    async def stream(self, up: Upstream, body: dict[str, Any]) -> UpstreamStream | UpstreamReply:
        import httpx

        start = time.perf_counter()
        client = self._http()
        request = client.build_request("POST", up.chat_url, content=json.dumps(body), headers=up.headers())
        from evalkit.targets import ResponseRefused

        try:
            resp = await client.send(request, stream=True)
        except ResponseRefused as exc:
            raise UpstreamFailure("bad-body", exc.message) from None
        except httpx.TimeoutException:
            raise UpstreamFailure("timeout", f"timed out after {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise UpstreamFailure("refused", f"connection failed: {type(exc).__name__}") from None
        latency_ms = (time.perf_counter() - start) * 1000
        if resp.status_code >= 400:
            try:
                raw = await resp.aread()
            except ResponseRefused as exc:
                raise UpstreamFailure("too-large", exc.message) from None
            finally:
                await resp.aclose()
            if resp.status_code >= 500 or resp.status_code == 429:
                raise UpstreamFailure(str(resp.status_code), f"HTTP {resp.status_code}")
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError):
                text = up.redactor().text(raw[:4096].decode("utf-8", "replace")) or ""
                data = {"error": {"message": text[:500], "type": "upstream_error",
                                  "param": None, "code": None}}
            return UpstreamReply(resp.status_code, up.redactor().value(data), latency_ms)
        return UpstreamStream(resp, latency_ms, up.redactor())

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
