"""`evalkit judge RUN`: judge a stored run's answers without calling the router again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from evalkit.cli import app, err, judge_settings_from_options, out
from evalkit.errors import RunError, UsageError


def _score(stats: dict[str, Any]) -> str:
    if not stats or stats.get("mean") is None:
        return "n/a"
    ci = stats.get("ci95") or [stats["mean"], stats["mean"]]
    return f"{stats['mean']:.2f} [{ci[0]:.2f}-{ci[1]:.2f}] n={stats['n']}"


def print_judge(block: dict[str, Any] | None) -> None:
    """The judge's figures in the terminal (per path), or why judging was skipped."""
    if not block:
        return
    if block.get("status") != "done":
        if block.get("status") == "skipped":
            err.print(f"judging skipped: {block.get('reason')}; to turn it on: {block.get('fix')}",
                      markup=False, highlight=False)
        return
    criteria = block["criteria"]
    table = Table(title=f"judge {block['model']} per path (mean [95% CI] n)", title_justify="left")
    table.add_column("path")
    for c in criteria:
        table.add_column(c, justify="right")
    table.add_column("unscored / no answer", justify="right")
    for path, stats in [*block["per_path"].items(), ("all", block["overall"])]:
        unscored = sum(stats[c]["n_unscored"] + stats[c]["n_error"] for c in criteria)
        no_answer = sum(stats[c]["n_no_answer"] for c in criteria)
        table.add_row(path, *(_score(stats[c]) for c in criteria), f"{unscored} / {no_answer}")
    out.print(table)
    cost = block["cost"]
    spent = "unknown (judge model not in the price catalog)" if cost["total_usd"] is None else f"${cost['total_usd']:.6f}"
    out.print(f"judge tokens {cost['prompt_tokens']} in / {cost['completion_tokens']} out, cost {spent}, "
              f"{cost['n_cached_samples']} cached samples", markup=False, highlight=False)


@app.command("judge")
def judge_command(
    run_dir: Path = typer.Argument(..., help="A run directory written by `evalkit run`."),
    judge: Optional[str] = typer.Option(None, "--judge", help="Judge model (default: the one this run was judged with)."),
    judge_base_url: Optional[str] = typer.Option(None, "--judge-base-url", help="Judge's OpenAI-compatible base URL (default: DigitalOcean serverless inference)."),
    judge_api_key_env: str = typer.Option("MODEL_ACCESS_KEY", "--judge-api-key-env", help="Environment variable holding the judge's key."),
    judge_samples: int = typer.Option(1, "--judge-samples", help="Judge each answer K times and take the median (reports agreement)."),
    judge_pairwise: bool = typer.Option(False, "--judge-pairwise", help="When the run has a baseline: also judge router vs baseline pairwise, in both orders."),
    judge_cache: bool = typer.Option(True, "--judge-cache/--no-judge-cache", help="Reuse cached verdicts ($EVALKIT_CACHE_DIR/judge)."),
    prices: Optional[Path] = typer.Option(None, "--prices", help="Price catalog YAML for the judge's cost."),
    concurrency: int = typer.Option(8, "--concurrency", "-c", help="Judge requests in flight at once."),
    timeout: float = typer.Option(120.0, "--timeout", help="Per-request timeout in seconds."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No status lines."),
    as_json: bool = typer.Option(False, "--json", help="Print summary.json's judge section on stdout."),
) -> None:
    """Judge a stored run's answers (correctness and completeness, 1-5, per path), write judge.jsonl
    into the run directory and refresh its summary and reports. Verdicts are cached, so judging a
    run again costs nothing."""
    from evalkit.cost import load_prices
    from evalkit.judge import JudgeSettings, load_judgement, resolve_judge_key
    from evalkit.pipeline import finalize, judge_stored
    from evalkit.store import load_run

    run = load_run(run_dir)
    previous = run.manifest.judge or {}
    model = judge or previous.get("model")
    if not model:
        raise UsageError("no judge model given and this run was never judged", where="--judge",
                         fix="add --judge MODEL, e.g. --judge openai-gpt-oss-120b")
    baseline = run.manifest.options.get("baseline_model")
    if judge_pairwise and not baseline:
        raise UsageError("--judge-pairwise needs a baseline, and this run has none", where=str(run.path),
                         got="no baseline.jsonl", fix="run the suite with `evalkit run ... --baseline-model SLUG`, "
                                                      "or leave out --judge-pairwise")
    settings: JudgeSettings = judge_settings_from_options(
        model, base_url=judge_base_url or (previous.get("base_url") if model == previous.get("model") else None),
        api_key_env=judge_api_key_env, samples=judge_samples,
        pairwise=judge_pairwise, cache=judge_cache, concurrency=concurrency, timeout=timeout,
        baseline_model=baseline)
    key = resolve_judge_key(settings)
    if key is None:
        raise UsageError(f"no judge key: environment variable {settings.api_key_env} is not set", where="--judge-api-key-env",
                         fix=f"export {settings.api_key_env}=<model access key>, or name another variable with "
                             "--judge-api-key-env")
    catalog = load_prices(prices)

    def status(message: str) -> None:
        if not quiet:
            err.print(f"[dim]{message}[/dim]")

    judge_stored(run.path, run.manifest, run.results, settings, key=key, prices=catalog, status=status)
    summary = finalize(run.path, run.manifest, run.results)
    judgement = load_judgement(run.path)
    if as_json:
        out.print_json(json.dumps(summary["judge"], default=str))
    else:
        print_judge(summary["judge"])
        out.print(f"verdicts: {run.path / 'judge.jsonl'}\nreport: {run.path / 'report.html'}",
                  markup=False, highlight=False)
    judged = [*judgement.records, *judgement.baseline_records]
    called = [r for r in judged if r.status != "no_answer"]
    if called and all(r.status == "error" for r in called):
        raise RunError("the judge could not be reached: every judge call failed", where=settings.base_url,
                       got=called[0].rationale,
                       fix="check --judge-base-url, the judge model and its key; the failures are in judge.jsonl")
