"""Typed records that flow through the pipeline.

``Case`` is read from a user's suite (unknown fields are rejected before it is built);
``CaseResult`` is one line of ``results.jsonl``; ``Manifest`` is ``manifest.json``.
Persisted records carry the schema version of the run directory (``evalkit.SCHEMA_VERSION``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FALLBACK = "fallback"
MISSING = "(missing)"
# Error codes of the embedded local router when its route classifier failed (model unreachable,
# or an answer naming no task): such a case is an error, never a route.
CLASSIFIER_ERROR_CODES = ("classifier_failed", "classifier_bad_answer")

Status = Literal["ok", "missing_route", "error"]
# Where a case's expected_route came from: the route the router returned in traffic, a labeler
# model's proposal, or a person (see docs/suites-from-traffic.md).
LABEL_SOURCES = ("router", "labeler", "human")
LabelSource = Literal["router", "labeler", "human"]


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
    session: str | None = None
    turn: int | None = None
    tags: list[str] = Field(default_factory=list)
    expected_model: str | None = None
    prompt: str = ""
    reference: str | None = None
    human: dict[str, int] | None = None
    label_source: str | None = None
    reviewed: bool | None = None

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


class TargetInfo(BaseModel):
    """What was measured (never a key)."""

    kind: str
    base_url: str
    model: str
    route_header: str
    router_name: str | None = None
    classifier: str | None = None
    threshold: float | None = None
    note: str | None = None


class SuiteInfo(BaseModel):
    name: str
    path: str
    hash: str
    n_cases: int


class RouterInfo(BaseModel):
    name: str
    hash: str
    tasks: list[str]
    descriptions: dict[str, str] = Field(default_factory=dict)


class Manifest(BaseModel):
    """``manifest.json`` of a run directory."""

    model_config = ConfigDict(extra="allow")

    schema_version: int
    evalkit_version: str
    run_id: str
    suite: SuiteInfo
    router: RouterInfo
    target: TargetInfo
    judge: dict[str, Any] | None = None
    started_at: str
    finished_at: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    stopped: str | None = None  # why the run stopped before every case had a result (error budget)
