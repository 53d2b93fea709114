"""Pinning: a registered version tags every input snapshot it was trained on, in that snapshot's table.

Iceberg's snapshot expiry never removes a tagged snapshot ("is protected and cannot be expired"),
so the exact data a model depends on stays readable by time travel for as long as the version is
not archived. Archiving releases the tags; the next expiry may then remove those snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lakehouse.config import Settings
from lakehouse.exceptions import TableNotFoundError
from lakehouse.tables import TableName, load_table, manage_snapshots, with_commit_retry
from lineage.transport import Transport

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from models.registry import ModelVersion

PREFIX = "model"


def tag_name(model: str, version: int) -> str:
    """`model/NAME/VERSION`: one tag per version in every table it read."""
    return f"{PREFIX}/{model}/{version}"


def pin(catalog: Catalog, mv: ModelVersion, loaded: Mapping[str, Table] | None = None) -> list[str]:
    """Tag each input snapshot of `mv`; returns the `table@snapshot` pinned. Idempotent.

    `loaded`: input tables the caller already holds, used for the first try instead of loading
    them again (the commit checks the tag against the table's current state, so a stale one only
    costs a retry).
    """
    pinned = []
    name = tag_name(mv.model, mv.version)
    first = dict(loaded or {})
    for inp in mv.inputs:
        if inp.snapshot_id is None:
            continue
        sid = inp.snapshot_id

        def attempt(table_name: str = inp.table, sid: int = sid) -> None:
            table = first.pop(table_name, None) or load_table(catalog, TableName.parse(table_name))
            ref = table.metadata.refs.get(name)
            if ref is not None and ref.snapshot_id == sid:
                return
            with manage_snapshots(table) as ms:
                if ref is not None:
                    ms.remove_tag(name)
                ms.create_tag(sid, name)

        with_commit_retry(attempt, f"tagging snapshot {sid} of {inp.table} as {name}")
        pinned.append(f"{inp.table}@{sid}")
    return pinned


def release(catalog: Catalog, mv: ModelVersion) -> list[str]:
    """Remove the version's tags (a dropped table has nothing to release); returns the tables released."""
    released = []
    name = tag_name(mv.model, mv.version)
    for inp in mv.inputs:

        def attempt(table_name: str = inp.table) -> bool:
            try:
                table = load_table(catalog, TableName.parse(table_name))
            except TableNotFoundError:
                return False
            if name not in table.metadata.refs:
                return False
            with manage_snapshots(table) as ms:
                ms.remove_tag(name)
            return True

        if with_commit_retry(attempt, f"removing tag {name} from {inp.table}"):
            released.append(inp.table)
    return released


def pins(catalog: Catalog, table_name: str) -> dict[str, int]:
    """The model tags a table holds: tag name -> snapshot id."""
    table = load_table(catalog, TableName.parse(table_name))
    return {n: r.snapshot_id for n, r in table.metadata.refs.items() if n.startswith(f"{PREFIX}/")}


def archive(
    settings: Settings, model: str, version: int, *, reason: str | None = None, transport: Transport | None = None
) -> dict[str, Any]:
    """Archive a version (an event in the alias history) and release its pins."""
    from lakehouse.catalog import load_catalog
    from models.registry import Registry

    catalog = load_catalog(settings)
    registry = Registry(settings, catalog)
    record = registry.archive(model, version, reason=reason, transport=transport)
    released = release(catalog, registry.get(model, version))
    return {**record, "released": [f"{t}:{tag_name(model, version)}" for t in released]}
