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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from evalkit.errors import InputError, SuiteError, UsageError, short
from evalkit.gates import parse_gate
from evalkit.records import LABEL_SOURCES, Case
from evalkit.router_config import RouterConfig, load_router_config
from evalkit.safe_yaml import load_yaml
from evalkit.validation import (MAX_REPORTED, Problem, did_you_mean, invalid, json_line_problem, problems_from,
                                raise_problems)

SUITE_FILE = "suite.yaml"
SUITE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
CASE_FIELDS = ("id", "prompt", "messages", "expected_route", "reference", "session", "turn",
               "expected_model", "tags", "max_completion_tokens", "human", "label_source", "reviewed",
               "router_route", "labeler_route")
SUITE_KEYS = ("name", "description", "router", "cases", "columns", "defaults", "gates")
DEFAULT_KEYS = ("max_completion_tokens", "temperature")
MAX_PROMPT_CHARS = 100_000
# A CSV cell may be longer than a prompt (a messages list, a reference answer), but not unbounded:
# above this the reader stops with the file and line. (The csv module's default is 131,072.)
MAX_CSV_CELL_CHARS = 1_048_576
HUMAN_CRITERIA = ("correctness", "completeness")


class SuiteSpec(BaseModel):
    """The contents of ``suite.yaml``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    description: str = ""
    router: str = "router.json"
    cases: str = "cases.jsonl"
    columns: dict[str, str] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict)
    gates: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # The name becomes a folder of the run directory: no separators, no '..', no control characters.
        if not SUITE_NAME_RE.match(value):
            raise invalid("suite name must be letters, digits, '.', '_' or '-', starting with a letter or digit",
                          "rename it, e.g. name: saas-support")
        return value

    @field_validator("defaults")
    @classmethod
    def _defaults(cls, value: dict[str, Any]) -> dict[str, Any]:
        mct, temperature = value.get("max_completion_tokens"), value.get("temperature")
        if mct is not None and (isinstance(mct, bool) or not isinstance(mct, int) or mct < 1):
            raise invalid("max_completion_tokens must be a positive integer", "e.g. defaults: {max_completion_tokens: 512}",
                          got=mct, path="max_completion_tokens")
        if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                        or not 0 <= temperature <= 2):
            raise invalid("temperature must be a number between 0 and 2", "e.g. defaults: {temperature: 0}",
                          got=temperature, path="temperature")
        return value


_SPEC_KINDS: dict[str, tuple[str, str]] = {
    "name": ("a string", "add name: <suite name>, e.g. name: saas-support"),
    "description": ("a string", "write description as text"),
    "router": ("a file name", "e.g. router: router.json"),
    "cases": ("a file name", "e.g. cases: cases.jsonl (or .csv, .parquet, hf://<dataset>[:split])"),
    "columns": ("a mapping of case fields to your dataset's columns", "e.g. columns: {prompt: text, expected_route: label}"),
    "defaults": ("a mapping", f"defaults may set: {', '.join(DEFAULT_KEYS)}"),
    "gates": ("a list of gate expressions", "write gates like: - accuracy >= 0.90"),
}


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
    router_path: str | None = None  # the router config given instead of the suite's own (``--router``)

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
    spec, rpath, router = _spec_and_router(yaml_path, router_path)
    folder = yaml_path.parent
    cases_ref = spec.cases
    mismatch = _RouterNote(path=str(rpath), own=str(folder / spec.router) if router_path else None)
    cases = list(iter_cases(folder, cases_ref, router, columns=spec.columns, router_note=mismatch))
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
                 cases_path=_cases_where(folder, cases_ref), router_path=str(router_path) if router_path else None)


def _spec_and_router(yaml_path: Path, router_path: str | Path | None) -> tuple[SuiteSpec, Path, RouterConfig]:
    """suite.yaml and its router config, with every problem of suite.yaml at once: its keys, the
    router and cases files it names (missing, outside the folder), its gate expressions and the
    tasks its gates name (checked against the router config used, once that loads)."""
    spec, data, problems, place = _read_spec(yaml_path)
    folder = yaml_path.parent
    ref = spec.router if spec is not None else data.get("router", "router.json")
    cases_ref = data.get("cases")
    if isinstance(cases_ref, str) and cases_ref.strip() and not cases_ref.startswith("hf://"):
        problems.extend(_file_problems(folder, cases_ref, "cases", yaml_path, place))
    router: RouterConfig | None = None
    rpath: Path | None = None
    if router_path is None and isinstance(ref, str):
        missing = _file_problems(folder, ref, "router", yaml_path, place)
        problems.extend(missing)
        rpath = None if missing else folder / ref
    elif router_path:
        rpath = Path(router_path)
    try:
        router = load_router_config(rpath) if rpath is not None else None
    except InputError as exc:
        if not problems:
            raise  # the router config's own problems come once suite.yaml has none
        if rpath is not None and not rpath.is_file():  # --router names no file: one more problem
            problems.append(Problem(exc.where or str(rpath), f"{exc.what} (--router)", exc.got, exc.fix))
    problems.extend(_gate_problems(data.get("gates"), router.labels if router else None, place, router_path))
    if problems or spec is None or router is None or rpath is None:
        problems.sort(key=lambda p: int(p.where.rpartition(":")[2]) if p.where.rpartition(":")[2].isdigit() else 0)
        raise_problems(problems, SuiteError, source=str(yaml_path))
    return spec, rpath, router


def _file_problems(folder: Path, ref: str, key: str, yaml_path: Path,
                   place: Callable[[tuple[Any, ...]], str]) -> list[Problem]:
    """The problem of a file suite.yaml names under ``key`` (outside the suite folder, missing, a
    folder, or a case file of an unknown type), at the key's line; empty when it is fine."""
    try:
        path = _inside(folder, ref, key, yaml_path)
    except SuiteError as exc:
        return [Problem(place((key,)), exc.what, exc.got, exc.fix)]
    noun = "router config" if key == "router" else "case file"
    if not path.exists():
        fix = ("check the 'router' entry of suite.yaml: the DigitalOcean router create body (router.json) "
               "beside it" if key == "router" else
               "check the 'cases' entry of suite.yaml (a .jsonl, .csv or .parquet file beside it)")
        return [Problem(place((key,)), f"{noun} not found: {path}", f"{key}: {ref}", fix)]
    if path.is_dir():
        return [Problem(place((key,)), f"expected a {noun} file, got a folder: {path}", f"{key}: {ref}",
                        f"name the file inside the folder, e.g. {key}: {ref.rstrip('/')}/"
                        f"{'router.json' if key == 'router' else 'cases.jsonl'}")]
    if key == "cases" and path.suffix.lower() not in TABLE_SUFFIXES:
        return [Problem(place((key,)), f"unsupported case file type '{path.suffix.lower()}'", f"{key}: {ref}",
                        "use .jsonl, .csv, .parquet or hf://<dataset>[:split]")]
    return []


