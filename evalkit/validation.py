"""Input validation through pydantic, reported as the project's ``InputError``: every problem at once.

Router configs, ``suite.yaml`` and case rows are checked by pydantic models (in
``router_config`` and ``suites``). Their validators raise ``invalid(...)`` with the project's
wording and fix; pydantic's own errors (a missing field, an unknown one, a wrong type) are
worded here. ``problems_from`` is the one translator from a ``ValidationError`` to
``Problem``s (where: file and line, or file and JSON path; what; what was found; the fix), and
``raise_problems`` turns the problems of one file into one error listing up to
``MAX_REPORTED`` of them, then "and N more". A near name gets "did you mean X?" (unknown fields
and keys, unknown task names).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, NoReturn

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from evalkit.errors import InputError, short

MAX_REPORTED = 20


@dataclass(frozen=True)
class Problem:
    """One problem of an input file."""

    where: str
    what: str
    got: str | None = None
    fix: str | None = None

    def error(self, cls: type[InputError]) -> InputError:
        return cls(self.what, where=self.where, got=self.got, fix=self.fix)


def invalid(what: str, fix: str | None = None, *, got: Any = ..., path: str | None = None) -> PydanticCustomError:
    """The error a validator raises: the project's message and fix, carried through pydantic.

    ``got`` replaces the input pydantic records; ``path`` (relative to where the validator sits)
    places the problem on a field the validator checked from its parent.
    """
    ctx: dict[str, Any] = {"what": what}
    if fix is not None:
        ctx["fix"] = fix
    if got is not ...:
        ctx["got"] = got
    if path is not None:
        ctx["path"] = path
    return PydanticCustomError("evalkit", "{what}", ctx)


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to ``word``, else an empty string."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def json_line_problem(exc: json.JSONDecodeError, lineno: int) -> str:
    """What is wrong with line ``lineno`` of a JSON Lines file, in words a user can act on.

    ``exc`` comes from ``json.loads`` of that one line (its newline included). Python's own message
    misleads here: the newline ending a line cut inside a string is an "invalid control character",
    and a line cut inside an object fails at "line 2 column 1" of the one-line document. A column
    is 1-based, in characters, of the character where parsing failed, and is given only when it
    points at something on the line.
    """
    doc, pos = exc.doc, exc.pos
    cut_short = f"line {lineno} ends before its JSON object does (cut short, or a newline inside a string?)"
    if exc.msg.startswith("Unterminated string"):
        return f"{cut_short}: the string opened at column {pos + 1} is never closed"
    if not doc[pos:].strip():  # failed on the line's end: nothing but the newline was left
        return cut_short
    if exc.msg.startswith("Invalid control character"):
        return (f"a raw control character (e.g. a tab or newline) inside a string at column {pos + 1} "
                f"(found: {doc[pos]!r}): escape it as \\t / \\n")
    if exc.msg.startswith("Extra data"):
        return f"more than one JSON value on line {lineno}: another starts at column {pos + 1} (one object a line)"
    return f"{exc.msg} at column {pos + 1}"


def json_path(loc: Iterable[Any]) -> str:
    """``('policies', 0, 'models')`` -> ``policies[0].models``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that holds the fields at ``loc`` (list indices and dict keys skipped)."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        if part not in current.model_fields:
            continue  # a key of a dict of models
        annotation = current.model_fields[part].annotation
        current = _inner_model(annotation, typing)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any, typing: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg, typing)
        if found is not None:
            return found
    return None


_TYPE_WORDS = {
    "string_type": "a string", "int_type": "an integer", "bool_type": "true or false",
    "list_type": "a list", "dict_type": "an object (a mapping of keys to values)",
    "model_type": "an object (a mapping of keys to values)", "model_attributes_type": "an object",
    "float_type": "a number", "int_from_float": "an integer",
}


def problems_from(exc: ValidationError, *, model: type[BaseModel], where: Callable[[tuple[Any, ...], str], str],
                  kinds: dict[str, tuple[str, str]] | None = None, fields_word: str = "field") -> list[Problem]:
    """The problems of one pydantic ``ValidationError``, worded for people.

    ``where(loc, path)`` places a problem in the file from pydantic's ``loc`` and its JSON path
    (``policies[0].models``): a line, or the path itself; ``kinds`` maps a field name to (what
    it must be, the fix), for type errors and missing values of that field; ``fields_word``
    names the fields ("field" in JSON, "key" in YAML).
    """
    kinds = kinds or {}
    problems: list[Problem] = []
    for e in exc.errors(include_url=False):
        loc = tuple(e["loc"])
        ctx = e.get("ctx") or {}
        field = next((str(p) for p in reversed(loc) if not isinstance(p, int)), str(loc[-1]) if loc else "")
        got: str | None = short(e.get("input"))
        if e["type"] == "evalkit":
            path = json_path(loc)
            if ctx.get("path"):
                extra = str(ctx["path"])
                path = f"{path}{extra}" if extra.startswith("[") or not path else f"{path}.{extra}"
            got_value = ctx.get("got", e.get("input"))
            problems.append(Problem(where(loc, path), ctx["what"], None if got_value is None else short(got_value),
                                    ctx.get("fix")))
            continue
        if e["type"] == "missing":
            fix = kinds[field][1] if field in kinds else f"add '{field}'"
            problems.append(Problem(where(loc, json_path(loc)), f"missing required {fields_word} '{field}'", None, fix))
            continue
        if e["type"] == "extra_forbidden":
            holder = _model_at(model, loc[:-1])
            allowed = sorted(holder.model_fields) if holder else []
            problems.append(Problem(where(loc, json_path(loc)), f"unknown {fields_word} '{field}'{did_you_mean(field, allowed)}",
                                    None, f"remove it, or use one of: {', '.join(allowed)}" if allowed else "remove it"))
            continue
        type_word = _TYPE_WORDS.get(e["type"])
        if loc and isinstance(loc[-1], int):
            what = f"each item of '{field}' must be {type_word or 'valid'}"
            fix = kinds[field][1] if field in kinds else f"write each item of {field} as {type_word or 'the docs show'}"
        elif field in kinds:
            what, fix = f"'{field}' must be {kinds[field][0]}", kinds[field][1]
        elif type_word:
            what, fix = f"'{field}' must be {type_word}", f"write {field} as {type_word}"
        else:
            message = str(e["msg"])
            message = message[len("Value error, "):] if message.startswith("Value error, ") else message
            what, fix = f"'{field}': {message[:1].lower()}{message[1:]}", "see the format in the docs"
        problems.append(Problem(where(loc, json_path(loc)), what, got, fix))
    return problems


def raise_problems(problems: list[Problem], cls: type[InputError], *, source: str, total: int | None = None) -> NoReturn:
    """One error for the problems of ``source``: the problem itself when there is one, else a list
    of the first ``MAX_REPORTED`` and how many more (``total``, when only the first were kept).
    The problems stay on ``error.problems``."""
    total = max(total or 0, len(problems))
    if total == 1:
        error = problems[0].error(cls)
    else:
        lines = []
        for p in problems[:MAX_REPORTED]:
            lines.append(f"- {p.where}: {p.what}")
            if p.got is not None:
                lines.append(f"    found: {p.got}")
            if p.fix:
                lines.append(f"    fix: {p.fix}")
        shown = len(problems[:MAX_REPORTED])
        if total > shown:
            lines.append(f"- and {total - shown} more")
        error = cls(f"{total} problems\n" + "\n".join(lines), where=source,
                    fix="fix each problem above, then run again")
    error.problems = list(problems)  # type: ignore[attr-defined]
    raise error
