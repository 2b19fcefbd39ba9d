"""The DigitalOcean router config (the create body): parse and validate into typed records.

Every rejection names the file and the JSON path of the offending field (``policies[1].models``),
what was found and how to fix it. Warnings about descriptions live in ``evalkit lint``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from evalkit.errors import ConfigError, short
from evalkit.records import FALLBACK

NAME_RE = re.compile(r"^[a-z0-9-]+$")
MAX_POOL = 3
PREFER_VALUES = ("cheapest", "fastest")
TOP_KEYS = {"name", "description", "policies", "fallback_models", "regions"}
POLICY_KEYS = {"custom_task", "task_slug", "models", "selection_policy"}
TASK_KEYS = {"name", "description"}


class Task(BaseModel):
    """One policy of the router: a task, its description and its model pool."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    models: list[str]
    prefer: Literal["cheapest", "fastest"] | None = None  # None: manual ranking (list order)
    preset: bool = False


class RouterConfig(BaseModel):
    """A parsed, validated router config."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    tasks: list[Task]
    fallback_models: list[str]
    regions: list[str] | None = None
    source: str | None = None

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def labels(self) -> list[str]:
        """Every route this router can report: its tasks, then ``fallback``."""
        return [*self.task_names, FALLBACK]

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_body(self) -> dict[str, Any]:
        """The DigitalOcean create body of this config."""
        policies = []
        for t in self.tasks:
            policy: dict[str, Any] = (
                {"task_slug": t.name} if t.preset
                else {"custom_task": {"name": t.name, "description": t.description}}
            )
            policy["models"] = list(t.models)
            if t.prefer:
                policy["selection_policy"] = {"prefer": t.prefer}
            policies.append(policy)
        body: dict[str, Any] = {"name": self.name, "description": self.description,
                                "policies": policies, "fallback_models": list(self.fallback_models)}
        if self.regions is not None:
            body["regions"] = list(self.regions)
        return body

    @property
    def hash(self) -> str:
        """A short content hash of the config (names, descriptions, pools, policies)."""
        canonical = json.dumps(self.to_body(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def load_router_config(path: str | Path) -> RouterConfig:
    """Read and validate a router config file."""
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise ConfigError("router config not found", where=where,
                          fix="give the path of a DigitalOcean router create body (router.json)")
    if path.is_dir():
        raise ConfigError("expected a router config file, got a folder", where=where,
                          fix="point at the router.json inside the folder")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("router config is not UTF-8 text (binary file?)", where=where,
                          fix="give a JSON file with the DigitalOcean router create body") from None
    return parse_router_config(text, source=where)


# Create-body fields the control plane fills in when a create body leaves them out (DigitalOcean
# answers ``regions: ["all"]``): a side of a diff that omits one takes the other side's value.
SERVER_DEFAULTED = ("regions",)


def _server_set(key: str) -> bool:
    """A field only the server sets: ids, uuids, timestamps, created/updated fields."""
    k = key.lower()
    return (k in ("id", "uuid") or k.endswith(("_id", "_uuid", "_at", "_time", "_by"))
            or k.startswith(("created", "updated", "deleted")))


def _drop_server_set(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_server_set(v) for k, v in value.items() if not _server_set(k)}
    if isinstance(value, list):
        return [_drop_server_set(v) for v in value]
    return value


def load_router_for_diff(path: str | Path) -> tuple[RouterConfig, frozenset[str]]:
    """A router config file as ``evalkit router diff`` reads it, and the create-body fields it omits.

    Takes a create body (``router get NAME --body``) or a router as the control plane shows it
    (``router get NAME --json``, with or without its ``model_router`` wrapper, the policies under
    ``config``). Fields only the server sets (ids, uuids, timestamps, created/updated fields) are
    dropped at every level; any other unknown field is still an error naming it.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return load_router_config(path), frozenset()  # raises the clear error of a plain load
    if isinstance(data, dict) and isinstance(data.get("model_router"), dict) and len(data) == 1:
        data = data["model_router"]
    if isinstance(data, dict):
        data = _drop_server_set(data)
        inner = data.get("config")
        if isinstance(inner, dict) and "policies" not in data:
            data = {k: v for k, v in data.items() if k != "config"}
            data.update({k: inner[k] for k in ("policies", "fallback_models") if k in inner})
        omitted = frozenset(k for k in SERVER_DEFAULTED if k not in data)
    else:
        omitted = frozenset()
    return parse_router_config(data, source=str(path)), omitted


