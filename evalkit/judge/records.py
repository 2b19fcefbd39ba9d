"""The judge's persisted records: one line of ``judge.jsonl`` (and ``baseline_judge.jsonl``), one
line of ``pairwise.jsonl``, and the typed ``judge`` section of ``summary.json`` (``JudgeSummary``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evalkit.records import Document

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
    prompt_sha256: str | None = None
    """SHA-256 of the judge prompt (criterion, case, reference, task description and answer): an
    earlier grade stands in for a failed one only when it graded the very same prompt."""


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
    prompt_sha256: str | None = None
    """SHA-256 of both orders' prompts (see ``JudgeRecord.prompt_sha256``)."""


# -- summary.json's ``judge`` section ----------------------------------------------------------

class ScoreStats(Document):
    """Mean, 95% bootstrap interval and n of the scored records, and counts of the others."""

    mean: float | None = None
    ci95: list[float] | None = None
    n: int = 0
    n_unscored: int = 0
    n_no_answer: int = 0
    n_error: int = 0


class HarmStats(Document):
    """One expected task and criterion: misrouted cases' scores against correctly routed ones."""

    correct: ScoreStats
    misrouted: ScoreStats
    difference: float | None = None
    difference_ci95: list[float] | None = None
    by_route: dict[str, ScoreStats] = Field(default_factory=dict)


class GradeConfusion(Document):
    labels: list[int]
    matrix: list[list[int]]


class Calibration(Document):
    """The judge against human grades for one criterion."""

    n: int
    kappa_quadratic: float | None = None
    exact_agreement: float
    within_one: float
    mean_difference: float
    confusion: GradeConfusion


class Agreement(Document):
    n: int = 0
    mean: float | None = None
    unanimous_share: float | None = None


class JudgeCost(Document):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_usd: float | None = None
    known_usd: float | None = None
    n_unknown_cost: int = 0
    n_cached_samples: int = 0


class JudgeCostSummary(JudgeCost):
    """The judge's own cost, in total and per kind of call."""

    router_answers: JudgeCost | None = None
    baseline_answers: JudgeCost | None = None
    pairwise: JudgeCost | None = None


class Attention(Document):
    """A low-scored answer worth reading."""

    id: str
    criterion: str
    score: float | None = None
    rationale: str = ""
    expected: str
    route: str


class Problem(Document):
    """A verdict that is not a score (unscored, error, no answer), with why."""

    id: str
    criterion: str
    status: str
    problem: str | None = None
    route: str


class QualityDelta(Document):
    n_pairs: int = 0
    router_mean: float | None = None
    baseline_mean: float | None = None
    difference: float | None = None
    difference_ci95: list[float] | None = None


class BaselineCost(Document):
    router_usd: float | None = None
    baseline_usd: float | None = None
    difference_usd: float | None = None
    router_unknown: int = 0
    baseline_unknown: int = 0
    n_baseline: int = 0


class PairwiseTally(Document):
    router_wins: int = 0
    baseline_wins: int = 0
    ties: int = 0
    unscored: int = 0
    n: int = 0


class BaselinePath(Document):
    """The router against the baseline model on one path (or all cases): quality, cost, pairwise."""

    n: int = 0
    quality: dict[str, QualityDelta] = Field(default_factory=dict)
    cost: BaselineCost = Field(default_factory=BaselineCost)
    pairwise: PairwiseTally | None = None


class BaselineComparison(Document):
    """The router against one fixed model (``--baseline-model``), per path."""

    model: str | None = None
    n_cases: int = 0
    n_errors: int = 0
    overall: BaselinePath = Field(default_factory=BaselinePath)
    per_path: dict[str, BaselinePath] = Field(default_factory=dict)
    baseline_stats: dict[str, ScoreStats] = Field(default_factory=dict)


class JudgeSummary(Document):
    """``summary.json``'s ``judge`` section.

    ``status``: ``done`` (every figure below), ``skipped`` (asked for without a key: ``reason``
    and ``fix`` say why and how to turn it on) or ``not_requested`` (only a baseline model ran).
    Scores are keyed by criterion; ``per_path`` by route, ``per_cell`` by expected task then route.
    """

    status: str
    model: str | None = None
    reason: str | None = None
    fix: str | None = None
    samples: int = 1
    prompt_version: str | None = None
    criteria: list[str] = Field(default_factory=list)
    overall: dict[str, ScoreStats] = Field(default_factory=dict)
    per_path: dict[str, dict[str, ScoreStats]] = Field(default_factory=dict)
    per_cell: dict[str, dict[str, dict[str, ScoreStats]]] = Field(default_factory=dict)
    per_tag: dict[str, dict[str, ScoreStats]] = Field(default_factory=dict)
    misroute_harm: dict[str, dict[str, HarmStats]] = Field(default_factory=dict)
    agreement: dict[str, Agreement] = Field(default_factory=dict)
    calibration: dict[str, Calibration] = Field(default_factory=dict)
    not_judged: dict[str, int] = Field(default_factory=dict)
    cost: JudgeCostSummary | None = None
    attention: list[Attention] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)
    n_problems: int = 0
    baseline: BaselineComparison | None = None

    @property
    def done(self) -> bool:
        return self.status == "done"
