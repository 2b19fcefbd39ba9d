"""`evalkit judge RUN`: judge a stored run's answers without calling the router again."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from evalkit.commands.console import out
from evalkit.commands.options import judge_settings_from_options, ranged
from evalkit.commands.output import print_json, print_judge, status_printer
from evalkit.errors import RunDirError, RunError, UsageError

if TYPE_CHECKING:
    from evalkit.records import JudgeInfo


def judge_command(
    run_dir: Path = typer.Argument(..., help="A run directory written by `evalkit run`."),
    judge: Optional[str] = typer.Option(None, "--judge", help="Judge model (default: the one this run was judged with)."),
    judge_base_url: Optional[str] = typer.Option(None, "--judge-base-url", help="Judge's OpenAI-compatible base URL (default: DigitalOcean serverless inference)."),
    judge_api_key_env: Optional[str] = typer.Option(None, "--judge-api-key-env", help="Environment variable holding the judge's key (default: the one this run was judged with at the same URL, else MODEL_ACCESS_KEY)."),
    judge_samples: int = typer.Option(1, "--judge-samples", callback=ranged("--judge-samples"), help="Judge each answer K times and take the median (reports agreement)."),
    judge_pairwise: bool = typer.Option(False, "--judge-pairwise", help="When the run has a baseline: also judge router vs baseline pairwise, in both orders."),
    judge_cache: bool = typer.Option(True, "--judge-cache/--no-judge-cache", help="Reuse cached verdicts ($EVALKIT_CACHE_DIR/judge)."),
    prices: Optional[Path] = typer.Option(None, "--prices", help="Price catalog YAML for the judge's cost."),
    concurrency: int = typer.Option(8, "--concurrency", "-c", callback=ranged("--concurrency"), help="Judge requests in flight at once."),
    timeout: float = typer.Option(120.0, "--timeout", callback=ranged("--timeout"), help="Per-request timeout in seconds."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No status lines."),
    as_json: bool = typer.Option(False, "--json", help="Print summary.json's judge section on stdout."),
) -> None:
    """Judge a stored run's answers (correctness and completeness, 1-5, per path), write judge.jsonl
    into the run directory and refresh its summary and reports. Verdicts are cached, so judging a
    run again costs nothing. A route-only run (answers without text) has nothing to judge: exit 2."""
    from evalkit.cost import load_prices
    from evalkit.judge import ROUTE_ONLY_FIX, ROUTE_ONLY_REASON, JudgeSettings, resolve_judge_key, route_only_run
    from evalkit.judge.job import DEFAULT_JUDGE_KEY_ENV
    from evalkit.run import finalize, judge_stored
    from evalkit.redact import REDACTED, safe_url
    from evalkit.store import BASELINE, JUDGE, REPORT_HTML, RunDir, load_run

    run = load_run(run_dir)
    previous = run.manifest.judge
    model = judge or (previous.model if previous else None)
    if not model:
        raise UsageError("no judge model given and this run was never judged", where="--judge",
                         fix="add --judge MODEL, e.g. --judge openai-gpt-oss-120b")
    baseline = run.manifest.options.get("baseline_model")
    if judge_pairwise and not baseline:
        raise UsageError("--judge-pairwise needs a baseline, and this run has none", where=str(run.path),
                         got="no baseline.jsonl", fix="run the suite with `evalkit run ... --baseline-model SLUG`, "
                                                      "or leave out --judge-pairwise")
    same_judge = previous is not None and model == previous.model
    stored_url = previous.base_url if same_judge and previous else None
    if judge_base_url is None and stored_url and REDACTED in stored_url:
        raise UsageError("this run's judge URL held credentials, which manifest.json does not keep",
                         where="--judge-base-url", got=stored_url,
                         fix="give the judge's URL again with --judge-base-url")
    settings: JudgeSettings = judge_settings_from_options(
        model, base_url=judge_base_url or stored_url,
        api_key_env=judge_api_key_env or DEFAULT_JUDGE_KEY_ENV, samples=judge_samples,
        pairwise=judge_pairwise, cache=judge_cache, concurrency=concurrency, timeout=timeout,
        baseline_model=baseline)
    remembered = stored_key_env(previous, settings.base_url) if judge_api_key_env is None else None
    settings.api_key_env = remembered or settings.api_key_env
    if route_only_run(run.results, run.dir.read_results(BASELINE)):
        raise RunDirError(f"nothing to judge: {ROUTE_ONLY_REASON}", where=str(run.path), fix=ROUTE_ONLY_FIX)
    key = resolve_judge_key(settings)
    if key is None:
        source = " (the variable this run was judged with)" if remembered else ""
        raise UsageError(f"no judge key: environment variable {settings.api_key_env} is not set{source}",
                         where="--judge-api-key-env",
                         fix=f"export {settings.api_key_env}=<model access key>, or name another variable with "
                             "--judge-api-key-env")
    with RunDir(run.path).lock_for_run("evalkit judge"):  # one writer: not beside a resume or another judge
        run = load_run(run.path)  # as it is now that no other process writes it
        judge_stored(run.dir, run.manifest, run.results, settings, key=key, prices=load_prices(prices),
                     status=status_printer(quiet), raise_unreachable=True)
        summary = finalize(run.dir, run.manifest, run.results)
    if as_json:
        print_json(summary.judge)
    else:
        print_judge(summary.judge)
        out.print(f"verdicts: {run.dir.file(JUDGE)}\nreport: {run.dir.file(REPORT_HTML)}", markup=False, highlight=False)
    judgement = run.dir.read_judgement()
    called = [r for r in [*judgement.records, *judgement.baseline_records] if r.status != "no_answer"]
    if called and all(r.status == "error" for r in called):
        raise RunError("the judge could not be reached: every judge call failed", where=safe_url(settings.base_url),
                       got=called[0].rationale,
                       fix="check --judge-base-url, the judge model and its key; the failures are in judge.jsonl")


def stored_key_env(previous: JudgeInfo | None, base_url: str) -> str | None:
    """The key variable the run was judged with, when the judge is reached at the same URL (a key
    is never sent by default to an endpoint it was not used with); None otherwise."""
    from evalkit.redact import safe_url

    if previous is None or not previous.api_key_env or not previous.base_url:
        return None
    same = (safe_url(base_url) or "").rstrip("/") == previous.base_url.rstrip("/")
    return previous.api_key_env if same else None


def register(app: typer.Typer) -> None:
    app.command("judge")(judge_command)