def _gate_problems(gates: Any, labels: list[str] | None, place: Callable[[tuple[Any, ...]], str],
                   router_path: str | Path | None) -> list[Problem]:
    """The problems of suite.yaml's gate expressions (each at its line): malformed, an unknown
    metric or (with the router config's ``labels``) a task it does not have, with the near name."""
    problems: list[Problem] = []
    for i, expr in enumerate(gates if isinstance(gates, list) else ()):
        if not isinstance(expr, str):
            continue  # the schema reports it
        try:
            gate = parse_gate(expr)
        except UsageError as exc:
            problems.append(Problem(place(("gates", i)), exc.what, exc.got, exc.fix))
            continue
        if labels is not None and gate.task is not None and gate.task not in labels:
            given = f" (the router config {router_path}, given instead of the suite's own)" if router_path else ""
            problems.append(Problem(place(("gates", i)),
                                    f"gate names unknown task '{gate.task}'{did_you_mean(gate.task, labels)}",
                                    repr(expr), f"the router's tasks{given} are: {', '.join(labels)}"))
    return problems


def _inside(folder: Path, ref: str, key: str, yaml_path: Path) -> Path:
    """``folder / ref``, refused unless it stays inside the suite folder once symlinks are followed.

    A suite is often somebody else's folder: a ``cases.csv`` linked to ``/etc/passwd``, or
    ``cases: ../../secrets.jsonl``, would send that file's lines to the router as prompts and
    print them in the report.
    """
    path = folder / ref
    base = folder.resolve()
    try:
        target = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        target = None
    if target is not None and (target == base or base in target.parents):
        return path
    link = " (a symbolic link)" if path.is_symlink() else ""
    raise SuiteError(f"the {key} file must be inside the suite folder {folder}", where=str(yaml_path),
                     got=f"{key}: {ref}{link} -> {target if target is not None else 'a symbolic link loop'}",
                     fix=f"copy the file into the suite folder and name it relative to suite.yaml "
                         f"(e.g. {key}: {Path(ref).name}); evalkit does not read files outside a suite")


