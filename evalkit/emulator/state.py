"""The router store of the local router's control plane: routers by uuid, persisted in a state folder.

Each stored router keeps the DigitalOcean create body it was made from (so it can be shown
back exactly), its uuid and timestamps. With a state folder every change is written to
``<state-dir>/routers.json`` (write to a temporary file, then rename, so a crash never leaves
half a file) and read back on the next start. Without one the store lives in memory only.
"""

from __future__ import annotations

import builtins
import json
import os
import threading
import uuid as uuidlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evalkit.errors import ConfigError, InputError
from evalkit.router_config import RouterConfig, parse_router_config

STATE_FILE = "routers.json"
STATE_SCHEMA_VERSION = 1


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class StoredRouter:
    """One router of the control plane."""

    uuid: str
    config: RouterConfig
    body: dict[str, Any]
    created_at: str
    updated_at: str

    def to_api(self) -> dict[str, Any]:
        """The router as DigitalOcean shows it (the value of ``model_router``)."""
        return {
            "uuid": self.uuid,
            "name": self.config.name,
            "description": self.config.description,
            # DO: regions is deprecated; routers are deployed to all regions.
            "regions": list(self.config.regions) if self.config.regions else ["all"],
            "config": {"policies": self.body.get("policies", []),
                       "fallback_models": list(self.config.fallback_models)},
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def to_state(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "created_at": self.created_at, "updated_at": self.updated_at,
                "body": self.body}


class DuplicateName(InputError):
    """A router with this name already exists."""

    def __init__(self, name: str) -> None:
        super().__init__("a model router of this name already exists", where=f"name '{name}'",
                         fix="choose another name, or update or delete the existing router")


class RouterStore:
    """Thread-safe routers by uuid, with a name index; persisted when ``state_dir`` is given."""

    def __init__(self, state_dir: str | Path | None = None) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._lock = threading.RLock()
        self._routers: dict[str, StoredRouter] = {}
        if self.state_dir is not None:
            self._load()

    # -- reading ---------------------------------------------------------------------------
    def list(self) -> list[StoredRouter]:
        with self._lock:
            return list(self._routers.values())  # creation order (kept across restarts)

    def get(self, uuid: str) -> StoredRouter | None:
        with self._lock:
            return self._routers.get(uuid)

    def by_name(self, name: str) -> StoredRouter | None:
        with self._lock:
            for r in self._routers.values():
                if r.config.name == name:
                    return r
            return None

    def configs(self) -> builtins.list[RouterConfig]:  # `list` is a method of this class
        return [r.config for r in self.list()]

    # -- writing ---------------------------------------------------------------------------
    def create(self, body: dict[str, Any], *, source: str = "request body") -> StoredRouter:
        """Validate ``body`` (a DO create body) and store it; raises ConfigError or DuplicateName."""
        config = parse_router_config(body, source=source)
        with self._lock:
            if self.by_name(config.name) is not None:
                raise DuplicateName(config.name)
            now = _now()
            stored = StoredRouter(str(uuidlib.uuid4()), config, _canonical_body(body, config), now, now)
            self._routers[stored.uuid] = stored
            self._save()
            return stored

    def update(self, uuid: str, body: dict[str, Any], *, source: str = "request body") -> StoredRouter | None:
        """Replace the fields given in ``body``, keep the others; None when the uuid is unknown."""
        with self._lock:
            old = self._routers.get(uuid)
            if old is None:
                return None
            merged = {**old.body, **body}
            config = parse_router_config(merged, source=source)
            other = self.by_name(config.name)
            if other is not None and other.uuid != uuid:
                raise DuplicateName(config.name)
            stored = StoredRouter(uuid, config, _canonical_body(merged, config), old.created_at, _now())
            self._routers[uuid] = stored
            self._save()
            return stored

    def delete(self, uuid: str) -> StoredRouter | None:
        with self._lock:
            stored = self._routers.pop(uuid, None)
            if stored is not None:
                self._save()
            return stored

    def put_config(self, config: RouterConfig) -> StoredRouter:
        """Create or replace (by name) a router read from a file on the command line."""
        body = config.to_body()
        with self._lock:
            existing = self.by_name(config.name)
            if existing is None:
                return self.create(body, source=config.source or "router config")
            if existing.config.hash == config.hash:
                return existing
            return self.update(existing.uuid, body, source=config.source or "router config")  # type: ignore[return-value]

    # -- persistence -----------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        return self.state_dir / STATE_FILE if self.state_dir is not None else None

    def _load(self) -> None:
        assert self.state_dir is not None
        path = self.state_dir / STATE_FILE
        if self.state_dir.exists() and not self.state_dir.is_dir():
            raise ConfigError("the state folder is a file", where=str(self.state_dir),
                              fix="give --state-dir a folder (it is created when missing)")
        if not path.exists():
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"the router state file is not valid JSON: {exc}", where=str(path),
                              fix="restore it from a backup, or move it away to start with no routers") from None
        if not isinstance(data, dict) or not isinstance(data.get("model_routers"), list):
            raise ConfigError("the router state file has no 'model_routers' list", where=str(path),
                              fix="move it away to start with no routers")
        for i, entry in enumerate(data["model_routers"]):
            where = f"{path} at model_routers[{i}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("body"), dict) or not entry.get("uuid"):
                raise ConfigError("a stored router needs uuid and body", where=where,
                                  fix="remove the entry or move the file away")
            config = parse_router_config(entry["body"], source=where)
            self._routers[str(entry["uuid"])] = StoredRouter(
                str(entry["uuid"]), config, entry["body"], str(entry.get("created_at") or _now()),
                str(entry.get("updated_at") or entry.get("created_at") or _now()))

    def _save(self) -> None:
        if self.state_dir is None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / STATE_FILE
        payload = {"schema_version": STATE_SCHEMA_VERSION,
                   "model_routers": [r.to_state() for r in self.list()]}
        tmp = path.with_suffix(".json.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def _canonical_body(body: dict[str, Any], config: RouterConfig) -> dict[str, Any]:
    """The body as stored: the client's policies verbatim, other fields from the parsed config."""
    out: dict[str, Any] = {"name": config.name, "description": config.description,
                           "policies": body.get("policies", []), "fallback_models": list(config.fallback_models)}
    if config.regions is not None:
        out["regions"] = list(config.regions)
    return json.loads(json.dumps(out))