def align_server_defaults(a: RouterConfig, a_omits: frozenset[str], b: RouterConfig,
                          b_omits: frozenset[str]) -> tuple[RouterConfig, RouterConfig, list[str]]:
    """``a`` and ``b`` with each server-defaulted field that one side omits taken from the other side.

    Returns the two configs and the fields so ignored (a router deployed from a file that omits
    ``regions`` comes back with ``regions: ["all"]``, which is no change).
    """
    ignored: list[str] = []
    for field in SERVER_DEFAULTED:
        if field in a_omits and field not in b_omits:
            a = a.model_copy(update={field: getattr(b, field)})
        elif field in b_omits and field not in a_omits:
            b = b.model_copy(update={field: getattr(a, field)})
        else:
            continue
        ignored.append(field)
    return a, b, ignored


def parse_router_config(text: str | dict[str, Any], *, source: str = "<router config>") -> RouterConfig:
    """Parse a create body given as JSON text or as an already-decoded dict."""
    if isinstance(text, str):
        if not text.strip():
            raise ConfigError("router config is empty", where=source,
                              fix="write the DigitalOcean create body: {\"name\": ..., \"policies\": [...], \"fallback_models\": [...]}")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"invalid JSON: {exc.msg}", where=f"{source}:{exc.lineno}:{exc.colno}",
                              fix="fix the JSON syntax at that line and column") from None
        except RecursionError:
            raise ConfigError("JSON nested too deeply to be a router config", where=source,
                              fix="write the DigitalOcean create body: a few levels of objects and lists") from None
    else:
        data = text
    return _validate(data, source)


def _err(source: str, path: str, what: str, got: Any = None, fix: str | None = None,
         has_got: bool = True) -> ConfigError:
    return ConfigError(what, where=f"{source} at {path}" if path else source,
                       got=short(got) if has_got and got is not None else None, fix=fix)


def _validate(data: Any, source: str) -> RouterConfig:
    if not isinstance(data, dict):
        raise _err(source, "$", "the router config must be a JSON object", type(data).__name__,
                   "wrap the config in {...} with name, policies and fallback_models")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise _err(source, unknown[0], f"unknown field '{unknown[0]}'", None,
                   f"remove it; the create body has {', '.join(sorted(TOP_KEYS))}", has_got=False)
    if "name" not in data:
        raise _err(source, "name", "missing required field 'name'", None,
                   "add \"name\": \"my-router\" (lowercase letters, digits and hyphens)")
    name = data["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise _err(source, "name", "router name must use only lowercase a-z, 0-9 and '-'", name,
                   "rename it, e.g. \"cost-governance-demo\"")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _err(source, "description", "description must be a string", description,
                   "write the description as a JSON string")
    if "policies" not in data:
        raise _err(source, "policies", "missing required field 'policies'", None,
                   "add \"policies\": [{\"custom_task\": {...}, \"models\": [...]}]")
    policies = data["policies"]
    if not isinstance(policies, list) or not policies:
        raise _err(source, "policies", "policies must be a non-empty list", policies,
                   "give at least one policy with custom_task (or task_slug) and models")
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for i, policy in enumerate(policies):
        task = _policy(policy, f"policies[{i}]", source)
        if task.name == FALLBACK:
            raise _err(source, f"policies[{i}].custom_task.name",
                       "a task may not be named 'fallback': that name is reserved for the fallback route",
                       task.name, "rename the task, e.g. 'general-fallback-task'")
        if task.name in seen:
            raise _err(source, f"policies[{i}].custom_task.name",
                       f"duplicate task name '{task.name}' (also policies[{seen[task.name]}])", task.name,
                       "give each task a unique name")
        seen[task.name] = i
        tasks.append(task)
    if "fallback_models" not in data:
        raise _err(source, "fallback_models", "missing required field 'fallback_models'", None,
                   "add \"fallback_models\": [\"<model slug>\"]: the model(s) that serve prompts no task matches")
    fallback = data["fallback_models"]
    _models(fallback, "fallback_models", source, limit=None)
    regions = data.get("regions")
    if regions is not None and (not isinstance(regions, list) or not all(isinstance(r, str) for r in regions)):
        raise _err(source, "regions", "regions must be a list of strings", regions, "e.g. [\"tor1\"]")
    return RouterConfig(name=name, description=description, tasks=tasks, fallback_models=list(fallback),
                        regions=regions, source=source)


