"""The statistics evalkit reports, in one module (pure): the Wilson score interval of a
proportion, McNemar's exact test and the percentile bootstrap.

- ``wilson_interval`` is the closed form, which is what ``scipy.stats.binomtest(k, n)
  .proportion_ci(method="wilson")`` and statsmodels' ``proportion_confint(k, n, method="wilson")``
  compute (``tests/test_stats.py`` checks it against both): every run computes its accuracy
  interval, and a run does not pay scipy.stats' import (seconds on a busy machine).
- ``mcnemar_exact`` is scipy's exact binomial test on the discordant pairs, statsmodels'
  ``mcnemar(table, exact=True)``; scipy is imported on first use.
- The bootstrap has one resampler, ``resampled_sums``: n rows resampled with replacement, drawn
  as multinomial counts over the distinct rows (the same distribution as resampling indices, at
  a cost set by the number of distinct rows). Judge intervals (one column of scores; the
  convention of docs/judge.md) and the paired deltas of ``evalkit compare`` (one row of
  indicator columns per case, both runs side by side, so both get the same resample) use it.
  numpy is imported on first use.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal
BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 2000
_MAX_CELLS = 2_000_000  # resample counts drawn at once (rows x distinct rows)


def wilson_interval(successes: int, n: int, *, z: float = Z95) -> list[float]:
    """The 95% Wilson score interval of ``successes`` out of ``n``; [0, 0] for n == 0."""
    if n == 0:
        return [0.0, 0.0]
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [max(0.0, centre - half), min(1.0, centre + half)]


def mcnemar_exact(regressed: int, fixed: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts: the exact binomial test of
    ``min(regressed, fixed)`` out of ``regressed + fixed`` at 1/2 (1.0 without discordant pairs)."""
    n = regressed + fixed
    if n == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(min(1.0, binomtest(min(regressed, fixed), n, 0.5).pvalue))


def resampled_sums(rng: Any, rows: Any, resamples: int) -> Any:
    """Column sums of ``resamples`` bootstrap resamples of ``rows`` (n values, or n x k), drawn
    from the generator ``rng``: shape (resamples,) or (resamples, k).

    The distinct rows ``v`` (ascending) and their counts ``c`` give one multinomial draw
    ``rng.multinomial(n, c / n)`` per resample, and its sums are ``draw @ v``.
    """
    import numpy as np

    arr = np.asarray(rows, dtype=float)
    distinct, counts = np.unique(arr, axis=0, return_counts=True)
    n = int(counts.sum())
    chunk = max(1, _MAX_CELLS // len(distinct))
    parts = []
    for start in range(0, resamples, chunk):
        draws = rng.multinomial(n, counts / n, size=min(chunk, resamples - start))
        parts.append(draws @ distinct)
    return np.concatenate(parts) if parts else np.empty((0, *arr.shape[1:]))


def percentile_interval(samples: Any) -> list[float] | None:
    """The 2.5th and 97.5th percentiles (linear interpolation) of the finite samples; None if none."""
    import numpy as np

    values = np.asarray(samples, dtype=float)
    values = values[~np.isnan(values)]
    if not values.size:
        return None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def bootstrap_ci(values: Sequence[float], *, seed: int = BOOTSTRAP_SEED,
                 resamples: int = BOOTSTRAP_RESAMPLES) -> list[float] | None:
    """95% percentile bootstrap interval of the mean of ``values``, from a fresh generator seeded
    with ``seed``; None for no values."""
    import numpy as np

    if not len(values):
        return None
    means = resampled_sums(np.random.default_rng(seed), values, resamples) / len(values)
    return percentile_interval(means)


def bootstrap_diff_ci(a: Sequence[float], b: Sequence[float], *, seed: int = BOOTSTRAP_SEED,
                      resamples: int = BOOTSTRAP_RESAMPLES) -> list[float] | None:
    """95% bootstrap interval of mean(a) - mean(b) for two independent groups: ``a``'s resamples,
    then ``b``'s, from one fresh generator; None when a group is empty."""
    import numpy as np

    if not len(a) or not len(b):
        return None
    rng = np.random.default_rng(seed)
    means_a = resampled_sums(rng, a, resamples) / len(a)
    means_b = resampled_sums(rng, b, resamples) / len(b)
    return percentile_interval(means_a - means_b)
