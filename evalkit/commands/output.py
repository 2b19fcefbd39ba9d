"""What the commands print: the run summary, judge figures, gate verdicts, a comparison, status
lines and progress; and the GitHub step summary. Terminal formatting only: every figure comes
from the typed documents (``summary.Summary``, ``comparison.Comparison``)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from rich.markup import escape
from rich.table import Table

from evalkit.commands.console import err, out

if TYPE_CHECKING:
    from evalkit.comparison import Comparison
    from evalkit.gates import GateResult
    from evalkit.judge.records import JudgeSummary, ScoreStats
    from evalkit.records import CaseResult
    from evalkit.store import Run
    from evalkit.summary import Summary


def fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _round(value: float | None) -> str:
    return str(value if value is None else round(value, 3))


def print_summary(summary: Summary, run_dir: Path) -> None:
    """The short terminal table after a run."""
    ci = summary.accuracy_ci95
    head = Table(title=f"{summary.suite} · {summary.target.kind} · run {summary.run_id}",
                 show_header=False, title_justify="left")
    head.add_column(style="bold")
    head.add_column()
    head.add_row("accuracy", f"{fmt_pct(summary.accuracy)}  (95% CI {fmt_pct(ci[0])}-{fmt_pct(ci[1])}, "
                             f"n={summary.n_scored})")
    head.add_row("macro-F1 / kappa", f"{_round(summary.macro_f1)} / {_round(summary.cohen_kappa)}")
    head.add_row("fallback rate", f"{fmt_pct(summary.fallback_rate)}  (false fallback "
                                  f"{fmt_pct(summary.false_fallback_rate)}, false match {fmt_pct(summary.false_match_rate)})")
    n_classifier = summary.run.n_classifier_errors
    head.add_row("errors", f"{summary.n_errors} ({fmt_pct(summary.error_rate)}"
                           + (f", {n_classifier} from the local router's classifier" if n_classifier else "")
                           + f"), missing route {summary.n_missing_route}")
    out.print(head)
    table = Table(title="per task", title_justify="left")
    for col in ("task", "precision", "recall", "f1", "support"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for task, v in summary.per_task.items():
        table.add_row(escape(task), f"{v.precision:.3f}", f"{v.recall:.3f}", f"{v.f1:.3f}", str(v.support))
    out.print(table)
    if summary.judge:
        print_judge(summary.judge)
    from evalkit.store import REPORT_HTML

    out.print(f"report: {run_dir / REPORT_HTML}")
    print_review_warning(summary)


def print_review_warning(summary: Summary) -> None:
    """On stderr, so it shows with --json too: a suite whose labels nobody reviewed grades the router against itself."""
    warning = summary.review.warning
    if warning:
        err.print(f"[bold yellow]warning:[/bold yellow] {escape(warning)}", highlight=False)


def print_json(document: Any) -> None:
    """A typed document (or a plain one) as JSON on stdout."""
    data = document.to_json() if hasattr(document, "to_json") else document
    out.print_json(json.dumps(data, default=str))


def _score(stats: ScoreStats | None) -> str:
    if stats is None or stats.mean is None:
        return "n/a"
    ci = stats.ci95 or [stats.mean, stats.mean]
    return f"{stats.mean:.2f} [{ci[0]:.2f}-{ci[1]:.2f}] n={stats.n}"


def print_judge(block: JudgeSummary | None) -> None:
    """The judge's figures in the terminal (per path), or why judging was skipped."""
    if not block:
        return
    if not block.done:
        if block.status == "skipped":
            err.print(f"judging skipped: {block.reason}; to turn it on: {block.fix}", markup=False, highlight=False)
        return
    criteria = block.criteria
    table = Table(title=f"judge {block.model} per path (mean [95% CI] n)", title_justify="left")
    table.add_column("path")
    for c in criteria:
        table.add_column(c, justify="right")
    table.add_column("unscored / no answer", justify="right")
    for path, stats in [*block.per_path.items(), ("all", block.overall)]:
        unscored = sum(stats[c].n_unscored + stats[c].n_error for c in criteria)
        no_answer = sum(stats[c].n_no_answer for c in criteria)
        table.add_row(escape(path), *(_score(stats.get(c)) for c in criteria), f"{unscored} / {no_answer}")
    out.print(table)
    if block.cost is None:
        return
    cost = block.cost
    spent = "unknown (judge model not in the price catalog)" if cost.total_usd is None else f"${cost.total_usd:.6f}"
    out.print(f"judge tokens {cost.prompt_tokens} in / {cost.completion_tokens} out, cost {spent}, "
              f"{cost.n_cached_samples} cached samples", markup=False, highlight=False)


