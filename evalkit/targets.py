"""Router targets: one OpenAI-compatible target.

The target sends a case's messages, reads the route from a configurable response header
(``x-model-router-selected-route`` by default; presets for other routers), the served model
from the body, usage and latency. Its endpoint (``ChatEndpoint``: base URL, key, pooled
``httpx.AsyncClient``) is injected, so tests hand in one pointed at a local server. Plain calls
go straight through httpx; streamed ones through the official ``openai`` SDK on the same pool.
Keys come from environment variables and are never stored or printed.

Every response body is read with a cap on its decompressed size (``DEFAULT_MAX_RESPONSE_BYTES``,
16 MiB; docs/reliability.md): a gzip bomb from a router stops being read past the cap and the case
is an error with ``error_code`` ``response_too_large``, never a process holding gigabytes.
``capped_async_client`` / ``capped_sync_client`` build every other HTTP client of evalkit (judge,
labeler, control plane, readiness probe, the local router's upstreams and routing models) with
the same cap.

With ``stream=True`` the target asks for server-sent events (with usage in the last chunk) and
also measures the time to the first generated token; the non-streaming path is unchanged.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import zlib
from dataclasses import dataclass
from typing import Any, Callable

from evalkit.errors import TargetError, UsageError
from evalkit.httpclient import RetryPolicy, is_retryable_status, retry_after_seconds
from evalkit.records import BAD_USAGE, MAX_USAGE_TOKENS, TargetInfo
from evalkit.redact import REDACTED, redact  # noqa: F401  (kept importable from here)
from evalkit.redact import Redactor, register, register_url, safe_url

DO_INFERENCE_URL = "https://inference.do-ai.run/v1"
DO_KEY_ENV = "MODEL_ACCESS_KEY"
DO_TOKEN_ENV = "DIGITALOCEAN_TOKEN"
TOKEN_PREFIX = "dop_v1_"       # a DigitalOcean personal access token: control plane only
ACCESS_KEY_PREFIX = "sk-do-"   # a DigitalOcean model access key: inference only
DEFAULT_ROUTE_HEADER = "x-model-router-selected-route"
ROUTE_HEADER_PRESETS = {
    "do": DEFAULT_ROUTE_HEADER,
    "digitalocean": DEFAULT_ROUTE_HEADER,
    "vllm-sr": "x-vsr-selected-decision",
    "litellm": "x-litellm-model-group",
}
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # a response body decompressing to more is a case error
RESPONSE_TOO_LARGE = "response_too_large"       # the error_code of such a case
BAD_ENCODING = "bad_content_encoding"           # a Content-Encoding the client did not ask for
ACCEPT_ENCODING = "gzip, deflate"               # the encodings decoded under the cap
CONNECT_TIMEOUT_S = 10.0


def resolve_route_header(value: str | None) -> str:
    """A preset name (``do``, ``vllm-sr``, ``litellm``) or a literal header name."""
    if not value:
        return DEFAULT_ROUTE_HEADER
    return ROUTE_HEADER_PRESETS.get(value.lower(), value.lower())


@dataclass
class TargetResponse:
    """What one call returned, in the pipeline's words."""

    route: str | None
    served_model: str | None
    content: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_tokens: int | None
    http_status: int
    latency_ms: float
    route_only: bool
    headers: dict[str, str]
    ttft_ms: float | None = None


class TargetCallError(TargetError):
    """One failed call: HTTP status (None for a connection failure), message, Retry-After.

    The runner records it in the case's result; it reaches the user only through the error budget.
    """

    def __init__(self, message: str, *, http_status: int | None = None, retry_after: float | None = None,
                 retryable: bool = True, code: str | None = None, unreachable: bool = False,
                 timed_out: bool = False) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.retry_after = retry_after
        self.retryable = retryable
        self.code = code  # the error body's "code" (e.g. the local router's classifier_bad_answer)
        self.unreachable = unreachable  # no connection could be opened (refused, no route, DNS)
        self.timed_out = timed_out      # no answer within the deadline


