"""Load suites: ``suite.yaml`` plus cases from JSONL, CSV, Parquet or a Hugging Face dataset.

A suite folder holds ``suite.yaml``, the router config it names and the case file. Every
problem is reported with the file, the line (or row) and the fix. A ``columns`` mapping in
``suite.yaml`` renames a foreign dataset's columns to case fields (``{prompt: text,
expected_route: label}``); with a mapping, columns that are neither mapped nor case fields are
ignored, because foreign datasets carry extra columns, and a case without an id gets
``row-<n>`` (its line or row number). Without a mapping, unknown fields are errors.
``hf://<dataset>[:split]`` loads with the ``datasets`` library (a hub name or a local folder;
offline runs need it in the local cache).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml
from pydantic import BaseModel, ConfigDict, Field

from evalkit.errors import SuiteError, short
from evalkit.records import LABEL_SOURCES, Case
from evalkit.router_config import RouterConfig, load_router_config

SUITE_FILE = "suite.yaml"
SUITE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
CASE_FIELDS = ("id", "prompt", "messages", "expected_route", "reference", "session", "turn",
               "expected_model", "tags", "max_completion_tokens", "human", "label_source", "reviewed",
               "router_route", "labeler_route")
SUITE_KEYS = ("name", "description", "router", "cases", "columns", "defaults", "gates")
DEFAULT_KEYS = ("max_completion_tokens", "temperature")
MAX_PROMPT_CHARS = 100_000
HUMAN_CRITERIA = ("correctness", "completeness")


class SuiteSpec(BaseModel):
    """The contents of ``suite.yaml``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    router: str = "router.json"
    cases: str = "cases.jsonl"
    columns: dict[str, str] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict)
    gates: list[str] = Field(default_factory=list)


@dataclass
class Suite:
    """A loaded suite: its spec, its router config and its cases."""

    spec: SuiteSpec
    folder: Path
    router: RouterConfig
    cases: list[Case]
    hash: str
    cases_path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name


def suite_file(path: str | Path) -> Path:
    """The ``suite.yaml`` of a suite folder (or the file itself)."""
    path = Path(path)
    if not path.exists():
        raise SuiteError("suite not found", where=str(path),
                         fix="give a suite folder that holds suite.yaml, e.g. suites/saas-support")
    if path.is_dir():
        candidate = path / SUITE_FILE
        if not candidate.exists():
            raise SuiteError(f"no {SUITE_FILE} in this folder", where=str(path),
                             fix=f"create {candidate} with name, router and cases (see README: Suite format)")
        return candidate
    return path


def load_suite(path: str | Path, *, router_path: str | Path | None = None) -> Suite:
    """Load and validate a suite; ``router_path`` replaces the router config it names."""
    yaml_path = suite_file(path)
    spec = _load_spec(yaml_path)
    folder = yaml_path.parent
    rpath = Path(router_path) if router_path else folder / spec.router
    router = load_router_config(rpath)
    cases_ref = spec.cases
    cases = list(iter_cases(folder, cases_ref, router, columns=spec.columns))
    if not cases:
        raise SuiteError("the suite has no cases", where=_cases_where(folder, cases_ref),
                         fix="add at least one case: {\"id\": ..., \"prompt\": ..., \"expected_route\": ...}")
    digest = hashlib.sha256()
    digest.update(yaml_path.read_bytes())
    digest.update(rpath.read_bytes())
    cpath = folder / cases_ref
    if not cases_ref.startswith("hf://") and cpath.exists():
        digest.update(cpath.read_bytes())
    else:
        digest.update(cases_ref.encode())
    return Suite(spec=spec, folder=folder, router=router, cases=cases, hash=digest.hexdigest()[:12],
                 cases_path=_cases_where(folder, cases_ref))


def _cases_where(folder: Path, ref: str) -> str:
    return ref if ref.startswith("hf://") else str(folder / ref)


