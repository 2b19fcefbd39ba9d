"""What a run is asked to do: the target to reach (``TargetSpec``) and how to meet faults
(``Reliability``). Plain settings, checked before any traffic; they never hold a key."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from evalkit.errors import UsageError
from evalkit.router_config import RouterConfig
from evalkit.runner import DEFAULT_BACKOFF_BASE_S, DEFAULT_RETRIES

TARGET_KINDS = ("local", "do", "openai")
DO_DEFAULT_RPM = 900  # DigitalOcean routers allow 1,000 requests a minute; stay below it


@dataclass
class Reliability:
    """How the run meets faults: retries, rate limit, deadline, error budget, cache, resume."""

    retries: int = DEFAULT_RETRIES
    backoff_base: float = DEFAULT_BACKOFF_BASE_S
    rpm: float | None = None             # None: the target's default (do: 900/min, others: unlimited); 0: unlimited
    max_error_rate: float | None = None  # None: no budget
    cache: bool = False
    cache_dir: str | Path | None = None  # None: $EVALKIT_CACHE_DIR/responses or ~/.cache/evalkit/responses
    resume: str | Path | None = None     # a run directory to finish
    seed: int | None = None

    def check(self) -> None:
        if self.retries < 0 or self.retries > 20:
            raise UsageError("retries must be between 0 and 20", where="--retries", got=str(self.retries),
                             fix="e.g. --retries 3 (the default)")
        if not (self.backoff_base >= 0 and self.backoff_base <= 60):
            raise UsageError("the backoff base must be between 0 and 60 seconds", where="--backoff",
                             got=str(self.backoff_base), fix="e.g. --backoff 0.5 (the default)")
        if self.rpm is not None and not (self.rpm >= 0 and self.rpm <= 1_000_000):
            raise UsageError("requests per minute must be 0 (no limit) or a positive number", where="--rpm",
                             got=str(self.rpm), fix="e.g. --rpm 900 (DigitalOcean allows 1,000 a minute)")
        if self.max_error_rate is not None and not (0 <= self.max_error_rate <= 1):
            raise UsageError("the error budget is a share of the cases, between 0 and 1", where="--max-error-rate",
                             got=str(self.max_error_rate), fix="e.g. --max-error-rate 0.05 (stop after 5% errors)")

    def rpm_for(self, kind: str) -> float | None:
        """Requests a minute for a target kind: the given limit, else DigitalOcean's default (0: none)."""
        rpm = self.rpm if self.rpm is not None else (DO_DEFAULT_RPM if kind == "do" else None)
        return rpm or None


@dataclass
class TargetSpec:
    """How to reach the router under test (never holds a key)."""

    kind: str = "local"
    base_url: str | None = None
    model: str | None = None
    router_name: str | None = None
    route_header: str | None = None
    api_key_env: str | None = None
    threshold: float | None = None
    classifier: str = "embedding"
    classifier_model: str | None = None
    classifier_base_url: str | None = None
    classifier_api_key_env: str | None = None
    upstreams: dict[str, str] = field(default_factory=dict)
    timeout: float = 120.0
    stream: bool = False
    candidate: RouterConfig | None = None  # do: create this config as a temporary router for the run
    api_url: str | None = None             # do: control-plane root URL (token from DIGITALOCEAN_TOKEN)
    ready_timeout: float = 120.0           # do + candidate: seconds to wait for the new router to answer

    def check(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise UsageError(f"unknown target '{self.kind}'", where="--target",
                             fix=f"use one of: {', '.join(TARGET_KINDS)}")
        self._check_options_fit_the_target()
        if self.kind == "openai" and not self.base_url:
            raise UsageError("--target openai needs --base-url", where="--base-url",
                             fix="give the router's OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
        if self.base_url is not None and not re.match(r"^https?://[^\s/?#]+", self.base_url):
            raise UsageError("the router's base URL is not an http(s) URL", where="--base-url",
                             got=self.base_url.rpartition("@")[2][:200],  # never a user:password@ part
                             fix="give the OpenAI-compatible base URL with its scheme, e.g. http://localhost:8000/v1")
        if not self.timeout > 0:
            raise UsageError("the per-request timeout must be a positive number of seconds", where="--timeout",
                             got=str(self.timeout), fix="e.g. --timeout 120 (the default)")

    def _check_options_fit_the_target(self) -> None:
        """An option of another kind of target would be ignored without a word, and the run would
        measure some other router than the user meant (``--base-url`` without ``--target openai``
        measures the embedded local router)."""
        remote = {"--base-url": self.base_url, "--model": self.model, "--api-key-env": self.api_key_env}
        local = {"--threshold": self.threshold, "--upstream": self.upstreams or None,
                 "--classifier": None if self.classifier == "embedding" else self.classifier,
                 "--classifier-model": self.classifier_model, "--classifier-base-url": self.classifier_base_url,
                 "--classifier-api-key-env": self.classifier_api_key_env}
        if self.kind == "local":
            given = [name for name, value in remote.items() if value is not None]
            if given:
                raise UsageError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for a remote router, but "
                                 "the target is the embedded local router (--target local, the default)",
                                 where=given[0], fix="add --target openai (any OpenAI-compatible router) or --target "
                                                     f"do (DigitalOcean), or leave {', '.join(given)} out")
        else:
            given = [name for name, value in local.items() if value is not None]
            if given:
                raise UsageError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for the embedded local "
                                 f"router, but the target is --target {self.kind}", where=given[0],
                                 fix=f"leave {', '.join(given)} out, or run with --target local")
        if self.api_url is not None and self.kind != "do":
            raise UsageError("--api-url is DigitalOcean's control-plane URL, for --target do", where="--api-url",
                             fix="add --target do, or leave --api-url out")
