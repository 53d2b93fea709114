"""Drift: how far a table's newer snapshot has moved from the snapshot a model was trained on.

Everything heavy runs in DuckDB over the two snapshots read by time travel (their Parquet files),
reading each column of each snapshot once; Python receives only aggregates, whatever the size:

- numeric columns: each snapshot's values are counted in up to `BUCKETS` equal-width buckets
  spanning both snapshots' range (from the Iceberg column bounds in the manifests, so no extra
  pass). From those exact bucket counts:
  - population stability index over 10 bins cut at the baseline's deciles (each cut at the end
    of the bucket where the baseline's CDF reaches k/10);
  - the two-sample Kolmogorov-Smirnov statistic from a fine grid: both empirical CDFs are exact at
    every bucket end, so the maximum difference there is a lower bound of the exact statistic, and
    (both CDFs being monotone inside a bucket) `ks_statistic_upper` an upper bound. Integer columns
    spanning at most `BUCKETS` values get a bucket per value: the statistic is then exact. The
    p-value is the asymptotic Kolmogorov distribution at sqrt(n*m/(n+m)) * D.
- other columns: total variation distance between the category frequencies, and the categories
  that are new or vanished.
- every column: missing-value rate in each snapshot; the table: row counts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lakehouse import sql
from lakehouse.catalog import load_catalog
# DriftThresholds is configuration (the `drift` section); re-exported as part of this module's API.
from lakehouse.config import DriftThresholds as DriftThresholds
from lakehouse.config import Settings
from lakehouse.exceptions import TableNotFoundError
from lakehouse.tables import TableName, load_table
from lineage import drift_store
from lineage import events as ev
from lineage.run import run as lineage_run
from lineage.transport import Transport
from models import inputs as inputs_mod
from models.exceptions import DriftError, SnapshotExpiredError
from models.registry import ModelRef, Registry

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    from pyiceberg.table import Table

PSI_BINS = 10
PSI_EPSILON = 1e-4  # an empty bin counts as this share, so the log never sees zero
BUCKETS = 4096
DRIFT_JOB = "drift"
KEY_COLUMNS = ("id",)  # row keys: their distribution says nothing about the data
_NUMERIC = ("int", "long", "float", "double", "decimal")


def thresholds_for(settings: Settings, model: str | None = None) -> DriftThresholds:
    """The `drift` section's thresholds, with `drift.models.<model>` overrides applied."""
    models = settings.drift.models
    if model is not None and (model in models or model.lower() in models):  # env variables arrive lower-cased
        return models.get(model) or models[model.lower()]
    return settings.drift.defaults


@dataclass
class FeatureDrift:
    column: str
    kind: str  # numeric | categorical
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

    @property
    def row_count_change(self) -> float | None:
        """Relative change of the row count (None when the baseline is empty)."""
        return (self.rows_current - self.rows_baseline) / self.rows_baseline if self.rows_baseline else None

    def feature(self, column: str) -> FeatureDrift:
        return next(f for f in self.features if f.column == column)

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
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


@dataclass
class DriftCheck:
    model: str
    version: int
    alias: str | None
    checked_at: datetime
    run_id: str
    tables: list[TableDrift]

    @property
    def drifted(self) -> bool:
        return any(t.drifted for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "checked_at": self.checked_at.isoformat(),
            "run_id": self.run_id,
            "drifted": self.drifted,
            "tables": [t.to_json() for t in self.tables],
        }


# -- statistics -------------------------------------------------------------------------------------


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


def psi(baseline_counts: Sequence[float], current_counts: Sequence[float]) -> float:
    nb, nc = float(sum(baseline_counts)), float(sum(current_counts))
    total = 0.0
    for b, c in zip(baseline_counts, current_counts):
        pb, pc = max(b / nb, PSI_EPSILON), max(c / nc, PSI_EPSILON)
        total += (pc - pb) * math.log(pc / pb)
    return total


