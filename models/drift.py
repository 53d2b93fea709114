"""Drift: how far a table's newer snapshot has moved from the snapshot a model was trained on.

Everything heavy runs in DuckDB over the two snapshots read by time travel (their Parquet files);
Python receives only aggregates and a bounded reservoir sample, whatever the table's size:

- numeric columns: population stability index over 10 bins cut at the baseline's deciles, and the
  two-sample Kolmogorov-Smirnov statistic. KS is computed from a fine grid, not from every value:
  both empirical CDFs are counted exactly (DuckDB `histogram`) at up to `KS_GRID` points placed at
  quantiles of the pooled reservoir sample. When the sample holds every row and there are no more
  distinct values than grid points (small tables, discrete columns), the grid is every value and
  the statistic is exact; otherwise the exact statistic lies in [ks_statistic, ks_statistic_upper],
  both reported (the upper bound follows from the CDFs being monotone between grid points). The
  decile cut points come from the same sample (exact when it holds every row). The p-value is the
  asymptotic Kolmogorov distribution at sqrt(n*m/(n+m)) * D.
- other columns: total variation distance between the category frequencies, and the categories
  that are new or vanished.
- every column: missing-value rate in each snapshot; the table: row counts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lakehouse import sql
from lakehouse.catalog import load_catalog
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
KS_GRID = 400
SAMPLE_ROWS = 100_000
SAMPLE_SEED = 42
DRIFT_JOB = "drift"
KEY_COLUMNS = ("id",)  # row keys: their distribution says nothing about the data
_NUMERIC = ("int", "long", "float", "double", "decimal")


@dataclass(frozen=True)
class DriftThresholds:
    """When a change counts as drift. A numeric column drifts if psi > psi, or if the KS test is
    significant (p < ks_pvalue) *and* the shift is material (statistic > ks_statistic): on a table
    of millions of rows any trivial shift is significant, so the p-value alone would always fire."""

    psi: float = 0.2
    ks_statistic: float = 0.1
    ks_pvalue: float = 0.01
    category_shift: float = 0.1
    missing_rate_change: float = 0.05
    row_count_change: float = 0.5

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def thresholds_for(settings: Settings, model: str | None = None) -> DriftThresholds:
    """The `drift` section's thresholds, with `drift.models.<model>` overrides applied."""
    values = {f.name: float(getattr(settings.drift, f.name)) for f in fields(DriftThresholds)}
    if model is not None:
        values.update(settings.drift.models.get(model) or settings.drift.models.get(model.lower()) or {})
    return DriftThresholds(**values)


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


