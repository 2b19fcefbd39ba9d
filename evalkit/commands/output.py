"""What the commands print: the run summary, judge figures, gate verdicts, a comparison, status
lines and progress; and the GitHub step summary. Terminal formatting only: every figure comes
from the typed documents (``summary.Summary``, ``comparison.Comparison``)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from rich.markup import escape
from rich.table import Table

from evalkit.commands.console import err, out

if TYPE_CHECKING:
    from evalkit.comparison import Comparison
    from evalkit.errors import Interrupted
    from evalkit.gates import GateResult
    from evalkit.judge.records import JudgeSummary, ScoreStats
    from evalkit.records import CaseResult, Manifest
    from evalkit.store import Run
    from evalkit.summary import Summary


def fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _round(value: float | None) -> str:
    return "n/a" if value is None else str(round(value, 3))


def print_summary(run: Run) -> None:
    """The short terminal table after a run: its figures, what completes it when it is incomplete
    (``evalkit.finish.finish_hint``), and the warnings its records call for."""
    from evalkit.finish import finish_hint
    from evalkit.report.context import interval, nothing_scored, shard_scope, task_rows

    summary, run_dir, results, manifest = run.summary, run.path, run.results, run.manifest
    shard = shard_scope(manifest)
    head = Table(title=f"{escape(summary.suite)} · {summary.target.kind} · run {summary.run_id}",
                 show_header=False, title_justify="left")
    head.add_column(style="bold")
    head.add_column()
    if shard:
        head.add_row("shard", f"{escape(shard)}: figures cover this shard only (evalkit merge joins the shards)",
                     style="bold yellow")
    empty = nothing_scored(summary, results)
    if empty:
        head.add_row("nothing scored", escape(empty), style="bold red")
    head.add_row("accuracy", f"{fmt_pct(summary.accuracy)}  (95% CI {interval(summary.accuracy_ci95, summary.n_scored, sep='-')}"
                             f", n={summary.n_scored})" if summary.n_scored else "n/a  (no case scored, n=0)")
    head.add_row("macro-F1 / kappa", f"{_round(summary.macro_f1)} / {_round(summary.cohen_kappa)}")
    head.add_row("fallback rate", f"{fmt_pct(summary.fallback_rate)}  (false fallback "
                                  f"{fmt_pct(summary.false_fallback_rate)}, false match {fmt_pct(summary.false_match_rate)})")
    n_classifier = summary.run.n_classifier_errors
    head.add_row("errors", f"{summary.n_errors} ({fmt_pct(summary.error_rate)}"
                           + (f", {n_classifier} from the local router's classifier" if n_classifier else "")
                           + f"), missing route {summary.n_missing_route}")
    if summary.run.n_not_run:
        head.add_row("incomplete", f"{summary.run.n_not_run} of {summary.run.n_planned} planned cases have no result "
                                   f"(figures cover the rest; to complete it, {finish_hint(manifest, run_dir)})",
                     style="bold yellow")
    out.print(head)
    table = Table(title="per task", title_justify="left")
    for col in ("task", "precision", "recall", "f1", "support"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for row in task_rows(summary):
        table.add_row(escape(row["task"]), row["precision"], row["recall"], row["f1"], str(row["support"]))
    out.print(table)
    if summary.judge:
        print_judge(summary.judge)
    from evalkit.store import REPORT_HTML

    out.print(f"report: {run_dir / REPORT_HTML}")
    print_review_warning(summary)
    print_route_header_warning(summary, results)
    print_unstreamed_note(manifest, results)


def print_unstreamed_note(manifest: Manifest | None, results: Sequence[CaseResult]) -> None:
    """On stderr: a run asked to stream (--stream) but route-only answers were not streamed, so TTFT is absent."""
    from evalkit.latency import unstreamed_note

    note = unstreamed_note(results, stream=bool(manifest and manifest.options.get("stream")))
    if note:
        err.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)


def print_route_header_warning(summary: Summary, results: Sequence[CaseResult]) -> None:
    """On stderr: most answers carried no route header (the expected one, the names that came back, the option)."""
    from evalkit.metrics import route_header_notice

    notice = route_header_notice(results, header=summary.target.route_header)
    if notice is not None:
        err.print(f"[bold yellow]warning:[/bold yellow] {escape(notice['message'])}", highlight=False)


def print_review_warning(summary: Summary) -> None:
    """On stderr, so it shows with --json too: a suite whose labels nobody reviewed grades the router against itself."""
    warning = summary.review.warning
    if warning:
        err.print(f"[bold yellow]warning:[/bold yellow] {escape(warning)}", highlight=False)


def print_json(document: Any) -> None:
    """A typed document (or a plain one) as JSON on stdout."""
    from evalkit.store import finite_json

    data = document.to_json() if hasattr(document, "to_json") else document
    out.print_json(json.dumps(finite_json(data), default=str, allow_nan=False))


def _score(stats: ScoreStats | None) -> str:
    if stats is None or stats.mean is None:
        return "n/a"
    ci = stats.ci95 or [stats.mean, stats.mean]
    return f"{stats.mean:.2f} [{ci[0]:.2f}-{ci[1]:.2f}] n={stats.n}"


def print_judge_skipped(block: JudgeSummary | None) -> None:
    """On stderr, once: why judging was skipped (no key, route-only answers) and what to do."""
    if block and not block.done and block.status == "skipped":
        from evalkit.judge import ROUTE_ONLY_REASON

        then = "to get answers" if block.reason == ROUTE_ONLY_REASON else "to turn it on"
        err.print(f"judging skipped: {block.reason}; {then}: {block.fix}", markup=False, highlight=False)


def print_judge(block: JudgeSummary | None) -> None:
    """The judge's figures in the terminal (per path), or why judging was skipped."""
    if not block:
        return
    if not block.done:
        print_judge_skipped(block)
        if block.baseline is not None:
            print_baseline(block.baseline, criteria=[])
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
    if block.baseline is not None:
        print_baseline(block.baseline, criteria=criteria)
    if block.cost is None:
        return
    cost = block.cost
    spent = "unknown (judge model not in the price catalog)" if cost.total_usd is None else f"${cost.total_usd:.6f}"
    out.print(f"judge tokens {cost.prompt_tokens} in / {cost.completion_tokens} out, cost {spent}, "
              f"{cost.n_cached_samples} cached samples", markup=False, highlight=False)


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.6f}"


