"""The DigitalOcean control plane: model routers under ``/v2/gen-ai/models/routers``.

``ControlPlane`` is a small httpx client for create / get / list / update / delete. It lives
apart from ``targets`` (the inference plane) because the two planes take different
credentials, and keeping them in different modules keeps them from crossing: this module only
ever sends the personal access token (``DIGITALOCEAN_TOKEN``, ``dop_v1_...``), and only to the
control-plane base URL (``https://api.digitalocean.com``, or ``EVALKIT_DO_API_URL`` /
``--api-url``, which tests point at ``evalkit serve``).

An error answer keeps DigitalOcean's own ``id`` and ``message`` (``ControlPlaneError``, exit 2);
an unreachable API is a ``TargetError`` (exit 3), and so is an answer whose body is larger than
16 MiB once decompressed or in an encoding not asked for (read under the cap of
``targets.capped_sync_client``, not retried). The token never appears in a message: every
body, error and record that comes back is redacted (``evalkit.redact``) before it is shown, so a
401 or a proxy page that echoes the ``Authorization`` header prints ``[redacted]``.

``temporary_router`` creates a candidate config under a throw-away name and deletes it when the
block ends, whatever ends it: success, an exception, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import sys
import threading
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evalkit.errors import ControlPlaneError, TargetError, UsageError
from evalkit.httpclient import RetryPolicy, is_retryable_status, retry_after_seconds
from evalkit.redact import Redactor, register_url, safe_url, terminal_safe
from evalkit.router_config import MAX_NAME_LEN, NAME_RE, RouterConfig, parse_router_config
from evalkit.targets import (DO_TOKEN_ENV, TOKEN_PREFIX, ResponseRefused, capped_sync_client,
                             check_control_plane_token)

DO_API_URL = "https://api.digitalocean.com"
DO_API_URL_ENV = "EVALKIT_DO_API_URL"
ROUTERS_PATH = "/v2/gen-ai/models/routers"
TEMP_MARK = "-evalkit-"
SHORT_ID_LEN = 6
TEMP_NAME_RE = re.compile(rf"{TEMP_MARK}[0-9a-f]{{{SHORT_ID_LEN}}}$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
PER_PAGE = 100
MAX_PAGES = 1000
IDEMPOTENT = ("GET", "PUT", "DELETE")


# -- names (pure) -----------------------------------------------------------------------------

def new_short_id() -> str:
    """Six lowercase hex digits: enough to keep concurrent runs apart, short enough to read."""
    return secrets.token_hex(SHORT_ID_LEN // 2)


def temporary_router_name(base: str, short_id: str) -> str:
    """``<base>-evalkit-<short id>``, cut so it stays within DigitalOcean's 255 characters.

    The base is the candidate router's name; when it is too long its tail is cut (and any
    hyphens left dangling at the cut), never the evalkit mark or the short id.
    """
    if not re.fullmatch(r"[0-9a-f]+", short_id):
        raise ValueError(f"short id must be lowercase hex, got {short_id!r}")
    suffix = f"{TEMP_MARK}{short_id}"
    head = base[: MAX_NAME_LEN - len(suffix)].rstrip("-")
    name = f"{head}{suffix}" if head else f"evalkit-{short_id}"
    assert NAME_RE.match(name) and len(name) <= MAX_NAME_LEN
    return name


def is_temporary_name(name: str) -> bool:
    """Whether a router name has the shape evalkit gives its temporary routers."""
    return bool(TEMP_NAME_RE.search(name))


def resolve_api_url(value: str | None = None) -> str:
    """The control-plane root URL: the flag, else ``EVALKIT_DO_API_URL``, else DigitalOcean's."""
    url = (value or os.environ.get(DO_API_URL_ENV) or DO_API_URL).strip().rstrip("/")
    if url.endswith("/v2"):
        url = url[: -len("/v2")]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError("the control-plane URL must be an http(s) URL", where=f"--api-url / {DO_API_URL_ENV}",
                         got=safe_url(url), fix=f"e.g. {DO_API_URL} (or http://127.0.0.1:8080 for `evalkit serve`)")
    return url


def _is_loopback(host: str | None) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or bool(host and host.startswith("127."))


# -- records ----------------------------------------------------------------------------------

class RouterRecordConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    policies: list[dict[str, Any]] = Field(default_factory=list)
    fallback_models: list[str] = Field(default_factory=list)


