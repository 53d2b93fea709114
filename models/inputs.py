"""Training inputs: an Iceberg table read at one snapshot, with what identifies its content.

Train, retrain and the benchmark assemble inputs the same way, so "the same data" means the same
thing everywhere: the rows a time-travel scan of that snapshot returns (in the snapshot's own
schema, whatever the table's schema is now), counted and fingerprinted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.config import Settings
from lakehouse.tables import read_snapshot
from lineage import events as ev
from models.fingerprint import fingerprint

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table


@dataclass
class Input:
    name: str
    table: Table
    snapshot_id: int
    data: pa.Table
    fingerprint: str

    @property
    def rows(self) -> int:
        return int(self.data.num_rows)


def read_at(table: Table, snapshot_id: int) -> pa.Table:
    """The rows of `table` as of `snapshot_id` (time travel; the snapshot's schema)."""
    return read_snapshot(table, snapshot_id)


def assemble(name: str, table: Table, snapshot_id: int) -> Input:
    data = read_at(table, snapshot_id)
    return Input(name=name, table=table, snapshot_id=snapshot_id, data=data, fingerprint=fingerprint(data))


def dataset(settings: Settings, name: str, table: Table, snapshot_id: int, extra_facets: dict[str, Any] | None = None) -> dict[str, Any]:
    """The OpenLineage input dataset of `name` read at `snapshot_id`."""
    snap = table.snapshot_by_id(snapshot_id)
    return ev.table_dataset(
        settings,
        name,
        table,
        snapshot_id,
        "input",
        schema_id=snap.schema_id if snap else None,
        extra_facets=extra_facets,
    )
