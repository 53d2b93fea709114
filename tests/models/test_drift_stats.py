"""The drift statistics against hand-computed values and scipy, on fixed samples; the scan's
DuckDB counting and category shift on in-memory tables (no catalog needed)."""

from __future__ import annotations

import math
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from scipy import stats as scipy_stats

from models.drift import scan, stats

RNG_SEED = 15


def _exact_counts(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A bucket per integer value from the smaller minimum to the larger maximum (the scan's
    buckets for an integer column spanning at most scan.BUCKETS values)."""
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    return np.bincount(a - lo, minlength=hi - lo + 1), np.bincount(b - lo, minlength=hi - lo + 1)


def _field(kind: str) -> Any:
    from pyiceberg.types import DoubleType, LongType, NestedField

    return NestedField(1, "x", {"long": LongType(), "double": DoubleType()}[kind], required=False)


def _scan_scores(base: list[Any], cur: list[Any], kind: str) -> tuple[stats.NumericScores | None, int, int]:
    """The scan's numeric path over two in-memory tables: bounds, buckets, counts in DuckDB, scores.
    Returns the scores and the non-missing value counts (baseline, current)."""
    typ = {"long": pa.int64(), "double": pa.float64()}[kind]
    con = duckdb.connect()
    con.register("base", pa.table({"x": pa.array(base, typ)}))
    con.register("cur", pa.table({"x": pa.array(cur, typ)}))
    numeric = {"x": _field(kind)}
    bounds = {}
    for side in ("base", "cur"):
        lo, hi = con.execute(f"SELECT min(x)::DOUBLE, max(x)::DOUBLE FROM {side} WHERE NOT isnan(x)").fetchone()  # type: ignore[misc]
        if lo is not None:
            bounds[side, "x"] = (lo, hi)
    ranges = scan.bucket_ranges(bounds, numeric)
    counts = {side: scan.bucket_counts(con, side, ranges, numeric)["x"] for side in ("base", "cur")}
    scores = stats.numeric_scores(counts["base"], counts["cur"], ranges["x"].exact)
    return scores, int(counts["base"].sum()), int(counts["cur"].sum())


# -- PSI ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("baseline", "current", "expected"),
    [
        ([50, 50], [50, 50], 0.0),
        # shares .5/.5 -> .25/.75: (.25-.5)ln(.25/.5) + (.75-.5)ln(.75/.5) = .25 ln 2 + .25 ln 1.5
        ([50, 50], [25, 75], 0.2746530721670273),
        # the same shares at other totals: PSI compares shares, not counts
        ([5, 5], [100, 300], 0.2746530721670273),
        # .2/.3/.5 -> .3/.3/.4: .1 ln 1.5 + 0 + (-.1) ln .8 = .0405465108 + .0223143551
        ([20, 30, 50], [30, 30, 40], 0.06286086594223741),
        # an empty current bin counts as 1e-4: (1e-4 - .5) ln(1e-4 / .5) + (1 - .5) ln(1 / .5)
        #   = .4999 * 8.5171931914 + .5 * .6931471806
        ([50, 50], [0, 100], 4.60431846666895),
    ],
)
def test_psi_by_hand(baseline: list[int], current: list[int], expected: float) -> None:
    assert stats.psi(baseline, current) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_psi_of_numeric_columns_is_zero_for_the_same_data_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(RNG_SEED)
    a = rng.integers(0, 100, 5000)
    same = stats.numeric_scores(*_exact_counts(a, rng.permutation(a)), exact=True)
    assert same is not None and same.psi == 0.0 and same.ks_statistic == 0.0 and same.ks_pvalue == 1.0
    small, large = (stats.numeric_scores(*_exact_counts(a, a + shift), exact=True) for shift in (5, 30))
    assert small is not None and large is not None
    assert 0 < small.psi < 0.2 < large.psi  # 0.2: the default threshold
    # Ten bins cut at the baseline's deciles: a uniform baseline puts ~10% in each, so a shift
    # that moves ~30% of the mass out of range is felt mostly through the empty top bins.
    assert large.psi == pytest.approx(stats.psi(*_decile_bins(a, a + 30)), rel=1e-12)


def _decile_bins(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The PSI bins the way the statistics module documents them, written out independently:
    each bin ends at the value where the baseline's CDF first reaches k/10."""
    values = np.arange(min(a.min(), b.min()), max(a.max(), b.max()) + 1)
    cdf = np.searchsorted(np.sort(a), values, side="right") / len(a)
    ends = sorted({values[np.argmax(cdf >= k / 10 - 1e-12)] for k in range(1, 10)} - {values[-1]})
    edges = [-np.inf, *[e + 0.5 for e in ends], np.inf]
    return np.histogram(a, edges)[0], np.histogram(b, edges)[0]


# -- Kolmogorov-Smirnov -------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "m", "low", "high"), [(30, 30, 0, 50), (40, 25, 0, 50), (400, 300, 5, 55), (5000, 3000, 0, 1000)])
def test_ks_statistic_of_integer_columns_is_scipys(n: int, m: int, low: int, high: int) -> None:
    rng = np.random.default_rng(RNG_SEED + n)
    a, b = rng.integers(0, 50, n), rng.integers(low, high, m)
    scores = stats.numeric_scores(*_exact_counts(a, b), exact=True)
    expected = scipy_stats.ks_2samp(a, b)
    assert scores is not None
    assert scores.ks_statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert scores.ks_statistic_upper == scores.ks_statistic  # exact: no interval
    # The p-value is the asymptotic Kolmogorov distribution, exactly as scipy computes it...
    en = math.sqrt(n * m / (n + m))
    assert scores.ks_pvalue == pytest.approx(scipy_stats.kstwobign.sf(en * scores.ks_statistic), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize(
    ("n", "m", "tolerance"),
    [
        # ...which approximates ks_2samp's exact p-value. Measured on 200 random pairs of normal
        # samples each: the largest difference was 0.05 at 50 and 40 values, 0.025 at 200 and 150,
        # 0.0005 at 500 and 500 (see models/drift/stats.py); these fixed samples stay inside that.
        (50, 40, 0.06),
        (200, 150, 0.03),
        (500, 500, 0.001),
    ],
)
def test_ks_pvalue_approximates_scipys_exact_one(n: int, m: int, tolerance: float) -> None:
    rng = np.random.default_rng(RNG_SEED)
    a, b = rng.normal(0, 1, n), rng.normal(0.3, 1, m)
    exact = scipy_stats.ks_2samp(a, b, method="exact")
    assert abs(stats.ks_pvalue(exact.statistic, n, m) - exact.pvalue) <= tolerance


def test_kolmogorov_tail_at_known_points() -> None:
    assert stats.kolmogorov_sf(0) == 1.0 and stats.kolmogorov_sf(-1) == 1.0
    for x in (0.2, 0.5, 0.9, 0.99, 1.0, 1.3581, 2.0, 4.0):  # both series, and the switch at 1
        assert stats.kolmogorov_sf(x) == pytest.approx(scipy_stats.kstwobign.sf(x), rel=1e-9, abs=1e-15)
    assert stats.kolmogorov_sf(1.3581) == pytest.approx(0.05, abs=1e-4)  # the textbook 5% critical value


def test_float_columns_bound_scipys_statistic_through_the_scan() -> None:
    """A float column is counted in BUCKETS equal-width buckets: the exact statistic lies between
    the reported lower and upper bounds, which are close."""
    rng = np.random.default_rng(RNG_SEED)
    a, b = rng.normal(0, 1, 20_000), rng.normal(0.05, 1.1, 15_000)
    scores, na, nb = _scan_scores(list(a), list(b), "double")
    expected = scipy_stats.ks_2samp(a, b).statistic
    assert scores is not None and (na, nb) == (20_000, 15_000)
    assert scores.ks_statistic <= expected <= scores.ks_statistic_upper
    assert scores.ks_statistic_upper - scores.ks_statistic < 0.005


def test_integer_columns_through_the_scan_are_exact() -> None:
    rng = np.random.default_rng(RNG_SEED)
    a, b = rng.integers(-20, 300, 3000), rng.integers(0, 320, 2000)
    scores, _, _ = _scan_scores([int(v) for v in a], [int(v) for v in b], "long")
    assert scores is not None
    assert scores.ks_statistic == pytest.approx(scipy_stats.ks_2samp(a, b).statistic, abs=1e-12)
    assert scores.ks_statistic_upper == scores.ks_statistic


# -- missing values and edge cases --------------------------------------------------------------------


def test_missing_rate_and_row_count_change() -> None:
    assert stats.missing_rate(10, 7) == pytest.approx(0.3)
    assert stats.missing_rate(10, 10) == 0.0 and stats.missing_rate(10, 0) == 1.0
    assert stats.missing_rate(0, 0) is None  # no rows: no rate
    assert stats.relative_change(100, 150) == 0.5 and stats.relative_change(100, 0) == -1.0
    assert stats.relative_change(0, 10) is None


def test_nulls_and_nan_are_missing_not_values() -> None:
    scores, nb, nc = _scan_scores([1.0, None, float("nan"), 2.0], [1.0, 2.0, 3.0, None], "double")
    assert (nb, nc) == (2, 3)
    assert stats.missing_rate(4, nb) == 0.5 and stats.missing_rate(4, nc) == 0.25
    assert scores is not None


@pytest.mark.parametrize(
    ("base", "cur"),
    [([], []), ([], [1.0, 2.0]), ([None, None], [None]), ([float("nan")], [1.0])],
    ids=["both empty", "empty baseline", "all null", "all nan baseline"],
)
def test_no_values_on_a_side_gives_no_score(base: list[Any], cur: list[Any]) -> None:
    scores, _, _ = _scan_scores(base, cur, "double")
    assert scores is None


@pytest.mark.parametrize("kind", ["long", "double"])
def test_constant_columns(kind: str) -> None:
    same, _, _ = _scan_scores([7] * 50, [7] * 80, kind)
    assert same is not None and (same.psi, same.ks_statistic, same.ks_statistic_upper, same.ks_pvalue) == (0.0, 0.0, 0.0, 1.0)
    moved, _, _ = _scan_scores([7] * 50, [8] * 80, kind)
    assert moved is not None and moved.ks_statistic == 1.0 and moved.psi > 4  # every value moved
    assert moved.ks_pvalue == pytest.approx(scipy_stats.kstwobign.sf(math.sqrt(50 * 80 / 130)), rel=1e-9, abs=1e-300)


# -- category shift (DuckDB) --------------------------------------------------------------------------


def _categories(base: list[Any], cur: list[Any]) -> scan.CategoricalScores:
    con = duckdb.connect()
    con.register("base", pa.table({"c": pa.array(base, pa.string())}))
    con.register("cur", pa.table({"c": pa.array(cur, pa.string())}))
    return scan.categorical_scores(con, "c")


def test_category_shift_is_the_total_variation_distance() -> None:
    # shares a .5 b .5 -> a .25 b .5 c .25: (|.25| + 0 + |.25|) / 2
    got = _categories(["a"] * 50 + ["b"] * 50 + [None] * 10, ["a"] * 25 + ["b"] * 50 + ["c"] * 25)
    assert got.shift == pytest.approx(0.25)
    assert (got.new, got.vanished, got.distinct_current, got.values_baseline, got.values_current) == (["c"], [], 3, 100, 100)
    # Against the definition on scipy-free numpy: half the L1 distance of the share vectors.
    assert got.shift == pytest.approx(0.5 * np.abs(np.array([0.5, 0.5, 0]) - np.array([0.25, 0.5, 0.25])).sum())


def test_category_shift_edge_cases() -> None:
    same = _categories(["x", "y", "y"], ["y", "x", "y"])
    assert same.shift == 0.0 and same.new == [] and same.vanished == []
    disjoint = _categories(["a", "b"], ["c"])
    assert disjoint.shift == 1.0 and disjoint.new == ["c"] and sorted(disjoint.vanished) == ["a", "b"]
    constant = _categories(["k"] * 5, ["k"] * 9)
    assert constant.shift == 0.0 and constant.distinct_current == 1
    for empty in (_categories([], ["a"]), _categories([None], ["a"]), _categories([], [])):
        assert empty.shift is None  # nothing to compare a share with
    assert _categories([None, None], ["a"]).values_baseline == 0
    many = _categories([str(i) for i in range(20)], [str(i) for i in range(100, 120)] + ["100"])
    assert len(many.new) == len(many.vanished) == 10 and many.new[0] == "100"  # the 10 most frequent
