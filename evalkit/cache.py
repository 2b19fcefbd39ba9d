"""The opt-in response cache (``evalkit run --cache``).

Off by default: routers change behind a stable URL, and a cache would hide the change. When on,
a response is reused only when everything that could change it is the same: the target's
identity (kind, base URL, model, route header, classifier settings, upstreams), the router
config hash, the messages sent (a session turn includes its history) and the request parameters
(max completion tokens, temperature). The session's affinity id is left out (it names the run).
Errors are never cached.

Entries are JSON files under ``$EVALKIT_CACHE_DIR/responses`` (default ``~/.cache/evalkit/responses``;
the judge keeps its verdicts beside them in ``judge/``),
``<key[:2]>/<key>.json``, written atomically. An unreadable entry is a miss. Entries hold the
response fields a ``CaseResult`` needs and no request headers, so never a key.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from evalkit.errors import UsageError
from evalkit.redact import Redactor
from evalkit.targets import TargetResponse

CACHE_ENV = "EVALKIT_CACHE_DIR"
CACHE_VERSION = 1
_FIELDS = ("route", "served_model", "content", "finish_reason", "prompt_tokens", "completion_tokens",
           "reasoning_tokens", "http_status", "latency_ms", "route_only", "ttft_ms")


def default_cache_dir() -> Path:
    """``$EVALKIT_CACHE_DIR/responses``, else ``~/.cache/evalkit/responses``."""
    value = os.environ.get(CACHE_ENV)
    root = Path(value).expanduser() if value else Path.home() / ".cache" / "evalkit"
    return root / "responses"


def cache_key(scope: dict[str, Any], messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of everything that identifies a response."""
    canonical = json.dumps({"v": CACHE_VERSION, "scope": scope, "messages": messages, "params": params},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """Responses on disk, keyed by ``cache_key``."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()
        where = f"{self.folder} (--cache; set {CACHE_ENV} to move it)"
        if self.folder.exists() and not self.folder.is_dir():
            raise UsageError("the response cache folder is a file", where=where,
                             fix=f"point {CACHE_ENV} at a folder, or remove that file")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the response cache folder: {exc.strerror}", where=where,
                             fix=f"point {CACHE_ENV} at a writable folder") from None
        if not os.access(self.folder, os.W_OK):
            raise UsageError("the response cache folder is not writable", where=where,
                             fix=f"point {CACHE_ENV} at a writable folder")
        self.hits = 0
        self.misses = 0

    def key(self, scope: dict[str, Any], messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        return cache_key(scope, messages, params)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> TargetResponse | None:
        path = self._path(key)
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
            if data.get("v") != CACHE_VERSION:
                raise ValueError("other cache version")
            response = TargetResponse(**{f: data[f] for f in _FIELDS}, headers={})
            # an entry written before its key was known to redaction (an older evalkit) is cleaned on the way out
            clean = Redactor()
            response.route, response.served_model, response.content = (
                clean.text(response.route), clean.text(response.served_model), clean.text(response.content))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            self.misses += 1
            return None
        self.hits += 1
        return response

    def put(self, key: str, response: TargetResponse) -> None:
        path = self._path(key)
        data = {"v": CACHE_VERSION, **{f: getattr(response, f) for f in _FIELDS}}
        try:
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # the cache only saves requests; a full disk must not fail the run