class ModelRouter(BaseModel):
    """A router as the control plane returns it (inside ``{"model_router": ...}``)."""

    model_config = ConfigDict(extra="allow")

    uuid: str
    name: str
    description: str = ""
    regions: list[str] | None = None
    config: RouterRecordConfig = Field(default_factory=RouterRecordConfig)
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def temporary(self) -> bool:
        return is_temporary_name(self.name)

    def create_body(self) -> dict[str, Any]:
        """The router as a create body (the ``router.json`` format), keeping only create-body fields."""
        policies = []
        for p in self.config.policies:
            policy: dict[str, Any] = {}
            task = p.get("custom_task")
            if isinstance(task, dict):
                policy["custom_task"] = {k: task[k] for k in ("name", "description") if k in task}
            elif p.get("task_slug"):
                policy["task_slug"] = p["task_slug"]
            policy["models"] = list(p.get("models") or [])
            selection = p.get("selection_policy")
            if isinstance(selection, dict) and selection.get("prefer") in ("cheapest", "fastest"):
                policy["selection_policy"] = {"prefer": selection["prefer"]}
            policies.append(policy)
        body: dict[str, Any] = {"name": self.name, "description": self.description or "", "policies": policies,
                                "fallback_models": list(self.config.fallback_models)}
        if self.regions:
            body["regions"] = list(self.regions)
        return body

    def to_config(self) -> RouterConfig:
        """The router as a validated ``RouterConfig``."""
        return parse_router_config(self.create_body(), source=f"router {self.name} ({self.uuid})")


# -- the client -------------------------------------------------------------------------------

