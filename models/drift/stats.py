"""The drift statistics, as pure functions of counts: no table, no DuckDB, no I/O.

`scan` reduces each snapshot's column to counts (values per equal-width bucket, rows, non-null
values); everything here turns those counts into scores. Numeric columns:

- population stability index over `PSI_BINS` bins cut at the baseline's deciles: each cut at the
  end of the bucket where the baseline's CDF reaches k/10, so bins hold whole buckets;
- the two-sample Kolmogorov-Smirnov statistic: both empirical CDFs are exact at every bucket end,
  so the largest difference there is a lower bound of the exact statistic, and (each CDF being
  monotone inside a bucket) `ks_statistic_upper` an upper bound. With a bucket per distinct value
  (integer columns spanning at most `scan.BUCKETS` values) the two are equal and exact: the
  statistic `scipy.stats.ks_2samp` computes;
- its p-value from the asymptotic Kolmogorov distribution at sqrt(n*m/(n+m)) * D (what
  `scipy.stats.kstwobign.sf` computes, to 1e-9). That approximates `ks_2samp`'s exact p-value:
  over 200 random pairs of normal samples each, the largest difference was 0.05 at 50 and 40
  values, 0.025 at 200 and 150, 0.0005 at 500 and 500; the relative error of p-values far below
  0.01 can reach tens of percent. Drift checks compare tables of thousands of rows, and a
  verdict also needs the statistic itself above its threshold, so the difference does not
  decide one. tests/models/test_drift_stats.py checks all of this against scipy.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

PSI_BINS = 10
PSI_EPSILON = 1e-4  # an empty bin counts as this share, so the log never sees zero


def psi(baseline_counts: Collection[float], current_counts: Collection[float]) -> float:
    """Population stability index of two histograms over the same bins: sum (pc - pb) * ln(pc / pb)
    over the bins' shares, a share below `PSI_EPSILON` counted as `PSI_EPSILON`."""
    nb, nc = float(sum(baseline_counts)), float(sum(current_counts))
    total = 0.0
    for b, c in zip(baseline_counts, current_counts):
        pb, pc = max(b / nb, PSI_EPSILON), max(c / nc, PSI_EPSILON)
        total += (pc - pb) * math.log(pc / pb)
    return total


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution (the limit of sqrt(n) * D_n)."""
    if x <= 0:
        return 1.0
    if x < 1.0:
        # The series in exp(-(2k-1)^2 pi^2 / 8x^2) converges fast for small x; the other one would not.
        s = sum(math.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8 * x * x)) for k in range(1, 8))
        return max(0.0, 1.0 - math.sqrt(2 * math.pi) / x * s)
    return max(0.0, min(1.0, 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * x * x) for k in range(1, 101))))


def ks_pvalue(statistic: float, n: int, m: int) -> float:
    """Asymptotic two-sided p-value of the two-sample KS statistic for sample sizes n and m."""
    return kolmogorov_sf(math.sqrt(n * m / (n + m)) * statistic)


@dataclass(frozen=True)
class NumericScores:
    psi: float
    ks_statistic: float  # exact when `exact`, else a lower bound
    ks_statistic_upper: float  # an upper bound (equal to ks_statistic when exact)
    ks_pvalue: float  # of ks_statistic


def numeric_scores(counts_b: np.ndarray, counts_c: np.ndarray, exact: bool) -> NumericScores | None:
    """The scores of one numeric column from its count of values per bucket in each snapshot (the
    same buckets, in value order); None when either snapshot has no value. `exact`: one bucket per
    distinct value possible, so the KS statistic is exact."""
    import numpy as np

    nb, nc = float(counts_b.sum()), float(counts_c.sum())
    if not nb or not nc:
        return None
    gb, gc = np.cumsum(counts_b) / nb, np.cumsum(counts_c) / nc  # both CDFs at every bucket end
    # PSI bins end at the buckets where the baseline's CDF reaches 1/10, 2/10, ... (its deciles).
    ends = sorted({int(np.searchsorted(gb, k / PSI_BINS - 1e-12)) for k in range(1, PSI_BINS)} - {len(gb) - 1})
    cut_b, cut_c = [0.0, *gb[ends], 1.0], [0.0, *gc[ends], 1.0]
    statistic = float(np.max(np.abs(gb - gc)))
    # Inside a bucket each CDF moves from its value at the previous end to the one at this end.
    prev_b, prev_c = np.concatenate([[0.0], gb[:-1]]), np.concatenate([[0.0], gc[:-1]])
    upper = statistic if exact else float(max(np.max(gb - prev_c), np.max(gc - prev_b), statistic))
    return NumericScores(
        psi=psi(np.diff(cut_b) * nb, np.diff(cut_c) * nc),
        ks_statistic=statistic,
        ks_statistic_upper=upper,
        ks_pvalue=ks_pvalue(statistic, int(nb), int(nc)),
    )


def missing_rate(rows: int, values: int) -> float | None:
    """The share of `rows` without a value (null, or NaN in a floating-point column); None for no rows."""
    return (rows - values) / rows if rows else None


def relative_change(before: int, after: int) -> float | None:
    """(after - before) / before; None when `before` is 0."""
    return (after - before) / before if before else None
