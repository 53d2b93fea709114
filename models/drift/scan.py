"""Scanning: two snapshots of a table read by DuckDB (or Spark), each column reduced to counts, then scored.

Everything heavy runs in DuckDB over the two snapshots read by time travel (their Parquet files),
reading each column of each snapshot once; Python receives only aggregates, whatever the size.
With `engine="spark"` Spark does the same counting (`models.drift.spark`, one pass per snapshot)
and the scoring below is the same code, so both engines give the same statistics and verdicts:

- numeric columns: each snapshot's values are counted in up to `BUCKETS` equal-width buckets
  spanning both snapshots' range (from the Iceberg column bounds in the manifests, so no extra
  pass); `stats.numeric_scores` turns those counts into PSI and the KS statistic (exact for
  integer columns spanning at most `BUCKETS` values, which get a bucket per value) and p-value.
- other columns: total variation distance between the category frequencies (half the sum of
  the absolute differences of the two snapshots' shares), and the categories that are new or
  vanished, computed in DuckDB.
- every column: missing-value rate in each snapshot (NaN counts as missing); the table: row counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lakehouse import sql
from lakehouse.catalog import load_catalog
from lakehouse.config import DriftThresholds, Settings
from lakehouse.tables import TableName, load_table
from models.drift import stats
from models.exceptions import DriftError

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    from pyiceberg.table import Table

BUCKETS = 4096
KEY_COLUMNS = ("id",)  # row keys: their distribution says nothing about the data
_NUMERIC = ("int", "long", "float", "double", "decimal")
# The engines that can count: DuckDB in this process, or Spark (`models.drift.spark`) for tables
# past one machine. Both reduce the snapshots to the same counts; everything after is shared.
ENGINES = ("duckdb", "spark")


@dataclass
class FeatureDrift:
    column: str
    kind: str  # numeric | categorical | schema (a column added, removed or retyped between the snapshots)
    psi: float | None = None
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    category_shift: float | None = None
    missing_rate_baseline: float | None = None
    missing_rate_current: float | None = None
    drifted: bool = False
    reasons: list[str] = field(default_factory=list)
    ks_statistic_upper: float | None = None
    new_categories: list[str] = field(default_factory=list)
    vanished_categories: list[str] = field(default_factory=list)
    # dataQualityMetrics of the current snapshot: nullCount, count, min, max, sum, distinctCount
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def missing_rate_change(self) -> float | None:
        if self.missing_rate_baseline is None or self.missing_rate_current is None:
            return None
        return self.missing_rate_current - self.missing_rate_baseline

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "missing_rate_change": self.missing_rate_change}


@dataclass
class TableDrift:
    table: str
    baseline_snapshot_id: int
    current_snapshot_id: int
    rows_baseline: int
    rows_current: int
    features: list[FeatureDrift]
    drifted: bool
    drifted_features: list[str]
    reasons: list[str] = field(default_factory=list)
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    # The table the baseline snapshot belongs to when not `table` (traffic: the training table).
    baseline_table: str | None = None

    @property
    def row_count_change(self) -> float | None:
        """Relative change of the row count (None when the baseline is empty)."""
        return stats.relative_change(self.rows_baseline, self.rows_current)

    def feature(self, column: str) -> FeatureDrift:
        return next(f for f in self.features if f.column == column)

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "baseline_table": self.baseline_table or self.table,
            "baseline_snapshot_id": self.baseline_snapshot_id,
            "current_snapshot_id": self.current_snapshot_id,
            "rows_baseline": self.rows_baseline,
            "rows_current": self.rows_current,
            "row_count_change": self.row_count_change,
            "drifted": self.drifted,
            "drifted_features": self.drifted_features,
            "reasons": self.reasons,
            "thresholds": self.thresholds.to_json(),
            "features": [f.to_json() for f in self.features],
        }



def _attach(con: duckdb.DuckDBPyConnection, view: str, table: Table, snapshot_id: int) -> None:
    sql.snapshot_view(con, view, table, snapshot_id)


def _columns(table: Table, name: str, baseline: int, current: int, wanted: Sequence[str] | None) -> dict[str, Any]:
    """column -> Iceberg field, for the columns both snapshots hold (every one but the keys by default)."""
    found: list[dict[str, Any]] = []
    for sid in (baseline, current):
        found.append({f.name: f for f in table.scan(snapshot_id=sid).projection().fields if f.field_type.is_primitive})
    both = {c: f for c, f in found[0].items() if c in found[1]}
    if wanted is None:
        return {c: f for c, f in both.items() if c not in KEY_COLUMNS}
    missing = [c for c in wanted if c not in both]
    if missing:
        raise DriftError(f"{name} has no column {', '.join(missing)} in both snapshots; columns: {', '.join(both)}", parameter="columns")
    return {c: both[c] for c in wanted}


def _kind(field: Any) -> str:
    return "numeric" if str(field.field_type).split("(")[0] in _NUMERIC else "categorical"


def _is_integer(field: Any) -> bool:
    return str(field.field_type) in ("int", "long")


def check_snapshot(table: Table, name: str, snapshot_id: int, what: str, parameter: str | None = None) -> None:
    """A clear error when `table` (called `name`) has no snapshot `snapshot_id` (`what` it is for,
    which the caller passed as `parameter`)."""
    if table.snapshot_by_id(snapshot_id) is None:
        known = ", ".join(str(s.snapshot_id) for s in table.snapshots()[-5:])
        raise DriftError(f"{name} has no snapshot {snapshot_id} ({what}); recent snapshots: {known or 'none'}", parameter=parameter)


def compute_drift(
    settings: Settings,
    table: str,
    baseline_snapshot_id: int,
    current_snapshot_id: int,
    columns: Sequence[str] | None = None,
    thresholds: DriftThresholds | None = None,
    engine: str = "duckdb",
) -> TableDrift:
    """Compare two snapshots of `table` column by column (see the module docstring).

    `columns`: those columns only (default: every primitive column both snapshots hold but the
    row keys `KEY_COLUMNS`); `thresholds` decide what counts as drift (default: `DriftThresholds()`);
    `engine`: who counts, `duckdb` (this process) or `spark` (`lakehouse.spark`'s session, `spark.master`).
    """
    if engine not in ENGINES:
        raise DriftError(f"engine {engine!r} is not one of {', '.join(ENGINES)}", parameter="engine")
    t = thresholds or DriftThresholds()
    catalog = load_catalog(settings)
    tbl = load_table(catalog, TableName.parse(table))
    check_snapshot(tbl, table, baseline_snapshot_id, "the baseline", parameter="baseline_snapshot_id")
    check_snapshot(tbl, table, current_snapshot_id, "the current snapshot", parameter="current_snapshot_id")
    cols = _columns(tbl, table, baseline_snapshot_id, current_snapshot_id, columns)
    changes = schema_changes(tbl, baseline_snapshot_id, current_snapshot_id) if columns is None else {}
    counter: Counter
    if engine == "spark":
        from models.drift.spark import SparkCounter

        counter = SparkCounter(settings, table, baseline_snapshot_id, current_snapshot_id, cols)
    else:
        counter = DuckDBCounter.snapshots(tbl, baseline_snapshot_id, current_snapshot_id)
    numeric = {c: f for c, f in cols.items() if _kind(f) == "numeric"}
    bounds = _bounds(counter, tbl, {"base": baseline_snapshot_id, "cur": current_snapshot_id}, numeric)
    return _compare(counter, table, baseline_snapshot_id, current_snapshot_id, cols, bounds, t, changes)


class Counter(Protocol):
    """What an engine reduces the two snapshots (sides `base` and `cur`) to; the scores are computed
    from these alone, so two engines that count alike give the same statistics."""

    def rows(self, side: str) -> int:
        """Rows in the snapshot."""

    def minmax(self, side: str, columns: Sequence[str]) -> dict[str, tuple[float, float] | None]:
        """Min and max (as DOUBLE) of each column; None for a column without a value."""

    def bucket_counts(self, side: str, ranges: Mapping[str, Buckets], numeric: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Per numeric column: its count of non-null, non-NaN values per bucket."""

    def categorical(self, column: str) -> CategoricalScores:
        """The category shift of one column between the two snapshots."""


class DuckDBCounter:
    """Relations `base` and `cur` on a DuckDB connection: two snapshots' Parquet files (time travel,
    `snapshots`), or any two queries the caller made (e.g. a training snapshot and a window of the
    prediction log)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    @classmethod
    def snapshots(cls, table: Table, baseline: int, current: int) -> DuckDBCounter:
        con = sql.connect(iceberg=False)
        con.execute("SET enable_progress_bar = false")
        _attach(con, "base", table, baseline)
        _attach(con, "cur", table, current)
        return cls(con)

    def rows(self, side: str) -> int:
        row = self.con.execute(f"SELECT count(*) FROM {side}").fetchone()  # from Parquet metadata
        return int(row[0]) if row else 0

    def minmax(self, side: str, columns: Sequence[str]) -> dict[str, tuple[float, float] | None]:
        if not columns:
            return {}
        parts = ", ".join(f"min({sql.quote_ident(c)})::DOUBLE, max({sql.quote_ident(c)})::DOUBLE" for c in columns)
        row = self.con.execute(f"SELECT {parts} FROM {side}").fetchone() or ()
        return {c: None if row[2 * i] is None else (row[2 * i], row[2 * i + 1]) for i, c in enumerate(columns)}

    def bucket_counts(self, side: str, ranges: Mapping[str, Buckets], numeric: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return bucket_counts(self.con, side, ranges, numeric)

    def categorical(self, column: str) -> CategoricalScores:
        return categorical_scores(self.con, column)


def schema_changes(table: Table, baseline: int, current: int) -> dict[str, str]:
    """column -> what changed between the two snapshots' schemas: `added`, `removed`, `type T -> U`
    (row keys left out, as everywhere in drift)."""
    sides = []
    for sid in (baseline, current):
        sides.append({f.name: str(f.field_type) for f in table.scan(snapshot_id=sid).projection().fields if f.name not in KEY_COLUMNS})
    old, new = sides
    out = {c: "column added" for c in new if c not in old}
    out.update({c: "column removed" for c in old if c not in new})
    out.update({c: f"type {old[c]} -> {new[c]}" for c in old if c in new and old[c] != new[c]})
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class Buckets:
    """Equal-width buckets [lo + k*width, lo + (k+1)*width) of a numeric column, k in [0, count)."""

    lo: float
    width: float
    count: int
    exact: bool  # a bucket per distinct value possible (integers): the KS statistic is exact


Bounds = dict[tuple[str, str], tuple[float, float]]  # (side, column) -> (min, max)


def _bounds(counter: Counter, table: Table, snapshots: Mapping[str, int], numeric: Mapping[str, Any]) -> Bounds:
    """Min and max of each numeric column in each snapshot.

    From the column bounds Iceberg keeps per data file (no pass over the data); a column some
    file has no bounds for gets them from the engine instead.
    """
    from pyiceberg.conversions import from_bytes

    out: Bounds = {}
    unknown: set[str] = set()
    for side, sid in snapshots.items():
        for task in table.scan(snapshot_id=sid).plan_files():
            f = task.file
            for c, field in numeric.items():
                lb, ub = (f.lower_bounds or {}).get(field.field_id), (f.upper_bounds or {}).get(field.field_id)
                if lb is None or ub is None:
                    if (f.null_value_counts or {}).get(field.field_id) != f.record_count:
                        unknown.add(c)  # values without bounds (not merely an all-null column)
                    continue
                lo, hi = out.get((side, c), (math.inf, -math.inf))
                out[side, c] = (min(lo, float(from_bytes(field.field_type, lb))), max(hi, float(from_bytes(field.field_type, ub))))
    if unknown:
        names = sorted(unknown)
        for side in snapshots:
            for c, span in counter.minmax(side, names).items():
                out.pop((side, c), None)
                if span is not None:
                    out[side, c] = span
    return out


def compare_relations(
    con: duckdb.DuckDBPyConnection,
    table: str,
    baseline_snapshot_id: int,
    current_snapshot_id: int,
    columns: Mapping[str, Any],
    thresholds: DriftThresholds,
    *,
    row_counts: bool = True,
) -> TableDrift:
    """`compute_drift`'s comparison of the relations `base` and `cur` the caller made on `con`
    (any two queries, e.g. a training snapshot and a window of the prediction log), for `columns`
    (name -> the Iceberg field that says its type), with the bounds read by DuckDB. `row_counts`:
    whether a change of row count is drift (not for traffic, whose volume is not the training size)."""
    counter = DuckDBCounter(con)
    numeric = [c for c, f in columns.items() if _kind(f) == "numeric"]
    bounds: Bounds = {}
    for side in ("base", "cur"):
        bounds.update({(side, c): span for c, span in counter.minmax(side, numeric).items() if span is not None})
    return _compare(counter, table, baseline_snapshot_id, current_snapshot_id, columns, bounds, thresholds, row_counts=row_counts)


def bucket_ranges(bounds: Bounds, numeric: Mapping[str, Any]) -> dict[str, Buckets]:
    """Buckets per numeric column spanning both snapshots' values."""
    out = {}
    for c, field in numeric.items():
        spans = [v for (_, col), v in bounds.items() if col == c]
        lo, hi = min((s[0] for s in spans), default=math.nan), max((s[1] for s in spans), default=math.nan)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            out[c] = Buckets(0.0, 0.0, 1, False)  # no values, or infinite ones: one bucket, no detail
        elif lo == hi:
            out[c] = Buckets(lo, 1.0, 1, True)  # one value in both snapshots: one bucket holds exactly it
        elif _is_integer(field) and hi - lo < BUCKETS:
            out[c] = Buckets(lo, 1.0, int(hi - lo) + 1, True)
        else:
            out[c] = Buckets(lo, (hi - lo) / BUCKETS or 1.0, BUCKETS, False)
    return out


def bucket_counts(con: duckdb.DuckDBPyConnection, side: str, ranges: Mapping[str, Buckets], numeric: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per numeric column of one snapshot: its count of values per bucket (one read of each column)."""
    import numpy as np

    out = {}
    for c, b in ranges.items():
        q = sql.quote_ident(c)
        # The range is the columns' exact bounds: only the maximum lands one past the last bucket
        # (folded back below), so the key needs no clamping, which makes the query ~40% faster.
        key = f"floor(({q}::DOUBLE - {b.lo!r}) / {b.width!r})::BIGINT" if b.width else "0::BIGINT"
        # NaN is missing, as pandas counts it (Iceberg bounds leave it out too).
        nan = f" AND NOT isnan({q})" if str(numeric[c].field_type) in ("float", "double") else ""
        # One query per column (DuckDB 1.5.5 was seen to hang on a UNION ALL of them at 10M rows).
        result = con.execute(f"SELECT {key} AS k, count(*) AS n FROM {side} WHERE {q} IS NOT NULL{nan} GROUP BY ALL").fetchnumpy()
        keys = np.clip(result["k"].astype("int64"), 0, b.count - 1)
        out[c] = np.bincount(keys, weights=result["n"], minlength=b.count)
    return out


def _compare(
    counter: Counter,
    table: str,
    baseline: int,
    current: int,
    cols: Mapping[str, Any],
    bounds: Bounds,
    t: DriftThresholds,
    changes: Mapping[str, str] | None = None,
    row_counts: bool = True,
) -> TableDrift:
    rows = {side: counter.rows(side) for side in ("base", "cur")}
    nb_rows, nc_rows = rows["base"], rows["cur"]
    numeric = {c: f for c, f in cols.items() if _kind(f) == "numeric"}
    ranges = bucket_ranges(bounds, numeric)
    buckets = {side: counter.bucket_counts(side, ranges, numeric) for side in ("base", "cur")}

    features = []
    for c, field in cols.items():
        f = FeatureDrift(column=c, kind=_kind(field))
        if f.kind == "numeric":
            cb, cc = buckets["base"][c], buckets["cur"][c]
            nb, nc = int(cb.sum()), int(cc.sum())
            lo, hi = bounds.get(("cur", c), (None, None))
            f.metrics = {"count": nc, "min": lo, "max": hi}
            scores = stats.numeric_scores(cb, cc, ranges[c].exact)
            if scores is not None:
                f.psi, f.ks_statistic, f.ks_statistic_upper, f.ks_pvalue = (
                    scores.psi, scores.ks_statistic, scores.ks_statistic_upper, scores.ks_pvalue
                )
        else:
            cat = counter.categorical(c)
            nb, nc = cat.values_baseline, cat.values_current
            f.category_shift, f.new_categories, f.vanished_categories = cat.shift, cat.new, cat.vanished
            f.metrics.update(count=nc, distinctCount=cat.distinct_current)
        f.metrics["nullCount"] = nc_rows - nc
        f.missing_rate_baseline = stats.missing_rate(nb_rows, nb)
        f.missing_rate_current = stats.missing_rate(nc_rows, nc)
        _verdict(f, t)
        features.append(f)

    # A schema change is drift of its own: the table drifted once more columns changed than
    # `schema_changes` allows; each changed column is a feature of kind "schema" with what changed.
    changes = dict(changes or {})
    for c, what in changes.items():
        f = FeatureDrift(column=c, kind="schema", reasons=[f"{what} ({len(changes)} schema change(s), threshold {t.schema_changes:g})"])
        f.drifted = len(changes) > t.schema_changes
        features.append(f)
    reasons = []
    change = stats.relative_change(nb_rows, nc_rows)
    if row_counts and change is not None and abs(change) > t.row_count_change:
        reasons.append(f"row count {nb_rows} -> {nc_rows} ({change:+.0%}, threshold {t.row_count_change:.0%})")
    drifted_features = [f.column for f in features if f.drifted]
    reasons += [f"{f.column}: {'; '.join(f.reasons)}" for f in features if f.drifted]
    return TableDrift(
        table=table,
        baseline_snapshot_id=baseline,
        current_snapshot_id=current,
        rows_baseline=nb_rows,
        rows_current=nc_rows,
        features=features,
        drifted=bool(reasons),
        drifted_features=drifted_features,
        reasons=reasons,
        thresholds=t,
    )


@dataclass(frozen=True)
class CategoricalScores:
    shift: float | None  # total variation distance of the category shares; None if a side has no value
    new: list[str]  # in the current snapshot only, the 10 most frequent
    vanished: list[str]  # in the baseline only, the 10 most frequent
    distinct_current: int
    values_baseline: int  # non-null values
    values_current: int


def categorical_scores(con: duckdb.DuckDBPyConnection, column: str) -> CategoricalScores:
    """Category shift of one column between the relations `base` and `cur` of `con`, in one query
    (values compared as text)."""
    q = sql.quote_ident(column)
    row = con.execute(
        f"""
        WITH b AS (SELECT {q}::VARCHAR AS v, count(*) AS n FROM base WHERE {q} IS NOT NULL GROUP BY 1),
             c AS (SELECT {q}::VARCHAR AS v, count(*) AS n FROM cur WHERE {q} IS NOT NULL GROUP BY 1),
             nb AS (SELECT sum(n) AS total FROM b), nc AS (SELECT sum(n) AS total FROM c)
        SELECT 0.5 * sum(abs(coalesce(b.n, 0) / (SELECT total FROM nb) - coalesce(c.n, 0) / (SELECT total FROM nc))),
               (list(c.v ORDER BY c.n DESC) FILTER (WHERE b.n IS NULL))[1:10],  -- the 10 most frequent
               (list(b.v ORDER BY b.n DESC) FILTER (WHERE c.n IS NULL))[1:10],
               count(c.v), (SELECT total FROM nb), (SELECT total FROM nc)
        FROM b FULL OUTER JOIN c ON b.v = c.v
        """
    ).fetchone()
    assert row is not None  # an aggregate without GROUP BY always answers one row
    shift, new, vanished, distinct, nb, nc = row
    return CategoricalScores(
        shift=float(shift) if shift is not None else None,
        new=list(new or []),
        vanished=list(vanished or []),
        distinct_current=int(distinct or 0),
        values_baseline=int(nb or 0),
        values_current=int(nc or 0),
    )


def _verdict(f: FeatureDrift, t: DriftThresholds) -> None:
    if f.psi is not None and f.psi > t.psi:
        f.reasons.append(f"psi {f.psi:.3f} > {t.psi}")
    if f.ks_pvalue is not None and f.ks_statistic is not None and f.ks_pvalue < t.ks_pvalue and f.ks_statistic > t.ks_statistic:
        f.reasons.append(f"ks {f.ks_statistic:.3f} > {t.ks_statistic} (p={f.ks_pvalue:.2g} < {t.ks_pvalue})")
    if f.category_shift is not None and f.category_shift > t.category_shift:
        new = f"; new: {', '.join(f.new_categories)}" if f.new_categories else ""
        f.reasons.append(f"category shift {f.category_shift:.3f} > {t.category_shift}{new}")
    change = f.missing_rate_change
    if change is not None and abs(change) > t.missing_rate_change:
        f.reasons.append(f"missing rate {f.missing_rate_baseline:.1%} -> {f.missing_rate_current:.1%}")
    f.drifted = bool(f.reasons)