def _decile_edges(sample: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.unique(np.quantile(sample, [i / PSI_BINS for i in range(1, PSI_BINS)]))


def _grid(pooled: np.ndarray) -> np.ndarray:
    import numpy as np

    values = np.unique(pooled)
    if len(values) <= KS_GRID:
        return values
    return np.unique(np.quantile(pooled, np.linspace(0, 1, KS_GRID + 1)[1:-1], method="inverted_cdf"))


def _cdf(hist: Mapping[float, int] | None, points: Sequence[float]) -> list[int]:
    """Cumulative counts at each boundary from a DuckDB histogram (bucket (prev, b] per boundary)."""
    hist = hist or {}
    out, total = [], 0
    for p in points:
        total += int(hist.get(p, 0))
        out.append(total)
    return out


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


def _columns(table: Table, name: str, baseline: int, current: int, wanted: Sequence[str] | None) -> dict[str, str]:
    """column -> numeric|categorical, for the columns both snapshots hold (every one but the keys by default)."""
    schemas = table.schemas()
    kinds: list[dict[str, str]] = []
    for sid in (baseline, current):
        snap = table.snapshot_by_id(sid)
        kinds.append(
            {
                f.name: "numeric" if str(f.field_type).split("(")[0] in _NUMERIC else "categorical"
                for f in schemas[snap.schema_id].fields  # type: ignore[union-attr]
                if f.field_type.is_primitive
            }
        )
    both = {c: k for c, k in kinds[0].items() if c in kinds[1]}
    if wanted is None:
        return {c: k for c, k in both.items() if c not in KEY_COLUMNS}
    missing = [c for c in wanted if c not in both]
    if missing:
        raise DriftError(f"{name} has no column {', '.join(missing)} in both snapshots; columns: {', '.join(both)}")
    return {c: both[c] for c in wanted}


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
    kinds = _columns(tbl, table, baseline_snapshot_id, current_snapshot_id, columns)
    con = sql.connect(iceberg=False)
    con.execute("SET enable_progress_bar = false")
    _attach(con, "base", tbl, baseline_snapshot_id)
    _attach(con, "cur", tbl, current_snapshot_id)
    return _compare(con, table, baseline_snapshot_id, current_snapshot_id, kinds, t)


def _compare(
    con: duckdb.DuckDBPyConnection, table: str, baseline: int, current: int, kinds: Mapping[str, str], t: DriftThresholds
) -> TableDrift:
    numeric = [c for c, k in kinds.items() if k == "numeric"]
    # 1. Counts, nulls, min/max/sum per column: one scan per snapshot.
    stats = {}
    for side in ("base", "cur"):
        parts = ["count(*)"]
        for c in kinds:
            q = _quote(c)
            parts.append(f"count({q})")
            if c in numeric:
                parts += [f"min({q})::DOUBLE", f"max({q})::DOUBLE", f"sum({q})::DOUBLE"]
        row = con.execute(f"SELECT {', '.join(parts)} FROM {side}").fetchone()
        assert row is not None
        stats[side] = _unpack(row, kinds, numeric)
    nb_rows, nc_rows = stats["base"]["rows"], stats["cur"]["rows"]

    # 2. A bounded reservoir sample of the numeric columns of each snapshot: the cut points.
    samples: dict[str, dict[str, np.ndarray]] = {}
    if numeric:
        cols = ", ".join(f"{_quote(c)}::DOUBLE AS {_quote(c)}" for c in numeric)
        for side in ("base", "cur"):
            samples[side] = con.execute(
                f"SELECT {cols} FROM {side} USING SAMPLE reservoir({SAMPLE_ROWS} ROWS) REPEATABLE ({SAMPLE_SEED})"
            ).fetchnumpy()
    edges: dict[str, list[float]] = {}
    points: dict[str, list[float]] = {}
    exact: set[str] = set()
    whole = numeric and all(len(samples[s][numeric[0]]) == stats[s]["rows"] for s in ("base", "cur"))
    for c in numeric:
        import numpy as np

        b = _finite(samples["base"][c])
        cur = _finite(samples["cur"][c])
        if not len(b) or not len(cur):
            continue
        edges[c] = [float(x) for x in _decile_edges(b)]
        grid = _grid(np.concatenate([b, cur]))
        points[c] = sorted({*edges[c], *(float(x) for x in grid)})
        if whole and len(grid) == len(np.unique(np.concatenate([b, cur]))):
            exact.add(c)  # the points are every value either snapshot holds: the statistic is exact

    # 3. Exact counts at every cut point: one scan per snapshot, a histogram per numeric column.
    cdfs: dict[str, dict[str, list[int]]] = {"base": {}, "cur": {}}
    if points:
        params = {f"p{i}": points[c] for i, c in enumerate(points)}
        select = ", ".join(f"histogram({_quote(c)}::DOUBLE, $p{i})" for i, c in enumerate(points))
        for side in ("base", "cur"):
            row = con.execute(f"SELECT {select} FROM {side}", params).fetchone()
            assert row is not None
            cdfs[side] = {c: _cdf(h, points[c]) for c, h in zip(points, row)}

    features = []
    for c, kind in kinds.items():
        sb, sc = stats["base"]["columns"][c], stats["cur"]["columns"][c]
        f = FeatureDrift(
            column=c,
            kind=kind,
            missing_rate_baseline=(nb_rows - sb["count"]) / nb_rows if nb_rows else None,
            missing_rate_current=(nc_rows - sc["count"]) / nc_rows if nc_rows else None,
            metrics={"nullCount": nc_rows - sc["count"], "count": sc["count"], **{k: v for k, v in sc.items() if k != "count" and v is not None}},
        )
        if kind == "numeric" and c in points:
            _numeric_scores(f, points[c], edges[c], cdfs["base"][c], cdfs["cur"][c], sb["count"], sc["count"], c in exact)
        elif kind == "categorical":
            _categorical_scores(con, f, c)
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


def _finite(values: Any) -> np.ndarray:
    import numpy as np

    arr = np.asarray(values.filled(np.nan) if hasattr(values, "filled") else values, dtype="float64")
    return arr[np.isfinite(arr)]


def _unpack(row: Sequence[Any], kinds: Mapping[str, str], numeric: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": int(row[0]), "columns": {}}
    i = 1
    for c in kinds:
        col: dict[str, Any] = {"count": int(row[i])}
        i += 1
        if c in numeric:
            col.update(min=row[i], max=row[i + 1], sum=row[i + 2])
            i += 3
        out["columns"][c] = col
    return out


def _numeric_scores(
    f: FeatureDrift, points: list[float], edges: list[float], fb: list[int], fc: list[int], nb: int, nc: int, exact: bool
) -> None:
    if not nb or not nc:
        return
    at = {p: i for i, p in enumerate(points)}
    # PSI bins: (-inf, e1], (e1, e2], ..., (e9, inf); each edge is one of the counted points.
    cb = [fb[at[e]] for e in edges] + [nb]
    cc = [fc[at[e]] for e in edges] + [nc]
    f.psi = psi([b - a for a, b in zip([0] + cb[:-1], cb)], [b - a for a, b in zip([0] + cc[:-1], cc)])
    gb = [x / nb for x in fb]
    gc = [x / nc for x in fc]
    f.ks_statistic = max(abs(b - c) for b, c in zip(gb, gc))
    # Between two counted points both CDFs are monotone, so neither can differ by more than this.
    lo_b, lo_c, upper = 0.0, 0.0, f.ks_statistic
    for b, c in zip(gb + [1.0], gc + [1.0]):
        upper = max(upper, b - lo_c, c - lo_b)
        lo_b, lo_c = b, c
    f.ks_statistic_upper = f.ks_statistic if exact else upper
    f.ks_pvalue = ks_pvalue(f.ks_statistic, nb, nc)


def _categorical_scores(con: duckdb.DuckDBPyConnection, f: FeatureDrift, column: str) -> None:
    q = _quote(column)
    row = con.execute(
        f"""
        WITH b AS (SELECT {q}::VARCHAR AS v, count(*) AS n FROM base WHERE {q} IS NOT NULL GROUP BY 1),
             c AS (SELECT {q}::VARCHAR AS v, count(*) AS n FROM cur WHERE {q} IS NOT NULL GROUP BY 1),
             nb AS (SELECT sum(n) AS total FROM b), nc AS (SELECT sum(n) AS total FROM c)
        SELECT 0.5 * sum(abs(coalesce(b.n, 0) / (SELECT total FROM nb) - coalesce(c.n, 0) / (SELECT total FROM nc))),
               list(c.v ORDER BY c.n DESC) FILTER (WHERE b.n IS NULL),
               list(b.v ORDER BY b.n DESC) FILTER (WHERE c.n IS NULL),
               count(c.v)
        FROM b FULL OUTER JOIN c ON b.v = c.v
        """
    ).fetchone()
    assert row is not None
    shift, new, vanished, distinct = row
    f.category_shift = float(shift) if shift is not None else None
    f.new_categories = list(new or [])[:10]
    f.vanished_categories = list(vanished or [])[:10]
    f.metrics["distinctCount"] = int(distinct or 0)


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
        check_snapshot(table, inp.table, current, "given by --snapshot")
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
    if not registry.versions(r.name):
        registry.resolve(r)  # the registry's own error: unknown model
    if r.version is not None:
        registry.resolve(r)  # unknown version
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
