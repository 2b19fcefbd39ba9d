"""`evalkit compare RUN_A RUN_B`: paired comparison of two stored runs, exit by regression gates."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from evalkit.commands.output import append_step_summary, print_compare, print_json


def compare(
    run_a: Path = typer.Argument(..., help="The baseline run directory (before)."),
    run_b: Path = typer.Argument(..., help="The candidate run directory (after)."),
    max_drop: Optional[list[str]] = typer.Option(None, "--max-drop", help="Fail when METRIC worsens by more than DROP, e.g. accuracy=0.02 or recall[reasoning]=5% (repeatable)."),
    fail_on_significant_regression: bool = typer.Option(True, "--fail-on-significant-regression/--no-fail-on-significant-regression", help="Fail when McNemar's exact test finds significantly more regressed than fixed cases (default on)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Folder for compare.html, diff.json and compare.md (default reports/compare/<A>-vs-<B>/)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level of McNemar's test."),
    seed: int = typer.Option(0, "--seed", help="Seed of the paired bootstrap (same seed, same intervals)."),
    n_boot: int = typer.Option(2000, "--bootstrap", help="Bootstrap resamples for the delta intervals."),
    junit_cases: str = typer.Option("regressed", "--junit-cases", help="junit.xml test cases: regressed (the cases B broke fail, the ones it fixed pass) or all (every case B misroutes fails)."),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="Compare the cases both runs have when a run is incomplete (cases planned without a result), instead of failing."),
    as_json: bool = typer.Option(False, "--json", help="Print diff.json on stdout instead of the table."),
) -> None:
    """Compare two runs case by case: metric deltas with paired bootstrap intervals, McNemar's exact
    test, fixed and regressed cases, judge and cost deltas, the router config diff.

    Writes diff.json, compare.html, compare.md and junit.xml. Exits 1 when a --max-drop check
    fails, (by default) routing got significantly worse, or a run is incomplete (unless
    --allow-incomplete).
    """
    from evalkit.api import compare as compare_runs
    from evalkit.comparison import check_settings, parse_max_drop
    from evalkit.report.compare import write_compare
    from evalkit.report.junit import check_junit_cases
    from evalkit.store import load_run

    check_junit_cases(junit_cases)
    check_settings(alpha=alpha, seed=seed, n_boot=n_boot)  # the checks evalkit.compare() makes, with option names
    a, b = load_run(run_a), load_run(run_b)
    labels = list(dict.fromkeys([*a.manifest.router.tasks, *b.manifest.router.tasks, "fallback"]))
    drops = parse_max_drop(max_drop, labels=labels)
    diff = compare_runs(a, b, seed=seed, n_boot=n_boot, alpha=alpha, max_drop=drops,
                        fail_on_significant_regression=fail_on_significant_regression,
                        allow_incomplete=allow_incomplete)
    folder = out_dir or Path("reports") / "compare" / f"{diff.a.run_id}-vs-{diff.b.run_id}"
    _make_out_dir(folder)
    paths = write_compare(diff, folder, junit_results=b.results, junit_cases=junit_cases)
    if as_json:
        print_json(diff)
    else:
        print_compare(diff, paths)
    append_step_summary(paths["markdown"])
    raise typer.Exit(1 if diff.failed else 0)


def _make_out_dir(folder: Path) -> None:
    """The report folder, made now: a file in its place, or a folder that cannot be made, is a
    usage error (exit 2) naming --out, as for `evalkit run` and `merge`, not a traceback."""
    from evalkit.errors import UsageError
    from evalkit.store import check_out_dir

    check_out_dir(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"the report folder cannot be created: {exc.strerror or exc}", where=f"--out {folder}",
                         fix="give --out a folder you can write to (it is created when missing), "
                             "e.g. --out reports/compare") from None


def register(app: typer.Typer) -> None:
    app.command()(compare)