def _cases_where(folder: Path, ref: str) -> str:
    return ref if ref.startswith("hf://") else str(folder / ref)


def _read_spec(path: Path) -> tuple[SuiteSpec | None, dict[str, Any], list[Problem], Callable[..., str]]:
    """suite.yaml: its spec (None when invalid), its mapping, the problems of its keys and a
    function placing a key path (``("gates", 1)``) at its line. Unreadable YAML raises at once."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SuiteError("suite file is not UTF-8 text", where=where, fix="save suite.yaml as UTF-8 YAML") from None
    if not text.strip():
        raise SuiteError("suite file is empty", where=where,
                         fix="write at least: name: my-suite, router: router.json, cases: cases.jsonl")
    try:
        data, node = load_yaml(text, error=SuiteError, where=where)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"{where}:{mark.line + 1}" if mark else where
        raise SuiteError(f"invalid YAML: {getattr(exc, 'problem', exc)}", where=loc,
                         fix="fix the YAML syntax at that line") from None
    if not isinstance(data, dict):
        raise SuiteError("suite.yaml must be a mapping of keys to values", where=where, got=short(data),
                         fix="write name:, router:, cases: ... as top-level keys")
    lines = _key_lines(node)

    def place(loc: tuple[Any, ...], path: str = "") -> str:
        line = lines.get(loc[:2]) or lines.get(loc[:1])
        return f"{where}:{line}" if line else where

    problems: list[Problem] = []
    spec: SuiteSpec | None = None
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as exc:
        problems = problems_from(exc, model=SuiteSpec, where=place, kinds=_SPEC_KINDS, fields_word="key")
    for key, allowed, fix in (
            ("columns", CASE_FIELDS, f"map case fields ({', '.join(CASE_FIELDS)}) to your dataset's columns: "
                                     "{prompt: text, expected_route: label}"),
            ("defaults", DEFAULT_KEYS, f"defaults may set: {', '.join(DEFAULT_KEYS)}")):
        mapping = data.get(key)
        for name in mapping if isinstance(mapping, dict) else ():
            if name not in allowed:
                kind = "columns maps unknown case field" if key == "columns" else "unknown default"
                problems.append(Problem(place((key, name)), f"{kind} '{name}'{did_you_mean(name, allowed)}", None, fix))
    return spec, data, problems, place


def _key_lines(node: Any) -> dict[tuple[Any, ...], int]:
    """Line numbers of suite.yaml's keys, two levels deep: ``{("columns", "prompt"): 5, ...}``."""
    lines: dict[tuple[Any, ...], int] = {}
    if not isinstance(node, yaml.MappingNode):
        return lines
    for k, v in node.value:
        if not isinstance(k, yaml.ScalarNode):  # a list or mapping as a key: no line to look up
            continue
        lines[(k.value,)] = k.start_mark.line + 1
        if isinstance(v, yaml.MappingNode):
            for k2, _ in v.value:
                if isinstance(k2, yaml.ScalarNode):
                    lines[(k.value, k2.value)] = k2.start_mark.line + 1
        elif isinstance(v, yaml.SequenceNode):
            for i, item in enumerate(v.value):
                lines[(k.value, i)] = item.start_mark.line + 1
    return lines


@dataclass(frozen=True)
class _RouterNote:
    """Which router config the cases are checked against, for the message when its tasks are not the suite's."""

    path: str
    own: str | None = None  # the suite's own router config, when another one was given instead