class OpenAITarget:
    """Any OpenAI-compatible chat-completions endpoint that reports its route in a header."""

    def __init__(self, client: "ChatEndpoint", *, model: str, route_header: str, info: TargetInfo,
                 stream: bool = False) -> None:
        self.client = client
        self.model = model
        self.route_header = route_header.lower()
        self.info = info
        self.stream = stream
        self.secrets = [client.api_key] if client.api_key else []
        self._redactor = Redactor(self.secrets)
        self._url = endpoint_url(client.base_url, "chat/completions")
        self._headers = {"Accept": "application/json", "Content-Type": "application/json",
                         "User-Agent": "evalkit"}
        if client.api_key:
            self._headers["Authorization"] = f"Bearer {client.api_key}"

    def _clean(self, text: str | None) -> str | None:
        """A server may echo the key back (in an error or an answer): never let it reach a file."""
        return self._redactor.text(text)

    async def send(self, messages: list[dict[str, Any]], *, max_completion_tokens: int | None = None,
                   affinity: str | None = None, temperature: float | None = None,
                   model: str | None = None) -> TargetResponse:
        import httpx

        body: dict[str, Any] = {"model": model or self.model, "messages": messages}
        if max_completion_tokens is not None:
            body["max_completion_tokens"] = max_completion_tokens
        if temperature is not None:
            body["temperature"] = temperature
        headers = {"X-Model-Affinity": affinity} if affinity else None
        start = time.perf_counter()
        ttft_ms: float | None = None
        try:
            if self.stream:
                raw = await self.client.sdk().chat.completions.with_raw_response.create(
                    **body, stream=True, stream_options={"include_usage": True}, extra_headers=headers)
                data, ttft_ms = await _read_stream(raw, start)
            else:
                # Straight through httpx: building the SDK's typed request and response objects
                # costs more CPU per call than the HTTP exchange with a fast router
                # (bench/run_overhead.py). The body is read below, field by field.
                raw = await self.client.http.post(self._url, json=body,
                                                  headers={**self._headers, **headers} if headers else self._headers)
                if not 200 <= raw.status_code < 300:
                    raise _status_error(raw, self._clean)
                data = json.loads(raw.content)
        except TargetCallError as exc:
            exc.what = self._clean(exc.what) or ""
            raise
        except ResponseRefused as exc:  # past the size cap, or an encoding not asked for: no retry
            raise TargetCallError(exc.message, http_status=exc.status, retryable=False, code=exc.code) from None
        except httpx.TimeoutException as exc:
            raise TargetCallError("request timed out", http_status=None, timed_out=True,
                                  unreachable=isinstance(exc, httpx.ConnectTimeout)) from None
        except httpx.HTTPError as exc:
            # A plain call failed to connect or lost its connection; a stream broke midway (the SDK
            # wraps failures before the first byte in its own errors, below).
            what = f"stream interrupted: {exc.__class__.__name__}" if self.stream else "connection failed"
            raise TargetCallError(self._clean(f"{what}: {exc}") or "", http_status=None,
                                  unreachable=isinstance(exc, httpx.ConnectError)) from None
        except RecursionError:  # JSON nested deeper than the parser goes: a hostile body, not a crash
            raise TargetCallError("malformed response body: JSON nested too deeply", http_status=200) from None
        except (ValueError, TypeError, AttributeError) as exc:  # a body that is not a chat completion
            raise TargetCallError(self._clean(f"malformed response body: {exc}") or "", http_status=200) from None
        except Exception as exc:  # the SDK's errors, from a stream only (the SDK is not imported otherwise)
            refused = refusal_of(exc)
            if refused is not None:  # raised inside the SDK's request (wrapped by an older SDK)
                raise TargetCallError(refused.message, http_status=refused.status, retryable=False,
                                      code=refused.code) from None
            raise _sdk_error(exc, self._clean) from None
        latency_ms = (time.perf_counter() - start) * 1000
        headers_in = {k.lower(): v for k, v in raw.headers.items()}
        route = self._clean(headers_in.get(self.route_header))
        try:
            # A router's odd body becomes an error result, never a crash: check each field's type.
            if not isinstance(data, dict):
                raise TypeError("the body is not a JSON object")
            choices = data.get("choices")
            if not isinstance(choices, list):
                raise TypeError("'choices' is not a list")
            choice = _dict(choices[0]) if choices else {}
            usage = _dict(data.get("usage"))
            bad = bad_usage(usage)
            if bad:
                raise TargetCallError(f"the router reported impossible usage: {bad}", retryable=False,
                                      http_status=raw.status_code if hasattr(raw, "status_code") else 200,
                                      code=BAD_USAGE)
            response = TargetResponse(
                route=route.strip() if route else None,
                served_model=self._clean(_str(data.get("model"))) or None,
                content=self._clean(_str(_dict(choice.get("message")).get("content"))),
                finish_reason=_str(choice.get("finish_reason")),
                prompt_tokens=_int(usage.get("prompt_tokens")),
                completion_tokens=_int(usage.get("completion_tokens")),
                reasoning_tokens=_int(_dict(usage.get("completion_tokens_details")).get("reasoning_tokens")),
                http_status=raw.status_code if hasattr(raw, "status_code") else 200,
                latency_ms=latency_ms,
                route_only=headers_in.get("x-evalkit-route-only", "").lower() == "true",
                headers=headers_in,
                ttft_ms=ttft_ms,
            )
        except (AttributeError, TypeError, IndexError) as exc:
            raise TargetCallError(f"malformed response body: {exc}", http_status=200) from None
        return response

    async def close(self) -> None:
        await self.client.close()