class ControlPlane:
    """The model-router endpoints of the DigitalOcean API.

    >>> plane = ControlPlane.from_env()                       # doctest: +SKIP
    >>> created = plane.create(config.to_body())              # doctest: +SKIP
    >>> plane.delete(created.uuid)                            # doctest: +SKIP

    ``transport`` lets tests hand in an httpx transport; everything else talks real HTTP. Reads,
    updates and deletes are retried by ``policy`` (evalkit.httpclient: ``retries`` retries of a
    dropped connection, a 408, 429 or 5xx, with backoff and jitter or the answer's Retry-After,
    at most 30 s); a create never is (it could create the router twice).
    """

    def __init__(self, token: str, *, base_url: str = DO_API_URL, timeout: float = 30.0,
                 retries: int = 2, transport: Any = None, policy: RetryPolicy | None = None) -> None:
        self.base_url = resolve_api_url(base_url)
        host = urlsplit(self.base_url).hostname
        if token.startswith(TOKEN_PREFIX) and self.base_url.startswith("http://") and not _is_loopback(host):
            raise UsageError("refusing to send a DigitalOcean token over plain HTTP to another host",
                             where=f"--api-url / {DO_API_URL_ENV}", got=safe_url(self.base_url),
                             fix="use an https:// URL (a plain http:// URL is only for a local stand-in)")
        self.retries = retries
        self.policy = policy or RetryPolicy(retries=retries, base=0.5, cap=8.0, retry_after_max=30.0)
        register_url(self.base_url)
        self._redactor = Redactor([token])
        self.shown_url = safe_url(self.base_url) or self.base_url
        # every answer is read under the size cap of evalkit's clients (docs/reliability.md)
        self._http = capped_sync_client(timeout, connect=None, base_url=self.base_url, transport=transport,
                                        headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                                                 "User-Agent": "evalkit"})

    @classmethod
    def from_env(cls, api_url: str | None = None, *, var: str = DO_TOKEN_ENV, **kwargs: Any) -> "ControlPlane":
        """A client with the token from ``$DIGITALOCEAN_TOKEN`` (never a model access key)."""
        return cls(check_control_plane_token(os.environ.get(var), var=var), base_url=resolve_api_url(api_url),
                   **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ControlPlane":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests --

    def _request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        import httpx

        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(method, path, json=json, params=params)
            except (ResponseRefused, httpx.DecodingError) as exc:  # a hostile or broken body: not transient
                raise TargetError(self._clean(f"the DigitalOcean control plane answered with a body evalkit does not "
                                              f"read: {exc}"), where=f"{method} {self.shown_url}{path}",
                                  fix=f"check that --api-url / {DO_API_URL_ENV} points at the DigitalOcean API") from None
            except httpx.HTTPError as exc:
                if method in IDEMPOTENT and self.policy.allows(attempt):
                    self.policy.wait(attempt)
                    continue
                raise TargetError(self._clean(f"the DigitalOcean control plane could not be reached "
                                              f"({exc.__class__.__name__}: {exc})"),
                                  where=f"{method} {self.shown_url}{path}",
                                  fix=f"check the network and the control-plane URL (--api-url / {DO_API_URL_ENV})") from None
            if _retryable(response.status_code) and method in IDEMPOTENT and self.policy.allows(attempt):
                self.policy.wait(attempt, retry_after_seconds(response.headers.get("retry-after")))
                continue
            if response.is_success:
                if not response.content.strip():
                    return {}
                try:
                    return self._redactor.value(response.json())
                except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
                    raise TargetError("the control plane answered with a body that is not JSON",
                                      where=f"{method} {self.shown_url}{path}", got=self._clean(response.text)[:200],
                                      fix=f"check that --api-url / {DO_API_URL_ENV} points at the DigitalOcean API") from None
            raise api_error(method, path, response.status_code, self._clean(response.text))

    def _clean(self, text: str) -> str:
        """Remote text with the token (and every registered key) redacted."""
        return self._redactor.text(text) or ""

    def list(self) -> list[ModelRouter]:
        """Every router of the account (all pages)."""
        routers: list[ModelRouter] = []
        for page in range(1, MAX_PAGES + 1):
            data = self._request("GET", ROUTERS_PATH, params={"page": page, "per_page": PER_PAGE})
            items = data.get("model_routers", data.get("routers")) if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise TargetError("the control plane's router list has no 'model_routers'",
                                  where=f"GET {self.shown_url}{ROUTERS_PATH}", got=str(data)[:200],
                                  fix=f"check that --api-url / {DO_API_URL_ENV} points at the DigitalOcean API")
            routers.extend(_router(item, f"GET {ROUTERS_PATH}") for item in items)
            pages = (data.get("links") or {}).get("pages") or {}
            if not items or not pages.get("next"):
                break
        return routers

    def get(self, uuid: str) -> ModelRouter:
        return _router(_unwrap(self._request("GET", f"{ROUTERS_PATH}/{uuid}")), f"GET {ROUTERS_PATH}/{uuid}")

    def create(self, body: dict[str, Any]) -> ModelRouter:
        return _router(_unwrap(self._request("POST", ROUTERS_PATH, json=body)), f"POST {ROUTERS_PATH}")

    def update(self, uuid: str, body: dict[str, Any]) -> ModelRouter:
        return _router(_unwrap(self._request("PUT", f"{ROUTERS_PATH}/{uuid}", json=body)),
                       f"PUT {ROUTERS_PATH}/{uuid}")

    def delete(self, uuid: str) -> None:
        self._request("DELETE", f"{ROUTERS_PATH}/{uuid}")

    def find(self, name: str) -> ModelRouter | None:
        """The router of that name, or None."""
        for router in self.list():
            if router.name == name:
                return router
        return None

    def resolve(self, ref: str) -> ModelRouter:
        """A router by uuid or by name; a clear error when there is none."""
        if UUID_RE.match(ref):
            return self.get(ref)
        found = self.find(ref)
        if found is None:
            raise UsageError(f"no router named '{ref}' on the control plane", where=self.shown_url,
                             fix="list the routers with `evalkit router list`, or give the router's uuid")
        return found


def _retryable(status: int) -> bool:
    """The policy's retryable answers, but a 409 (a conflict on the control plane is an answer)."""
    return is_retryable_status(status) and status != 409


def _unwrap(data: Any) -> Any:
    return data.get("model_router", data) if isinstance(data, dict) else data


def _router(data: Any, where: str) -> ModelRouter:
    if isinstance(data, dict):  # the API may send null for an empty field
        data = {k: v for k, v in data.items() if v is not None}
        if isinstance(data.get("config"), dict):
            data["config"] = {k: v for k, v in data["config"].items() if v is not None}
    try:
        return ModelRouter.model_validate(data)
    except ValidationError:
        raise TargetError("the control plane answered with something that is not a model router", where=where,
                          got=str(data)[:200], fix=f"check that --api-url / {DO_API_URL_ENV} points at the DigitalOcean API") from None


FIXES = {
    400: "correct the request as the message says (`evalkit lint ROUTER_JSON` checks a config before sending it)",
    401: f"check that {DO_TOKEN_ENV} holds a valid personal access token (Control Panel > API > Tokens)",
    403: f"the token in {DO_TOKEN_ENV} lacks the scope for this: give it read and write access to GenAI",
    404: "list the routers with `evalkit router list`; the uuid may be wrong or the router already deleted",
    429: "DigitalOcean is rate-limiting this token: wait a minute and try again",
}
DUPLICATE_FIX = ("pick another name (`--name`), or change the existing router with "
                 "`evalkit router update NAME ROUTER_JSON`")


def api_error(method: str, path: str, status: int, text: str) -> ControlPlaneError:
    """A ``ControlPlaneError`` from DigitalOcean's error body ``{"id": ..., "message": ...}`` (pure)."""
    import json

    error_id: str | None = None
    message = text.strip()[:500] or f"HTTP {status}"
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        error_id = body.get("id") if isinstance(body.get("id"), str) else None
        if isinstance(body.get("message"), str):
            message = body["message"]
    fix = DUPLICATE_FIX if "already exists" in message else FIXES.get(status, "see the message above; "
                                                                      "DigitalOcean's status page may help for 5xx")
    return ControlPlaneError(f"DigitalOcean API error: {message}", status=status, error_id=error_id,
                             api_message=message, where=f"{method} {path}",
                             got=f"HTTP {status}" + (f" {error_id}" if error_id else ""), fix=fix)


# -- the temporary router ---------------------------------------------------------------------

@contextlib.contextmanager
def _sigterm_as_sigint() -> Iterator[None]:
    """SIGTERM takes the same way out as Ctrl-C, so ``finally`` blocks (and the cleanup) run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if callable(signal.getsignal(signal.SIGINT)):
            signal.raise_signal(signal.SIGINT)  # asyncio's own handler, when a run is in progress
        else:
            raise KeyboardInterrupt  # SIGINT is ignored (a background job): stop here instead

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Interrupts:
    count = 0


@contextlib.contextmanager
def _shielded(status: Callable[[str], None], message: str = "still deleting the temporary router; "
              "interrupt once more to leave it behind") -> Iterator[_Interrupts]:
    """A first Ctrl-C or SIGTERM is counted and ignored (with ``message``); a second one stops.

    Guards the steps that must not be cut in half: creating the router (an interrupt then takes
    effect right after, once the router can be deleted) and deleting it.
    """
    seen = _Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def handler(signum: int, frame: Any) -> None:
        seen.count += 1
        if seen.count >= 2:
            raise KeyboardInterrupt
        status(message)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield seen
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _delete(plane: ControlPlane, router: ModelRouter, status: Callable[[str], None]) -> str | None:
    """Delete the temporary router; return what went wrong, or None."""
    try:
        with _shielded(status):
            plane.delete(router.uuid)
        status(f"deleted the temporary router {router.name}")
        return None
    except ControlPlaneError as exc:
        if exc.status == 404:
            return None  # already gone
        return exc.api_message
    except (TargetError, KeyboardInterrupt) as exc:
        return str(exc) or exc.__class__.__name__


def _leftover_message(router: ModelRouter, problem: str) -> str:
    return (f"the temporary router {router.name} ({router.uuid}) could not be deleted: {problem}; "
            f"delete it with `evalkit router delete {router.uuid} --yes`")


class LeftoverRouterError(TargetError):
    """The run finished, but its temporary router is still on the control plane."""


@contextlib.contextmanager
def temporary_router(plane: ControlPlane, candidate: RouterConfig, *, short_id: str | None = None,
                     status: Callable[[str], None] = lambda s: None) -> Iterator[ModelRouter]:
    """Create ``candidate`` as ``<name>-evalkit-<short id>``; delete it however the block ends.

    Covers an exception in the block, Ctrl-C and SIGTERM (turned into Ctrl-C for the block's
    duration); during the delete a first interrupt is ignored. If the create request itself is
    cut off or answered with a 5xx, the name is looked up and whatever got created is deleted.
    A delete that fails after a successful block raises ``LeftoverRouterError`` naming the
    router; after a failed block the block's own error propagates and the leftover is printed
    on stderr as a warning.
    """
    name = temporary_router_name(candidate.name, short_id or new_short_id())
    body = {**candidate.to_body(), "name": name}
    with _sigterm_as_sigint():
        status(f"creating the temporary router {name} on {plane.shown_url}")
        try:
            with _shielded(status, "creating the temporary router; it is deleted as soon as it exists "
                                   "(interrupt once more to stop at once)") as creating:
                router = plane.create(body)
        except BaseException as exc:
            if not (isinstance(exc, ControlPlaneError) and exc.status < 500):
                # a 5xx, a cut connection or a second interrupt: the create may have been carried
                # out before the failure reached us, so look the name up and remove what is there
                with contextlib.suppress(Exception, KeyboardInterrupt):
                    with _shielded(status):
                        made = plane.find(name)
                    if made is not None:
                        _delete(plane, made, status)
            raise
        ok = False
        try:
            if creating.count:
                raise KeyboardInterrupt  # the interrupt that came while the router was being created
            yield router
            ok = True
        finally:
            status(f"deleting the temporary router {router.name}")
            problem = _delete(plane, router, status)
            if problem is not None:
                if ok:
                    raise LeftoverRouterError(_leftover_message(router, problem), where=plane.shown_url,
                                              fix=f"evalkit router delete {router.uuid} --yes")
                # the run's own error is what propagates; the leftover must still be seen, even with -q
                print(terminal_safe(f"warning: {_leftover_message(router, problem)}"), file=sys.stderr, flush=True)


__all__ = ["ControlPlane", "ModelRouter", "LeftoverRouterError", "api_error", "is_temporary_name",
           "new_short_id", "resolve_api_url", "temporary_router", "temporary_router_name",
           "DO_API_URL", "DO_API_URL_ENV", "ROUTERS_PATH", "MAX_NAME_LEN"]
