"""The DigitalOcean router config (the create body): parse and validate into typed records.

Every rejection names the file and the JSON path of the offending field (``policies[1].models``),
what was found and how to fix it. Warnings about descriptions live in ``evalkit lint``.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from evalkit.errors import ConfigError, short
from evalkit.records import FALLBACK
from evalkit.validation import Problem, invalid, problems_from, raise_problems

NAME_RE = re.compile(r"^[a-z0-9-]+$")
MAX_NAME_LEN = 255  # DigitalOcean: a router name has at most 255 characters
MAX_POOL = 3
PREFER_VALUES = ("cheapest", "fastest")


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


_KINDS: dict[str, tuple[str, str]] = {
    "name": ("a string", "add \"name\": \"my-router\" (lowercase letters, digits and hyphens)"),
    "description": ("a string", "write the description as a JSON string: what prompts this task takes and what it outputs"),
    "policies": ("a non-empty list of policies",
                 "add \"policies\": [{\"custom_task\": {...}, \"models\": [...]}]: at least one policy "
                 "with custom_task (or task_slug) and models"),
    "fallback_models": ("a non-empty list of model slugs",
                        "add \"fallback_models\": [\"<model slug>\"]: the model(s) that serve prompts no task matches"),
    "models": ("a list of 1 to 3 model slugs", "give 1 to 3 model slugs, e.g. [\"openai-gpt-oss-20b\"]"),
    "custom_task": ("an object", "write {\"name\": ..., \"description\": ...}"),
    "selection_policy": ("{\"prefer\": ...}", "write {\"prefer\": \"cheapest\"} or {\"prefer\": \"fastest\"}, "
                                              "or leave it out for manual ranking"),
    "prefer": ("'cheapest' or 'fastest'",
               "use \"cheapest\" or \"fastest\", or remove selection_policy for manual ranking (list order)"),
    "task_slug": ("a non-empty string", "give a preset task slug"),
    "regions": ("a list of strings", "e.g. [\"tor1\"]"),
}


def _not_header_safe(value: str, what: str) -> tuple[str, str] | None:
    """What is wrong with ``value`` and an ASCII form of it when it has a character outside
    printable ASCII (else None).

    The router names the matched task in a response header (``x-model-router-selected-route``) and
    the local router the models it tried in another; HTTP header values are ASCII in practice (a
    Latin-1 byte is decoded differently by different clients, anything beyond it cannot be sent).
    """
    bad = sorted({c for c in value if not " " <= c <= "~"}, key=value.index)
    if not bad:
        return None
    shown = ", ".join(repr(c) if c.isprintable() else f"U+{ord(c):04X}" for c in bad[:5])
    ascii_form = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    near = "".join(c for c in ascii_form if " " <= c <= "~").strip()
    return (f"{what} has characters outside printable ASCII ({shown}): the router reports it in an HTTP "
            "response header, which carries ASCII only", near if near and len(near) * 2 > len(value) else "")


def _task_name_ascii(value: str, what: str) -> None:
    bad = _not_header_safe(value, what)
    if bad:
        raise invalid(bad[0], f"rename it with ASCII letters, digits, '-', '_' and spaces "
                              f"(e.g. \"{bad[1] or 'customer-qa'}\"), and use the new name as expected_route "
                              "in the suite's cases and in its gates")


def _model_list(models: list[str], *, limit: int | None) -> list[str]:
    if not models:
        raise invalid("the model list is empty", "give at least one model slug", got=models)
    if limit is not None and len(models) > limit:
        raise invalid(f"a model pool holds at most {limit} models, found {len(models)}",
                      f"keep the {limit} best models of this pool", got=models)
    for j, m in enumerate(models):
        if not m.strip():
            raise invalid("a model slug must be a non-empty string", "e.g. \"openai-gpt-oss-20b\"", got=m, path=f"[{j}]")
        bad = _not_header_safe(m, "model slug")
        if bad:
            raise invalid(bad[0], "give the model's slug as the provider lists it (ASCII, e.g. \"openai-gpt-oss-20b\")",
                          got=m, path=f"[{j}]")
    return models


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _CustomTaskIn(_Input):
    name: str
    description: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise invalid("task name is missing or empty", "give the task a name, e.g. \"classify\"")
        _task_name_ascii(value, "task name")
        return value

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        if not value.strip():
            raise invalid("task description is missing or empty",
                          "describe what prompts this task takes and what it outputs")
        return value


class _SelectionPolicyIn(_Input):
    prefer: Literal["cheapest", "fastest"]


class _PolicyIn(_Input):
    custom_task: _CustomTaskIn | None = None
    task_slug: str | None = None
    models: list[str]
    selection_policy: _SelectionPolicyIn | None = None

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str]) -> list[str]:
        return _model_list(value, limit=MAX_POOL)

    @field_validator("task_slug")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise invalid("task_slug must be a non-empty string", "give a preset task slug")
        if value is not None:
            _task_name_ascii(value, "task_slug")
        return value

    @model_validator(mode="after")
    def _one_task(self) -> "_PolicyIn":
        if self.custom_task is None and self.task_slug is None:
            raise invalid("policy has neither 'custom_task' nor 'task_slug'",
                          "add \"custom_task\": {\"name\": ..., \"description\": ...} or a preset \"task_slug\"", got=None)
        if self.custom_task is not None and self.task_slug is not None:
            raise invalid("policy has both 'custom_task' and 'task_slug'", "keep one of them", got=None)
        return self

    @property
    def task(self) -> Task:
        prefer = self.selection_policy.prefer if self.selection_policy else None
        if self.custom_task is not None:
            return Task(name=self.custom_task.name, description=self.custom_task.description,
                        models=list(self.models), prefer=prefer)
        slug = self.task_slug or ""
        return Task(name=slug, description=slug.replace("-", " ").replace("_", " "), models=list(self.models),
                    prefer=prefer, preset=True)


class _RouterIn(_Input):
    name: str
    description: str = ""
    policies: list[_PolicyIn]
    fallback_models: list[str]
    regions: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise invalid("router name must use only lowercase a-z, 0-9 and '-'",
                          "rename it, e.g. \"cost-governance-demo\"")
        if len(value) > MAX_NAME_LEN:
            raise invalid(f"router name is {len(value)} characters; DigitalOcean allows at most {MAX_NAME_LEN}",
                          "shorten the name")
        return value

    @field_validator("policies")
    @classmethod
    def _policies(cls, value: list[_PolicyIn]) -> list[_PolicyIn]:
        if not value:
            raise invalid("policies must be a non-empty list", _KINDS["policies"][1])
        return value

    @field_validator("fallback_models")
    @classmethod
    def _fallback(cls, value: list[str]) -> list[str]:
        return _model_list(value, limit=None)


def _task_name_problems(policies: list[_PolicyIn], source: str) -> list[Problem]:
    """Checks across policies: task names are unique and none is 'fallback'."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, policy in enumerate(policies):
        name = policy.task.name
        where = f"{source} at policies[{i}].{'custom_task.name' if policy.custom_task else 'task_slug'}"
        if name == FALLBACK:
            problems.append(Problem(where, "a task may not be named 'fallback': that name is reserved for the "
                                           "fallback route", short(name), "rename the task, e.g. 'general-fallback-task'"))
        elif name in seen:
            problems.append(Problem(where, f"duplicate task name '{name}' (also policies[{seen[name]}])", short(name),
                                    "give each task a unique name"))
        else:
            seen[name] = i
    return problems


def _validate(data: Any, source: str) -> RouterConfig:
    if not isinstance(data, dict):
        raise ConfigError("the router config must be a JSON object", where=f"{source} at $",
                          got=type(data).__name__, fix="wrap the config in {...} with name, policies and fallback_models")

    def where(loc: tuple[Any, ...], path: str) -> str:
        return f"{source} at {path}" if path else source

    try:
        parsed = _RouterIn.model_validate(data)
    except ValidationError as exc:
        raise_problems(problems_from(exc, model=_RouterIn, where=where, kinds=_KINDS), ConfigError, source=source)
    problems = _task_name_problems(parsed.policies, source)
    if problems:
        raise_problems(problems, ConfigError, source=source)
    return RouterConfig(name=parsed.name, description=parsed.description, tasks=[p.task for p in parsed.policies],
                        fallback_models=list(parsed.fallback_models), regions=parsed.regions, source=source)


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
