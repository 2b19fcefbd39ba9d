"""The figures the bundled suites' READMEs quote agree with real runs (dev/suite_readme_figures.py).

Each suite runs in-process on the embedded local router with every router config of its folder
(the session's shared embeddings keep it fast), and the block the script would write must be
the one between the README's markers.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def figures() -> Any:
    spec = importlib.util.spec_from_file_location("suite_readme_figures", ROOT / "dev" / "suite_readme_figures.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _check(figures: Any, suite: Path) -> list[Any]:
    runs = figures.run_suite_configs(suite)
    quoted = figures.read_block(suite / "README.md")
    assert quoted == figures.render_block(runs), (
        f"{suite / 'README.md'} quotes figures a run does not give: run `python dev/suite_readme_figures.py "
        f"{suite.relative_to(ROOT)}`")
    return runs


def test_saas_support_readme_quotes_the_figures_of_real_runs(figures: Any) -> None:
    runs = _check(figures, ROOT / "suites" / "saas-support")
    assert [r.config for r in runs] == ["router.json", "router.improved.json"]
    # the block carries what a reader compares: overall accuracy and every task's recall, per config
    quoted = figures.read_block(ROOT / "suites" / "saas-support" / "README.md")
    for r in runs:
        assert f"{r.summary.accuracy * 100:.1f}%" in quoted
        for label in r.summary.labels:
            assert f"**{r.summary.per_task[label].recall:.3f}**" in quoted


@pytest.mark.slow
def test_clinc150_readme_quotes_the_figures_of_a_real_run(figures: Any) -> None:
    _check(figures, ROOT / "suites" / "clinc150-domains")


def test_the_script_rewrites_only_its_block(figures: Any, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# s\n\nintro 56.0%\n\n{figures.BEGIN}\nold figures\n{figures.END}\n\nafter\n")
    assert figures.write_block(readme, "| new |") is True
    assert readme.read_text() == f"# s\n\nintro 56.0%\n\n{figures.BEGIN}\n| new |\n{figures.END}\n\nafter\n"
    assert figures.write_block(readme, "| new |") is False
    readme.write_text("# no markers\n")
    with pytest.raises(SystemExit, match=re.escape(figures.BEGIN)):
        figures.read_block(readme)
