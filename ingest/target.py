"""The table a landing writes into: made on the first landing, its schema evolved for each source.

A new table gets an empty first snapshot on main, because Iceberg refuses branch writes to a table
with no snapshot (write-audit-publish commits to a branch made from main). A landing that made
the table and then failed drops it again, unless another landing has used it since.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest import schema as schemas
from ingest.exceptions import SourceError
from lakehouse.pyiceberg_compat import stale_is_conflict
from lakehouse.tables import JOB_NAME, TableName, ensure_table, load_table, with_commit_retry

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table
    from pyiceberg.table.metadata import TableMetadata

log = logging.getLogger(__name__)

CREATE_JOB = "tidemark.ingest.create"


@dataclass(frozen=True)
class Target:
    """The table a landing writes into, the schema its files are written in, and whether it made the table."""

    table: Table
    schema: Schema  # the table's current schema, or one evolved for this source (not current until published)
    created: bool

    @property
    def metadata(self) -> TableMetadata:
        """The table's metadata as the files' writer must see it: with `schema` as its schema."""
        if self.schema.schema_id == self.table.metadata.current_schema_id:
            return self.table.metadata
        return self.table.metadata.model_copy(update={"current_schema_id": self.schema.schema_id})


def prepare(catalog: Catalog, name: TableName, source_schema: pa.Schema, source_name: str, warnings: list[str]) -> Target:
    """Load or create the table and the schema this source is written in; refuse before writing anything.

    A new column or a widened type makes a new schema that becomes current only when the landing
    is published (`ingest.schema.apply`). Warnings (columns left out) are added to `warnings`.
    A failure after this landing created the table drops it again.
    """
    import pyarrow as pa

    empty = schemas.droppable_empty_columns(source_schema)
    usable = pa.schema([f for f in source_schema if f.name not in empty])
    created = False
    if not catalog.table_exists(name.identifier):
        if not len(usable):
            raise SourceError(f"{source_name}: every column is empty; nothing to land")
        ensure_table(catalog, name, usable)

        def init() -> bool:
            t = load_table(catalog, name)
            if t.current_snapshot() is None:
                with stale_is_conflict():
                    t.append(usable.empty_table(), snapshot_properties={JOB_NAME: CREATE_JOB})
                return True
            return False

        # "Created" means this landing gave the table its first snapshot; only then may a failure
        # drop it again (a concurrent landing that raced to create it did not).
        created = with_commit_retry(init, f"creating {name}")

    def evolve() -> Target:
        t = load_table(catalog, name)
        change = schemas.plan(t.schema(), source_schema, str(name), source_name)
        for col in change.ignored_empty:
            msg = f"column {col} of {source_name} has no values in its first rows and is not added to {name}"
            if msg not in warnings:
                warnings.append(msg)
        schema = schemas.apply(t, change)  # may commit (a schema added, not current); updates `t` in place
        return Target(t, schema, created)

    try:
        return with_commit_retry(evolve, f"evolving the schema of {name}")
    except BaseException:
        if created:
            drop_if_pristine(catalog, name)
        raise


def drop_if_pristine(catalog: Catalog, name: TableName) -> bool:
    """Undo a table a failed landing created, if nobody else has used it since (only the empty first
    snapshot); True if it was dropped."""
    try:
        t = load_table(catalog, name)
        if set(t.metadata.refs) <= {"main"} and len(t.metadata.snapshots) <= 1:
            # Purged, not only dropped: its metadata files would otherwise stay in the warehouse.
            catalog.purge_table(name.identifier)
            return True
    except Exception as exc:
        log.warning("could not drop the empty table %s this failed landing created: %s", name, exc)
    return False