def _sdk_error(exc: Exception, clean: Callable[[str | None], str | None]) -> Exception:
    """The ``TargetCallError`` for an ``openai`` SDK error raised while streaming; other errors unchanged."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        return TargetCallError(clean(_status_message(exc)) or "", http_status=status,
                               retry_after=_retry_after(exc.response.headers.get("retry-after")),
                               retryable=is_retryable_status(status),
                               code=_error_code(getattr(exc, "body", None)))
    if isinstance(exc, openai.APITimeoutError):
        return TargetCallError("request timed out", http_status=None, timed_out=True)
    if isinstance(exc, openai.APIConnectionError):
        import httpx

        return TargetCallError(clean(f"connection failed: {exc.__cause__ or exc}") or "", http_status=None,
                               unreachable=isinstance(exc.__cause__, httpx.ConnectError))
    if isinstance(exc, openai.APIError):  # an error event in the middle of a stream
        return TargetCallError(clean(f"stream failed: {exc.message}") or "", http_status=200)
    return exc


def bad_usage(usage: dict[str, Any]) -> str | None:
    """What is impossible in a response's ``usage`` (a token count that is negative, not finite, or
    over ``MAX_USAGE_TOKENS``), or None. Counts that are absent or not numbers read as unknown."""
    fields = {name: usage.get(name) for name in ("prompt_tokens", "completion_tokens", "total_tokens")}
    fields["completion_tokens_details.reasoning_tokens"] = _dict(usage.get("completion_tokens_details")).get(
        "reasoning_tokens")
    for name, value in fields.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            return f"usage.{name} is {value}"
        if value < 0:
            return f"usage.{name} is negative ({_short_number(value)})"
        if value > MAX_USAGE_TOKENS:
            return f"usage.{name} is {_short_number(value)}, over the limit of {MAX_USAGE_TOKENS:,} tokens"
    return None


def _short_number(value: int | float) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"a {len(text.lstrip('-'))}-digit number"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


HEADER_NAME_RE = re.compile(r"[^a-z0-9!#$%&'*+.^_`|~-]")
MAX_HEADER_NAMES = 40


def header_names(headers: dict[str, str]) -> list[str]:
    """The names of a response's headers (never their values), sorted, cleaned and bounded: a
    hostile router's names cannot carry control characters or grow a result without limit."""
    names = {HEADER_NAME_RE.sub("", name.lower())[:64] for name in headers}
    return sorted(n for n in names if n)[:MAX_HEADER_NAMES]


