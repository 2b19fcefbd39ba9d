"""``--target do --candidate CONFIG [--against deployed]``: a router config tried on DigitalOcean's
own classifier as a temporary router, deleted afterwards, and compared case by case with the
deployed router.

The model access key goes only to the inference URL (the readiness probe and the run); the
token only to the control plane (create, read and delete).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

from evalkit.comparison import Comparison
from evalkit.errors import UsageError
from evalkit.records import CaseResult, TargetInfo
from evalkit.redact import safe_url
from evalkit.router_config import RouterConfig
from evalkit.run.spec import TargetSpec
from evalkit.store import Run, check_out_dir
from evalkit.suites import Suite
from evalkit.targets import OpenAITarget, make_endpoint, wait_until_answers

AGAINST_VALUES = ("deployed",)

# Progress of one run: a context manager given a label and the number of cases, yielding the
# callback each result is handed to (the command line draws a progress bar with it).
Progress = Callable[[str, int], ContextManager[Callable[[CaseResult], None]]]


@contextlib.contextmanager
def no_progress(label: str, total: int) -> Iterator[Callable[[CaseResult], None]]:
    yield lambda result: None


@contextlib.contextmanager
def candidate_target(spec: TargetSpec, base_url: str, key: str, header: str, *, concurrency: int,
                     status: Callable[[str], None] = lambda s: None) -> Iterator[OpenAITarget]:
    """The candidate config as a temporary router ``<name>-evalkit-<id>``, deleted afterwards.

    A router that could not be deleted after a successful run is attached to the target as
    ``leftover``: ``run_suite`` raises it once the run directory is complete.
    """
    from evalkit.control_plane import ControlPlane, LeftoverRouterError, temporary_router

    assert spec.candidate is not None
    candidate = spec.candidate
    made: list[OpenAITarget] = []
    try:
        with ControlPlane.from_env(spec.api_url) as plane, \
                temporary_router(plane, candidate, status=status) as temp:
            model = f"router:{temp.name}"
            status(f"waiting for {model} to answer on {safe_url(base_url)}")
            wait_until_answers(base_url, key, model, timeout=spec.ready_timeout, status=status)
            info = TargetInfo(kind="do", base_url=base_url, model=model, route_header=header, router_name=temp.name,
                              note=f"temporary router {temp.name} ({temp.uuid}) made from the candidate config "
                                   f"{candidate.source or candidate.name} on {plane.shown_url}; deleted after the run")
            client = make_endpoint(base_url, key, timeout=spec.timeout, concurrency=concurrency)
            made.append(OpenAITarget(client, model=model, route_header=header, info=info, stream=spec.stream))
            yield made[0]
    except LeftoverRouterError as exc:
        if not made:
            raise
        # the run itself succeeded: run_suite raises this once the run directory is complete
        made[0].leftover = exc  # type: ignore[attr-defined]


def check_candidate_options(*, target: str, candidate: str | Path | None, against: str | None,
                            router: str | Path | None = None, model: str | None = None,
                            ready_timeout: float = 120.0, baseline: Any = None, shard: Any = None) -> None:
    """Reject combinations of ``--candidate`` / ``--against`` that cannot mean anything (pure)."""
    if against is not None:
        if against not in AGAINST_VALUES:
            raise UsageError(f"unknown --against value '{against}'", where="--against",
                             fix="use --against deployed (the router named in the suite's router.json)")
        if candidate is None:
            raise UsageError("--against deployed compares a candidate with the deployed router: give --candidate too",
                             where="--against", fix="add --candidate router.candidate.json")
    if candidate is None:
        return
    if target != "do":
        raise UsageError(f"--candidate creates a temporary router on DigitalOcean, which --target {target} has no use for",
                         where="--candidate", fix="add --target do, or use --router FILE to try a config on the local router")
    if router is not None:
        raise UsageError("--candidate and --router both name the router config to run", where="--router",
                         fix="keep --candidate (the temporary router's config); the suite's router.json is the deployed one")
    if model is not None:
        raise UsageError("--model cannot be combined with --candidate: the run calls router:<temporary name>",
                         where="--model", fix="drop --model")
    if not ready_timeout > 0:
        raise UsageError("the ready timeout must be a positive number of seconds", where="--ready-timeout",
                         got=str(ready_timeout), fix="e.g. --ready-timeout 120")
    if against and (baseline is not None or shard is not None):
        raise UsageError("--against deployed cannot be combined with --baseline or --shard",
                         where="--baseline" if baseline is not None else "--shard",
                         fix="--against deployed runs the whole suite on both routers and compares them itself")


def deployed_router(spec: TargetSpec, name: str, *, like: RouterConfig | None = None) -> RouterConfig:
    """The live config of the deployed router ``name`` (read through the control plane).

    When ``like`` (the suite's router.json) leaves ``regions`` out, the API's default regions
    are left out of the result too, so they do not show up as a change.
    """
    from evalkit.control_plane import ControlPlane

    with ControlPlane.from_env(spec.api_url) as plane:
        found = plane.find(name)
        if found is None:
            names = ", ".join(r.name for r in plane.list() if not r.temporary) or "none"
            raise UsageError(f"no deployed router named '{name}' on the control plane", where="--against deployed",
                             got=f"routers there: {names}",
                             fix="deploy it first (`evalkit router create router.json`), or name it with --router-name")
    config = found.to_config()
    if like is not None and like.regions is None:
        config = config.model_copy(update={"regions": None})
    return config


@dataclass
class DeployedComparison:
    """The candidate's run, the deployed router's run, and their comparison (``--against deployed``)."""

    candidate: Run
    deployed: Run
    config_diff: dict[str, Any]
    comparison: Comparison
    folder: Path
    paths: dict[str, Path]
    note: str | None = None  # the deployed router differs from the suite's router.json

    @property
    def failed(self) -> bool:
        """A gate of either run failed, or the candidate routes significantly worse."""
        return (not self.candidate.summary.gates_passed or not self.deployed.summary.gates_passed
                or self.comparison.failed)


def compare_with_deployed(deployed: Run, candidate: Run, *, deployed_config: RouterConfig,
                          candidate_config: RouterConfig, out: str | Path) -> tuple[Comparison, Path, dict[str, Path]]:
    """Deployed (A, before) against candidate (B, after), case by case, written under ``out/compare/``.

    The same paired comparison as ``evalkit compare A B``, with the deployed side's router
    config taken from the live router rather than from the run directory's router.json copy.
    """
    from evalkit.comparison import compare_runs
    from evalkit.report.compare import write_compare
    from evalkit.report.junit import DEFAULT_JUNIT_CASES

    side_a = dataclasses.replace(deployed.side(), router=deployed_config)
    # Both runs used the same suite.yaml and cases; the suite hash also covers the router file,
    # which is the one thing meant to differ here, so the deployed side's hash stands for both.
    side_b = dataclasses.replace(candidate.side(), router=candidate_config, suite_hash=side_a.suite_hash)
    allow = bool(candidate.manifest.options.get("allow_incomplete"))  # as for --baseline (compare_with_baseline)
    comparison = Comparison.model_validate(compare_runs(side_a, side_b, allow_incomplete=allow))
    folder = Path(out) / "compare" / f"{deployed.run_id}-vs-{candidate.run_id}"
    paths = write_compare(comparison, folder, junit_results=side_b.results,
                          junit_cases=candidate.manifest.options.get("junit_cases") or DEFAULT_JUNIT_CASES)
    return comparison, folder, paths


def run_against_deployed(suite_path: str | Path, candidate_suite: Suite, spec: TargetSpec, *, out: str | Path,
                         prices: dict[str, Any], concurrency: int = 16, run_options: dict[str, Any] | None = None,
                         status: Callable[[str], None] = lambda s: None,
                         notice: Callable[[str], None] = lambda s: None,
                         progress: Progress = no_progress) -> DeployedComparison:
    """The candidate's run through a temporary router, then the deployed router's run on the same
    suite, then their comparison. The deployed router is read first, so a missing one fails before
    anything is created. ``status`` gets progress lines, ``notice`` what the user must not miss."""
    from evalkit.router_config import diff_configs
    from evalkit.run.job import run_suite
    from evalkit.suites import load_suite

    deployed_suite = load_suite(suite_path)
    check_out_dir(out, candidate_suite.name)  # before the control plane is asked anything
    deployed_name = spec.router_name or deployed_suite.router.name
    live = deployed_router(spec, deployed_name, like=deployed_suite.router)
    note = None
    if live.hash != deployed_suite.router.hash:
        note = (f"the deployed router {deployed_name} differs from {deployed_suite.router.source}; "
                "the comparison uses the deployed one")
        notice(note)
    with progress(f"{candidate_suite.name} · candidate", len(candidate_suite.cases)) as on_result:
        cand = run_suite(candidate_suite, spec, out=out, prices=prices, concurrency=concurrency, on_result=on_result,
                         status=status, **(run_options or {}))
    status(f"now the deployed router {deployed_name}, on the same suite")
    deployed_spec = dataclasses.replace(spec, candidate=None, router_name=deployed_name)
    with progress(f"{deployed_suite.name} · deployed", len(deployed_suite.cases)) as on_result:
        dep = run_suite(deployed_suite, deployed_spec, out=out, prices=prices, concurrency=concurrency,
                        on_result=on_result, status=status, **(run_options or {}))
    comparison, folder, paths = compare_with_deployed(dep, cand, deployed_config=live,
                                                      candidate_config=candidate_suite.router, out=out)
    return DeployedComparison(candidate=cand, deployed=dep, config_diff=diff_configs(live, candidate_suite.router),
                              comparison=comparison, folder=folder, paths=paths, note=note)