def _load_spec(path: Path) -> SuiteSpec:
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SuiteError("suite file is not UTF-8 text", where=where, fix="save suite.yaml as UTF-8 YAML") from None
    if not text.strip():
        raise SuiteError("suite file is empty", where=where,
                         fix="write at least: name: my-suite, router: router.json, cases: cases.jsonl")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except RecursionError:
        raise SuiteError("YAML nested too deeply", where=where,
                         fix="suite.yaml holds a few top-level keys: name, router, cases, ...") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"{where}:{mark.line + 1}" if mark else where
        raise SuiteError(f"invalid YAML: {getattr(exc, 'problem', exc)}", where=loc,
                         fix="fix the YAML syntax at that line") from None
    if not isinstance(data, dict):
        raise SuiteError("suite.yaml must be a mapping of keys to values", where=where, got=short(data),
                         fix="write name:, router:, cases: ... as top-level keys")
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value} if isinstance(node, yaml.MappingNode) else {}
    for key in data:
        if key not in SUITE_KEYS:
            raise SuiteError(f"unknown key '{key}'", where=f"{where}:{lines.get(key, '?')}",
                             fix=f"suite.yaml keys are: {', '.join(SUITE_KEYS)}")
    if "name" not in data:
        raise SuiteError("missing key 'name'", where=where, fix="add name: <suite name>")
    name = data["name"]
    if isinstance(name, str) and not SUITE_NAME_RE.match(name):
        # The name becomes a folder of the run directory: no separators, no '..', no control characters.
        raise SuiteError("suite name must be letters, digits, '.', '_' or '-', starting with a letter or digit",
                         where=f"{where}:{lines.get('name', '?')}", got=short(name),
                         fix="rename it, e.g. name: saas-support")
    for key, kind in (("name", str), ("description", str), ("router", str), ("cases", str),
                      ("columns", dict), ("defaults", dict), ("gates", list)):
        if key in data and not isinstance(data[key], kind):
            raise SuiteError(f"'{key}' must be a {kind.__name__}", where=f"{where}:{lines.get(key, '?')}",
                             got=short(data[key]), fix=f"write {key} as a {kind.__name__}")
    for their in (data.get("columns") or {}):
        if their not in CASE_FIELDS:
            raise SuiteError(f"columns maps unknown case field '{their}'", where=f"{where}:{lines.get('columns', '?')}",
                             fix=f"map case fields ({', '.join(CASE_FIELDS)}) to your dataset's columns: "
                                 "{prompt: text, expected_route: label}")
    for key in (data.get("defaults") or {}):
        if key not in DEFAULT_KEYS:
            raise SuiteError(f"unknown default '{key}'", where=f"{where}:{lines.get('defaults', '?')}",
                             fix=f"defaults may set: {', '.join(DEFAULT_KEYS)}")
    for gate in data.get("gates") or []:
        if not isinstance(gate, str):
            raise SuiteError("each gate must be a string expression", where=f"{where}:{lines.get('gates', '?')}",
                             got=short(gate), fix="write gates like: - accuracy >= 0.90")
    return SuiteSpec(**data)


def iter_cases(folder: Path, ref: str, router: RouterConfig, *, columns: dict[str, str] | None = None
               ) -> Iterator[Case]:
    """Yield validated cases in file order."""
    validator = _CaseValidator(router, columns or {})
    for where, row in _iter_rows(folder, ref):
        yield validator.validate(row, where)
    validator.finish()


def _iter_rows(folder: Path, ref: str) -> Iterator[tuple[tuple[str, int], Any]]:
    if ref.startswith("hf://"):
        yield from _hf_rows(ref)
        return
    path = folder / ref
    where = str(path)
    if not path.exists():
        raise SuiteError("case file not found", where=where,
                         fix="check the 'cases' entry of suite.yaml (a .jsonl, .csv or .parquet file beside it)")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise SuiteError(f"unsupported case file type '{path.suffix.lower()}'", where=where,
                         fix="use .jsonl, .csv, .parquet or hf://<dataset>[:split]")
    yield from read_table(path)


TABLE_SUFFIXES = (".jsonl", ".ndjson", ".csv", ".parquet")