def iter_cases(folder: Path, ref: str, router: RouterConfig, *, columns: dict[str, str] | None = None,
               router_note: _RouterNote | None = None) -> Iterator[Case]:
    """Yield validated cases in file order; at the end, one SuiteError listing every problem found
    (up to 20 of them). A file that cannot be read on (invalid JSON, not UTF-8) stops there. When
    most cases expect a task the router config does not have, the error says the router config
    does not match the suite (one message, not a problem per case)."""
    validator = _CaseValidator(router, columns or {}, router_note)
    try:
        for where, row in _iter_rows(folder, ref):
            case = validator.validate(row, where)
            if case is not None:
                yield case
    except SuiteError as exc:
        if not validator.n_problems:
            raise
        validator.add(Problem(exc.where or ref, exc.what, exc.got, exc.fix))
    validator.finish(_cases_where(folder, ref))


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


def read_table(path: Path, *, on_bad_line: Callable[[int, str], None] | None = None,
               bad_line: Any = None) -> Iterator[tuple[tuple[str, int], Any]]:
    """Rows of a JSON Lines, CSV or Parquet file, each with its (file, line or row number).

    The one reader of row files: suites' cases and the request logs of ``suite from-traffic``.
    A JSON Lines line that cannot be read (not UTF-8, not JSON, nested too deeply) stops the
    reading with ``SuiteError``; with ``on_bad_line`` it is reported as ``on_bad_line(lineno,
    problem)`` and yielded as ``bad_line`` instead (a log's cut-off last line).
    """
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _jsonl_rows(path, on_bad_line, bad_line)
    elif suffix == ".csv":
        yield from _csv_rows(path)
    elif suffix == ".parquet":
        yield from _parquet_rows(path)
    else:
        raise SuiteError(f"unsupported file type '{suffix}'", where=str(path),
                         fix="use a .jsonl, .csv or .parquet file")


_BLANK: Any = object()  # a blank line of a JSON Lines file: skipped


def _json_line(raw: bytes, lineno: int) -> tuple[Any, tuple[str, str] | None]:
    """One JSON Lines line: (its value, None), (``_BLANK``, None), or (None, (problem, fix))."""
    try:
        # utf-8-sig on the first line: an editor's byte order mark is not part of the JSON
        line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError:
        return None, ("line is not UTF-8 text (binary file?)", "save the case file as UTF-8 JSON Lines")
    if not line.strip():
        return _BLANK, None
    try:
        return json.loads(line), None
    except json.JSONDecodeError as exc:
        return None, (f"invalid JSON: {json_line_problem(exc, lineno)}", "each line must be one complete JSON object")
    except RecursionError:
        return None, ("JSON nested too deeply", "each line must be one flat case object")


def _jsonl_rows(path: Path, on_bad_line: Callable[[int, str], None] | None,
                bad_line: Any) -> Iterator[tuple[tuple[str, int], Any]]:
    where = str(path)
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            row, problem = _json_line(raw, lineno)
            if row is _BLANK:
                continue
            if problem is not None:
                if on_bad_line is None:
                    raise SuiteError(problem[0], where=f"{where}:{lineno}", fix=problem[1])
                on_bad_line(lineno, problem[0])
                row = bad_line
            yield (where, lineno), row