def print_gates(verdicts: list[GateResult]) -> None:
    for v in verdicts:
        style = "green" if v.passed else "red"
        out.print(f"[{style}]{'PASS' if v.passed else 'FAIL'}[/{style}] {escape(v.message)}", highlight=False)


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_compare(diff: Comparison, paths: dict[str, Path] | None = None, *, limit: int = 20) -> None:
    """The short terminal account of a comparison."""
    for w in diff.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False)
    table = Table(title=f"compare {diff.a.run_id} (A) -> {diff.b.run_id} (B) · {diff.n_matched} matched cases",
                  title_justify="left")
    for col in ("metric", "A", "B", "delta", "95% CI"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for m in diff.metrics:
        if "[" in m.metric and not m.delta:
            continue  # unchanged per-task figures stay in diff.json
        ci = m.ci95
        table.add_row(escape(m.metric), _f(m.a), _f(m.b), "n/a" if m.delta is None else f"{m.delta:+.3f}",
                      f"{ci[0]:+.3f} to {ci[1]:+.3f}" if ci else "")
    out.print(table)
    mc = diff.mcnemar
    out.print(f"McNemar exact: {mc.regressed} regressed, {mc.fixed} fixed of {mc.n} cases, "
              f"p={mc.p_value:.4g}" + (" (significant)" if mc.significant else " (not significant)"))
    for kind, rows in (("regressed", diff.regressed_cases), ("fixed", diff.fixed_cases)):
        if rows:
            out.print(f"{kind} ({len(rows)}):")
            for r in rows[:limit]:
                prompt = " ".join(r.prompt.split())
                out.print(f"  {r.id}: expected {r.expected_route}, {r.route_a} -> {r.route_b}: "
                          f"{prompt[:100]}", highlight=False, markup=False)
            if len(rows) > limit:
                out.print(f"  ...and {len(rows) - limit} more in diff.json")
    _print_config_change(diff.config)
    for c in diff.checks:
        out.print(("[green]PASS[/green] " if c.passed else "[red]FAIL[/red] ") + escape(c.message), highlight=False)
    if paths:
        out.print(f"report: {paths['html']}")


def _print_config_change(cfg: dict[str, Any] | None) -> None:
    """One line on the router config diff (``router_config.diff_configs``) of a comparison."""
    if cfg and cfg["changed"]:
        changed = [t["task"] for t in cfg["tasks"]]
        parts = [f"tasks changed: {', '.join(changed)}"] if changed else []
        if cfg["tasks_added"]:
            parts.append("added: " + ", ".join(t["task"] for t in cfg["tasks_added"]))
        if cfg["tasks_removed"]:
            parts.append("removed: " + ", ".join(t["task"] for t in cfg["tasks_removed"]))
        if cfg["fallback_models"]:
            parts.append("fallback models changed")
        out.print(f"router config {cfg['a_hash']} -> {cfg['b_hash']}: {'; '.join(parts) or 'other fields changed'}",
                  markup=False, highlight=False)
    elif cfg:
        out.print("router config: unchanged")


def print_run_verdict(run: Run, *, as_json: bool) -> int:
    """After ``evalkit run`` / ``evalkit merge``: the gates' verdicts, the comparison with the
    baseline run (when there was one), the step summary; returns the exit code (1: a gate failed
    or routing got significantly worse than the baseline)."""
    summary = run.summary
    if summary.gates and not as_json:
        print_gates(summary.gates)
    options = run.manifest.options
    if options.get("shard") and options.get("gates") and not as_json:
        err.print(f"shard {options['shard']}: gates are evaluated when the shards are merged (evalkit merge)",
                  highlight=False)
    failed = not summary.gates_passed
    if options.get("baseline") and run.comparison is not None:
        if not as_json:
            from evalkit.store import COMPARE_HTML

            print_compare(run.comparison, {"html": run.path / COMPARE_HTML})
        failed = failed or run.comparison.failed
    from evalkit.store import SUMMARY_MD

    append_step_summary(run.path / SUMMARY_MD)
    return 1 if failed else 0


def append_step_summary(markdown: Path) -> None:
    """Append a markdown report to ``$GITHUB_STEP_SUMMARY`` when that variable is set (GitHub Actions)."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target or not markdown.is_file():
        return
    with open(target, "a", encoding="utf-8") as fh:
        fh.write("\n" + markdown.read_text(encoding="utf-8").strip("\n") + "\n")


def status_printer(quiet: bool) -> Callable[[str], None]:
    """Status lines on stderr, dimmed; none with --quiet."""
    def status(message: str) -> None:
        if not quiet:
            err.print(f"[dim]{escape(message)}[/dim]", highlight=False)
    return status


def progress_bar(quiet: bool) -> Callable[[str, int], Any]:
    """A progress factory for the library's runs: a bar on stderr while it is a terminal."""
    @contextlib.contextmanager
    def progress(label: str, total: int) -> Iterator[Callable[[CaseResult], None]]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[misrouted]} misrouted, {task.fields[errors]} errors"),
                       TimeElapsedColumn(), console=err, disable=quiet or not err.is_terminal, transient=False)
        counters = {"misrouted": 0, "errors": 0}
        with bar:
            task_id = bar.add_task(label, total=total, misrouted=0, errors=0)

            def on_result(result: CaseResult) -> None:
                if result.status == "error":
                    counters["errors"] += 1
                elif result.route != result.expected_route:
                    counters["misrouted"] += 1
                bar.update(task_id, advance=1, misrouted=counters["misrouted"], errors=counters["errors"])

            yield on_result
    return progress
