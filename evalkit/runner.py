"""Run a suite's cases against a target with bounded concurrency, retries and a rate limit.

Single cases are independent work units; a session (multi-turn conversation) is one unit whose
turns run in order, each carrying the history of earlier turns and the session's
``X-Model-Affinity`` id. A fixed pool of workers pulls units from a shared iterator, so memory
stays flat however large the suite.

Every case that is started ends with exactly one ``CaseResult``, handed to ``on_result`` as soon
as it completes: a response (``ok`` or ``missing_route``) or, once the retries are spent or the
failure is not retryable, an ``error`` carrying the HTTP status and message. Faults are handled
here:

- retryable failures (429, 408, 409, 5xx, timeouts, dropped connections, malformed bodies) are
  retried by the one retry policy of ``evalkit.httpclient`` (exponential backoff and jitter; a
  ``Retry-After`` in seconds or as an HTTP date is honoured); a 429's ``Retry-After`` also
  pauses every other worker, because a rate limit belongs to the key, not to one request;
- each attempt has a deadline (``RunOptions.timeout``), enforced around the whole call;
- an optional requests-per-minute limit spaces request starts evenly (retries included);
- an error budget (``RunOptions.max_error_rate``) stops the run once more than that share of
  the planned cases has failed: outstanding requests are cancelled, their cases get no result
  (a resume sends them), and ``ErrorBudgetExceeded`` is raised;
- a dead router fails fast: when the first ``UNREACHABLE_AFTER`` attempts all failed to open a
  connection and none reached the router, the run stops the same way with ``RouterUnreachable``;
- a refused key fails fast: when the first ``REFUSED_AFTER`` answers are all HTTP 401/403, the
  run stops with ``KeyRefused``;
- until an answer gets through, the results of cases that failed only by not connecting or with
  a 401/403 are held back (``_RunState.holds_back``): such a failure says nothing about the case
  (the router is not running yet, the key is wrong). A dead-router or refused-key stop drops them
  (those cases have no result, so the resume that follows a started router or a fixed key sends
  them); an answer that gets through, another stop or the end of the run writes them as the
  errors they are (after their retries);
- a long ``Retry-After`` (``RunOptions.long_wait_s`` or more) is said on ``RunOptions.status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Iterator

from evalkit.cost import Price, request_cost
from evalkit.errors import RunError
from evalkit.httpclient import (DEFAULT_BACKOFF_BASE_S, DEFAULT_BACKOFF_MAX_S, DEFAULT_RETRIES, RETRY_AFTER_MAX_S,
                                RetryPolicy, backoff_delay)  # noqa: F401  (backoff_delay: re-exported)
from evalkit.records import Case, CaseResult
from evalkit.targets import TargetCallError, TargetResponse, header_names

UNREACHABLE_AFTER = 6   # failed connection attempts, with none that reached the router, before a run stops
REFUSED_AFTER = 6       # HTTP 401/403 answers, with none that got through, before a run stops
AUTH_REFUSED = (401, 403)
LONG_WAIT_S = 2.0       # a Retry-After at least this long is announced on the status line


@dataclass
class RunOptions:
    concurrency: int = 16
    max_completion_tokens: int | None = None
    temperature: float | None = None
    affinity_prefix: str = "evalkit"
    prices: dict[str, Price] = field(default_factory=dict)
    retries: int = DEFAULT_RETRIES               # attempts after the first, for retryable failures
    backoff_base: float = DEFAULT_BACKOFF_BASE_S  # first retry waits 0.5-1x this, doubling each time
    backoff_max: float = DEFAULT_BACKOFF_MAX_S
    retry_after_max: float = RETRY_AFTER_MAX_S    # a longer Retry-After is cut to this
    timeout: float | None = None                  # deadline of one attempt in seconds
    rpm: float | None = None                      # requests started per minute; None: unlimited
    max_error_rate: float | None = None           # error budget as a share of n_planned
    n_planned: int | None = None                  # cases the budget is measured against
    prior_errors: int = 0                         # errors already stored (a resumed run)
    cache: Any = None                             # an evalkit.cache.ResponseCache, or None
    cache_scope: dict[str, Any] = field(default_factory=dict)  # target and router identity for cache keys
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # session -> rebuilt history
    seed: int | None = None                       # seeds the backoff jitter
    status: Callable[[str], None] = lambda message: None  # status lines (a long Retry-After pause)
    key_hint: str = "the API key"                 # where the key comes from, for a refused key's message
    long_wait_s: float = LONG_WAIT_S


RESUME_PLACEHOLDER = "`evalkit run SUITE --resume RUN_DIR`"  # `evalkit run` replaces it with the exact command


class StoppedEarly(RunError):
    """The runner stopped the run before every case was sent; a resume finishes it.

    ``resume_overrides``: options the resume command must give differently (option name -> value),
    e.g. a larger ``max_error_rate`` when the stored errors would spend the budget again.
    ``drops_held``: the stop drops the held-back results (see ``_RunState.holds_back``), so the
    resume sends those cases again."""

    drops_held = False

    def __init__(self, what: str, **kw: Any) -> None:
        super().__init__(what, **kw)
        self.resume_overrides: dict[str, str] = {}


class ErrorBudgetExceeded(StoppedEarly):
    """More cases failed than the run's error budget allows; the run was stopped (or, resumed with
    a budget its stored errors already spend, ``before_sending``: not started)."""

    def __init__(self, *, errors: int, allowed: int, n_planned: int, rate: float, before_sending: bool = False) -> None:
        self.errors, self.allowed, self.n_planned, self.rate = errors, allowed, n_planned, rate
        super().__init__(
            f"error budget already spent: the run has {errors} failed cases of {n_planned}, more than the "
            f"{rate:g} budget (--max-error-rate) allows ({allowed}); nothing was sent" if before_sending else
            f"error budget exceeded: {errors} of {n_planned} cases failed, more than the "
            f"{rate:g} budget allows ({allowed}); the run was stopped",
            fix="check the router (the run's report lists the errors), then finish the run with "
                f"{RESUME_PLACEHOLDER} or raise --max-error-rate")

    def for_resume(self, remaining: int) -> None:
        """Make the fix's resume command one that can finish: failed cases keep their error (a resume
        sends only the ``remaining`` cases without a result), so it allows the errors so far plus
        the budget's share of the cases left (at least one)."""
        extra = max(1, math.ceil(self.rate * remaining))
        rate = suggest_rate(self.errors + extra, self.n_planned)
        self.resume_overrides = {"max_error_rate": f"{rate:g}"}
        self.fix = (f"check the router (the run's report lists the errors), then finish the run with "
                    f"{RESUME_PLACEHOLDER} or raise --max-error-rate further. A resume sends only the "
                    f"{remaining} cases without a result: the {self.errors} failed cases stay errors and count "
                    f"against its budget, so that command gives --max-error-rate {rate:g} (those {self.errors} "
                    f"and {extra} more for the cases left)")


