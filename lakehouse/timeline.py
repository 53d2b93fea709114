"""A table's snapshot history on a time line: every snapshot the metadata still holds, the refs
(branches and tags) pointing at each, which are main's ancestors, and how far back expiry reaches.

What the refs mean is for the caller: ingest names quarantine branches `quarantine-<run>`, models
tag pinned snapshots `model/NAME/VERSION`. This module reads table metadata only (no data files).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse.tables import EXPIRED_BEFORE, JOB_NAME, RUN_ID, SOURCE_PATH, SOURCE_SHA256, TableName, ancestors, load_table, summary_properties

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

# How long the daily maintenance keeps unpinned snapshots (dags/tidemark_maintenance.py reads it here).
MAINTENANCE_RETENTION_S = float(os.environ.get("TIDEMARK_MAINTENANCE_RETENTION_S", 7 * 24 * 3600))


@dataclass
class SnapshotEntry:
    snapshot_id: int
    parent_id: int | None
    timestamp_ms: int
    operation: str | None
    on_main: bool
    run_id: str | None = None
    job_name: str | None = None
    source_path: str | None = None
    source_sha256: str | None = None
    added_records: int | None = None
    total_records: int | None = None
    branches: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Timeline:
    table: str
    current_snapshot_id: int | None
    snapshots: list[SnapshotEntry]  # oldest first
    expired_before_ms: int | None  # snapshots older than this were expired: time travel fails there
    next_expiry_before_ms: int  # the next maintenance expires unprotected snapshots older than this

    def snapshot(self, snapshot_id: int) -> SnapshotEntry | None:
        return next((s for s in self.snapshots if s.snapshot_id == snapshot_id), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "current_snapshot_id": self.current_snapshot_id,
            "expired_before_ms": self.expired_before_ms,
            "next_expiry_before_ms": self.next_expiry_before_ms,
            "snapshots": [s.to_json() for s in self.snapshots],
        }


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def timeline(catalog: Catalog, name: str | TableName, retention_s: float = MAINTENANCE_RETENTION_S, now_ms: int | None = None) -> Timeline:
    """The snapshot history of table `name` (raises TableNotFoundError for an unknown table)."""
    table = load_table(catalog, name)
    current = table.current_snapshot()
    main = {s.snapshot_id for s in ancestors(table, current.snapshot_id)} if current else set()
    refs: dict[int, tuple[list[str], list[str]]] = {}
    for ref_name, ref in table.metadata.refs.items():
        branches, tags = refs.setdefault(ref.snapshot_id, ([], []))
        (tags if ref.snapshot_ref_type == "tag" else branches).append(ref_name)
    entries = []
    for snap in sorted(table.snapshots(), key=lambda s: (s.timestamp_ms, s.sequence_number or 0)):
        props = summary_properties(snap)
        branches, tags = refs.get(snap.snapshot_id, ([], []))
        entries.append(
            SnapshotEntry(
                snapshot_id=snap.snapshot_id,
                parent_id=snap.parent_snapshot_id,
                timestamp_ms=snap.timestamp_ms,
                operation=snap.summary.operation.value if snap.summary and snap.summary.operation else None,
                on_main=snap.snapshot_id in main,
                run_id=props.get(RUN_ID),
                job_name=props.get(JOB_NAME),
                source_path=props.get(SOURCE_PATH),
                source_sha256=props.get(SOURCE_SHA256),
                added_records=_int(props.get("added-records")),
                total_records=_int(props.get("total-records")),
                branches=sorted(branches),
                tags=sorted(tags),
                properties={k: v for k, v in props.items() if k.startswith("tidemark.")},
            )
        )
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return Timeline(
        table=str(name),
        current_snapshot_id=current.snapshot_id if current else None,
        snapshots=entries,
        expired_before_ms=_int(table.properties.get(EXPIRED_BEFORE)),
        next_expiry_before_ms=now - int(retention_s * 1000),
    )
