"""The drift check of a model version: each input table's newer snapshot against the one it was
trained on (`scan.compute_drift`), as one lineage run `drift.<model>` whose inputs carry the scores
in the `dataQualityMetrics` and `tidemark_drift` facets; the results also go to `lineage.drift`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from lakehouse.catalog import load_catalog
from lakehouse.config import DriftThresholds, Settings
from lakehouse.exceptions import TableNotFoundError
from lakehouse.tables import TableName, load_table
from lineage import drift_store
from lineage import events as ev
from lineage import actors, notifications
from lineage.run import run as lineage_run
from lineage.transport import Transport
from models import inputs as inputs_mod
from models.drift.scan import TableDrift, check_snapshot, compute_drift
from models.exceptions import DriftError, SnapshotExpiredError
from models.registry import ModelRef, Registry

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
            f"snapshots {', '.join(sorted(unknown))}: not an input of {mv.model}:{mv.version} "
            f"(inputs: {', '.join(i.table for i in mv.inputs)})",
            parameter="snapshots",
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
        check_snapshot(table, inp.table, current, "the snapshot to check", parameter="snapshots" if inp.table in wanted else None)
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
        drifted = [td for td in results if td.drifted]
        if drifted:
            # A drift alarm: subscribers (a webhook, the on-call) act on it without reading the scores.
            what = "; ".join(f"{td.table}: {', '.join(td.drifted_features) or 'schema/rows'}" for td in drifted)
            run.add_run_facet(notifications.FACET, notifications.facet(
                producer, notifications.DRIFT_ALARM, model=mv.model, alias=r.alias, version=mv.version,
                actor=actors.current_actor(settings).name,
                summary=f"drift in the inputs of {mv.model}:{mv.version}{'@' + r.alias if r.alias else ''}: {what}",
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