def suggest_rate(errors: int, n_planned: int) -> float:
    """The smallest --max-error-rate, in steps of 0.001, whose budget allows ``errors`` of ``n_planned``."""
    rate = math.ceil(errors * 1000 / n_planned) / 1000
    while math.floor(rate * n_planned) < errors and rate < 1:
        rate = round(rate + 0.001, 3)
    return min(rate, 1.0)


class RouterUnreachable(StoppedEarly):
    """The first attempts of a run all failed to connect and none reached the router; the run was stopped."""

    drops_held = True

    def __init__(self, *, attempts: int, url: str | None, last_error: str) -> None:
        from evalkit.redact import safe_url

        self.attempts = attempts
        where = f" at {safe_url(url)}" if url else ""
        super().__init__(
            f"the router{where} could not be reached: the first {attempts} connection attempts failed and "
            "none reached it; the run was stopped (the cases that could not connect have no result, so the "
            "resume sends them)", got=last_error,
            fix="check that the router is running and the base URL (--base-url) is right, then finish the run "
                f"with {RESUME_PLACEHOLDER}")


class KeyRefused(StoppedEarly):
    """The first answers of a run were all HTTP 401/403: the router refused the key; the run was stopped."""

    drops_held = True

    def __init__(self, *, answers: int, url: str | None, last_error: str, key_hint: str) -> None:
        from evalkit.redact import safe_url

        self.answers = answers
        where = f" at {safe_url(url)}" if url else ""
        super().__init__(
            f"the router{where} refused the API key: the first {answers} answers were all HTTP 401/403 "
            "(authentication) and none got through; the run was stopped (the refused cases have no result, "
            "so the resume sends them)", got=last_error,
            fix=f"check {key_hint}, then finish the run with {RESUME_PLACEHOLDER}")


