"""The drift check of a model version: each input table's newer snapshot against the one it was
trained on (`scan.compute_drift`), as one lineage run `drift.<model>` whose inputs carry the scores
in the `dataQualityMetrics` and `tidemark_drift` facets; the results also go to `lineage.drift`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lakehouse.catalog import load_catalog
from lakehouse.config import DriftThresholds, Settings
from lakehouse.exceptions import TableNotFoundError
from lakehouse.tables import TableName, load_table
from lineage import drift_store, signing
from lineage import events as ev
from lineage import actors, notifications
from lineage.run import run as lineage_run
from lineage.transport import Transport
from models import inputs as inputs_mod
from models.drift.scan import ENGINES, TableDrift, check_snapshot, compute_drift
from models.exceptions import DriftError, SnapshotExpiredError
from models.registry import ModelRef, ModelVersion, Registry

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

DRIFT_JOB = "drift"


def thresholds_for(settings: Settings, model: str | None = None) -> DriftThresholds:
    """The `drift` section's thresholds, with `drift.models.<model>` overrides applied."""
    models = settings.drift.models
    if model is not None and (model in models or model.lower() in models):  # env variables arrive lower-cased
        return models.get(model) or models[model.lower()]
    return settings.drift.defaults


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



def check_model(
    settings: Settings,
    ref: str,
    snapshots: Mapping[str, int] | None = None,
    transport: Transport | None = None,
    engine: str = "duckdb",
) -> DriftCheck:
    """Compare each input table of the version `ref` names with the snapshot it was trained on.

    `snapshots[table]` is the snapshot to check (default: the table's current main snapshot). The
    check is one lineage run `drift.<model>`: each checked snapshot is an input carrying the
    `dataQualityMetrics` facet and our `tidemark_drift` facet (baseline snapshot, model version,
    thresholds, per-feature scores); the results are also written to `lineage.drift`. `engine`
    counts the snapshots: `duckdb` in this process, `spark` on `lakehouse.spark`'s session (same statistics).
    """
    if engine not in ENGINES:
        raise DriftError(f"engine {engine!r} is not one of {', '.join(ENGINES)}", parameter="engine")
    catalog = load_catalog(settings)
    registry = Registry(settings, catalog)
    r = ModelRef.parse(ref)
    mv = registry.resolve(r)
    t = thresholds_for(settings, mv.model)
    wanted = dict(snapshots or {})
    unknown = set(wanted) - {i.table for i in mv.inputs}
    if unknown:
        raise DriftError(
            f"snapshots {', '.join(sorted(unknown))}: not an input of {mv.model}:{mv.version} "
            f"(inputs: {', '.join(i.table for i in mv.inputs)})",
            parameter="snapshots",
        )
    plan = []
    for inp in mv.inputs:
        table = baseline_table(catalog, mv, inp.table, inp.snapshot_id)
        assert inp.snapshot_id is not None  # baseline_table refuses a version without one
        current = wanted.get(inp.table)
        if current is None:
            snap = table.current_snapshot()
            if snap is None:
                raise DriftError(f"{inp.table} has no current snapshot to check")
            current = snap.snapshot_id
        check_snapshot(table, inp.table, current, "the snapshot to check", parameter="snapshots" if inp.table in wanted else None)
        plan.append((inp.table, table, inp.snapshot_id, current))

    if engine == "spark":
        # Before the run starts: no Spark or no Java is one line saying what to install, no FAIL event.
        from lakehouse import spark as lspark

        lspark.session(settings)
    results = [
        (compute_drift(settings, name, baseline, current, thresholds=t, engine=engine), table) for name, table, baseline, current in plan
    ]
    return record_check(settings, catalog, registry, mv, r.alias, t, results, transport=transport, code=check_model, engine=engine)


def baseline_table(catalog: Catalog, mv: ModelVersion, table_name: str, snapshot_id: int | None) -> Table:
    """The input table `table_name` of `mv`, checked to still hold the snapshot `mv` was trained on."""
    try:
        table = load_table(catalog, TableName.parse(table_name))
    except TableNotFoundError as exc:
        raise DriftError(f"table {table_name}, an input of {mv.model}:{mv.version}, no longer exists; nothing to compare") from exc
    if snapshot_id is None:
        raise DriftError(f"{mv.model}:{mv.version} recorded no snapshot for {table_name}: there is no baseline to compare with")
    if table.snapshot_by_id(snapshot_id) is None:
        raise SnapshotExpiredError(
            f"the baseline of {table_name}, snapshot {snapshot_id} that {mv.model}:{mv.version} was trained on, "
            f"was expired; pinning keeps it (a registered version tags it model/{mv.model}/{mv.version}; "
            "archiving releases the pin)"
        )
    return table


def record_check(
    settings: Settings,
    catalog: Catalog,
    registry: Registry,
    mv: ModelVersion,
    alias: str | None,
    t: DriftThresholds,
    results: list[tuple[TableDrift, Any]],
    *,
    transport: Transport | None = None,
    code: Any = None,
    engine: str = "duckdb",
) -> DriftCheck:
    """A check's results as one lineage run `drift.<model>` (each checked table at its snapshot an
    input with the scores' facets) and as rows of `lineage.drift`. `results`: each table's drift and
    its pyiceberg table."""
    producer = settings.lineage.producer
    with lineage_run(
        f"{DRIFT_JOB}.{mv.model}",
        inputs=[registry.model_dataset(mv)],
        parameters={"model": mv.model, "version": mv.version, "alias": alias, "thresholds": t.to_json(), "engine": engine},
        settings=settings,
        transport=transport,
        code=code,
    ) as run:
        for td, table in results:
            dataset = inputs_mod.dataset(settings, td.table, table, td.current_snapshot_id)
            dataset.setdefault("inputFacets", {}).update(
                {
                    "dataQualityMetrics": quality_facet(producer, td),
                    drift_store.DRIFT_FACET: signing.sign_facet(settings, drift_facet(producer, td, mv.model, mv.version, alias)),
                }
            )
            run.add_input(dataset)
        drifted = [td for td, _ in results if td.drifted]
        if drifted:
            # A drift alarm: subscribers (a webhook, the on-call) act on it without reading the scores.
            what = "; ".join(f"{td.table}: {', '.join(td.drifted_features) or 'schema/rows'}" for td in drifted)
            run.add_run_facet(notifications.FACET, notifications.facet(
                producer, notifications.DRIFT_ALARM, model=mv.model, alias=alias, version=mv.version,
                actor=actors.current_actor(settings).name,
                # A check of the prediction log compares production traffic with the training table.
                summary=f"drift in the {'traffic' if any(td.baseline_table for td in drifted) else 'inputs'} of "
                f"{mv.model}:{mv.version}{'@' + alias if alias else ''}: {what}",
                details={"tables": {td.table: {"snapshot": td.current_snapshot_id, "reasons": td.reasons} for td in drifted}},
            ))
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
    return DriftCheck(model=mv.model, version=mv.version, alias=alias, checked_at=checked_at, run_id=run_id, tables=[td for td, _ in results])


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
        baselineTable=td.baseline_table or td.table,
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