# -- the check of one table -------------------------------------------------------------------------


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _attach(con: duckdb.DuckDBPyConnection, view: str, table: Table, snapshot_id: int) -> None:
    body = sql.snapshot_sql(con, table, snapshot_id)
    if body:
        con.execute(f"CREATE OR REPLACE VIEW {view} AS {body}")
    else:  # a snapshot without data files: an empty table of its schema
        schema = table.schemas()[table.snapshot_by_id(snapshot_id).schema_id]
        con.register("__drift_empty", schema.as_arrow().empty_table())
        con.execute(f"CREATE OR REPLACE TABLE {view} AS SELECT * FROM __drift_empty")
        con.unregister("__drift_empty")


def _columns(table: Table, name: str, baseline: int, current: int, wanted: Sequence[str] | None) -> dict[str, Any]:
    """column -> Iceberg field, for the columns both snapshots hold (every one but the keys by default)."""
    schemas = table.schemas()
    found: list[dict[str, Any]] = []
    for sid in (baseline, current):
        snap = table.snapshot_by_id(sid)
        found.append({f.name: f for f in schemas[snap.schema_id].fields if f.field_type.is_primitive})  # type: ignore[union-attr]
    both = {c: f for c, f in found[0].items() if c in found[1]}
    if wanted is None:
        return {c: f for c, f in both.items() if c not in KEY_COLUMNS}
    missing = [c for c in wanted if c not in both]
    if missing:
        raise DriftError(f"{name} has no column {', '.join(missing)} in both snapshots; columns: {', '.join(both)}")
    return {c: both[c] for c in wanted}


def _kind(field: Any) -> str:
    return "numeric" if str(field.field_type).split("(")[0] in _NUMERIC else "categorical"


def _is_integer(field: Any) -> bool:
    return str(field.field_type) in ("int", "long")


def check_snapshot(table: Table, name: str, snapshot_id: int, what: str) -> None:
    if table.snapshot_by_id(snapshot_id) is None:
        known = ", ".join(str(s.snapshot_id) for s in table.snapshots()[-5:])
        raise DriftError(f"{name} has no snapshot {snapshot_id} ({what}); recent snapshots: {known or 'none'}")


def compute_drift(
    settings: Settings,
    table: str,
    baseline_snapshot_id: int,
    current_snapshot_id: int,
    columns: Sequence[str] | None = None,
    thresholds: DriftThresholds | None = None,
) -> TableDrift:
    """Compare two snapshots of `table` column by column (see the module docstring), in DuckDB."""
    t = thresholds or DriftThresholds()
    catalog = load_catalog(settings)
    tbl = load_table(catalog, TableName.parse(table))
    check_snapshot(tbl, table, baseline_snapshot_id, "the baseline")
    check_snapshot(tbl, table, current_snapshot_id, "the current snapshot")
    cols = _columns(tbl, table, baseline_snapshot_id, current_snapshot_id, columns)
    con = sql.connect(iceberg=False)
    con.execute("SET enable_progress_bar = false")
    _attach(con, "base", tbl, baseline_snapshot_id)
    _attach(con, "cur", tbl, current_snapshot_id)
    numeric = {c: f for c, f in cols.items() if _kind(f) == "numeric"}
    bounds = _bounds(con, tbl, {"base": baseline_snapshot_id, "cur": current_snapshot_id}, numeric)
    return _compare(con, table, baseline_snapshot_id, current_snapshot_id, cols, bounds, t)


@dataclass(frozen=True)
class _Buckets:
    """Equal-width buckets [lo + k*width, lo + (k+1)*width) of a numeric column, k in [0, count)."""

    lo: float
    width: float
    count: int
    exact: bool  # a bucket per distinct value possible (integers): the KS statistic is exact


Bounds = dict[tuple[str, str], tuple[float, float]]  # (side, column) -> (min, max)