def print_baseline(base: Any, *, criteria: list[str]) -> None:
    """The router against the baseline model (``--baseline-model``) per path: each criterion's
    paired mean difference, the cost of both, and the pairwise verdicts with how many are unscored."""
    rows = [*base.per_path.items(), ("all", base.overall)]
    pairwise = any(p.pairwise is not None for _, p in rows)
    table = Table(title=f"router vs baseline {base.model} per path: judge score router - baseline "
                        "(paired mean [95% CI] n), cost, pairwise verdicts", title_justify="left")
    table.add_column("path")
    table.add_column("cases", justify="right")
    for c in criteria:
        table.add_column(c, justify="right")
    table.add_column("cost router / baseline", justify="right")
    if pairwise:
        table.add_column("router / tie / baseline wins", justify="right")
        table.add_column("unscored", justify="right")
    for path, p in rows:
        cells = [path, str(p.n)]
        for c in criteria:
            q = p.quality.get(c)
            if q is None or q.difference is None:
                cells.append("n/a")
            else:
                ci = q.difference_ci95 or [q.difference, q.difference]
                cells.append(f"{q.difference:+.2f} [{ci[0]:+.2f},{ci[1]:+.2f}] n={q.n_pairs}")
        cells.append(f"{_usd(p.cost.router_usd)} / {_usd(p.cost.baseline_usd)}")
        if pairwise:
            w = p.pairwise
            cells += (["-", "-"] if w is None
                      else [f"{w.router_wins} / {w.ties} / {w.baseline_wins}", f"{w.unscored} of {w.n}"])
        table.add_row(*(escape(x) for x in cells))
    out.print(table)
    tally = base.overall.pairwise
    if tally is not None:
        out.print(f"pairwise verdicts: {tally.n}, of which {tally.unscored} unscored (no usable verdict from the "
                  f"judge; left out of the wins, losses and ties); router wins {tally.router_wins}, ties "
                  f"{tally.ties}, baseline wins {tally.baseline_wins}", markup=False, highlight=False)
    if base.n_errors:
        out.print(f"baseline model: {base.n_errors} of {base.n_cases} requests failed", markup=False,
                  highlight=False)


