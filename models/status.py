"""`tidemark models status NAME`: who holds each alias, the last drift check, the candidates, and the
last automatic decision with its reason — one screen to see whether a production model is being watched
and renewed. The registry answers the first and third; the lineage store (events) the others.
"""

from __future__ import annotations

import json
from typing import Any

from lakehouse.config import Settings
from lakehouse.sql import query
from lineage import query as lineage_query
from models.registry import Registry
from lineage.drift_store import DRIFT_FACET
from models.drift import DRIFT_JOB
from models.renewal import DECISION_FACET, RENEW_JOB


def _last_complete(con: Any, ns: str, job_name: str) -> dict[str, Any] | None:
    rows = query(
        con,
        f"""
        SELECT run_id, CAST(event_time AS VARCHAR) AS event_time, payload
        FROM "{ns}".events
        WHERE job_name = ? AND event_type = 'COMPLETE'
        ORDER BY event_time DESC
        LIMIT 1
        """,
        [job_name],
    ).to_pylist()
    return rows[0] if rows else None


def _drift_summary(event: dict[str, Any]) -> dict[str, Any]:
    """What the drift run found, from its inputs' `tidemark_drift` facets."""
    tables = []
    for ds in event.get("inputs") or []:
        facet = (ds.get("inputFacets") or {}).get(DRIFT_FACET)
        if facet:
            tables.append(
                {
                    "table": facet.get("table"),
                    "baseline_snapshot_id": facet.get("baselineSnapshotId"),
                    "snapshot_id": facet.get("currentSnapshotId"),
                    "drifted": bool(facet.get("drifted")),
                    "drifted_features": [f["column"] for f in facet.get("features") or [] if f.get("drifted")],
                }
            )
    return {"drifted": any(t.get("drifted") for t in tables), "tables": tables}


def status(settings: Settings, model: str) -> dict[str, Any]:
    registry = Registry(settings)
    versions = registry.versions(model)
    if not versions:
        registry.resolve(model)  # raises the registry's "not registered" error
    holders = {alias: v for (m, alias), v in registry.current_aliases().items() if m == model}
    oldest_holder = min(holders.values(), default=0)
    candidates = [
        {"version": mv.version, "created_at": mv.created_at.isoformat(), "metrics": mv.metrics, "inputs": [i.to_json() for i in mv.inputs]}
        for mv in versions
        if not mv.aliases and mv.archived is None and mv.version > oldest_holder
    ]
    ns = settings.lineage.namespace
    con = lineage_query.connect(settings, only=[f"{ns}.events"], iceberg=False)
    drift = _last_complete(con, ns, f"{DRIFT_JOB}.{model}")
    decision = _last_complete(con, ns, f"{RENEW_JOB}.{model}")
    last_drift = None
    if drift is not None:
        last_drift = {"run_id": drift["run_id"], "time": drift["event_time"], **_drift_summary(json.loads(drift["payload"]))}
    last_decision = None
    if decision is not None:
        facet = ((json.loads(decision["payload"]).get("run") or {}).get("facets") or {}).get(DECISION_FACET) or {}
        last_decision = {"run_id": decision["run_id"], "time": decision["event_time"], **{k: v for k, v in facet.items() if not k.startswith("_")}}
    # Moves that events claimed and the consumer refused: someone tried to change this registry.
    rejected = [
        {
            "time": r["event_time"].isoformat(),
            "action": r["action"],
            "alias": r["alias"] or None,
            "version": r["version"],
            "run_id": r["run_id"],
            "job_name": r["job_name"],
            "producer": r["producer"],
            "forced": r["forced"],
            "rejected_because": r["rejected_because"],
        }
        for r in registry.rejected_moves(model)
    ]
    return {
        "model": model,
        "aliases": dict(sorted(holders.items())),
        "rejected_moves": rejected,
        "latest_version": versions[-1].version,
        "last_drift_check": last_drift,
        "candidates": candidates,
        "last_decision": last_decision,
    }
