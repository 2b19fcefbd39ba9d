"""Judge a run: pick the answers to grade, call the judge, write ``judge.jsonl`` (and the
baseline's files) into the run directory (through ``store.RunDir``), and return the manifest's
judge block.

Which answers are graded: a router error or a route-only answer (no generated text) is not
judged; a reasoning model that spent its whole budget (``content`` null, ``finish_reason``
``length``) gets a ``no_answer`` record per criterion (shown and counted, never a number).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from evalkit.cost import Price
from evalkit.errors import UsageError
from evalkit.judge.client import JudgeCallError, JudgeClient, VerdictCache, default_cache_dir
from evalkit.judge.prompts import CRITERIA, PROMPT_VERSION, build_pairwise_prompt, build_prompt
from evalkit.judge.records import NO_ANSWER, JudgeRecord, PairRecord
from evalkit.judge.verdict import Verdict, combine_samples, parse_pairwise, parse_verdict
from evalkit.records import FALLBACK, CaseResult, JudgeInfo
from evalkit.redact import register, safe_url

if TYPE_CHECKING:
    from evalkit.store import RunDir

DEFAULT_JUDGE_URL = "https://inference.do-ai.run/v1"
DEFAULT_JUDGE_KEY_ENV = "MODEL_ACCESS_KEY"
FALLBACK_DESCRIPTION = ("no task of the router matches: a general request answered by the router's "
                        "fallback models")


@dataclass
class JudgeSettings:
    """How to reach the judge (never holds a key)."""

    model: str
    base_url: str = DEFAULT_JUDGE_URL
    api_key_env: str = DEFAULT_JUDGE_KEY_ENV
    samples: int = 1
    pairwise: bool = False
    cache: bool = True
    concurrency: int = 8
    timeout: float = 120.0
    max_completion_tokens: int | None = None

    def public(self) -> dict[str, Any]:
        """What the manifest records about the judge (never a key: the variable's name only)."""
        return {"model": self.model, "base_url": safe_url(self.base_url), "api_key_env": self.api_key_env,
                "samples": self.samples, "pairwise": self.pairwise, "prompt_version": PROMPT_VERSION,
                "temperature": 0}

    def validate(self) -> None:
        if not self.model:
            raise UsageError("the judge model is empty", where="--judge", fix="e.g. --judge openai-gpt-oss-120b")
        if self.samples < 1:
            raise UsageError("--judge-samples must be at least 1", where="--judge-samples", got=str(self.samples),
                             fix="use 1 (default) or an odd number such as 3")


def resolve_judge_key(settings: JudgeSettings) -> str | None:
    """The judge's key from its environment variable, or None when it is not set.

    A missing key is not an error for ``evalkit run`` (judging is skipped and the report says
    so); a personal access token in that variable is, because it must never leave for an
    inference endpoint.
    """
    key = os.environ.get(settings.api_key_env, "")
    if not key:
        return None
    if key.startswith("dop_v1_"):
        raise UsageError(f"{settings.api_key_env} holds a DigitalOcean personal access token (dop_v1_...), "
                         "which belongs to the control plane, not to inference", where="--judge-api-key-env",
                         fix="put a model access key (sk-do-...) in that variable, or name another one "
                             "with --judge-api-key-env")
    register(key)
    return key


def skipped_block(settings: JudgeSettings, run_ref: str = "RUN") -> JudgeInfo:
    """The manifest's judge block when judging was requested but no key was set; its fix is the
    whole ``evalkit judge`` command, with every option that differs from the defaults."""
    return JudgeInfo.model_validate({
        **settings.public(), "status": "skipped", "reason": f"no key in {settings.api_key_env}",
        "fix": f"export {settings.api_key_env}=<model access key> (or name another variable with "
               f"--judge-api-key-env), then judge this run without calling the router again: "
               f"{judge_command(settings, run_ref)}"})


def judge_command(settings: JudgeSettings, run_ref: str) -> str:
    """``evalkit judge RUN --judge MODEL ...`` with every option the settings need, shell-quoted.

    A base URL that carries credentials is left out (it must not reach a file; ``evalkit judge``
    reuses the one the run recorded for the same judge model).
    """
    import shlex
    from urllib.parse import urlsplit

    from evalkit.targets import DO_INFERENCE_URL

    args = ["evalkit", "judge", run_ref, "--judge", settings.model]
    parts = urlsplit(settings.base_url)
    default_url = os.environ.get("EVALKIT_DO_INFERENCE_URL", DO_INFERENCE_URL)
    if settings.base_url.rstrip("/") != default_url.rstrip("/") and not (parts.username or parts.password
                                                                         or parts.query):
        args += ["--judge-base-url", settings.base_url]
    if settings.api_key_env != DEFAULT_JUDGE_KEY_ENV:
        args += ["--judge-api-key-env", settings.api_key_env]
    if settings.samples != 1:
        args += ["--judge-samples", str(settings.samples)]
    if settings.pairwise:
        args.append("--judge-pairwise")
    if not settings.cache:
        args.append("--no-judge-cache")
    return shlex.join(args)


ROUTE_ONLY_REASON = "the answers are route-only (no content): the router returned routes but generated no text"
ROUTE_ONLY_FIX = ("run the suite again with models that answer: on the local router, forward them with "
                  "--upstream SLUG=URL@ENVVAR ('*=URL@ENVVAR' for every model), or measure a real router "
                  "(--target do, or --target openai --base-url URL)")


def route_only_block(settings: JudgeSettings) -> JudgeInfo:
    """The manifest's judge block when the run has no answer text to judge (a route-only run)."""
    return JudgeInfo.model_validate({**settings.public(), "status": "skipped", "reason": ROUTE_ONLY_REASON,
                                     "fix": ROUTE_ONLY_FIX})


def route_only_run(results: Sequence[CaseResult], baseline: Sequence[CaseResult] = ()) -> bool:
    """True when no answer of the run (nor of its baseline) can be judged because they are route-only."""
    every = [*results, *baseline]
    kinds = {eligibility(r) for r in every}
    return "route_only" in kinds and not kinds & {"judge", "no_answer"}


def eligibility(result: CaseResult) -> str:
    """``judge``, ``no_answer``, or why the answer is not judged (``router_error``, ``route_only``, ``empty``)."""
    if result.status == "error":
        return "router_error"
    if result.route_only:
        return "route_only"
    if not (result.content or "").strip():
        return "no_answer" if result.finish_reason == "length" else "empty"
    return "judge"


def description_of(task: str, descriptions: dict[str, str]) -> str | None:
    if task == FALLBACK:
        return FALLBACK_DESCRIPTION
    return descriptions.get(task)


def _sum_cost(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def prompt_fingerprint(*prompts: list[dict[str, Any]]) -> str:
    """SHA-256 of the judge prompt(s) a record graded (the messages, as sent)."""
    import hashlib
    import json

    payload = json.dumps(list(prompts), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


async def grade(judge: JudgeClient, result: CaseResult, criterion: str, *, description: str | None,
                samples: int) -> JudgeRecord:
    """One case, one criterion: K samples folded into one record."""
    common: dict[str, Any] = dict(id=result.id, criterion=criterion, judge_model=judge.model, prompt_version=PROMPT_VERSION)
    if eligibility(result) == "no_answer":
        return JudgeRecord(**common, status="no_answer", rationale=NO_ANSWER)
    messages = build_prompt(criterion, request=result.prompt, answer=result.content or "",
                            task=result.expected_route, description=description, reference=result.reference)
    common["prompt_sha256"] = prompt_fingerprint(messages)
    outs = await asyncio.gather(*(judge.complete(messages, sample=i) for i in range(samples)),
                                return_exceptions=True)
    verdicts: list[Verdict | None] = []
    errors: list[str | None] = []
    pt = ct = cached = 0
    cost: float | None = 0.0
    for out in outs:
        if isinstance(out, JudgeCallError):
            verdicts.append(None)
            errors.append(out.message)
            continue
        if isinstance(out, BaseException):
            raise out
        pt += out.prompt_tokens
        ct += out.completion_tokens
        cached += out.cached
        cost = _sum_cost(cost, out.cost_usd)
        errors.append(None)
        if not (out.text or "").strip() and out.finish_reason == "length":
            verdicts.append(Verdict(None, "", "the judge spent its whole token budget before a verdict"))
        else:
            verdicts.append(parse_verdict(out.text))
    combined = combine_samples(verdicts, errors)
    return JudgeRecord(**common, status=combined.status, score=combined.score,  # type: ignore[arg-type]
                       rationale=combined.rationale, problem=combined.problem, samples=combined.samples,
                       agreement=combined.agreement, prompt_tokens=pt, completion_tokens=ct, cost_usd=cost,
                       n_cached=cached)


async def judge_results(results: Sequence[CaseResult], judge: JudgeClient, *, descriptions: dict[str, str],
                        samples: int = 1, criteria: Sequence[str] = CRITERIA,
                        on_record: Callable[[JudgeRecord], None] = lambda r: None) -> list[JudgeRecord]:
    """Records for every judged case and criterion, in results order then criterion order."""
    todo = [(r, c) for r in results if eligibility(r) in ("judge", "no_answer") for c in criteria]

    async def one(result: CaseResult, criterion: str) -> JudgeRecord:
        record = await grade(judge, result, criterion, samples=samples,
                             description=description_of(result.expected_route, descriptions))
        on_record(record)
        return record

    return list(await asyncio.gather(*(one(r, c) for r, c in todo)))


PAIR_MAP = ({"A": "router", "B": "baseline", "TIE": "tie"}, {"A": "baseline", "B": "router", "TIE": "tie"})


async def compare_pair(judge: JudgeClient, router: CaseResult, baseline: CaseResult, *,
                       description: str | None) -> PairRecord:
    """Pairwise judging in both orders (router first as A, then as B); disagreement is a tie."""
    base: dict[str, Any] = dict(request=router.prompt, task=router.expected_route, description=description,
                reference=router.reference)
    prompts = [build_pairwise_prompt(answer_a=router.content or "", answer_b=baseline.content or "", **base),
               build_pairwise_prompt(answer_a=baseline.content or "", answer_b=router.content or "", **base)]
    outs = await asyncio.gather(*(judge.complete(p) for p in prompts), return_exceptions=True)
    common: dict[str, Any] = dict(id=router.id, judge_model=judge.model, prompt_version=PROMPT_VERSION,
                                  prompt_sha256=prompt_fingerprint(*prompts))
    choices: list[str | None] = []
    rationales: list[str] = []
    problems: list[str] = []
    pt = ct = cached = 0
    cost: float | None = 0.0
    failed = []
    for order, out in enumerate(outs):
        if isinstance(out, JudgeCallError):
            failed.append(out.message)
            choices.append(None)
            continue
        if isinstance(out, BaseException):
            raise out
        pt += out.prompt_tokens
        ct += out.completion_tokens
        cached += out.cached
        cost = _sum_cost(cost, out.cost_usd)
        verdict = parse_pairwise(out.text)
        rationales.append(verdict.rationale)
        if verdict.value is None:
            problems.append(f"order {order + 1}: {verdict.problem}")
            choices.append(None)
        else:
            choices.append(PAIR_MAP[order][str(verdict.value)])
    spent: dict[str, Any] = dict(prompt_tokens=pt, completion_tokens=ct, cost_usd=cost, n_cached=cached)
    if len(failed) == 2:
        return PairRecord(**common, status="error", orders=choices, problem=failed[0], rationale=failed[0], **spent)
    if failed or problems:
        return PairRecord(**common, status="unscored", orders=choices, problem="; ".join([*failed, *problems]),
                          rationale="\n\n".join(rationales), **spent)
    winner = choices[0] if choices[0] == choices[1] else "tie"
    return PairRecord(**common, status="scored", winner=winner, orders=choices,  # type: ignore[arg-type]
                      rationale="\n\n".join(rationales), **spent)


async def judge_pairs(results: Sequence[CaseResult], baseline: Sequence[CaseResult], judge: JudgeClient, *,
                      descriptions: dict[str, str]) -> list[PairRecord]:
    """Pairwise records for every case that both the router and the baseline answered."""
    by_id = {b.id: b for b in baseline}
    todo = [(r, by_id[r.id]) for r in results
            if r.id in by_id and eligibility(r) == "judge" and eligibility(by_id[r.id]) == "judge"]
    return list(await asyncio.gather(*(compare_pair(judge, r, b, description=description_of(r.expected_route, descriptions))
                                       for r, b in todo)))


# -- what the judge stored in a run directory (read and written by store.RunDir) --------------

@dataclass
class Judgement:
    """Everything the judge stored in a run directory (empty lists when a file is absent)."""

    records: list[JudgeRecord] = field(default_factory=list)
    baseline_results: list[CaseResult] = field(default_factory=list)
    baseline_records: list[JudgeRecord] = field(default_factory=list)
    pairs: list[PairRecord] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.records or self.baseline_results or self.baseline_records or self.pairs)


def make_judge_client(settings: JudgeSettings, key: str, prices: dict[str, Price], *,
                      client: Any = None) -> JudgeClient:
    """The judge client for ``settings``; ``client`` injects an ``AsyncOpenAI`` (else one is built)."""
    from evalkit.targets import make_client

    if client is None:
        client = make_client(settings.base_url, key, timeout=settings.timeout, concurrency=settings.concurrency)
    cache = VerdictCache(default_cache_dir() if settings.cache else None)
    return JudgeClient(client, model=settings.model, cache=cache, price=prices.get(settings.model),
                       concurrency=settings.concurrency, max_completion_tokens=settings.max_completion_tokens,
                       secrets=[key])


def _grade_key(record: JudgeRecord | PairRecord) -> tuple[Any, ...]:
    """What must match for an earlier grade to stand in for a failed one: the case (and criterion),
    the judge model, the prompt version, the very prompt graded, and the number of samples."""
    criterion = record.criterion if isinstance(record, JudgeRecord) else None
    n_samples = len(record.samples) if isinstance(record, JudgeRecord) else len(record.orders)
    return (record.id, criterion, record.judge_model, record.prompt_version, record.prompt_sha256, n_samples)


def keep_earlier(new: Sequence[Any], earlier: Sequence[Any]) -> tuple[list[Any], int]:
    """``new`` with every ``error`` grade (every call failed) replaced by the earlier grade of the
    same case, criterion, judge model, prompt version, prompt and sample count when that one is a
    judge's reply (``scored`` or ``unscored``); and how many were kept. Pure."""
    replies = {_grade_key(r): r for r in earlier if r.status in ("scored", "unscored") and r.prompt_sha256}
    merged: list[Any] = []
    kept = 0
    for record in new:
        previous = replies.get(_grade_key(record)) if record.status == "error" else None
        if previous is None:
            merged.append(record)
            continue
        kept += 1  # nothing was paid for it in this run
        merged.append(previous.model_copy(update={"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0,
                                                  "n_cached": 0}))
    return merged, kept


def every_call_failed(records: Sequence[JudgeRecord], pairs: Sequence[PairRecord] = ()) -> bool:
    """True when the judge was asked something and every grade is an error (it could not be reached)."""
    called: list[JudgeRecord | PairRecord] = [*(r for r in records if r.status != "no_answer"), *pairs]
    return bool(called) and all(r.status == "error" for r in called)


class JudgeUnreachable(Exception):
    """Every judge call failed while the run directory already held judge files: they are kept
    untouched (as is the manifest's judge block), so no earlier grade is lost."""

    def __init__(self, first_error: str) -> None:
        super().__init__(first_error)
        self.first_error = first_error


def _judge_all(results: Sequence[CaseResult], baseline: Sequence[CaseResult],
               settings: JudgeSettings, judge: JudgeClient, descriptions: dict[str, str]) -> Judgement:
    async def go() -> Judgement:
        try:
            records = await judge_results(results, judge, descriptions=descriptions, samples=settings.samples)
            base_records = (await judge_results(baseline, judge, descriptions=descriptions, samples=settings.samples)
                            if baseline else [])
            pairs = (await judge_pairs(results, baseline, judge, descriptions=descriptions)
                     if baseline and settings.pairwise else [])
            return Judgement(records=records, baseline_results=list(baseline), baseline_records=base_records,
                             pairs=pairs)
        finally:
            await judge.close()

    return asyncio.run(go())


def judge_run_dir(run_dir: RunDir, results: Sequence[CaseResult], settings: JudgeSettings, *,
                  judge: JudgeClient, descriptions: dict[str, str],
                  status: Callable[[str], None] = lambda s: None) -> JudgeInfo:
    """Judge a stored run's answers (and its baseline's) and write the judge files.

    Returns the manifest's judge block (settings, counts, tokens, cost); the caller stores it.
    Files are written whole at the end (temporary file, then rename), so an interrupted judge
    leaves the previous files intact; the verdict cache keeps what was already paid for.

    Nothing already graded is lost: when every call fails and the run directory holds judge
    files, they are left untouched and ``JudgeUnreachable`` is raised; otherwise a grade whose
    calls all failed gives way to the earlier reply for the same prompt (``keep_earlier``).
    """
    from evalkit.store import BASELINE, utc_now

    baseline = run_dir.read_results(BASELINE)
    n_todo = sum(1 for r in results if eligibility(r) == "judge") + sum(1 for r in baseline if eligibility(r) == "judge")
    status(f"judging {n_todo} answers with {settings.model} ({settings.samples} sample(s) per criterion)")
    new = _judge_all(results, baseline, settings, judge, descriptions)
    earlier = run_dir.read_judgement()
    if every_call_failed([*new.records, *new.baseline_records], new.pairs) and (
            earlier.records or earlier.baseline_records or earlier.pairs):
        graded: list[JudgeRecord | PairRecord] = [*new.records, *new.baseline_records, *new.pairs]
        first = next(r for r in graded if r.status == "error")
        raise JudgeUnreachable(first.rationale)
    records, kept = keep_earlier(new.records, earlier.records)
    base_records, kept_base = keep_earlier(new.baseline_records, earlier.baseline_records)
    pairs, kept_pairs = keep_earlier(new.pairs, earlier.pairs)
    if kept + kept_base + kept_pairs:
        status(f"kept {kept + kept_base + kept_pairs} earlier grade(s) whose judge calls failed this time")
    run_dir.write_judgement(Judgement(records=records, baseline_results=baseline, baseline_records=base_records,
                                      pairs=pairs))
    everything: list[JudgeRecord | PairRecord] = [*records, *base_records, *pairs]
    cost: float | None = 0.0
    for r in everything:
        cost = _sum_cost(cost, r.cost_usd)
    counts: dict[str, int] = {}
    for r in [*records, *base_records]:
        counts[r.status] = counts.get(r.status, 0) + 1
    return JudgeInfo.model_validate({
        **settings.public(), "status": "done", "judged_at": utc_now(), "counts": counts, "calls": judge.calls,
        "prompt_tokens": sum(r.prompt_tokens for r in everything),
        "completion_tokens": sum(r.completion_tokens for r in everything), "cost_usd": cost})
