"""Requests to move a protected alias, their approvals and rejections: a table, and how events become its rows.

`lineage.alias_requests` holds one row per step: `request` (who asked, the gate's verdict then, the
metrics against the holder then, the version's input snapshots), then at most one `approve` or
`reject` (who, why). `models.approvals` writes the rows directly and emits each step as a signed
lineage event (`tidemark_aliasRequest` facet on the model dataset of a `models.request`,
`models.approve` or `models.reject` run); the lineage consumer adds the rows of the events it reads
(`upsert_from_events`), like `model_store` does for alias moves.

A step from an event is taken only with a valid signature (`lineage.signing`): a forged approval
would otherwise let anyone with access to the topic approve their own request. Refused steps go to
`lineage.rejected_moves` with the reason, beside refused alias moves. Like `model_store`, this
module never imports `models`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lakehouse.config import Settings
from lakehouse.tables import NO_REBASE, TableName, append_missing, ensure_table
from lakehouse.times import parse_time
from lineage import events as ev
from lineage import signing

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

TABLE = "alias_requests"
FACET = "tidemark_aliasRequest"
SYNC_JOB = "tidemark.lineage.requests-sync"
REQUEST, APPROVE, REJECT = "request", "approve", "reject"
ACTIONS = (REQUEST, APPROVE, REJECT)
# The JSON columns, by their facet names.
_JSON = {"gate_problems": "gateProblems", "gate_notes": "gateNotes", "metrics": "metrics", "inputs": "inputs", "actor_facet": "actorFacet"}


def schema() -> Any:
    from pyiceberg.schema import Schema
    from pyiceberg.types import BooleanType, IntegerType, TimestamptzType

    from lineage.store import column as s

    return Schema(
        s(1, "event_time", TimestamptzType(), required=True),
        s(2, "request_id", required=True),
        s(3, "model", required=True),
        s(4, "alias", required=True),
        s(5, "version", IntegerType()),
        s(6, "action", required=True),  # request | approve | reject
        s(7, "actor"),  # who took this step (its name)
        s(8, "actor_facet"),  # JSON: the whole actor (kind, DAG owner, triggering user)
        s(9, "reason"),
        s(10, "forced", BooleanType()),  # a request made with `--force`: the gate's problems were overridden
        s(11, "holder_version", IntegerType()),  # the alias's holder when the request was made
        s(12, "gate_problems"),  # JSON list: the gate's verdict when the step was taken
        s(13, "gate_notes"),  # JSON list
        s(14, "metrics"),  # JSON {"candidate": {...}, "holder": {...}}
        s(15, "inputs"),  # JSON [{table, snapshot_id, rows, fingerprint}]: the version's input snapshots
        s(16, "run_id", required=True),
    )


@functools.cache
def arrow_schema() -> pa.Schema:
    return schema().as_arrow()


def ensure(catalog: Catalog, settings: Settings) -> Table:
    return ensure_table(catalog, TableName(settings.lineage.namespace, TABLE), schema(), properties={"format-version": "2", **NO_REBASE})


def rows(catalog: Catalog, settings: Settings, model: str | None = None) -> list[dict[str, Any]]:
    """Every step (of `model`, or all), oldest first."""
    table = ensure(catalog, settings)
    if table.current_snapshot() is None:
        return []
    found = [r for r in table.scan().to_arrow().to_pylist() if model is None or r["model"] == model]
    return sorted(found, key=lambda r: r["event_time"])


def requests(steps: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """request id -> its `request` row with `closed_by`: the approve or reject row that closed it, or None."""
    out: dict[str, dict[str, Any]] = {}
    closing: dict[str, dict[str, Any]] = {}
    for r in steps:
        if r["action"] == REQUEST:
            out.setdefault(r["request_id"], {**r, "closed_by": None})
        elif r["request_id"] not in closing:
            closing[r["request_id"]] = dict(r)
    for rid, req in out.items():
        req["closed_by"] = closing.get(rid)
    return out


# -- events -----------------------------------------------------------------------------------------


def signed_fields(model: str, version: int | None, facet: Mapping[str, Any]) -> dict[str, Any]:
    """What a step's signature covers: the model, the version, and every field of its facet."""
    return {"model": model, "version": version, **{k: v for k, v in facet.items() if not k.startswith("_") and k != "signature"}}


