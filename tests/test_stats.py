"""evalkit.stats: the Wilson interval and McNemar's exact test against scipy and statsmodels, the
one bootstrap resampler (judge intervals and compare's paired deltas), and no scipy at run time."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import binomtest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from evalkit import stats
from evalkit.comparison import RunSide, compare_runs
from evalkit.metrics import routing_metrics
from tests.conftest import ROOT, cli_env
from tests.run_helpers import result

LABELS = ["classify", "customer-qa", "reasoning", "fallback"]


@pytest.mark.parametrize("k, n", [(0, 1), (1, 1), (0, 7), (3, 7), (7, 7), (39, 48), (500, 1000), (999, 1000), (1, 3000)])
def test_wilson_interval_is_scipys_and_statsmodels(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert stats.wilson_interval(k, n) == pytest.approx([ci.low, ci.high], abs=1e-12)
    assert stats.wilson_interval(k, n) == pytest.approx(list(proportion_confint(k, n, alpha=0.05, method="wilson")),
                                                        abs=1e-12)


@pytest.mark.parametrize("regressed, fixed", [(0, 0), (0, 1), (7, 2), (50, 11), (1, 9), (13, 13), (0, 40), (21, 40)])
def test_mcnemar_exact_is_statsmodels_exact_mcnemar(regressed, fixed):
    expected = mcnemar(np.array([[10, regressed], [fixed, 4]]), exact=True).pvalue
    assert stats.mcnemar_exact(regressed, fixed) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_resampled_sums_resample_whole_rows_with_replacement():
    rows = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    sums = stats.resampled_sums(np.random.default_rng(5), rows, 3000)
    assert sums.shape == (3000, 2)
    # each resample draws 4 whole rows: column 0 counts the rows 0, 2, 3; column 1 the rows 1, 2
    assert ((sums >= 0) & (sums <= 4)).all() and (sums.sum(axis=1) >= 4).all()
    assert sums.mean(axis=0) == pytest.approx(rows.sum(axis=0), rel=0.05)
    again = stats.resampled_sums(np.random.default_rng(5), rows, 3000)
    assert (sums == again).all()


def test_a_bootstrap_interval_covers_the_mean_and_narrows_with_n():
    small = stats.bootstrap_ci([1.0, 5.0] * 10)
    large = stats.bootstrap_ci([1.0, 5.0] * 1000)
    assert small[0] < 3.0 < small[1] and large[0] < 3.0 < large[1]
    assert large[1] - large[0] < small[1] - small[0]
    assert stats.bootstrap_ci([]) is None and stats.bootstrap_ci([2.0]) == [2.0, 2.0]


def test_compare_uses_the_one_resampler_and_the_metrics_definitions():
    """compare's paired cost interval is the judge's interval of the per-case differences (one
    resampler, one convention); its metric values are metrics.routing_metrics' figures."""
    a = [result(str(i), "classify", "classify" if i % 3 else "fallback", cost_usd=0.001 * (i % 4)) for i in range(40)]
    b = [result(str(i), "classify", "classify" if i % 5 else "reasoning", cost_usd=0.002 * (i % 3)) for i in range(40)]
    diff = compare_runs(RunSide(run_id="a", results=a, labels=LABELS), RunSide(run_id="b", results=b, labels=LABELS),
                        seed=7, n_boot=500)
    diffs = [rb.cost_usd - ra.cost_usd for ra, rb in zip(a, b)]
    assert diff["cost"]["overall"]["ci95"] == stats.bootstrap_ci(diffs, seed=7, resamples=500)
    got = {m["metric"]: m for m in diff["metrics"]}
    ma, mb = routing_metrics(a, labels=LABELS), routing_metrics(b, labels=LABELS)
    assert got["recall[classify]"]["a"] == ma["per_task"]["classify"]["recall"]
    assert got["precision[classify]"]["b"] == mb["per_task"]["classify"]["precision"]
    assert got["macro_f1"]["b"] == mb["macro_f1"] and got["accuracy"]["a"] == ma["accuracy"]


def test_a_run_does_not_import_scipy():
    """The process boundary is the point: what a plain run imports, in a fresh interpreter."""
    code = ("import sys, evalkit.run.job, evalkit.run.finalize, evalkit.metrics, evalkit.summary, evalkit.stats, "
            "evalkit.comparison; evalkit.metrics.wilson_interval(3, 7); print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('scipy', 'sklearn', 'pandas')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