def read_table(path: Path) -> Iterator[tuple[tuple[str, int], Any]]:
    """Rows of a JSON Lines, CSV or Parquet file, each with its (file, line or row number).

    The one reader of row files: suites' cases and the request logs of ``suite from-traffic``.
    """
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _jsonl_rows(path)
    elif suffix == ".csv":
        yield from _csv_rows(path)
    elif suffix == ".parquet":
        yield from _parquet_rows(path)
    else:
        raise SuiteError(f"unsupported file type '{suffix}'", where=str(path),
                         fix="use a .jsonl, .csv or .parquet file")


def _jsonl_rows(path: Path) -> Iterator[tuple[tuple[str, int], Any]]:
    where = str(path)
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise SuiteError("line is not UTF-8 text (binary file?)", where=f"{where}:{lineno}",
                                 fix="save the case file as UTF-8 JSON Lines") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SuiteError(f"invalid JSON: {exc.msg} (column {exc.colno})", where=f"{where}:{lineno}",
                                 fix="each line must be one complete JSON object") from None
            except RecursionError:
                raise SuiteError("JSON nested too deeply", where=f"{where}:{lineno}",
                                 fix="each line must be one flat case object") from None
            yield (where, lineno), row


def _csv_rows(path: Path) -> Iterator[tuple[tuple[str, int], Any]]:
    import csv

    where = str(path)
    try:
        fh = path.open(newline="", encoding="utf-8")
        with fh:
            reader = csv.DictReader(fh)
            for i, row in enumerate(reader, start=2):  # line 1 is the header
                if None in row:
                    raise SuiteError("row has more cells than the header", where=f"{where}:{i}",
                                     fix="quote cells that contain commas")
                yield (where, i), {k: _csv_cell(k, v) for k, v in row.items() if v not in (None, "")}
    except UnicodeDecodeError:
        raise SuiteError("CSV file is not UTF-8 text", where=where, fix="save the CSV as UTF-8") from None
    except csv.Error as exc:
        raise SuiteError(f"cannot read CSV: {exc}", where=where,
                         fix="check the quoting of long cells, or write JSON Lines instead") from None


