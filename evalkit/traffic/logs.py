"""Read a request log: one request per row, its prompt and the route the router returned.

Rows come from JSON Lines, CSV or Parquet (``suites.read_table``). Fields are named by dotted
paths into nested JSON (``request.messages``, ``response.headers.x-model-router-selected-route``;
``\\.`` for a dot inside a key, an integer for a list index); a CSV cell or a string holding
JSON is parsed on the way. Every text is scrubbed as it is read, so nothing downstream (the
deduplication, the embeddings, a labeler model, the files written) ever sees a raw value.

A line of a JSON Lines log that is not a JSON object (the cut-off last line of a rotated or
truncated log, a stray line of text) is left out and counted like the other rows left out, with
its line number; a file whose lines are mostly not JSON objects is not a JSON Lines log, an error.

Conversations stay whole. With a session field, the rows that share its value are the turns
of one conversation, in log order. Without one, a row whose history (its messages before the
last user message, less the assistant reply) equals an earlier row's messages continues that
row's conversation: the usual shape of a chat log, where every request carries the history.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.errors import SuiteError, UsageError
from evalkit.records import message_text
from evalkit.scrub import Scrubber
from evalkit.suites import MAX_PROMPT_CHARS, TABLE_SUFFIXES, read_table

ROLES = ("system", "developer", "user", "assistant", "tool")
MISSING: Any = object()
MALFORMED_LINES_KEPT = 10  # line numbers of malformed lines reported (the first ones)

# Why a row was left out (counted in the suite's README).
SKIP_REASONS = {
    "malformed": "a line that is not a JSON object (the cut-off line of a rotated or truncated log?)",
    "no_route": "no route in the route field (a failed request, or the router sent no route)",
    "no_prompt": "neither the messages nor the prompt field holds text",
    "bad_messages": "messages that are not an OpenAI messages list",
    "not_user_last": "the last message is not a user message (a tool result, an assistant prefill)",
    "too_long": f"a conversation over {MAX_PROMPT_CHARS:,} characters",
    "unknown_route": "a route that is not a task of the router config (with --skip-unknown-routes)",
}


@dataclass
class Request:
    """One usable row: scrubbed messages, the route that came back, and where it was."""

    line: int
    messages: list[dict[str, str]]
    route: str
    plain_prompt: bool          # the log had a plain prompt field, not a messages list
    session: str | None = None  # the session field's value, for grouping only (never written)

    @property
    def user_text(self) -> str:
        for m in reversed(self.messages):
            if m["role"] == "user":
                return m["content"]
        return ""


@dataclass
class Conversation:
    """The unit of sampling: one request, or the requests of one multi-turn conversation."""

    requests: list[Request]

    @property
    def size(self) -> int:
        return len(self.requests)

    @property
    def routes(self) -> list[str]:
        return [r.route for r in self.requests]

    def text(self) -> str:
        """What it says: the user turns, joined (for deduplication and embeddings)."""
        last = self.requests[-1].messages
        if len(self.requests) == 1:
            return "\n".join(m["content"] for m in last if m["role"] == "user")
        return "\n".join(r.user_text for r in self.requests)


@dataclass
class LogReadout:
    """What reading a log found: the conversations and the counts the README reports."""

    path: str
    conversations: list[Conversation]
    n_rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    scrubbed: Counter[str] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)      # usable requests per observed route
    unknown_routes: Counter[str] = field(default_factory=Counter)
    malformed_lines: list[int] = field(default_factory=list)  # the first MALFORMED_LINES_KEPT
    first_malformed: str = ""  # what is wrong with the first one

    def malformed(self, line: int, problem: str) -> None:
        """Count a line that is not a JSON object (left out, like the other skipped rows)."""
        self.skipped["malformed"] += 1
        if len(self.malformed_lines) < MALFORMED_LINES_KEPT:
            self.malformed_lines.append(line)
        self.first_malformed = self.first_malformed or problem

    @property
    def n_requests(self) -> int:
        return sum(c.size for c in self.conversations)


@dataclass
class LogFields:
    """Where a row keeps its prompt, route and session (dotted paths)."""

    route: str = "route"
    prompt: str | None = None
    messages: str | None = None
    session: str | None = None

    def prompt_paths(self) -> list[tuple[str, str]]:
        """(kind, path) to try in order: explicit fields, else ``messages`` then ``prompt``."""
        if self.messages is None and self.prompt is None:
            return [("messages", "messages"), ("prompt", "prompt")]
        out = []
        if self.messages is not None:
            out.append(("messages", self.messages))
        if self.prompt is not None:
            out.append(("prompt", self.prompt))
        return out


def split_path(path: str) -> list[str]:
    """``a.b\\.c.0`` -> ``['a', 'b.c', '0']``."""
    parts, current, i = [], [], 0
    while i < len(path):
        ch = path[i]
        if ch == "\\" and i + 1 < len(path) and path[i + 1] == ".":
            current.append(".")
            i += 2
            continue
        if ch == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def resolve(row: Any, path: str) -> Any:
    """The value at a dotted path, or ``MISSING`` (a flat column named like the path wins)."""
    if isinstance(row, dict) and path in row:
        return row[path]
    node = row
    for key in split_path(path):
        if isinstance(node, str) and node[:1] in ("{", "["):
            try:
                node = json.loads(node)
            except (ValueError, RecursionError):
                return MISSING
        if isinstance(node, dict):
            if key not in node:
                return MISSING
            node = node[key]
        elif isinstance(node, list) and key.lstrip("-").isdigit():
            index = int(key)
            if not -len(node) <= index < len(node):
                return MISSING
            node = node[index]
        else:
            return MISSING
    return node


def check_fields(fields: LogFields) -> None:
    for option, value in (("--route-field", fields.route), ("--prompt-field", fields.prompt),
                          ("--messages-field", fields.messages), ("--session-field", fields.session)):
        if value is not None and (not value.strip() or "" in split_path(value)):
            raise UsageError("a field path is a dotted path of non-empty keys", where=option, got=repr(value),
                             fix="e.g. --route-field response.headers.x-model-router-selected-route")


def read_log(path: str | Path, fields: LogFields, *, labels: list[str], scrubber: Scrubber,
             skip_unknown_routes: bool = False) -> LogReadout:
    """Read, scrub and group a log; raise when no row is usable or a route is not a task."""
    path = Path(path)
    check_fields(fields)
    if not path.is_file():
        raise UsageError("log file not found", where=str(path),
                         fix="give a JSON Lines, CSV or Parquet file of requests, one request per row")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise UsageError(f"unsupported log file type '{path.suffix}'", where=str(path),
                         fix="use a .jsonl, .csv or .parquet file")
    readout = LogReadout(path=str(path), conversations=[])
    grouper = _Grouper(by_session=fields.session is not None)
    first_row: Any = None
    rows = read_table(path, on_bad_line=readout.malformed, bad_line=MISSING)
    for (_, line), row in rows:
        readout.n_rows += 1
        if row is MISSING:  # a malformed line, counted by readout.malformed
            continue
        if not isinstance(row, dict):
            readout.malformed(line, f"line {line} is JSON but not an object (a {type(row).__name__})")
            continue
        if first_row is None:
            first_row = row
        request = _request(row, line, fields, scrubber, readout)
        if request is None:
            continue
        if request.route not in labels:
            readout.unknown_routes[request.route] += 1
            if skip_unknown_routes:
                readout.skipped["unknown_route"] += 1
                continue
        readout.routes[request.route] += 1
        grouper.add(request)
    readout.conversations = grouper.conversations()
    _check_readout(readout, fields, labels, first_row, skip_unknown_routes)
    return readout


def _check_readout(readout: LogReadout, fields: LogFields, labels: list[str], first_row: Any,
                   skip_unknown_routes: bool) -> None:
    where = readout.path
    if readout.n_rows == 0:
        raise SuiteError("the log has no rows", where=where, fix="give a log with one request per row")
    bad = readout.skipped["malformed"]
    if bad * 2 > readout.n_rows:  # not a rotated log's cut-off line: this is not JSON Lines
        raise SuiteError(f"{bad} of {readout.n_rows} lines are not a JSON object: this is not a JSON Lines log",
                         where=f"{where}:{readout.malformed_lines[0]}", got=readout.first_malformed,
                         fix="give a JSON Lines log (one JSON object per line, a request each), or a CSV or "
                             "Parquet file named .csv or .parquet")
    keys = ", ".join(sorted(first_row.keys())[:12]) if isinstance(first_row, dict) else type(first_row).__name__
    if readout.unknown_routes and not skip_unknown_routes:
        listed = ", ".join(f"{_printable(r)} ({n})" for r, n in readout.unknown_routes.most_common(8))
        raise SuiteError(f"{sum(readout.unknown_routes.values())} requests have a route that is not a task of the "
                         "router config", where=where, got=listed,
                         fix=f"pass the router config that served this traffic with --router (tasks: "
                             f"{', '.join(labels)}), or leave those requests out with --skip-unknown-routes")
    if readout.n_requests:
        return
    rows = readout.n_rows - bad  # the rows that are JSON objects
    if readout.skipped["no_route"] == rows:
        raise SuiteError(f"no row has a route at '{fields.route}'", where=where, got=f"first row's keys: {keys}",
                         fix="name the field that holds the route with --route-field (a dotted path, e.g. "
                             "response.headers.x-model-router-selected-route)")
    if readout.skipped["no_prompt"] + readout.skipped["no_route"] >= rows:
        tried = " or ".join(p for _, p in fields.prompt_paths())
        raise SuiteError(f"no row has a prompt at {tried}", where=where, got=f"first row's keys: {keys}",
                         fix="name the field with --messages-field (an OpenAI messages list) or --prompt-field "
                             "(plain text); dotted paths reach into nested JSON, e.g. request.messages")
    reasons = ", ".join(f"{SKIP_REASONS[k].split(' (')[0]}: {n}" for k, n in readout.skipped.items())
    raise SuiteError("no usable request in the log", where=where, got=reasons,
                     fix="check --messages-field / --prompt-field and --route-field")


def _printable(text: str, limit: int = 40) -> str:
    """A value from the log, safe for a terminal line (no control characters), shortened."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return repr(clean if len(clean) <= limit else clean[: limit - 1] + "…")