async def _read_stream(raw: Any, start: float) -> tuple[Any, float | None]:
    """Read a streamed completion: (the assembled chat completion as a dict, time to first token in ms).

    Time to first token is the time from sending the request to the first chunk that carries
    generated text (content, refusal or reasoning). A server that ignores ``stream`` and answers
    with one JSON body (the local router in route-only mode does) is read as a normal
    completion with no time to first token.
    """
    content_type = raw.headers.get("content-type", "")
    if "text/event-stream" not in content_type:
        return json.loads(await raw.http_response.aread()), None
    ttft_ms: float | None = None
    parts: list[str] = []
    model = None
    finish_reason = None
    usage = None
    async for chunk in raw.parse():
        model = chunk.model or model
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices or []:
            delta = choice.delta
            text = (delta.content or "") if delta else ""
            reasoning = getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None) if delta else None
            if ttft_ms is None and (text or reasoning or (delta and delta.refusal)):
                ttft_ms = (time.perf_counter() - start) * 1000
            parts.append(text)
            if choice.finish_reason:
                finish_reason = choice.finish_reason
    completion = {
        "model": model or "",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(parts)},
                     "finish_reason": finish_reason or "stop"}],
        "usage": usage.model_dump() if usage is not None else None,
    }
    return completion, ttft_ms


_retry_after = retry_after_seconds  # the one Retry-After parser (evalkit.httpclient)


def _error_code(body: Any) -> str | None:
    """The OpenAI error body's ``code`` when it is a short identifier (else None)."""
    inner = body.get("error", body) if isinstance(body, dict) else None
    code = inner.get("code") if isinstance(inner, dict) else None
    return code if isinstance(code, str) and re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", code) else None


def _status_error(response: Any, clean: Callable[[str | None], str | None] = lambda t: t) -> TargetCallError:
    """The failure of a non-2xx answer: ``HTTP <status>: <the body's error message>``.

    A body that is not an error document is shown cut short, after ``clean`` (so a key is never
    cut to a piece too short to recognise)."""
    status = response.status_code
    message = ""
    body: Any = None
    try:
        body = json.loads(response.content)
        inner = body.get("error", body) if isinstance(body, dict) else None
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            message = inner["message"]
        elif isinstance(body, dict) and isinstance(body.get("message"), str):
            message = body["message"]
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        pass
    if not message:
        message = (clean(response.text[:4096]) or "")[:200].strip() or response.reason_phrase or "no body"
    return TargetCallError(f"HTTP {status}: {message}", http_status=status,
                           retry_after=_retry_after(response.headers.get("retry-after")),
                           retryable=is_retryable_status(status), code=_error_code(body))


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return f"HTTP {exc.status_code}: {inner['message']}"
        if body.get("message"):
            return f"HTTP {exc.status_code}: {body['message']}"
    return f"HTTP {exc.status_code}: {exc.message}"


