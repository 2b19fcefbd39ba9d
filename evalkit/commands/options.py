"""Command-line options turned into the library's settings, with usage errors naming the option."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable

from evalkit.errors import UsageError


@dataclass(frozen=True)
class Range:
    """The values a numeric option accepts: ``low``/``high`` bounds, each closed unless ``*_open``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def text(self) -> str:
        lo, hi = _num(self.low), _num(self.high)
        if self.low is not None and self.high is not None:
            if self.low_open or self.high_open:
                return f"between {lo} and {hi} ({'>' if self.low_open else '>='} {lo}, {'<' if self.high_open else '<='} {hi})"
            return f"between {lo} and {hi}"
        if self.low is not None:
            if self.low == 0:
                return "a positive number" if self.low_open else "zero or more"
            return f"more than {lo}" if self.low_open else f"at least {lo}"
        return f"less than {hi}" if self.high_open else f"at most {hi}"


def _shown(value: float) -> str:
    """A value as the user would have typed it: ``2`` rather than ``2.0``."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def _num(value: float | None) -> str:
    return f"{value:g}" if value is not None else ""


UNIT = Range(0, 1)
SHARE = Range(0, 1, low_open=True, high_open=True)
POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_1 = Range(1)
PORT = Range(1, 65535)

# Every numeric option of every command: (allowed range, what it is, an example value). A test
# walks the commands and fails on a numeric option missing here.
OPTION_RANGES: dict[str, tuple[Range, str, str]] = {
    "--alpha": (SHARE, "the significance level", "0.05"),
    "--seed": (NON_NEGATIVE, "the seed", "0"),
    "--bootstrap": (AT_LEAST_1, "the number of bootstrap resamples", "2000"),
    "--monthly-requests": (AT_LEAST_1, "the monthly request volume", "1000000"),
    "--judge-samples": (AT_LEAST_1, "--judge-samples", "3"),
    "--concurrency": (AT_LEAST_1, "concurrency", "16"),
    "--labeler-concurrency": (AT_LEAST_1, "the labeler's concurrency", "8"),
    "--timeout": (POSITIVE, "the per-request timeout (seconds)", "120"),
    "--ready-timeout": (POSITIVE, "the ready timeout (seconds)", "120"),
    "--upstream-timeout": (POSITIVE, "the upstream timeout (seconds)", "120"),
    "--fault-timeout": (POSITIVE, "the fault timeout (seconds)", "30"),
    "--max-body-mb": (POSITIVE, "the request body limit (MiB)", "4"),
    "--affinity-ttl": (POSITIVE, "the affinity TTL (seconds)", "600"),
    "--retries": (NON_NEGATIVE, "the number of retries", "3"),
    "--backoff": (NON_NEGATIVE, "the backoff (seconds)", "0.5"),
    "--rpm": (NON_NEGATIVE, "requests per minute (0: no limit)", "900"),
    "--latency-ms": (NON_NEGATIVE, "the added latency (milliseconds)", "50"),
    "--threshold": (UNIT, "the fallback similarity threshold", "0.10"),
    "--margin": (UNIT, "the margin between the top two scores", "0.05"),
    "--max-error-rate": (UNIT, "the error budget, a share of the cases,", "0.05"),
    "--fault-rate": (UNIT, "the fault rate", "0.1"),
    "--near-duplicate": (Range(0.5, 1), "the near-duplicate similarity", "0.95"),
    "--examples": (NON_NEGATIVE, "the number of examples", "3"),
    "--sample": (Range(1, 100_000), "the sample size", "300"),
    "--floor": (NON_NEGATIVE, "the floor per route", "10"),
    "--port": (PORT, "the port", "8080"),
    "--port (0: a free one)": (Range(0, 65535), "the port (0: a free one)", "8765"),
}


def ranged(option: str, key: str | None = None) -> Callable[[Any], Any]:
    """A typer ``callback`` refusing a value of ``option`` outside its range in ``OPTION_RANGES``
    (looked up by ``key``, default the option itself), before the command starts any work."""
    allowed, noun, example = OPTION_RANGES[key or option]

    def check(value: Any) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if value not in allowed:
            raise UsageError(f"{noun} must be {allowed.text()}", where=option, got=_shown(value),
                             fix=f"e.g. {option} {example}")
        return value

    return check


def parse_upstreams(values: list[str] | None) -> dict[str, str]:
    """``SLUG=URL`` or ``SLUG=URL@ENVVAR`` pairs (``*`` as SLUG: every model without its own upstream)."""
    from evalkit.emulator.upstream import parse_upstream

    result: dict[str, str] = {}
    for value in values or []:
        slug, sep, url = value.partition("=")
        if not sep or not slug.strip() or not url.strip():
            raise UsageError("an upstream must be SLUG=URL or SLUG=URL@ENVVAR", where="--upstream", got=value,
                             fix="e.g. --upstream openai-gpt-oss-20b=http://127.0.0.1:8001/v1")
        parse_upstream(slug.strip(), url.strip())  # validates; the key variable is read later
        result[slug.strip()] = url.strip()
    return result


def judge_settings_from_options(model: str | None, *, base_url: str | None, api_key_env: str, samples: int,
                                pairwise: bool, cache: bool, concurrency: int, timeout: float,
                                baseline_model: str | None = None) -> Any:
    """The judge settings of ``--judge*`` options (None when no judge was asked for)."""
    from evalkit.judge import JudgeSettings
    from evalkit.targets import DO_INFERENCE_URL

    if model is None:
        if pairwise:
            raise UsageError("--judge-pairwise needs a judge", where="--judge-pairwise",
                             fix="add --judge MODEL (and --baseline-model SLUG to compare against)")
        return None
    if pairwise and not baseline_model:
        raise UsageError("--judge-pairwise compares the router with a baseline model", where="--judge-pairwise",
                         fix="add --baseline-model SLUG")
    settings = JudgeSettings(model=model, base_url=base_url or os.environ.get("EVALKIT_DO_INFERENCE_URL", DO_INFERENCE_URL),
                             api_key_env=api_key_env, samples=samples, pairwise=pairwise, cache=cache,
                             concurrency=max(1, concurrency), timeout=timeout)
    settings.validate()
    return settings