def _bounds(con: duckdb.DuckDBPyConnection, table: Table, snapshots: Mapping[str, int], numeric: Mapping[str, Any]) -> Bounds:
    """Min and max of each numeric column in each snapshot.

    From the column bounds Iceberg keeps per data file (no pass over the data); a column some
    file has no bounds for gets them from DuckDB instead.
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
        parts = ", ".join(f"min({_quote(c)})::DOUBLE, max({_quote(c)})::DOUBLE" for c in names)
        for side in snapshots:
            row = con.execute(f"SELECT {parts} FROM {side}").fetchone() or ()
            for i, c in enumerate(names):
                out.pop((side, c), None)
                if row[2 * i] is not None:
                    out[side, c] = (row[2 * i], row[2 * i + 1])
    return out


def _ranges(bounds: Bounds, numeric: Mapping[str, Any]) -> dict[str, _Buckets]:
    """Buckets per numeric column spanning both snapshots' values."""
    out = {}
    for c, field in numeric.items():
        spans = [v for (_, col), v in bounds.items() if col == c]
        lo, hi = min((s[0] for s in spans), default=math.nan), max((s[1] for s in spans), default=math.nan)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            out[c] = _Buckets(0.0, 0.0, 1, False)  # no values, or infinite ones: one bucket, no detail
        elif _is_integer(field) and hi - lo < BUCKETS:
            out[c] = _Buckets(lo, 1.0, int(hi - lo) + 1, True)
        else:
            out[c] = _Buckets(lo, (hi - lo) / BUCKETS or 1.0, BUCKETS, False)
    return out


