"""Development script: the figures a suite's README quotes, from real runs on the embedded local router.

Each bundled suite's README holds a generated block between two markers::

    <!-- evalkit-figures:begin -->
    ...
    <!-- evalkit-figures:end -->

This script runs the suite (every case, route-only, in-process) on the embedded local router
with each router config of the suite folder (``router.json``, then every ``router.*.json`` such
as ``router.improved.json``), and writes the block: overall accuracy with its 95% interval,
macro-F1, Cohen's kappa, fallback figures, per-task precision / recall / F1, and the task pairs
the run confused most. Nothing between the markers is written by hand::

    HF_HUB_OFFLINE=1 python dev/suite_readme_figures.py                 # every bundled suite
    HF_HUB_OFFLINE=1 python dev/suite_readme_figures.py suites/saas-support
    HF_HUB_OFFLINE=1 python dev/suite_readme_figures.py --check         # exit 1 when a README disagrees

tests/test_suite_readme_figures.py recomputes the block and checks that each README agrees.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SUITES = ("suites/saas-support", "suites/clinc150-domains")
BEGIN = "<!-- evalkit-figures:begin -->"
END = "<!-- evalkit-figures:end -->"
MAX_PAIRS = 5  # task pairs listed, most confused first


@dataclass
class ConfigRun:
    """One router config of a suite, run on every case."""

    config: str          # the config's file name, e.g. router.improved.json
    summary: Any         # evalkit.summary.Summary


def configs_of(suite: Path) -> list[Path]:
    """``router.json`` (the suite's own config), then every ``router.*.json`` beside it, by name."""
    own = suite / "router.json"
    return [own, *sorted(p for p in suite.glob("router.*.json") if p != own)]


def run_config(suite: Path, router: Path) -> ConfigRun:
    """Every case of ``suite`` through the embedded local router with ``router`` (in-process)."""
    from evalkit.api import run_suite

    with tempfile.TemporaryDirectory(prefix="evalkit-figures-") as out:
        run = run_suite(suite, router=router, target="local", out=out)
        return ConfigRun(config=router.name, summary=run.summary)


def run_suite_configs(suite: Path) -> list[ConfigRun]:
    return [run_config(suite, router) for router in configs_of(suite)]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None, places: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{places}f}"


def _pairs(runs: list[ConfigRun]) -> list[tuple[str, str]]:
    """Task pairs (fallback left out) with misroutes in any run, most confused in the first run first."""
    first = runs[0].summary.confusion
    tasks = [t for t in first.labels if t != "fallback"]

    def mass(summary: Any, a: str, b: str) -> int:
        m, labels, columns = summary.confusion.matrix, summary.confusion.labels, summary.confusion.columns
        if a not in labels or b not in labels:
            return 0
        return m[labels.index(a)][columns.index(b)] + m[labels.index(b)][columns.index(a)]

    pairs = [(a, b) for i, a in enumerate(tasks) for b in tasks[i + 1:]
             if any(mass(r.summary, a, b) for r in runs)]
    pairs.sort(key=lambda p: (-mass(runs[0].summary, *p), tasks.index(p[0]), tasks.index(p[1])))
    return pairs[:MAX_PAIRS]


def _pair_cell(summary: Any, a: str, b: str) -> str:
    conf = summary.confusion
    m, labels, columns = conf.matrix, conf.labels, conf.columns
    ab, ba = m[labels.index(a)][columns.index(b)], m[labels.index(b)][columns.index(a)]
    support = sum(m[labels.index(a)]) + sum(m[labels.index(b)])
    rate = (ab + ba) / support if support else 0.0
    return f"{ab + ba} of {support} ({rate * 100:.1f}%): {ab} {a}→{b}, {ba} {b}→{a}"


def render_block(runs: list[ConfigRun]) -> str:
    """The generated block (without the markers): one column per router config."""
    first = runs[0].summary
    target = first.target
    threshold = "" if target.threshold is None else f", fallback threshold {target.threshold:.2f}"
    head = ["figure", *(f"`{r.config}`" for r in runs)]
    rows: list[list[str]] = [
        ["cases scored", *(f"{r.summary.n_scored} of {r.summary.n_cases}" for r in runs)],
        ["accuracy (95% CI)", *(f"{_pct(r.summary.accuracy)} ({_pct(r.summary.accuracy_ci95[0])}–"
                                f"{_pct(r.summary.accuracy_ci95[1])})" for r in runs)],
        ["macro-F1 / Cohen's kappa", *(f"{_num(r.summary.macro_f1)} / {_num(r.summary.cohen_kappa, 2)}" for r in runs)],
        ["fallback rate", *(_pct(r.summary.fallback_rate) for r in runs)],
        ["false fallback (in-scope case sent to fallback)", *(_pct(r.summary.false_fallback_rate) for r in runs)],
        ["false match (out-of-scope case sent to a task)", *(_pct(r.summary.false_match_rate) for r in runs)],
    ]
    for label in first.labels:
        cells = []
        for r in runs:
            t = r.summary.per_task.get(label)
            cells.append("n/a" if t is None else f"{t.precision:.3f} / **{t.recall:.3f}** / {t.f1:.3f}")
        rows.append([f"`{label}` precision / **recall** / F1", *cells])
    for a, b in _pairs(runs):
        rows.append([f"`{a}`/`{b}` misroutes", *(_pair_cell(r.summary, a, b) for r in runs)])
    lines = [
        "<!-- Generated by `python dev/suite_readme_figures.py`: do not edit by hand. -->",
        f"Every case of the suite, route-only, on the embedded local router ({target.classifier or 'embedding'} "
        f"classifier{threshold}), one run per router config:",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    return "\n".join(lines)


def read_block(readme: Path) -> str:
    """The block of ``readme`` between the markers (stripped)."""
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        raise SystemExit(f"{readme}: no figures block; add the two lines {BEGIN} and {END} "
                         "where the figures belong, then run this script again")
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip()


def write_block(readme: Path, block: str) -> bool:
    """Replace the block between the markers; True when the README changed."""
    read_block(readme)  # the markers must be there
    text = readme.read_text(encoding="utf-8")
    new = text[:text.index(BEGIN) + len(BEGIN)] + "\n" + block + "\n" + text[text.index(END):]
    if new == text:
        return False
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(readme)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"suite folders (default: {', '.join(SUITES)})")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a README disagrees")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    stale = []
    for name in args.suites or SUITES:
        suite = (ROOT / name) if not Path(name).is_absolute() else Path(name)
        readme = suite / "README.md"
        read_block(readme)
        block = render_block(run_suite_configs(suite))
        if args.check:
            if read_block(readme) != block:
                stale.append(readme)
                print(f"{readme}: the figures disagree with a run; run `python dev/suite_readme_figures.py {name}`")
            else:
                print(f"{readme}: figures agree")
        else:
            print(f"{readme}: {'updated' if write_block(readme, block) else 'unchanged'}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
