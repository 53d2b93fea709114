"""`tidemark models status NAME`: who holds each alias, the last drift check, the candidates, and the
last automatic decision with its reason — one screen to see whether a production model is being watched
and renewed. The registry answers the first and third, `lineage.drift` the second (written by the
check itself, so it is current as soon as a check returns), the lineage events the last.
"""

from __future__ import annotations

import json
from typing import Any

from lakehouse.config import Settings
from lakehouse.sql import query
from lineage import actors
from lineage import query as lineage_query
from lineage import signing
from models import approvals
from models.registry import Registry
from models.drift import stored_checks, thresholds_for
from models.renewal import DECISION_FACET, RENEW_JOB
from models.signature import prediction_table


def _last_decision(settings: Settings, con: Any, ns: str, job_name: str) -> dict[str, Any] | None:
    """The newest renewal decision of `job_name` whose facet Tidemark's renewal signed: anyone who
    can write to the topic can send a `renew.NAME` COMPLETE event, which is stored but not shown."""
    rows = query(
        con,
        f"""
        SELECT run_id, CAST(event_time AS VARCHAR) AS event_time, payload
        FROM "{ns}".events
        WHERE job_name = ? AND event_type = 'COMPLETE'
        ORDER BY event_time DESC
        """,
        [job_name],
    ).to_pylist()
    for row in rows:
        facet = ((json.loads(row["payload"]).get("run") or {}).get("facets") or {}).get(DECISION_FACET)
        if isinstance(facet, dict) and signing.facet_verifies(settings, facet):
            return {"run_id": row["run_id"], "time": row["event_time"], **signing.facet_fields(facet)}
    return None


def last_drift_check(settings: Settings, model: str, traffic: bool = False) -> dict[str, Any] | None:
    """The newest drift check of `model`, from `lineage.drift`: the checker writes its rows there
    itself, so a check shows here as soon as it returns (the lineage consumer is not needed).
    `traffic`: the newest check of its production traffic (the prediction log's rows) instead of
    its input tables' data.

    Per table: whether it drifted (by any measure: a feature, the row count, the schema), the
    drifted features, the row counts, and every reason (the row-count one from the thresholds,
    never for traffic, whose volume is not compared).
    """
    # Rows from a drift facet without a valid signature (an event from some other producer, or a
    # forged one) are in `lineage.drift` for the record, but never decide what status reports.
    log_table = prediction_table(model)
    rows = [
        r for r in stored_checks(settings, model)
        if r.get("verified") is not False and (r["table_name"] == log_table) == traffic
    ]
    if not rows:
        return None
    run_id = rows[0]["run_id"]
    t = thresholds_for(settings, model)
    tables: dict[str, dict[str, Any]] = {}
    for r in (r for r in rows if r["run_id"] == run_id):
        entry = tables.setdefault(
            r["table_name"],
            {
                "table": r["table_name"],
                "baseline_snapshot_id": r["baseline_snapshot_id"],
                "snapshot_id": r["current_snapshot_id"],
                "rows_baseline": r["rows_baseline"],
                "rows_current": r["rows_current"],
                "drifted": bool(r["table_drifted"]),
                "drifted_features": [],
                "schema_changes": [],
                "reasons": [],
            },
        )
        if r["kind"] == "schema":
            entry["schema_changes"].append(r["column_name"])
        if r["drifted"]:
            entry["drifted_features"].append(r["column_name"])
            entry["reasons"].append(f"{r['column_name']}: {'; '.join(r['reasons'])}")
    for entry in [] if traffic else tables.values():
        nb, nc = entry["rows_baseline"], entry["rows_current"]
        if nb and nc is not None and abs(nc - nb) / nb > t.row_count_change:
            entry["reasons"].insert(0, f"row count {nb} -> {nc} ({(nc - nb) / nb:+.0%}, threshold {t.row_count_change:.0%})")
    found = list(tables.values())
    return {
        "run_id": run_id,
        "time": rows[0]["event_time"].isoformat(),
        "drifted": any(e["drifted"] for e in found),
        "tables": found,
    }


def _alias_moves(registry: Registry, model: str, holders: dict[str, int]) -> dict[str, dict[str, Any]]:
    """alias -> the move that gave it its holder: when, and which actor."""
    out: dict[str, dict[str, Any]] = {}
    for r in registry.alias_history(model):  # oldest first: the last move of an alias wins
        if r["action"] == "set" and holders.get(r["alias"]) == r["version"]:
            by = actors.from_columns(r)
            out[r["alias"]] = {"time": r["event_time"].isoformat(), "run_id": r["run_id"], "actor": by.to_json() if by else None}
    return dict(sorted(out.items()))


def status(settings: Settings, model: str) -> dict[str, Any]:
    registry = Registry(settings)
    versions = registry.versions(model)
    if not versions:
        registry.resolve(model)  # raises the registry's "not registered" error
    holders = {alias: v for (m, alias), v in registry.current_aliases().items() if m == model}
    oldest_holder = min(holders.values(), default=0)
    candidates = [
        {
            "version": mv.version, "created_at": mv.created_at.isoformat(), "metrics": mv.metrics, "inputs": [i.to_json() for i in mv.inputs],
            "actor": mv.actor.to_json() if mv.actor else None,
        }
        for mv in versions
        if not mv.aliases and mv.archived is None and mv.version > oldest_holder and mv.verified is not False
    ]
    # Registered by an event without a valid signature: their metrics and artifact are claims, not
    # candidates; listed apart so a forged registration is seen, never offered.
    unverified = [mv.version for mv in versions if mv.verified is False]
    ns = settings.lineage.namespace
    con = lineage_query.connect(settings, only=[f"{ns}.events"], iceberg=False)
    last_decision = _last_decision(settings, con, ns, f"{RENEW_JOB}.{model}")
    last_drift = last_drift_check(settings, model)
    last_traffic = last_drift_check(settings, model, traffic=True)
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
            "actor": r.get("actor"),
            "rejected_because": r["rejected_because"],
        }
        for r in registry.rejected_moves(model)
    ]
    holder_moves = _alias_moves(registry, model, holders)
    return {
        "model": model,
        # The model's owner: the one its newest version recorded (a training job's owner can change).
        "owner": versions[-1].owner,
        "aliases": dict(sorted(holders.items())),
        # Who put each holder there, and when.
        "alias_moves": holder_moves,
        "rejected_moves": rejected,
        "latest_version": versions[-1].version,
        "last_drift_check": last_drift,
        "last_traffic_drift_check": last_traffic,
        "candidates": candidates,
        "unverified_versions": unverified,
        "last_decision": last_decision,
        # Requests to move a protected alias that wait for an approver (`models.approvals`).
        "pending_requests": [
            {k: r[k] for k in ("request_id", "alias", "version", "holder_version", "actor", "event_time", "forced")}
            for r in approvals.listing(settings, model)
        ],
    }