def work_units(cases: Iterable[Case]) -> list[list[Case]]:
    """Group cases into units: each single case alone, each session's turns together in order."""
    units: list[list[Case]] = []
    sessions: dict[str, list[Case]] = {}
    for case in cases:
        if case.session is None:
            units.append([case])
        elif case.session in sessions:
            sessions[case.session].append(case)
        else:
            sessions[case.session] = [case]
            units.append(sessions[case.session])
    for unit in units:
        unit.sort(key=lambda c: c.turn or 0)
    return units


def build_result(case: Case, response: TargetResponse | None, error: TargetCallError | None, *,
                 attempts: int, prices: dict[str, Price], cached: bool = False) -> CaseResult:
    """The result record of one case (pure)."""
    common: dict[str, Any] = dict(id=case.id, expected_route=case.expected_route, session=case.session, turn=case.turn,
                  tags=list(case.tags), expected_model=case.expected_model, prompt=case.user_text,
                  reference=case.reference, human=case.human, attempts=attempts,
                  label_source=case.label_source, reviewed=case.reviewed)
    if response is None:
        assert error is not None
        return CaseResult(**common, status="error", error=error.message, http_status=error.http_status,
                          error_code=error.code)
    served = response.served_model
    missing = response.route is None
    return CaseResult(
        **common,
        status="missing_route" if missing else "ok",
        header_names=header_names(response.headers) if missing else None,
        route=response.route,
        served_model=served,
        http_status=response.http_status,
        latency_ms=round(response.latency_ms, 3),
        ttft_ms=round(response.ttft_ms, 3) if response.ttft_ms is not None else None,
        prompt_tokens=response.prompt_tokens,
        completion_tokens=response.completion_tokens,
        reasoning_tokens=response.reasoning_tokens,
        cost_usd=request_cost(prices.get(served) if served else None, response.prompt_tokens,
                              response.completion_tokens),
        content=response.content,
        finish_reason=response.finish_reason,
        route_only=response.route_only,
        cached=cached,
    )