def _policy(policy: Any, path: str, source: str) -> Task:
    if not isinstance(policy, dict):
        raise _err(source, path, "a policy must be a JSON object", policy,
                   "write {\"custom_task\": {\"name\": ..., \"description\": ...}, \"models\": [...]}")
    unknown = sorted(set(policy) - POLICY_KEYS)
    if unknown:
        raise _err(source, f"{path}.{unknown[0]}", f"unknown field '{unknown[0]}'", None,
                   f"a policy has {', '.join(sorted(POLICY_KEYS))}", has_got=False)
    custom, slug = policy.get("custom_task"), policy.get("task_slug")
    if custom is None and slug is None:
        raise _err(source, path, "policy has neither 'custom_task' nor 'task_slug'", None,
                   "add \"custom_task\": {\"name\": ..., \"description\": ...} or a preset \"task_slug\"")
    if custom is not None and slug is not None:
        raise _err(source, path, "policy has both 'custom_task' and 'task_slug'", None, "keep one of them")
    preset = False
    if custom is not None:
        if not isinstance(custom, dict):
            raise _err(source, f"{path}.custom_task", "custom_task must be an object", custom,
                       "write {\"name\": ..., \"description\": ...}")
        unknown = sorted(set(custom) - TASK_KEYS)
        if unknown:
            raise _err(source, f"{path}.custom_task.{unknown[0]}", f"unknown field '{unknown[0]}'", None,
                       "custom_task has name and description", has_got=False)
        name = custom.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _err(source, f"{path}.custom_task.name", "task name is missing or empty", name,
                       "give the task a name, e.g. \"classify\"")
        desc = custom.get("description")
        if not isinstance(desc, str) or not desc.strip():
            raise _err(source, f"{path}.custom_task.description", "task description is missing or empty", desc,
                       "describe what prompts this task takes and what it outputs")
    else:
        if not isinstance(slug, str) or not slug.strip():
            raise _err(source, f"{path}.task_slug", "task_slug must be a non-empty string", slug,
                       "give a preset task slug")
        name, desc, preset = slug, slug.replace("-", " ").replace("_", " "), True
    if "models" not in policy:
        raise _err(source, f"{path}.models", "missing required field 'models'", None,
                   "give 1 to 3 model slugs, e.g. [\"openai-gpt-oss-20b\"]")
    models = policy["models"]
    _models(models, f"{path}.models", source, limit=MAX_POOL)
    prefer = None
    if "selection_policy" in policy and policy["selection_policy"] is not None:
        sp = policy["selection_policy"]
        if not isinstance(sp, dict) or set(sp) - {"prefer"}:
            raise _err(source, f"{path}.selection_policy", "selection_policy must be {\"prefer\": ...}", sp,
                       "write {\"prefer\": \"cheapest\"} or {\"prefer\": \"fastest\"}, or leave it out for manual ranking")
        prefer = sp.get("prefer")
        if prefer not in PREFER_VALUES:
            raise _err(source, f"{path}.selection_policy.prefer", "prefer must be 'cheapest' or 'fastest'", prefer,
                       "use \"cheapest\" or \"fastest\", or remove selection_policy for manual ranking (list order)")
    return Task(name=name, description=desc, models=list(models), prefer=prefer, preset=preset)