def _bucket_counts(con: duckdb.DuckDBPyConnection, side: str, ranges: Mapping[str, _Buckets], numeric: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per numeric column of one snapshot: its count of values per bucket (one read of each column)."""
    import numpy as np

    out = {}
    for c, b in ranges.items():
        q = _quote(c)
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
    con: duckdb.DuckDBPyConnection,
    table: str,
    baseline: int,
    current: int,
    cols: Mapping[str, Any],
    bounds: Bounds,
    t: DriftThresholds,
) -> TableDrift:
    rows = {}
    for side in ("base", "cur"):
        row = con.execute(f"SELECT count(*) FROM {side}").fetchone()  # from Parquet metadata
        rows[side] = int(row[0]) if row else 0
    nb_rows, nc_rows = rows["base"], rows["cur"]
    numeric = {c: f for c, f in cols.items() if _kind(f) == "numeric"}
    ranges = _ranges(bounds, numeric)
    buckets = {side: _bucket_counts(con, side, ranges, numeric) for side in ("base", "cur")}

    features = []
    for c, field in cols.items():
        f = FeatureDrift(column=c, kind=_kind(field))
        if f.kind == "numeric":
            cb, cc = buckets["base"][c], buckets["cur"][c]
            nb, nc = int(cb.sum()), int(cc.sum())
            lo, hi = bounds.get(("cur", c), (None, None))
            f.metrics = {"count": nc, "min": lo, "max": hi}
            _numeric_scores(f, cb, cc, ranges[c].exact)
        else:
            nb, nc = _categorical_scores(con, f, c)
            f.metrics["count"] = nc
        f.metrics["nullCount"] = nc_rows - nc
        f.missing_rate_baseline = (nb_rows - nb) / nb_rows if nb_rows else None
        f.missing_rate_current = (nc_rows - nc) / nc_rows if nc_rows else None
        _verdict(f, t)
        features.append(f)

    reasons = []
    change = (nc_rows - nb_rows) / nb_rows if nb_rows else None
    if change is not None and abs(change) > t.row_count_change:
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


def _numeric_scores(f: FeatureDrift, counts_b: np.ndarray, counts_c: np.ndarray, exact: bool) -> None:
    import numpy as np

    nb, nc = float(counts_b.sum()), float(counts_c.sum())
    if not nb or not nc:
        return
    gb, gc = np.cumsum(counts_b) / nb, np.cumsum(counts_c) / nc  # both CDFs at every bucket end
    # PSI bins end at the buckets where the baseline's CDF reaches 1/10, 2/10, ... (its deciles).
    ends = sorted({int(np.searchsorted(gb, k / PSI_BINS - 1e-12)) for k in range(1, PSI_BINS)} - {len(gb) - 1})
    cut_b, cut_c = [0.0, *gb[ends], 1.0], [0.0, *gc[ends], 1.0]
    f.psi = psi(np.diff(cut_b) * nb, np.diff(cut_c) * nc)
    f.ks_statistic = float(np.max(np.abs(gb - gc)))
    # Inside a bucket each CDF moves from its value at the previous end to the one at this end.
    prev_b, prev_c = np.concatenate([[0.0], gb[:-1]]), np.concatenate([[0.0], gc[:-1]])
    f.ks_statistic_upper = f.ks_statistic if exact else float(max(np.max(gb - prev_c), np.max(gc - prev_b), f.ks_statistic))
    f.ks_pvalue = ks_pvalue(f.ks_statistic, int(nb), int(nc))


def _categorical_scores(con: duckdb.DuckDBPyConnection, f: FeatureDrift, column: str) -> tuple[int, int]:
    """Category shift of one column; returns its non-null counts (baseline, current)."""
    q = _quote(column)
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
    assert row is not None
    shift, new, vanished, distinct, nb, nc = row
    f.category_shift = float(shift) if shift is not None else None
    f.new_categories = list(new or [])
    f.vanished_categories = list(vanished or [])
    f.metrics["distinctCount"] = int(distinct or 0)
    return int(nb or 0), int(nc or 0)


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


# -- the check of a model ---------------------------------------------------------------------------


def check_model(
    settings: Settings, ref: str, snapshots: Mapping[str, int] | None = None, transport: Transport | None = None
) -> DriftCheck:
    """Compare each input table of the version `ref` names with the snapshot it was trained on.

    `snapshots[table]` is the snapshot to check (default: the table's current main snapshot). The
    check is one lineage run `drift.<model>`: each checked snapshot is an input carrying the
    `dataQualityMetrics` facet and our `tidemark_drift` facet (baseline snapshot, model version,
    thresholds, per-feature scores); the results are also written to `lineage.drift`.
    """
    catalog = load_catalog(settings)
    registry = Registry(settings, catalog)
    r = ModelRef.parse(ref)
    mv = registry.resolve(r)
    t = thresholds_for(settings, mv.model)
    wanted = dict(snapshots or {})
    unknown = set(wanted) - {i.table for i in mv.inputs}
    if unknown:
        raise DriftError(
            f"--snapshot {', '.join(sorted(unknown))}: not an input of {mv.model}:{mv.version} "
            f"(inputs: {', '.join(i.table for i in mv.inputs)})"
        )
    plan = []
    for inp in mv.inputs:
        try:
            table = load_table(catalog, TableName.parse(inp.table))
        except TableNotFoundError as exc:
            raise DriftError(f"table {inp.table}, an input of {mv.model}:{mv.version}, no longer exists; nothing to compare") from exc
        if inp.snapshot_id is None:
            raise DriftError(f"{mv.model}:{mv.version} recorded no snapshot for {inp.table}: there is no baseline to compare with")
        if table.snapshot_by_id(inp.snapshot_id) is None:
            raise SnapshotExpiredError(
                f"the baseline of {inp.table}, snapshot {inp.snapshot_id} that {mv.model}:{mv.version} was trained on, "
                f"was expired; pinning keeps it (a registered version tags it model/{mv.model}/{mv.version}; "
                "archiving releases the pin)"
            )
        current = wanted.get(inp.table)
        if current is None:
            snap = table.current_snapshot()
            if snap is None:
                raise DriftError(f"{inp.table} has no current snapshot to check")
            current = snap.snapshot_id
        check_snapshot(table, inp.table, current, "the snapshot to check")
        plan.append((inp.table, table, inp.snapshot_id, current))

    results: list[TableDrift] = []
    producer = settings.lineage.producer
    with lineage_run(
        f"{DRIFT_JOB}.{mv.model}",
        inputs=[registry.model_dataset(mv)],
        parameters={"model": mv.model, "version": mv.version, "alias": r.alias, "thresholds": t.to_json()},
        settings=settings,
        transport=transport,
        code=check_model,
    ) as run:
        for name, table, baseline, current in plan:
            td = compute_drift(settings, name, baseline, current, thresholds=t)
            results.append(td)
            dataset = inputs_mod.dataset(settings, name, table, current)
            dataset.setdefault("inputFacets", {}).update(
                {
                    "dataQualityMetrics": quality_facet(producer, td),
                    drift_store.DRIFT_FACET: drift_facet(producer, td, mv.model, mv.version, r.alias),
                }
            )
            run.add_input(dataset)
        checked_at = datetime.now(timezone.utc)
        run_id = run.run_id
        inputs = list(run.inputs)
    # The consumer stores the same rows from the COMPLETE event (idempotently); writing them here
    # too means `models drift` and the renewal loop see this check at once.
    drift_store.upsert_from_events(
        catalog,
        settings,
        [{"eventType": "COMPLETE", "eventTime": checked_at.isoformat(), "run": {"runId": run_id}, "inputs": inputs}],
    )
    return DriftCheck(model=mv.model, version=mv.version, alias=r.alias, checked_at=checked_at, run_id=run_id, tables=results)


def quality_facet(producer: str, td: TableDrift) -> dict[str, Any]:
    """OpenLineage `dataQualityMetrics` of the checked (current) snapshot."""
    metrics = {}
    for f in td.features:
        m = {k: v for k, v in f.metrics.items() if v is not None and not (isinstance(v, float) and not math.isfinite(v))}
        metrics[f.column] = m
    return ev.facet(
        producer,
        f"{ev.FACETS}/1-0-3/DataQualityMetricsInputDatasetFacet.json#/$defs/DataQualityMetricsInputDatasetFacet",
        rowCount=td.rows_current,
        columnMetrics=metrics,
    )


def drift_facet(producer: str, td: TableDrift, model: str, version: int, alias: str | None) -> dict[str, Any]:
    """Our `tidemark_drift` facet: what was compared with what, under which thresholds, and the scores."""
    return ev.facet(
        producer,
        f"{ev.TIDEMARK_FACETS}/DriftInputDatasetFacet.json",
        model=model,
        version=version,
        alias=alias,
        table=td.table,
        baselineSnapshotId=td.baseline_snapshot_id,
        currentSnapshotId=td.current_snapshot_id,
        rowsBaseline=td.rows_baseline,
        rowsCurrent=td.rows_current,
        drifted=td.drifted,
        reasons=td.reasons,
        thresholds=td.thresholds.to_json(),
        features=[
            {
                "column": f.column,
                "kind": f.kind,
                "psi": f.psi,
                "ksStatistic": f.ks_statistic,
                "ksStatisticUpper": f.ks_statistic_upper,
                "ksPvalue": f.ks_pvalue,
                "categoryShift": f.category_shift,
                "newCategories": f.new_categories,
                "vanishedCategories": f.vanished_categories,
                "missingRateBaseline": f.missing_rate_baseline,
                "missingRateCurrent": f.missing_rate_current,
                "drifted": f.drifted,
                "reasons": f.reasons,
            }
            for f in td.features
        ],
    )


# -- history ----------------------------------------------------------------------------------------


def history(settings: Settings, ref: str) -> list[dict[str, Any]]:
    """Stored drift results of a model (NAME: every version; NAME@ALIAS or NAME:VERSION: only those
    checks), one row per check x table x column, latest check first."""
    r = ModelRef.parse(ref)
    catalog = load_catalog(settings)
    registry = Registry(settings, catalog)
    # An unknown model, version, or an alias that never existed: the registry's own error. An
    # alias that has moved on still shows the checks made through it.
    if (
        not registry.versions(r.name)
        or r.version is not None
        or (r.alias is not None and not any(h["alias"] == r.alias for h in registry.alias_history(r.name)))
    ):
        registry.resolve(r)
    drift_store.ensure(catalog, settings)
    con = sql.connect(iceberg=False)
    ns = settings.lineage.namespace
    sql.attach_tables(con, catalog, [ns], only=[f"{ns}.{drift_store.DRIFT}"])
    where: list[str] = ["model = ?"]
    params: list[Any] = [r.name]
    if r.alias is not None:
        where.append("alias = ?")
        params.append(r.alias)
    if r.version is not None:
        where.append("version = ?")
        params.append(r.version)
    rows = sql.query(
        con,
        f"SELECT * FROM {_quote(ns)}.{drift_store.DRIFT} WHERE {' AND '.join(where)} "
        "ORDER BY event_time DESC, table_name, column_name",
        params,
    ).to_pylist()
    for row in rows:
        row["reasons"] = json.loads(row["reasons"] or "[]")
    return rows