def _csv_cell(key: str, value: str) -> Any:
    if key in ("tags",):
        value = value.strip()
        if value.startswith("["):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value
        return [t.strip() for t in value.replace(";", ",").split(",") if t.strip()]
    if key in ("messages", "human"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if key == "reviewed":
        lowered = value.strip().lower()
        return {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}.get(lowered, value)
    if key in ("turn", "max_completion_tokens"):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def _parquet_rows(path: Path) -> Iterator[tuple[tuple[str, int], Any]]:
    import pyarrow.parquet as pq

    where = str(path)
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise SuiteError(f"cannot read Parquet file: {exc}", where=where,
                         fix="write the cases with pandas.DataFrame.to_parquet or use JSONL") from None
    row_no = 0
    for batch in pf.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            row_no += 1
            yield (where, row_no), {k: v for k, v in row.items() if not _is_null(v)}


def _hf_rows(ref: str) -> Iterator[tuple[tuple[str, int], Any]]:
    spec = ref[len("hf://"):]
    name, _, split = spec.partition(":")
    try:
        import datasets  # heavy: imported only for hf:// suites
    except ImportError:
        raise SuiteError("hf:// case sources need the 'datasets' package", where=ref,
                         fix="pip install 'datasets>=2.18' (the hf extra of evalkit)") from None
    try:
        ds = datasets.load_dataset(name, split=split or "test")
    except Exception as exc:
        raise SuiteError(f"cannot load dataset: {exc}", where=ref,
                         fix="check the dataset name and split; offline runs need it in the local cache") from None
    for i, row in enumerate(ds, start=1):
        yield (ref, i), {k: v for k, v in row.items() if not _is_null(v)}


def _is_null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


class _CaseValidator:
    """Checks rows one at a time, keeping just what cross-row checks need."""

    def __init__(self, router: RouterConfig, columns: dict[str, str]) -> None:
        self.labels = router.labels
        self.columns = columns
        self.reverse = {theirs: ours for ours, theirs in columns.items()}
        self.ids: dict[str, str] = {}
        self.turns: dict[str, tuple[int, str]] = {}

    def validate(self, row: Any, where_t: tuple[str, int]) -> Case:
        source, line = where_t
        where = f"{source}:{line}"
        if not isinstance(row, dict):
            raise SuiteError("a case must be a JSON object", where=where, got=short(row),
                             fix="write {\"id\": ..., \"prompt\": ..., \"expected_route\": ...}")
        if self.columns:
            data = {}
            for key, value in row.items():
                if key in self.reverse:
                    data[self.reverse[key]] = value
                elif key in CASE_FIELDS and key not in self.columns:
                    data[key] = value
            for ours, theirs in self.columns.items():
                if theirs not in row and ours in ("prompt", "expected_route"):
                    raise SuiteError(f"column '{theirs}' (mapped to {ours}) is missing", where=where,
                                     fix="check the columns mapping in suite.yaml")
        else:
            data = dict(row)
            for key in data:
                if key not in CASE_FIELDS:
                    raise SuiteError(f"unknown field '{key}'", where=where,
                                     fix=f"case fields are: {', '.join(CASE_FIELDS)} "
                                         "(for a foreign dataset, add a columns mapping to suite.yaml)")
        cid = data.get("id")
        if cid is None and self.columns and "id" not in self.columns:
            cid = f"row-{line}"  # foreign datasets often have no id column: the row number is stable
        if isinstance(cid, int) and not isinstance(cid, bool):
            cid = str(cid)
        if not isinstance(cid, str) or not cid.strip():
            raise SuiteError("missing or empty 'id'", where=where, got=short(data.get("id")),
                             fix="give every case a unique string id")
        data["id"] = cid
        if cid in self.ids:
            raise SuiteError(f"duplicate id '{cid}' (first at {self.ids[cid]})", where=where,
                             fix="ids must be unique within the suite")
        self.ids[cid] = where
        prompt, messages = data.get("prompt"), data.get("messages")
        if prompt is None and messages is None:
            raise SuiteError(f"case '{cid}' has neither 'prompt' nor 'messages'", where=where,
                             fix="add \"prompt\": \"...\" (or an OpenAI messages list)")
        if prompt is not None and messages is not None:
            raise SuiteError(f"case '{cid}' has both 'prompt' and 'messages'", where=where, fix="keep one of them")
        if prompt is not None:
            if not isinstance(prompt, str):
                raise SuiteError(f"case '{cid}': 'prompt' must be a string", where=where, got=short(prompt),
                                 fix="write the prompt as text")
            if not prompt.strip():
                raise SuiteError(f"case '{cid}' has an empty prompt", where=where,
                                 fix="write the user message, or remove the case")
            if len(prompt) > MAX_PROMPT_CHARS:
                raise SuiteError(f"case '{cid}': prompt is {len(prompt):,} characters, over the "
                                 f"{MAX_PROMPT_CHARS:,} limit", where=where,
                                 fix="shorten the prompt; routers classify a short message, not a document")
        else:
            self._check_messages(messages, cid, where)
        route = data.get("expected_route")
        if route is None:
            raise SuiteError(f"case '{cid}' has no 'expected_route'", where=where,
                             fix=f"set it to one of: {', '.join(self.labels)}")
        if route not in self.labels:
            raise SuiteError(f"case '{cid}': unknown task '{route}'", where=where,
                             fix=f"expected_route must be one of: {', '.join(self.labels)}")
        tags = data.get("tags")
        if tags is not None:
            if isinstance(tags, str):
                tags = [tags]
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise SuiteError(f"case '{cid}': 'tags' must be a list of strings", where=where, got=short(tags),
                                 fix="e.g. \"tags\": [\"ambiguous\"]")
            data["tags"] = list(tags)
        for key in ("reference", "expected_model", "session"):
            if key in data and data[key] is not None and not isinstance(data[key], str):
                if key == "session" and isinstance(data[key], int):
                    data[key] = str(data[key])
                else:
                    raise SuiteError(f"case '{cid}': '{key}' must be a string", where=where,
                                     got=short(data[key]), fix=f"write {key} as text")
        mct = data.get("max_completion_tokens")
        if mct is not None and (not isinstance(mct, int) or isinstance(mct, bool) or mct < 1):
            raise SuiteError(f"case '{cid}': max_completion_tokens must be a positive integer", where=where,
                             got=short(mct), fix="e.g. \"max_completion_tokens\": 256")
        self._check_human(data.get("human"), cid, where)
        self._check_labels(data, cid, where)
        self._check_turn(data, cid, where)
        return Case(**data, source=source, line=line)

    def _check_messages(self, messages: Any, cid: str, where: str) -> None:
        fix = "write [{\"role\": \"user\", \"content\": \"...\"}, ...] ending with a user message"
        if not isinstance(messages, list) or not messages:
            raise SuiteError(f"case '{cid}': 'messages' must be a non-empty list", where=where,
                             got=short(messages), fix=fix)
        for j, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "developer", "tool"):
                raise SuiteError(f"case '{cid}': messages[{j}] needs a role of system, user or assistant",
                                 where=where, got=short(m), fix=fix)
        last = messages[-1]
        if last.get("role") != "user":
            raise SuiteError(f"case '{cid}': the last message must be from the user (broken turn order)",
                             where=where, got=short(last.get("role")), fix=fix)
        content = last.get("content")
        if not (isinstance(content, str) and content.strip()) and not isinstance(content, list):
            raise SuiteError(f"case '{cid}' has an empty prompt (last user message)", where=where, fix=fix)

    def _check_human(self, human: Any, cid: str, where: str) -> None:
        if human is None:
            return
        fix = "write \"human\": {\"correctness\": 1-5, \"completeness\": 1-5}"
        if not isinstance(human, dict):
            raise SuiteError(f"case '{cid}': 'human' must be an object", where=where, got=short(human), fix=fix)
        for key, value in human.items():
            if key not in HUMAN_CRITERIA or not isinstance(value, int) or not 1 <= value <= 5:
                raise SuiteError(f"case '{cid}': human grade {key}={value!r} is not valid", where=where, fix=fix)

    def _check_labels(self, data: dict[str, Any], cid: str, where: str) -> None:
        """The pre-label fields of suites built from traffic (``evalkit suite from-traffic``)."""
        source = data.get("label_source")
        if source is not None and source not in LABEL_SOURCES:
            raise SuiteError(f"case '{cid}': unknown label_source", where=where, got=short(source),
                             fix=f"label_source is one of: {', '.join(LABEL_SOURCES)}")
        reviewed = data.get("reviewed")
        if reviewed is not None and not isinstance(reviewed, bool):
            raise SuiteError(f"case '{cid}': 'reviewed' must be true or false", where=where, got=short(reviewed),
                             fix="write \"reviewed\": true once a person has checked the label, else false")
        for key in ("router_route", "labeler_route"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise SuiteError(f"case '{cid}': '{key}' must be a task name", where=where, got=short(value),
                                 fix=f"write {key} as text (a task of the router config, or fallback), or null")
        labeler = data.get("labeler_route")
        if labeler is not None and labeler not in self.labels:
            raise SuiteError(f"case '{cid}': labeler_route names unknown task '{labeler}'", where=where,
                             fix=f"labeler_route must be one of: {', '.join(self.labels)}, or null")

    def _check_turn(self, data: dict[str, Any], cid: str, where: str) -> None:
        session, turn = data.get("session"), data.get("turn")
        if turn is not None and (not isinstance(turn, int) or isinstance(turn, bool) or turn < 1):
            raise SuiteError(f"case '{cid}': 'turn' must be a positive integer", where=where, got=short(turn),
                             fix="number the turns of a session 1, 2, 3, ...")
        if (session is None) != (turn is None):
            raise SuiteError(f"case '{cid}': 'session' and 'turn' go together", where=where,
                             fix="give both (a multi-turn case) or neither")
        if session is None:
            return
        prev = self.turns.get(session)
        expected = 1 if prev is None else prev[0] + 1
        if turn != expected:
            after = f" after turn {prev[0]} at {prev[1]}" if prev else ""
            raise SuiteError(f"case '{cid}': broken turn order in session '{session}': turn {turn}{after}",
                             where=where, fix=f"this session's next case must be turn {expected}; "
                                              "list the turns of a session in order, starting at 1")
        self.turns[session] = (turn, where)

    def finish(self) -> None:
        """Cross-row checks that need the whole file (none beyond the running ones yet)."""
