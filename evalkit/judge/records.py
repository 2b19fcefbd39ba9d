"""The judge's persisted records: one line of ``judge.jsonl`` (and ``baseline_judge.jsonl``), and
one line of ``pairwise.jsonl``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

JudgeStatus = Literal["scored", "unscored", "error", "no_answer"]
"""scored: a score 1 to 5. unscored: the judge replied but no valid last verdict (never a number).
error: every judge call failed. no_answer: the model spent its whole token budget
(``content`` null, ``finish_reason`` ``length``); shown and counted, never scored."""

NO_ANSWER = ("no answer: token budget exhausted (content null, finish_reason length); "
             "raise max_completion_tokens for this case or in the suite's defaults")


class JudgeRecord(BaseModel):
    """One case and one criterion."""

    model_config = ConfigDict(extra="ignore")

    id: str
    criterion: str
    score: float | None = None
    status: JudgeStatus
    rationale: str = ""
    problem: str | None = None
    judge_model: str
    prompt_version: str
    samples: list[int | None] = Field(default_factory=list)
    agreement: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    n_cached: int = 0


PairWinner = Literal["router", "baseline", "tie"]


class PairRecord(BaseModel):
    """One pairwise comparison of the router's answer and the baseline's, judged in both orders.

    ``orders`` holds the raw choice of each order (router shown as A first, then as B); when
    both orders are valid but disagree, the comparison is a tie.
    """

    model_config = ConfigDict(extra="ignore")

    id: str
    winner: PairWinner | None = None
    status: Literal["scored", "unscored", "error"]
    orders: list[str | None] = Field(default_factory=list)
    rationale: str = ""
    problem: str | None = None
    judge_model: str
    prompt_version: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    n_cached: int = 0
