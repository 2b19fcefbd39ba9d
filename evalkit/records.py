"""Typed records that flow through the pipeline.

``Case`` is read from a user's suite (unknown fields are rejected before it is built);
``CaseResult`` is one line of ``results.jsonl``; ``Manifest`` is ``manifest.json``.
Persisted records carry the schema version of the run directory (``evalkit.SCHEMA_VERSION``).

``Document`` is the base of every JSON document of a run directory that is read back
(``manifest.json``, ``summary.json`` and its sections, ``diff.json``): the same model writes the
file and reads it, so a figure cannot drift between its writer and its readers.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evalkit.redact import safe_url

FALLBACK = "fallback"
MISSING = "(missing)"
# Error codes of the embedded local router when its route classifier failed (model unreachable,
# or an answer naming no task): such a case is an error, never a route.
CLASSIFIER_ERROR_CODES = ("classifier_failed", "classifier_bad_answer")

# The most tokens one request can report (prompt, completion or reasoning): a router reporting more,
# or a negative or non-finite count, has its case made an error (``BAD_USAGE``) by the target.
MAX_USAGE_TOKENS = 1_000_000_000
BAD_USAGE = "bad_usage"

Status = Literal["ok", "missing_route", "error"]
# Where a case's expected_route came from: the route the router returned in traffic, a labeler
# model's proposal, or a person (see docs/suites-from-traffic.md).
LABEL_SOURCES = ("router", "labeler", "human")
LabelSource = Literal["router", "labeler", "human"]


class Document(BaseModel):
    """A persisted JSON document, or a section of one, read and written by this one model.

    Keys it does not declare are kept (a document written by a newer evalkit of the same schema
    version may carry more figures) and written back unchanged. It also reads like the mapping it
    is stored as (``summary["per_task"]["reasoning"]["recall"]``, ``.get(key)``, ``key in``), so
    code written against the JSON files keeps working; evalkit's own code reads the attributes.
    ``to_json`` writes the keys the document was read or built with: build one in code with every
    field given (as the analysis does), so that the file has every key.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @classmethod
    def coerce(cls, value: Any) -> Any:
        """``value`` as this model: itself when it already is one, else validated from its JSON mapping."""
        return value if isinstance(value, cls) else cls.model_validate(value)

    def _field_for(self, key: str) -> str | None:
        for name, info in type(self).model_fields.items():
            if key == (info.alias or name):
                return name
        return key if key in (self.__pydantic_extra__ or {}) else None

    def __getitem__(self, key: str) -> Any:
        name = self._field_for(key)
        if name is None:
            raise KeyError(key)
        return getattr(self, name)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._field_for(key) is not None

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key`` (the JSON name), or ``default``."""
        return self[key] if key in self else default

    def to_json(self) -> dict[str, Any]:
        """The document as it is written to disk: JSON names, only the keys it was given or built with."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Case(BaseModel):
    """One labelled prompt (or one turn of a conversation) of a suite."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    expected_route: str
    reference: str | None = None
    session: str | None = None
    turn: int | None = None
    expected_model: str | None = None
    tags: list[str] = Field(default_factory=list)
    max_completion_tokens: int | None = None
    human: dict[str, int] | None = None
    label_source: LabelSource | None = None
    reviewed: bool | None = None          # False: a pre-label nobody has confirmed yet
    router_route: str | None = None       # the route the router returned for this prompt in traffic
    labeler_route: str | None = None      # a labeler model's proposal (null: it gave none)
    # Where the case came from, for error messages and reports; not a user field.
    source: str | None = Field(default=None, exclude=True)
    line: int | None = Field(default=None, exclude=True)

    @property
    def user_text(self) -> str:
        """The last user message: what a semantic router classifies."""
        if self.prompt is not None:
            return self.prompt
        for message in reversed(self.messages or []):
            if message.get("role") == "user":
                return message_text(message)
        return ""

    def own_messages(self) -> list[dict[str, Any]]:
        """This case's messages, without any session history."""
        if self.messages is not None:
            return [dict(m) for m in self.messages]
        return [{"role": "user", "content": self.prompt or ""}]


