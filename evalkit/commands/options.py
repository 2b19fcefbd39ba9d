"""Command-line options turned into the library's settings, with usage errors naming the option."""

from __future__ import annotations

import os
from typing import Any

from evalkit.errors import UsageError


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