def _csv_rows(path: Path) -> Iterator[tuple[tuple[str, int], Any]]:
    import csv

    where = str(path)
    line = 1
    previous_limit = csv.field_size_limit(MAX_CSV_CELL_CHARS)
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte order mark, which is not part of the header
        fh = path.open(newline="", encoding="utf-8-sig")
        with fh:
            reader = csv.DictReader(fh)
            for i, row in enumerate(reader, start=2):  # line 1 is the header
                line = reader.line_num
                if None in row:
                    raise SuiteError("row has more cells than the header", where=f"{where}:{i}",
                                     fix="quote cells that contain commas")
                try:
                    cells = {k: _csv_cell(k, v) for k, v in row.items() if v not in (None, "")}
                except RecursionError:
                    raise SuiteError("a JSON cell is nested too deeply", where=f"{where}:{i}",
                                     fix="write 'messages' as a flat JSON list of {role, content} objects and "
                                         "'tags' as a JSON list or comma-separated words") from None
                yield (where, i), cells
    except UnicodeDecodeError:
        raise SuiteError("CSV file is not UTF-8 text", where=where, fix="save the CSV as UTF-8") from None
    except csv.Error as exc:
        at = f"{where}:{line + 1}"  # the row after the last one read whole
        if "field larger than field limit" in str(exc):
            raise SuiteError(f"a CSV cell is over {MAX_CSV_CELL_CHARS:,} characters", where=at,
                             fix=f"prompts may hold up to {MAX_PROMPT_CHARS:,} characters: shorten the cell, "
                                 "or check for an unclosed quote that swallows the rest of the file") from None
        raise SuiteError(f"cannot read CSV: {exc}", where=at,
                         fix="check the quoting of long cells, or write JSON Lines instead") from None
    finally:
        csv.field_size_limit(previous_limit)


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


def _check_messages(messages: list[Any]) -> None:
    fix = "write [{\"role\": \"user\", \"content\": \"...\"}, ...] ending with a user message"
    if not messages:
        raise invalid("'messages' must be a non-empty list", fix)
    for j, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "developer", "tool"):
            raise invalid(f"messages[{j}] needs a role of system, user or assistant", fix, got=m, path=f"[{j}]")
    last = messages[-1]
    if last.get("role") != "user":
        raise invalid("the last message must be from the user (broken turn order)", fix, got=last.get("role"))
    content = last.get("content")
    if not (isinstance(content, str) and content.strip()) and not isinstance(content, list):
        raise invalid("empty prompt (last user message)", fix, got=content)