def print_gates(verdicts: list[GateResult]) -> None:
    for v in verdicts:
        style = "green" if v.passed else "red"
        out.print(f"[{style}]{'PASS' if v.passed else 'FAIL'}[/{style}] {escape(v.message)}", highlight=False)


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_compare(diff: Comparison, paths: dict[str, Path] | None = None, *, limit: int = 20,
                  labels: tuple[str, str] = ("A", "B")) -> None:
    """The short terminal account of a comparison: the router config diff (the cause) first, then
    the metric deltas, McNemar's test and the regressed and fixed cases (by expected task, then id)."""
    for w in diff.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False)
    _print_config_change(diff.config, labels)
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
                out.print(f"  {r.id}: {flip_text(r, kind)}: {prompt[:100]}", highlight=False, markup=False)
            if len(rows) > limit:
                out.print(f"  ...and {len(rows) - limit} more in diff.json")
    for c in diff.checks:
        out.print(("[green]PASS[/green] " if c.passed else "[red]FAIL[/red] ") + escape(c.message), highlight=False)
    if paths:
        out.print(f"report: {paths['html']}")


def flip_text(flip: Any, kind: str) -> str:
    """A regressed or fixed case in words: ``customer-qa case now routed to classify (was correct)``."""
    if kind == "regressed":
        return f"{flip.expected_route} case now routed to {flip.route_b} (was correct)"
    return f"{flip.expected_route} case now routed correctly (was routed to {flip.route_a})"


def _print_config_change(cfg: dict[str, Any] | None, labels: tuple[str, str] = ("A", "B")) -> None:
    """The router config diff (``router_config.diff_configs``) of a comparison, as ``evalkit router
    diff`` prints it: descriptions word by word, pools, policies, fallback models."""
    from evalkit.commands.router import format_config_diff

    if cfg and cfg["changed"]:
        out.print(format_config_diff(cfg, a_label=labels[0], b_label=labels[1]), markup=False, highlight=False)
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


def print_interrupted(stop: Interrupted, command: str) -> None:
    """After Ctrl-C or SIGTERM: where the run is, how far it got, and the command that finishes it."""
    err.print(f"interrupted ({stop.signal_name}): {stop.n_done} of {stop.n_planned} cases done; "
              f"the results so far, summary and report (marked incomplete) are in {stop.run_dir}",
              markup=False, highlight=False)
    err.print("finish the run with:", markup=False, highlight=False)
    err.print(f"  {command}", markup=False, highlight=False, soft_wrap=True)


def status_printer(quiet: bool) -> Callable[[str], None]:
    """Status lines on stderr, dimmed; none with --quiet."""
    def status(message: str) -> None:
        if not quiet:
            err.print(f"[dim]{escape(message)}[/dim]", highlight=False)
    return status


def progress_bar(quiet: bool) -> Callable[[str, int], Any]:
    """A progress factory for the library's runs: a bar on stderr while it is a terminal; elsewhere
    (a CI log, a file) a line at every tenth of the cases, ``progress: 26 of 252 cases (...)``.
    A resumed run counts the results it already had (``begin``): 1280 stored and 1720 sent of
    3000 cases end at ``3000 of 3000``."""
    @contextlib.contextmanager
    def progress(label: str, total: int) -> Iterator[Callable[[CaseResult], None]]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[misrouted]} misrouted, {task.fields[errors]} errors"),
                       TimeElapsedColumn(), console=err, disable=quiet or not err.is_terminal, transient=False)
        with bar:
            yield RunProgress(bar, bar.add_task(label, total=total, misrouted=0, errors=0), total,
                              lines=not quiet and not err.is_terminal)
    return progress


class RunProgress:
    """The ``on_result`` of a run drawing its progress; ``begin`` sets the count the run starts from."""

    def __init__(self, bar: Any, task_id: Any, total: int, *, lines: bool) -> None:
        self.bar, self.task_id, self.lines = bar, task_id, lines
        self.done = self.misrouted = self.errors = 0
        self.set_total(total)

    def set_total(self, total: int) -> None:
        self.total, self.step = total, max(1, -(-total // 10))

    def begin(self, total: int, stored: Sequence[CaseResult]) -> None:
        """The run has ``total`` cases (a shard's share, say) and ``stored`` results already (a resumed run)."""
        self.set_total(total)
        for result in stored:
            self._count(result)
        self.bar.update(self.task_id, total=total, completed=self.done, misrouted=self.misrouted, errors=self.errors)

    def _count(self, result: CaseResult) -> None:
        self.done += 1
        if result.status == "error":
            self.errors += 1
        elif result.route != result.expected_route:
            self.misrouted += 1

    def __call__(self, result: CaseResult) -> None:
        before = self.done
        self._count(result)
        self.bar.update(self.task_id, completed=self.done, misrouted=self.misrouted, errors=self.errors)
        if self.lines and (self.done // self.step > before // self.step or self.done == self.total):
            err.print(f"progress: {self.done} of {self.total} cases ({self.misrouted} misrouted, "
                      f"{self.errors} errors)", markup=False, highlight=False)