def message_text(message: dict[str, Any]) -> str:
    """Text of an OpenAI message whose content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


class CaseResult(BaseModel):
    """One line of ``results.jsonl``: what happened to one case."""

    model_config = ConfigDict(extra="ignore")

    id: str
    expected_route: str
    route: str | None = None
    served_model: str | None = None
    status: Status
    error: str | None = None
    error_code: str | None = None  # the router's error code, e.g. classifier_bad_answer (local router)
    http_status: int | None = None
    attempts: int = 1
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    content: str | None = None
    finish_reason: str | None = None
    route_only: bool = False
    cached: bool = False  # answered from the response cache (--cache); attempts is then 0
    # A missing_route answer: the names (never the values) of the headers that came back, bounded.
    header_names: list[str] | None = None
    session: str | None = None
    turn: int | None = None
    tags: list[str] = Field(default_factory=list)
    expected_model: str | None = None
    prompt: str = ""
    reference: str | None = None
    human: dict[str, int] | None = None
    label_source: str | None = None
    reviewed: bool | None = None

    # Hostile or damaged numbers (a results.jsonl written before usage was checked, or edited):
    # a measure that is not a finite, non-negative number, or a token count out of range, reads as
    # unknown, so no figure built from it is NaN, infinite or negative.
    @field_validator("latency_ms", "ttft_ms", "cost_usd", mode="before")
    @classmethod
    def _finite_measure(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) and number >= 0 else None

    @field_validator("prompt_tokens", "completion_tokens", "reasoning_tokens", mode="before")
    @classmethod
    def _token_count(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            return None
        return int(value) if 0 <= value <= MAX_USAGE_TOKENS else None

    @property
    def scored(self) -> bool:
        """Errors are not misroutes: only non-error cases count toward accuracy."""
        return self.status != "error"

    @property
    def route_label(self) -> str:
        """The confusion-matrix column of this result."""
        return self.route if self.route is not None else MISSING

    @property
    def correct(self) -> bool:
        return self.scored and self.route == self.expected_route


class TargetInfo(Document):
    """What was measured (never a key)."""

    model_config = ConfigDict(extra="ignore")

    kind: str
    base_url: str
    model: str
    route_header: str
    router_name: str | None = None
    classifier: str | None = None
    threshold: float | None = None
    note: str | None = None

    @field_validator("base_url")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        """A URL is recorded without user info and with its query values masked (``redact.safe_url``)."""
        return safe_url(value) or value


class SuiteInfo(Document):
    name: str
    path: str
    hash: str
    n_cases: int


class RouterInfo(Document):
    name: str
    hash: str
    tasks: list[str]
    descriptions: dict[str, str] = Field(default_factory=dict)


class JudgeInfo(Document):
    """The manifest's ``judge`` block: how the run was judged (never a key), or why it was not.

    ``status``: ``done`` (``judge.jsonl`` holds the verdicts), ``skipped`` (asked for without a
    key: ``reason`` and ``fix`` say so).
    """

    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    samples: int = 1
    pairwise: bool = False
    prompt_version: str | None = None
    temperature: float | None = None
    status: str | None = None
    reason: str | None = None
    fix: str | None = None
    judged_at: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    calls: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None

    @field_validator("base_url")
    @classmethod
    def _no_credentials(cls, value: str | None) -> str | None:
        return safe_url(value)


class Manifest(Document):
    """``manifest.json`` of a run directory."""

    schema_version: int
    evalkit_version: str
    run_id: str
    suite: SuiteInfo
    router: RouterInfo
    target: TargetInfo
    judge: JudgeInfo | None = None
    started_at: str
    finished_at: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    stopped: str | None = None  # why the run stopped before every case had a result (error budget)