class _CaseIn(BaseModel):
    """One case row as written (after a columns mapping): the checks of a single row.

    Checks against the router's routes read ``labels`` from the validation context."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str
    prompt: str | None = None
    messages: list[Any] | None = None
    expected_route: str
    reference: str | None = None
    session: str | None = None
    turn: int | None = None
    expected_model: str | None = None
    tags: list[str] | None = None
    max_completion_tokens: int | None = None
    human: dict[str, Any] | None = None
    label_source: str | None = None
    reviewed: bool | None = None
    router_route: str | None = None
    labeler_route: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not value.strip():
            raise invalid("missing or empty 'id'", "give every case a unique string id")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str | None) -> str | None:
        if value is not None:
            if not value.strip():
                raise invalid("empty prompt", "write the user message, or remove the case")
            if len(value) > MAX_PROMPT_CHARS:
                raise invalid(f"prompt is {len(value):,} characters, over the {MAX_PROMPT_CHARS:,} limit",
                              "shorten the prompt; routers classify a short message, not a document", got=None)
        return value

    @field_validator("messages")
    @classmethod
    def _messages(cls, value: list[Any] | None) -> list[Any] | None:
        if value is not None:
            _check_messages(value)
        return value

    @field_validator("expected_route", "labeler_route")
    @classmethod
    def _route(cls, value: str | None, info: ValidationInfo) -> str | None:
        labels = (info.context or {}).get("labels", ())
        if value is not None and value not in labels:
            what = "unknown task" if info.field_name == "expected_route" else "labeler_route names unknown task"
            raise invalid(f"{what} '{value}'{did_you_mean(value, labels)}",
                          f"{info.field_name} must be one of: {', '.join(labels)}"
                          + (", or null" if info.field_name == "labeler_route" else ""), got=None)
        return value

    @field_validator("turn", "max_completion_tokens")
    @classmethod
    def _positive(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value < 1:
            fix = ("number the turns of a session 1, 2, 3, ..." if info.field_name == "turn"
                   else "e.g. \"max_completion_tokens\": 256")
            raise invalid(f"{info.field_name} must be a positive integer", fix)
        return value

    @field_validator("human")
    @classmethod
    def _human(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for key, grade in (value or {}).items():
            if key not in HUMAN_CRITERIA or isinstance(grade, bool) or not isinstance(grade, int) or not 1 <= grade <= 5:
                raise invalid(f"human grade {key}={grade!r} is not valid{did_you_mean(key, HUMAN_CRITERIA)}",
                              "write \"human\": {\"correctness\": 1-5, \"completeness\": 1-5}", got=None)
        return value

    @field_validator("label_source")
    @classmethod
    def _label_source(cls, value: str | None) -> str | None:
        if value is not None and value not in LABEL_SOURCES:
            raise invalid(f"unknown label_source{did_you_mean(value, LABEL_SOURCES)}",
                          f"label_source is one of: {', '.join(LABEL_SOURCES)}")
        return value

    @model_validator(mode="after")
    def _together(self) -> "_CaseIn":
        if self.prompt is None and self.messages is None:
            raise invalid("neither 'prompt' nor 'messages'", "add \"prompt\": \"...\" (or an OpenAI messages list)",
                          got=None)
        if self.prompt is not None and self.messages is not None:
            raise invalid("both 'prompt' and 'messages'", "keep one of them", got=None)
        if (self.session is None) != (self.turn is None):
            raise invalid("'session' and 'turn' go together", "give both (a multi-turn case) or neither", got=None)
        return self


class _CaseValidator:
    """Checks rows one at a time (``_CaseIn``), keeping what cross-row checks need and the problems."""

    def __init__(self, router: RouterConfig, columns: dict[str, str], router_note: _RouterNote | None = None) -> None:
        self.labels = router.labels
        self.task_names = router.task_names
        self.router_note = router_note
        self.routes: Counter[str] = Counter()  # the expected routes written in the cases
        self.unknown_routes: Counter[str] = Counter()  # those the router config does not have
        self.columns = columns
        self.reverse = {theirs: ours for ours, theirs in columns.items()}
        self.ids: dict[str, str] = {}
        self.turns: dict[str, tuple[int, str]] = {}
        self.problems: list[Problem] = []  # the first MAX_REPORTED
        self.n_problems = 0
        self.kinds: dict[str, tuple[str, str]] = {
            "id": ("a non-empty string", "give every case a unique string id"),
            "expected_route": ("a task name", f"set it to one of: {', '.join(self.labels)}"),
            "prompt": ("a string", "write the prompt as text"),
            "messages": ("a non-empty list", "write [{\"role\": \"user\", \"content\": \"...\"}, ...] "
                                             "ending with a user message"),
            "tags": ("a list of strings", "e.g. \"tags\": [\"ambiguous\"]"),
            "max_completion_tokens": ("a positive integer", "e.g. \"max_completion_tokens\": 256"),
            "turn": ("a positive integer", "number the turns of a session 1, 2, 3, ..."),
            "human": ("an object", "write \"human\": {\"correctness\": 1-5, \"completeness\": 1-5}"),
            "reviewed": ("true or false", "write \"reviewed\": true once a person has checked the label, else false"),
            "router_route": ("a task name", "write router_route as text (a task of the router config, or fallback), "
                                            "or null"),
            "labeler_route": ("a task name", "write labeler_route as text (a task of the router config, or fallback), "
                                             "or null"),
        }

    def add(self, problem: Problem) -> None:
        self.n_problems += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(problem)

    def validate(self, row: Any, where_t: tuple[str, int]) -> Case | None:
        """The row's case, or None when it has problems (kept for ``finish``)."""
        source, line = where_t
        where = f"{source}:{line}"
        if not isinstance(row, dict):
            self.add(Problem(where, "a case must be a JSON object", short(row),
                             "write {\"id\": ..., \"prompt\": ..., \"expected_route\": ...}"))
            return None
        data = self._mapped(row, where, line)
        if data is None:
            return None
        route = data.get("expected_route")
        if isinstance(route, str):
            self.routes[route] += 1
            if route not in self.labels:
                self.unknown_routes[route] += 1
        cid = data.get("id")
        label = f"case '{cid}': " if isinstance(cid, str) and cid.strip() else ""
        duplicate = self._check_id(cid, where)
        try:
            parsed = _CaseIn.model_validate(data, context={"labels": self.labels})
        except ValidationError as exc:
            for p in problems_from(exc, model=_CaseIn, where=lambda loc, path: where, kinds=self.kinds):
                self.add(Problem(p.where, label + p.what, p.got, p.fix))
            return None
        if duplicate or not self._check_turn(parsed, label, where):
            return None
        return Case(**{k: v for k, v in parsed.model_dump().items() if v is not None}, source=source, line=line)

    def _mapped(self, row: dict[str, Any], where: str, line: int) -> dict[str, Any] | None:
        """The row with a columns mapping applied, ids and sessions given as numbers made text, a
        single tag made a list."""
        if self.columns:
            data = {}
            for key, value in row.items():
                if key in self.reverse:
                    data[self.reverse[key]] = value
                elif key in CASE_FIELDS and key not in self.columns:
                    data[key] = value
            missing = [theirs for ours, theirs in self.columns.items()
                       if theirs not in row and ours in ("prompt", "expected_route")]
            for theirs in missing:
                self.add(Problem(where, f"column '{theirs}' (mapped to {self.reverse[theirs]}) is missing"
                                        f"{did_you_mean(theirs, [str(k) for k in row])}", None,
                                 "check the columns mapping in suite.yaml"))
            if missing:
                return None
            if data.get("id") is None and "id" not in self.columns:
                data["id"] = f"row-{line}"  # foreign datasets often have no id column: the row number is stable
        else:
            data = dict(row)
        for key in ("id", "session"):
            if isinstance(data.get(key), int) and not isinstance(data.get(key), bool):
                data[key] = str(data[key])
        if isinstance(data.get("tags"), str):
            data["tags"] = [data["tags"]]
        return data

    def _check_id(self, cid: Any, where: str) -> bool:
        """True when ``cid`` was seen before (a problem); remembers it otherwise."""
        if not isinstance(cid, str) or not cid.strip():
            return False
        if cid in self.ids:
            self.add(Problem(where, f"duplicate id '{cid}' (first at {self.ids[cid]})", None,
                             "ids must be unique within the suite"))
            return True
        self.ids[cid] = where
        return False

    def _check_turn(self, case: _CaseIn, label: str, where: str) -> bool:
        session, turn = case.session, case.turn
        if session is None or turn is None:
            return True
        prev = self.turns.get(session)
        expected = 1 if prev is None else prev[0] + 1
        if turn != expected:
            after = f" after turn {prev[0]} at {prev[1]}" if prev else ""
            self.add(Problem(where, f"{label}broken turn order in session '{session}': turn {turn}{after}", None,
                             f"this session's next case must be turn {expected}; "
                             "list the turns of a session in order, starting at 1"))
            return False
        self.turns[session] = (turn, where)
        return True

    def finish(self, source: str) -> None:
        """Raise every problem found (the first ``MAX_REPORTED`` and how many more), if any; or,
        when most cases expect tasks the router config lacks, and most of those names are not near
        one of its tasks (typos get their line and did-you-mean), the one problem behind them."""
        n_unknown = sum(self.unknown_routes.values())
        near = [r for r in self.unknown_routes if did_you_mean(r, self.labels)]  # typos of the router's tasks
        if (self.router_note is not None and n_unknown >= 2 and 2 * n_unknown > sum(self.routes.values())
                and 2 * len(near) < len(self.unknown_routes)):
            note = self.router_note
            fix = (f"use the suite's own router config ({note.own}) or a router config whose task names are the "
                   "suite's expected routes" if note.own else
                   f"make the task names of {note.path} the suite's expected routes, or relabel the cases")
            raise SuiteError(f"the router config's tasks do not match the suite's expected routes: {n_unknown} of "
                             f"{sum(self.routes.values())} cases expect a task that {note.path} does not have",
                             where=note.path, fix=fix,
                             got=f"router config tasks: {_some(self.task_names)}; "
                                 f"expected routes of {source}: {_some(list(self.routes))}")
        if self.n_problems:
            raise_problems(self.problems, SuiteError, source=source, total=self.n_problems)


def _some(names: list[str], limit: int = 8) -> str:
    """``a, b, c`` or ``a, b, ... (12 in all)``."""
    shown = ", ".join(names[:limit])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > limit else shown