def _request(row: Any, line: int, fields: LogFields, scrubber: Scrubber, readout: LogReadout) -> Request | None:
    if not isinstance(row, dict):
        readout.skipped["no_prompt"] += 1
        return None
    route = resolve(row, fields.route)
    if isinstance(route, (int, float)) and not isinstance(route, bool):
        route = str(route)
    if not isinstance(route, str) or not route.strip():
        readout.skipped["no_route"] += 1
        return None
    route = route.strip()
    messages, plain, problem = None, False, "no_prompt"
    for kind, path in fields.prompt_paths():
        value = resolve(row, path)
        if value is MISSING or value is None or value == "":
            continue
        if kind == "prompt":
            if isinstance(value, str) and value.strip():
                messages, plain = [{"role": "user", "content": value}], True
                break
            continue
        messages, problem = _messages(value)
        if messages is not None:
            break
    if messages is None:
        readout.skipped[problem] += 1
        return None
    if sum(len(m["content"]) for m in messages) > MAX_PROMPT_CHARS:
        readout.skipped["too_long"] += 1
        return None
    for m in messages:
        result = scrubber.scrub(m["content"])
        m["content"] = result.text
        readout.scrubbed.update(result.counts)
    session = None
    if fields.session is not None:
        value = resolve(row, fields.session)
        if value is not MISSING and value is not None and str(value).strip():
            session = str(value)
    return Request(line=line, messages=messages, route=route, plain_prompt=plain, session=session)