class ResponseRefused(Exception):
    """A response body that was not read to its end: larger than the cap once decompressed
    (``response_too_large``), or in a Content-Encoding the client did not ask for."""

    def __init__(self, message: str, *, code: str, status: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class _Inflater:
    """Decompresses one Content-Encoding (``gzip``, ``deflate`` or none) with a bound on each output."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._z: Any = None
        if encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(zlib.MAX_WBITS | 32)
        elif encoding == "deflate":
            self._z = zlib.decompressobj()
        self._first = True

    def feed(self, data: bytes, max_out: int) -> bytes:
        """Up to ``max_out`` bytes decompressed from ``data`` (exactly ``max_out``: there is more)."""
        import httpx

        if self._z is None:
            return data
        try:
            out = self._z.decompress(data, max_out)
        except zlib.error as exc:
            if not (self.encoding == "deflate" and self._first):
                raise httpx.DecodingError(f"{self.encoding} body cannot be decompressed: {exc}") from None
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)  # deflate without the zlib header, as httpx reads it
            try:
                out = self._z.decompress(data, max_out)
            except zlib.error as exc2:
                raise httpx.DecodingError(f"deflate body cannot be decompressed: {exc2}") from None
        self._first = False
        return out

    def flush(self) -> bytes:
        return self._z.flush() if self._z is not None else b""


def refusal_of(exc: BaseException) -> ResponseRefused | None:
    """The ``ResponseRefused`` behind an error: itself, or the cause an SDK wrapped it in (the
    ``openai`` SDK lets it through as it is; older versions wrapped it in ``APIConnectionError``)."""
    for candidate in (exc, exc.__cause__):
        if isinstance(candidate, ResponseRefused):
            return candidate
    return None


class _CappedBody:
    """Counts one reading of a body: decompressed ``max_bytes`` at most, ``ResponseRefused`` past that.

    Shared by the async and the sync stream wrappers of ``cap_responses``."""

    def __init__(self, encoding: str, status: int, max_bytes: int) -> None:
        self.inflater = _Inflater(encoding)
        self.encoding = encoding
        self.status = status
        self.max_bytes = max_bytes
        self.total = 0

    def feed(self, chunk: bytes) -> bytes:
        return self._count(self.inflater.feed(chunk, self.max_bytes - self.total + 1))

    def flush(self) -> bytes:
        return self._count(self.inflater.flush())

    def _count(self, out: bytes) -> bytes:
        self.total += len(out)
        if self.total > self.max_bytes:
            raise ResponseRefused(f"response body is larger than {self.max_bytes:,} bytes"
                                  + (f" once decompressed ({self.encoding})" if self.encoding else "")
                                  + "; it was not read further", code=RESPONSE_TOO_LARGE, status=self.status)
        return out


def _accepted_encoding(response: Any) -> str | None:
    """The response's Content-Encoding to decode under the cap (``""`` for none), None for one not asked for."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
        return None
    return "" if encoding == "identity" else encoding


def _bad_encoding(response: Any) -> ResponseRefused:
    encoding = response.headers.get("content-encoding", "").strip().lower()
    return ResponseRefused(f"response body has Content-Encoding {encoding[:40]!r}, which evalkit did not "
                           f"ask for (it accepts {ACCEPT_ENCODING})", code=BAD_ENCODING, status=response.status_code)


def _install(response: Any, stream: Any) -> None:
    """``stream`` (decoding the body) in place of the response's own; httpx then sees no encoding."""
    response.stream = stream
    if "content-encoding" in response.headers:
        del response.headers["content-encoding"]


def cap_responses(max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, *, sync: bool = False) -> Callable[[Any], Any]:
    """An httpx response hook (of an ``AsyncClient``, or of a ``Client`` with ``sync=True``): the
    body is decompressed here, ``max_bytes`` at most, and reading past that raises
    ``ResponseRefused`` (httpx then sees an uncompressed body)."""
    import httpx

    class CappedStream(httpx.AsyncByteStream):
        def __init__(self, inner: Any, encoding: str, status: int) -> None:
            self.inner, self.encoding, self.status = inner, encoding, status

        async def __aiter__(self) -> Any:
            body = _CappedBody(self.encoding, self.status, max_bytes)
            async for chunk in self.inner:
                out = body.feed(chunk)
                if out:
                    yield out
            tail = body.flush()
            if tail:
                yield tail

        async def aclose(self) -> None:
            await self.inner.aclose()

    class CappedSyncStream(httpx.SyncByteStream):
        def __init__(self, inner: Any, encoding: str, status: int) -> None:
            self.inner, self.encoding, self.status = inner, encoding, status

        def __iter__(self) -> Any:
            body = _CappedBody(self.encoding, self.status, max_bytes)
            for chunk in self.inner:
                out = body.feed(chunk)
                if out:
                    yield out
            tail = body.flush()
            if tail:
                yield tail

        def close(self) -> None:
            self.inner.close()

    async def hook(response: Any) -> None:
        encoding = _accepted_encoding(response)
        if encoding is None:
            await response.aclose()
            raise _bad_encoding(response)
        _install(response, CappedStream(response.stream, encoding, response.status_code))

    def sync_hook(response: Any) -> None:
        encoding = _accepted_encoding(response)
        if encoding is None:
            response.close()
            raise _bad_encoding(response)
        _install(response, CappedSyncStream(response.stream, encoding, response.status_code))

    return sync_hook if sync else hook


def _capped_options(timeout: float, connect: float | None, max_response_bytes: int, headers: dict[str, str] | None,
                    sync: bool) -> dict[str, Any]:
    import httpx

    return {"timeout": httpx.Timeout(timeout, connect=min(timeout, connect) if connect else timeout),
            "headers": {**(headers or {}), "Accept-Encoding": ACCEPT_ENCODING},
            "event_hooks": {"response": [cap_responses(max_response_bytes, sync=sync)]}}


def capped_async_client(timeout: float, *, connect: float | None = CONNECT_TIMEOUT_S, max_connections: int = 1000,
                        max_keepalive: int = 100, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                        headers: dict[str, str] | None = None, **options: Any) -> Any:
    """An ``httpx.AsyncClient`` asking for ``gzip, deflate`` only and reading every response body
    under the cap (``cap_responses``): what every async client of evalkit is (the router target,
    the judge, the labeler, the local router's upstreams and its llm / arch-router classifiers).

    ``timeout`` covers each phase, a connection ``connect`` seconds at most (None: ``timeout``); the
    pool defaults to the ``openai`` SDK's own (1000 connections, 100 kept alive); ``options`` go
    to ``httpx.AsyncClient`` as they are (``follow_redirects``, ``transport``...)."""
    import httpx

    return httpx.AsyncClient(limits=httpx.Limits(max_connections=max_connections,
                                                 max_keepalive_connections=max_keepalive),
                             **_capped_options(timeout, connect, max_response_bytes, headers, False), **options)


def capped_sync_client(timeout: float, *, connect: float | None = CONNECT_TIMEOUT_S,
                       max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, headers: dict[str, str] | None = None,
                       **options: Any) -> Any:
    """The ``httpx.Client`` twin of ``capped_async_client`` (the control plane, the readiness probe)."""
    import httpx

    return httpx.Client(**_capped_options(timeout, connect, max_response_bytes, headers, True), **options)


def make_client(base_url: str, api_key: str, *, timeout: float = DEFAULT_TIMEOUT_S, concurrency: int = 16) -> Any:
    """An ``AsyncOpenAI`` client with a connection pool sized for the run's concurrency (the judge's)."""
    return make_endpoint(base_url, api_key, timeout=timeout, concurrency=concurrency).sdk()


class ChatEndpoint:
    """An OpenAI-compatible endpoint: base URL, key and a pooled ``httpx.AsyncClient``.

    The router target posts chat completions through ``http`` itself; ``sdk()`` builds the
    ``openai`` client on the same pool on first use (streamed answers, the judge), so a run that
    does not stream never imports the SDK (about half a second).
    """

    def __init__(self, base_url: str, api_key: str, *, http: Any, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.http = http
        self.timeout = timeout
        self._sdk: Any = None

    def sdk(self) -> Any:
        if self._sdk is None:
            import openai

            base, query = split_query(self.base_url)
            self._sdk = openai.AsyncOpenAI(base_url=base, api_key=self.api_key, max_retries=0, timeout=self.timeout,
                                           http_client=self.http, default_query=query or None)
        return self._sdk

    async def close(self) -> None:
        await self.http.aclose()


def split_query(base_url: str) -> tuple[str, dict[str, str]]:
    """``base_url`` without its query string, and the query's parameters (sent with every request)."""
    from urllib.parse import parse_qsl, urlsplit, urlunsplit

    parts = urlsplit(base_url)
    if not parts.query:
        return base_url, {}
    return urlunsplit(parts._replace(query="", fragment="")).rstrip("/"), dict(parse_qsl(parts.query))


def endpoint_url(base_url: str, path: str) -> str:
    """``base_url`` + ``/path``, keeping a query string (``?api-version=...``) at the end."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{path}"))


def make_endpoint(base_url: str, api_key: str, *, timeout: float = DEFAULT_TIMEOUT_S,
                  concurrency: int = 16, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> ChatEndpoint:
    """A ``ChatEndpoint`` with a connection pool sized for the run's concurrency, whose response
    bodies are capped at ``max_response_bytes`` once decompressed (``cap_responses``)."""
    # A connection that cannot be opened in 10 s will not open: a dead router fails fast
    # (runner.UNREACHABLE_AFTER) instead of spending the whole deadline on each attempt.
    register_url(base_url)
    http = capped_async_client(timeout, max_connections=concurrency + 4, max_keepalive=concurrency + 4,
                               max_response_bytes=max_response_bytes)
    return ChatEndpoint(base_url, api_key, http=http, timeout=timeout)


def api_key_from_env(var: str, *, target: str) -> str:
    """Read a key from the environment, refusing the wrong kind of DigitalOcean credential."""
    key = os.environ.get(var, "")
    if not key:
        raise UsageError(f"no API key: environment variable {var} is not set", where=f"--target {target}",
                         fix=f"export {var}=<your model access key> (DigitalOcean: Control Panel > "
                             "Serverless Inference > Model Access Keys)")
    if key.startswith(TOKEN_PREFIX):
        raise UsageError(f"{var} holds a DigitalOcean personal access token (dop_v1_...), "
                         "which belongs to the control plane, not to inference", where=f"--target {target}",
                         fix="use a model access key (sk-do-...) for inference; keep the token in "
                             "DIGITALOCEAN_TOKEN for `evalkit router`")
    register(key)
    return key


def check_control_plane_token(value: str | None, *, var: str = DO_TOKEN_ENV) -> str:
    """The token for the DigitalOcean control plane, refusing a model access key.

    The two credentials must never be crossed: a model access key (``sk-do-...``) only talks to
    the inference endpoint, a personal access token (``dop_v1_...``) only to the control plane.
    """
    if not value or not value.strip():
        raise UsageError(f"no DigitalOcean API token: environment variable {var} is not set",
                         where=var, fix=f"export {var}=<your personal access token> (DigitalOcean: "
                                        "Control Panel > API > Tokens; it starts with dop_v1_)")
    value = value.strip()
    if value.startswith(ACCESS_KEY_PREFIX):
        raise UsageError(f"{var} holds a DigitalOcean model access key (sk-do-...), which belongs to "
                         "inference, not to the control plane", where=var,
                         fix=f"put a personal access token (dop_v1_...) in {var} for `evalkit router`; "
                             f"keep the model access key in {DO_KEY_ENV} for `evalkit run --target do`")
    register(value)
    return value


def wait_until_answers(base_url: str, api_key: str, model: str, *, timeout: float = 120.0,
                       status: Callable[[str], None] = lambda s: None, interval: float = 0.5,
                       policy: RetryPolicy | None = None) -> int:
    """Send a one-line chat request to ``model`` until it answers 2xx; return the attempts it took.

    A router created a moment ago may not be invocable everywhere yet, so anything but an
    authentication failure is retried until ``timeout`` seconds have passed, with the retry
    policy of ``evalkit.httpclient`` (backoff from ``interval`` up to 5 s with jitter, or the
    answer's ``Retry-After``).
    """
    policy = policy or RetryPolicy(base=interval, cap=5.0, retry_after_max=30.0)
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=min(timeout, 30.0),
                           http_client=capped_sync_client(min(timeout, 30.0), connect=None, follow_redirects=True))
    clean = Redactor([api_key])
    shown = safe_url(base_url)
    deadline = time.monotonic() + timeout
    attempts, last = 0, "no answer"
    try:
        while True:
            attempts += 1
            retry_after = None
            try:
                client.chat.completions.create(model=model, messages=[{"role": "user", "content": "ping"}],
                                               max_completion_tokens=16)
                return attempts
            except openai.APIStatusError as exc:
                last = clean.text(_status_message(exc)) or ""
                if exc.status_code in (401, 403):
                    raise TargetError(f"the inference endpoint refused the key ({last})", where=shown,
                                      fix=f"check the model access key in {DO_KEY_ENV}") from None
                retry_after = retry_after_seconds(exc.response.headers.get("retry-after"))
            except (openai.APIConnectionError, ResponseRefused) as exc:
                refused = refusal_of(exc)
                if refused is not None:  # an answer too large or in an encoding not asked for: not transient
                    raise TargetError(f"{model} answered with a body evalkit does not read: {refused.message}",
                                      where=shown, fix="check that the inference URL points at an "
                                                       "OpenAI-compatible endpoint") from None
                last = clean.text(f"connection failed: {exc.__cause__ or exc}") or ""
            delay = policy.delay(attempts, retry_after)
            if time.monotonic() + delay > deadline:
                raise TargetError(f"{model} did not answer within {timeout:g} s", where=shown, got=last,
                                  fix="check the inference URL, or wait longer with --ready-timeout")
            if attempts == 1:
                status(f"waiting for {model} to answer ({last})")
            policy.sleep(delay)
    finally:
        client.close()