def request_facet(settings: Settings, row: Mapping[str, Any]) -> dict[str, Any]:
    """The signed `tidemark_aliasRequest` facet of a step (an `alias_requests` row)."""
    fields: dict[str, Any] = {
        "requestId": row["request_id"],
        "action": row["action"],
        "alias": row["alias"],
        "actor": row["actor"],
        "reason": row["reason"],
        "forced": bool(row["forced"]),
        "holderVersion": row["holder_version"],
        **{name: json.loads(row[col]) if row.get(col) else None for col, name in _JSON.items()},
    }
    facet = ev.facet(settings.lineage.producer, f"{ev.TIDEMARK_FACETS}/AliasRequestDatasetFacet.json", **fields)
    facet["signature"] = signing.sign(settings, signed_fields(row["model"], row["version"], facet))
    return facet


def rows_from_event(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`alias_requests` rows an event's model datasets carry, each with `_signature` and `_facet` to vet them."""
    if event.get("eventType") != "COMPLETE":
        return []
    out = []
    for ds in list(event.get("inputs") or []) + list(event.get("outputs") or []):
        facet = (ds.get("facets") or {}).get(FACET)
        if not isinstance(facet, dict):
            continue
        try:
            version = ev.dataset_version(ds)
            holder = facet.get("holderVersion")
            row = {
                "event_time": parse_time(str(event["eventTime"]), parameter="eventTime"),
                "request_id": str(facet["requestId"]),
                "model": str(ds["name"]),
                "alias": str(facet.get("alias") or ""),
                "version": int(version) if version not in (None, "") else None,
                "action": str(facet["action"]),
                "actor": facet.get("actor"),
                "reason": facet.get("reason"),
                "forced": bool(facet.get("forced", False)),
                "holder_version": int(holder) if holder is not None else None,
                **{col: None if facet.get(name) is None else json.dumps(facet[name], sort_keys=True) for col, name in _JSON.items()},
                "run_id": str(event["run"]["runId"]),
            }
        except (KeyError, TypeError, ValueError):
            continue  # a malformed facet: the event itself is still stored
        row["_signature"], row["_facet"] = facet.get("signature"), facet
        row["_origin"] = {"job_name": (event.get("job") or {}).get("name"), "producer": event.get("producer")}
        out.append(row)
    return out


def vet(settings: Settings, steps: Sequence[Mapping[str, Any]], now: datetime | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split steps claimed by events into (to store, refused as `rejected_moves` rows).

    Only a step signed with this installation's registry key is stored: the producer that signed it
    (`models promote` / `approve` / `reject`) checked who may take it and that the gate held."""
    received = now or datetime.now(timezone.utc)
    accepted: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for s in steps:
        signature = s.get("_signature")
        why: str | None = None
        if s["action"] not in ACTIONS:
            why = f"unknown request action {s['action']!r}"
        elif signature is None:
            why = f"{s['action']} of request {s['request_id']} carries no signature of an authorised `tidemark models` command"
        elif not signing.verify(settings, signed_fields(s["model"], s["version"], s["_facet"]), signature):
            why = "its signature does not verify with this installation's registry key (lineage.registry_key)"
        if why is None:
            accepted.append({k: v for k, v in s.items() if not k.startswith("_")})
            continue
        origin = s.get("_origin") or {}
        refused.append(
            {
                "received_time": received, "event_time": s["event_time"], "model": s["model"][:200], "alias": s["alias"][:200],
                "version": s["version"], "action": s["action"][:50], "run_id": s["run_id"], "job_name": origin.get("job_name"),
                "producer": origin.get("producer"), "forced": s["forced"], "signed": signature is not None, "reason": s["reason"],
                "rejected_because": why, "claim": json.dumps(s["_facet"], default=str),
            }
        )
    return accepted, refused


def upsert_from_events(catalog: Catalog, settings: Settings, events: Iterable[Mapping[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """Store the signed steps these events carry and the table lacks: (rows added, refused steps)."""
    steps = [r for e in events for r in rows_from_event(e)]
    if not steps:
        return 0, []
    accepted, refused = vet(settings, steps)
    added = 0
    if accepted:
        ensure(catalog, settings)
        added = append_missing(
            catalog, (settings.lineage.namespace, TABLE), accepted, ("request_id", "action"), arrow_schema(), job_name=SYNC_JOB
        )
    return added, refused