def _messages(value: Any) -> tuple[list[dict[str, str]] | None, str]:
    """Normalised ``[{role, content}]`` (text only: tool calls, images and names are dropped)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None, "bad_messages"
    if not isinstance(value, list) or not value:
        return None, "bad_messages"
    out = []
    for m in value:
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return None, "bad_messages"
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            return None, "bad_messages"
        out.append({"role": m["role"], "content": message_text(m)})
    if out[-1]["role"] != "user":
        return None, "not_user_last"
    if not out[-1]["content"].strip():
        return None, "no_prompt"
    return out, ""


def _digest(messages: list[dict[str, str]]) -> str:
    payload = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class _Grouper:
    """Groups requests into conversations as they are read (see the module docstring)."""

    def __init__(self, *, by_session: bool) -> None:
        self.by_session = by_session
        self.items: list[Conversation] = []
        self.by_key: dict[str, Conversation] = {}      # session value -> conversation
        self.by_digest: dict[str, Conversation] = {}   # a tail request's messages -> its conversation

    def add(self, request: Request) -> None:
        if self.by_session:
            if request.session is None:
                self.items.append(Conversation([request]))
                return
            conv = self.by_key.get(request.session)
            if conv is None:
                conv = self.by_key[request.session] = Conversation([])
                self.items.append(conv)
            conv.requests.append(request)
            return
        history = list(request.messages[:-1])
        while history and history[-1]["role"] in ("assistant", "tool"):
            history.pop()
        conv = self.by_digest.pop(_digest(history), None) if history else None
        if conv is None:
            conv = Conversation([])
            self.items.append(conv)
        conv.requests.append(request)
        self.by_digest[_digest(request.messages)] = conv  # only the tail of a chain can be continued

    def conversations(self) -> list[Conversation]:
        return self.items

