"""Parse a judge's reply (pure).

The judge reasons first and ends with ``VERDICT: <score>``. Only the *last* verdict line of the
reply counts: anything the judge quoted earlier (for example a verdict planted in the answer)
is ignored, and a last verdict that is not a valid value makes the reply *unscored*, never a
number taken from somewhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from evalkit.judge.prompts import PAIR_VALUE, SCORE_VALUE, VERDICT_LINE

RATIONALE_LIMIT = 4000


@dataclass(frozen=True)
class Verdict:
    """A parsed reply: ``value`` is None when unscored, and ``problem`` then says why."""

    value: int | str | None
    rationale: str
    problem: str | None = None

    @property
    def scored(self) -> bool:
        return self.value is not None


def _split(reply: str | None) -> tuple[str | None, str, str]:
    """(raw value of the last verdict line or None, rationale, problem if no verdict)."""
    if reply is None or not reply.strip():
        return None, "", "empty reply"
    matches = list(VERDICT_LINE.finditer(reply))
    if not matches:
        return None, _cap(reply.strip()), "no verdict line"
    last = matches[-1]
    return last.group("value").strip(), _cap(reply[: last.start()].strip()), ""


def _cap(text: str) -> str:
    return text if len(text) <= RATIONALE_LIMIT else text[: RATIONALE_LIMIT - 1] + "…"


def parse_verdict(reply: str | None) -> Verdict:
    """The score (1 to 5) of a criterion reply, or an unscored verdict saying why."""
    raw, rationale, problem = _split(reply)
    if raw is None:
        return Verdict(None, rationale, problem)
    m = SCORE_VALUE.match(raw)
    if not m:
        return Verdict(None, rationale, f"last verdict {raw[:40]!r} is not a score from 1 to 5")
    return Verdict(int(m.group("score")), rationale)


def parse_pairwise(reply: str | None) -> Verdict:
    """``"A"``, ``"B"`` or ``"TIE"`` from a pairwise reply, or an unscored verdict saying why."""
    raw, rationale, problem = _split(reply)
    if raw is None:
        return Verdict(None, rationale, problem)
    m = PAIR_VALUE.match(raw)
    if not m:
        return Verdict(None, rationale, f"last verdict {raw[:40]!r} is not A, B or TIE")
    return Verdict(m.group("choice").upper(), rationale)


@dataclass(frozen=True)
class Combined:
    """K samples of one case and criterion folded into one grade."""

    score: float | None
    status: str           # scored | unscored | error
    samples: list[int | None]
    agreement: float | None
    rationale: str
    problem: str | None


def combine_samples(verdicts: list[Verdict | None], errors: list[str | None]) -> Combined:
    """Median of the scored samples and their agreement (pure).

    ``verdicts[i]`` is None when call ``i`` failed, with ``errors[i]`` saying why. The score is
    the median of the samples that parsed (it can end in .5 for an even count); agreement is the
    share of those samples that gave the most common score (1.0 when all agree). With no
    parseable sample the grade is unscored, or an error when every call failed.
    """
    import statistics
    from collections import Counter

    scores = [v.value if v is not None and isinstance(v.value, int) else None for v in verdicts]
    valid = [s for s in scores if s is not None]
    if not valid:
        if all(v is None for v in verdicts):
            message = next((e for e in errors if e), "judge call failed")
            return Combined(None, "error", scores, None, message, message)
        first = next(v for v in verdicts if v is not None)
        return Combined(None, "unscored", scores, None, first.rationale, first.problem)
    median = float(statistics.median(valid))
    agreement = Counter(valid).most_common(1)[0][1] / len(valid)
    closest = min((v for v in verdicts if v is not None and isinstance(v.value, int)),
                  key=lambda v: abs(float(v.value) - median))  # type: ignore[arg-type]
    return Combined(median, "scored", scores, agreement, closest.rationale, None)
