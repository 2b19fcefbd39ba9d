"""LLM-as-judge: grade each answer on correctness and completeness, per path.

- ``prompts``: templates, rubrics and the verdict grammar (constants) and the pure prompt builders.
- ``verdict``: the pure verdict parser (the last verdict only; unparseable means *unscored*).
- ``client``: the judge calls through an injected ``openai.AsyncOpenAI`` client, and the cache.
- ``job``: which answers are judged, judging a run (its files are ``store.RunDir``'s).
- ``aggregate``: the pure figures of ``summary.json``'s ``judge`` section.
"""

from __future__ import annotations

from typing import Any, Sequence

from evalkit.judge.aggregate import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, bootstrap_ci, judge_summary
from evalkit.judge.client import JudgeClient, VerdictCache, default_cache_dir
from evalkit.judge.job import (ROUTE_ONLY_FIX, ROUTE_ONLY_REASON, Judgement, JudgeSettings, JudgeUnreachable,
                               eligibility, every_call_failed, judge_command, judge_run_dir, keep_earlier,
                               make_judge_client, resolve_judge_key, route_only_block, route_only_run, skipped_block)
from evalkit.judge.prompts import CRITERIA, PROMPT_VERSION, RUBRICS, build_pairwise_prompt, build_prompt, neutralise
from evalkit.judge.records import JudgeRecord, PairRecord
from evalkit.judge.verdict import Verdict, combine_samples, parse_pairwise, parse_verdict
from evalkit.records import CaseResult, JudgeInfo

__all__ = [
    "BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED", "CRITERIA", "PROMPT_VERSION", "ROUTE_ONLY_FIX", "ROUTE_ONLY_REASON",
    "RUBRICS",
    "JudgeClient", "JudgeRecord", "JudgeSettings", "JudgeUnreachable", "Judgement", "PairRecord", "Verdict",
    "VerdictCache",
    "bootstrap_ci", "build_pairwise_prompt", "build_prompt", "combine_samples", "default_cache_dir", "eligibility",
    "every_call_failed", "judge_block", "judge_command", "judge_run_dir", "judge_summary", "keep_earlier",
    "make_judge_client", "neutralise",
    "parse_pairwise", "parse_verdict", "resolve_judge_key", "route_only_block", "route_only_run", "skipped_block",
]


def judge_block(settings: JudgeInfo | None, results: Sequence[CaseResult], judgement: Judgement | None, *,
                baseline_model: str | None = None) -> dict[str, Any] | None:
    """``summary.json``'s ``judge`` value for a run (pure; ``summary.build_summary`` types it).

    None when judging was never requested and there is no baseline; a ``skipped`` block (with
    the reason and how to turn judging on) when it was requested without a key; otherwise the
    full figures. ``settings`` is the manifest's judge block.
    """
    judgement = judgement or Judgement()
    state = settings.status if settings is not None else None
    if state == "done" or judgement.records:
        return judge_summary(results, judgement.records, settings=settings, baseline=judgement.baseline_results,
                             baseline_records=judgement.baseline_records, pairs=judgement.pairs,
                             baseline_model=baseline_model)
    if state is None and not judgement.baseline_results:
        return None
    block: dict[str, Any] = {"status": state or "not_requested", "model": settings.model if settings else None,
                             "reason": settings.reason if settings else None,
                             "fix": settings.fix if settings else None, "baseline": None}
    if judgement.baseline_results:
        from evalkit.judge.aggregate import baseline_comparison

        block["baseline"] = baseline_comparison(results, [], judgement.baseline_results, [], [],
                                                model=baseline_model)
    return block