class RateLimiter:
    """Spaces request starts to at most ``rpm`` a minute; ``pause`` holds every start for a while.

    Waiters queue on a FIFO lock and each start is granted at least ``60 / rpm`` seconds after the
    previous grant, measured when it is granted: if the event loop stalls, the waiters do not all
    fire at once when it wakes. ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(self, rpm: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.interval = 60.0 / rpm if rpm else 0.0
        self.clock = clock
        self.sleep = sleep
        self._next = -math.inf
        self._paused_until = -math.inf
        self._lock: asyncio.Lock | None = None

    async def acquire(self) -> None:
        if not self.interval and self._paused_until <= self.clock():
            return  # no limit and no pause: nothing to wait for
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            while True:  # re-check after each sleep: a 429 may have paused everyone meanwhile
                wait = max(self._next, self._paused_until) - self.clock()
                if wait <= 0:
                    break
                await self.sleep(wait)
            self._next = self.clock() + self.interval

    def pause(self, seconds: float) -> None:
        """No request starts for ``seconds`` (a 429's Retry-After)."""
        self._paused_until = max(self._paused_until, self.clock() + seconds)

    @property
    def paused_until(self) -> float:
        return self._paused_until


@dataclass
class _RunState:
    options: RunOptions
    limiter: RateLimiter
    rng: random.Random
    errors: int = 0
    stopped: RunError | None = None
    stop_event: asyncio.Event | None = None
    reached: bool = False        # some attempt got an HTTP answer from the router
    unreachable: int = 0         # attempts that could not open a connection
    admitted: bool = False       # some answer was not a 401/403: the key is not refused
    refused: int = 0             # 401/403 answers while none got through
    held: list[CaseResult] = field(default_factory=list)  # results held back until an answer gets through

    def stop(self, why: RunError) -> None:
        if self.stopped is None:
            self.stopped = why
            if self.stop_event is not None:
                self.stop_event.set()

    def attempted(self, error: TargetCallError | None, target: Any) -> None:
        """Count an attempt toward the dead-router check: stop once the first ones all failed to connect."""
        if error is None or error.http_status is not None:
            self.reached = True
        if error is None or (error.http_status is not None and error.http_status not in AUTH_REFUSED):
            self.admitted = True
        elif error.http_status in AUTH_REFUSED and not self.admitted:
            self.refused += 1
            if self.refused >= REFUSED_AFTER:
                info = getattr(target, "info", None)
                self.stop(KeyRefused(answers=self.refused, url=getattr(info, "base_url", None),
                                     last_error=error.message, key_hint=self.options.key_hint))
        elif error.unreachable and not self.reached:
            self.unreachable += 1
            if self.unreachable >= UNREACHABLE_AFTER:
                info = getattr(target, "info", None)
                self.stop(RouterUnreachable(attempts=self.unreachable, url=getattr(info, "base_url", None),
                                            last_error=error.message))

    def holds_back(self, error: TargetCallError | None) -> bool:
        """Whether a case's failure is held back: until an answer gets through, a 401/403 (the key may
        be wrong) or a case none of whose attempts could open a connection (``send_case`` leaves
        ``unreachable`` set only then: the router may not be running yet) says nothing about the case.
        Held results are written once an answer gets through or the run ends; a stop whose
        ``drops_held`` is set drops them."""
        if error is None or self.admitted:
            return False
        return error.http_status in AUTH_REFUSED or error.unreachable

    def release_held(self) -> list[CaseResult]:
        """The held results to write now (in the order they failed): all of them once an answer got through."""
        if not self.admitted:
            return []
        released, self.held = self.held, []
        return released

    def allowed_errors(self) -> int | None:
        o = self.options
        if o.max_error_rate is None or not o.n_planned:
            return None
        return math.floor(o.max_error_rate * o.n_planned)


async def run_cases(cases: Iterable[Case], target: Any, options: RunOptions,
                    on_result: Callable[[CaseResult], None]) -> None:
    """Send every case to ``target``; call ``on_result`` once per case as it completes.

    Raises ``ErrorBudgetExceeded`` (after cancelling outstanding work) when the budget is spent,
    ``RouterUnreachable`` when the first attempts all failed to connect.
    """
    budget_hit = asyncio.Event()
    state = _RunState(options, RateLimiter(options.rpm), random.Random(options.seed),
                      errors=options.prior_errors, stop_event=budget_hit)
    units: Iterator[list[Case]] = iter(work_units(cases))

    def record(result: CaseResult) -> None:
        for held in state.release_held():
            count(held)
        count(result)

    def count(result: CaseResult) -> None:
        on_result(result)
        if result.status == "error":
            state.errors += 1
            allowed = state.allowed_errors()
            if allowed is not None and state.errors > allowed and state.stopped is None:
                state.stop(ErrorBudgetExceeded(errors=state.errors, allowed=allowed,
                                               n_planned=options.n_planned or 0,
                                               rate=options.max_error_rate or 0.0))

    async def worker() -> None:
        for unit in units:  # a shared iterator: each unit goes to exactly one worker
            if state.stopped is not None:
                return
            await run_unit(unit, target, options, record, state=state)

    workers = [asyncio.ensure_future(worker()) for _ in range(max(1, options.concurrency))]
    everyone = asyncio.gather(*workers)
    watcher = asyncio.ensure_future(budget_hit.wait())
    try:
        await asyncio.wait([everyone, watcher], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
        if everyone.done():
            everyone.result()  # re-raises a worker's unexpected exception
    finally:
        for task in [*workers, watcher]:
            task.cancel()
        await asyncio.gather(*workers, watcher, return_exceptions=True)
        if everyone.done() and not everyone.cancelled():
            with contextlib.suppress(BaseException):
                everyone.exception()  # retrieved, so asyncio does not warn about it
    if not getattr(state.stopped, "drops_held", False):
        held, state.held = state.held, []
        for result in held:  # a run too short to stop, or stopped for another reason: they are errors
            count(result)
    if state.stopped is not None:
        raise state.stopped


async def run_unit(unit: list[Case], target: Any, options: RunOptions,
                   on_result: Callable[[CaseResult], None], *, state: _RunState | None = None) -> None:
    """Run one unit. A session's history starts from ``options.histories`` (a resumed session)."""
    history: list[dict[str, Any]] = list(options.histories.get(unit[0].session or "", [])) if unit[0].session else []
    for case in unit:
        if state is not None and state.stopped is not None:
            return
        messages = [*history, *case.own_messages()]
        affinity = f"{options.affinity_prefix}-{case.session}" if case.session else None
        response, error, attempts, cached = await _send_or_cached(case, messages, target, options, affinity, state)
        result = build_result(case, response, error, attempts=attempts, prices=options.prices, cached=cached)
        if state is not None and state.holds_back(error):
            state.held.append(result)  # written once an answer gets through; a dead-router or refused-key stop drops it
        else:
            on_result(result)
        if case.session:
            history = session_history(messages, response.content if response else None)


def session_history(messages: list[dict[str, Any]], answer: str | None) -> list[dict[str, Any]]:
    """The history the next turn of a session carries: this turn's messages and its answer."""
    return [*messages, {"role": "assistant", "content": answer or ""}]


async def _send_or_cached(case: Case, messages: list[dict[str, Any]], target: Any, options: RunOptions,
                          affinity: str | None, state: _RunState | None
                          ) -> tuple[TargetResponse | None, TargetCallError | None, int, bool]:
    cache, key = options.cache, None
    if cache is not None:
        key = cache.key(options.cache_scope, messages, request_params(case, options))
        hit = cache.get(key)
        if hit is not None:
            return hit, None, 0, True
    response, error, attempts = await send_case(case, messages, target, options, affinity, state=state)
    if cache is not None and response is not None and key is not None:
        cache.put(key, response)
    return response, error, attempts, False


def _pause_for_retry_after(state: _RunState, retry_after: float) -> None:
    """Hold every start for a 429's Retry-After; say so once when the wait is long."""
    options = state.options
    wait = min(retry_after, options.retry_after_max)
    before = state.limiter.paused_until
    state.limiter.pause(wait)
    if wait >= options.long_wait_s and state.limiter.paused_until > before + 1.0:
        cut = f", cut to {options.retry_after_max:g} s" if retry_after > options.retry_after_max else ""
        options.status(f"router asked to wait {retry_after:g} s (Retry-After{cut}); pausing")


def request_params(case: Case, options: RunOptions) -> dict[str, Any]:
    """The request parameters besides the messages (part of the cache key)."""
    return {"max_completion_tokens": case.max_completion_tokens or options.max_completion_tokens,
            "temperature": options.temperature}


async def send_case(case: Case, messages: list[dict[str, Any]], target: Any, options: RunOptions,
                    affinity: str | None, *, state: _RunState | None = None
                    ) -> tuple[TargetResponse | None, TargetCallError | None, int]:
    """One case's call with retries. Returns (response, error, attempts)."""
    if state is None:
        state = _RunState(options, RateLimiter(options.rpm), random.Random(options.seed))
    params = request_params(case, options)
    policy = RetryPolicy(retries=options.retries, base=options.backoff_base, cap=options.backoff_max,
                         retry_after_max=options.retry_after_max, rng=state.rng)
    attempts = 0
    connected = False  # some attempt opened a connection (an answer, a read timeout, a dropped connection)
    while True:
        attempts += 1
        await state.limiter.acquire()
        try:
            call = target.send(messages, max_completion_tokens=params["max_completion_tokens"],
                               affinity=affinity, temperature=params["temperature"])
            if options.timeout is not None:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation (Ctrl-C)
                # that arrives as the call completes, and the worker would go on with the next case.
                async with asyncio.timeout(options.timeout):
                    response = await call
            else:
                response = await call
            state.attempted(None, target)
            return response, None, attempts
        except asyncio.TimeoutError:
            error = TargetCallError(f"request timed out after {options.timeout:g} s", http_status=None,
                                    timed_out=True)
        except TargetCallError as exc:
            error = exc
        state.attempted(error, target)
        connected = connected or not error.unreachable
        if not error.retryable or not policy.allows(attempts):
            if attempts > 1:
                error.what = f"{error.what} (gave up after {attempts} attempts)"
            error.unreachable = not connected  # the case's error: unreachable when no attempt connected
            return None, error, attempts
        if error.http_status == 429 and error.retry_after is not None:
            _pause_for_retry_after(state, error.retry_after)
        await policy.wait_async(attempts, error.retry_after)