def _models(models: Any, path: str, source: str, *, limit: int | None) -> None:
    if not isinstance(models, list):
        raise _err(source, path, "must be a list of model slugs", models, "e.g. [\"llama3.3-70b-instruct\"]")
    if not models:
        raise _err(source, path, "the model list is empty", models, "give at least one model slug")
    if limit is not None and len(models) > limit:
        raise _err(source, path, f"a model pool holds at most {limit} models, found {len(models)}", models,
                   f"keep the {limit} best models of this pool")
    for j, m in enumerate(models):
        if not isinstance(m, str) or not m.strip():
            raise _err(source, f"{path}[{j}]", "a model slug must be a non-empty string", m,
                       "e.g. \"openai-gpt-oss-20b\"")


def _text_diff(a: str, b: str) -> list[dict[str, str]]:
    """Word-level diff of two descriptions as ``[{op: equal|insert|delete, text}]`` segments."""
    import difflib

    wa, wb = a.split(), b.split()
    segments: list[dict[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=wa, b=wb, autojunk=False).get_opcodes():
        if tag == "equal":
            segments.append({"op": "equal", "text": " ".join(wa[i1:i2])})
            continue
        if tag in ("delete", "replace"):
            segments.append({"op": "delete", "text": " ".join(wa[i1:i2])})
        if tag in ("insert", "replace"):
            segments.append({"op": "insert", "text": " ".join(wb[j1:j2])})
    return segments


def _pool_change(a: list[str], b: list[str]) -> dict[str, Any]:
    return {"a": list(a), "b": list(b), "added": [m for m in b if m not in a],
            "removed": [m for m in a if m not in b],
            "reordered": [m for m in a if m in b] != [m for m in b if m in a]}


def diff_configs(a: RouterConfig, b: RouterConfig) -> dict[str, Any]:
    """What changed from router config ``a`` to ``b`` (pure).

    Returns ``{"changed": bool, "a_hash", "b_hash", "name", "description", "regions", "tasks_added",
    "tasks_removed", "task_order", "tasks": [{task, description, models, prefer}],
    "fallback_models"}``: each field that changed holds ``{"a": ..., "b": ...}`` (descriptions also a
    word-level ``diff``; pools their ``added``/``removed`` models), and is ``None`` when unchanged.
    """
    out: dict[str, Any] = {"a_hash": a.hash, "b_hash": b.hash, "changed": a.hash != b.hash}
    out["name"] = {"a": a.name, "b": b.name} if a.name != b.name else None
    out["description"] = ({"a": a.description, "b": b.description} if a.description != b.description else None)
    out["regions"] = {"a": a.regions, "b": b.regions} if a.regions != b.regions else None
    names_a, names_b = a.task_names, b.task_names
    out["tasks_added"] = [{"task": t.name, "description": t.description, "models": list(t.models), "prefer": t.prefer}
                          for t in b.tasks if t.name not in names_a]
    out["tasks_removed"] = [{"task": t.name, "description": t.description, "models": list(t.models), "prefer": t.prefer}
                            for t in a.tasks if t.name not in names_b]
    common_a = [n for n in names_a if n in names_b]
    common_b = [n for n in names_b if n in names_a]
    out["task_order"] = {"a": names_a, "b": names_b} if common_a != common_b else None
    changed_tasks = []
    for name in common_a:
        ta, tb = a.task(name), b.task(name)
        entry: dict[str, Any] = {"task": name, "description": None, "models": None, "prefer": None}
        if ta.description != tb.description:
            entry["description"] = {"a": ta.description, "b": tb.description,
                                    "diff": _text_diff(ta.description, tb.description)}
        if ta.models != tb.models:
            entry["models"] = _pool_change(ta.models, tb.models)
        if ta.prefer != tb.prefer:
            entry["prefer"] = {"a": ta.prefer or "manual ranking", "b": tb.prefer or "manual ranking"}
        if any(entry[k] is not None for k in ("description", "models", "prefer")):
            changed_tasks.append(entry)
    out["tasks"] = changed_tasks
    out["fallback_models"] = (_pool_change(a.fallback_models, b.fallback_models)
                              if a.fallback_models != b.fallback_models else None)
    return out
