"""Quarantined landings: the `quarantine-<run>` branches a failed gate leaves behind.

Each holds the snapshot the gate rejected, with the source, checksum, run and the failing
expectations in its summary, so it can be inspected (`show`) and then dropped (`drop`). Dropping
removes the branch only; the data files go with snapshot expiry / orphan-file cleanup.

An `audit-<run>` branch exists only while its landing publishes; one older than
ABANDONED_AFTER_S belongs to a landing that was killed mid-publish. Those are listed too
(kind `abandoned`) and can be dropped the same way; main never saw their rows.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ingest.exceptions import QuarantineError
from ingest.verdict import AUDIT_PREFIX, GATE_DOCS, GATE_FAILURES, GATE_SUITE, QUARANTINE_PREFIX
from lakehouse import branches
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.exceptions import BrokenTableError
from lakehouse.tables import RUN_ID, SOURCE_PATH, SOURCE_SHA256, TableName, load_table, schema_at, summary_properties

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from pyiceberg.table import Table


@dataclass
class Quarantined:
    table: str
    branch: str
    snapshot_id: int
    run_id: str | None
    source: str | None
    sha256: str | None
    suite: str | None
    rows: int | None
    created_at: str
    failures: list[dict[str, Any]] = field(default_factory=list)
    data_docs: str | None = None
    sample_rows: list[dict[str, Any]] = field(default_factory=list)
    kind: str = "quarantine"  # or "abandoned": an audit branch whose landing died before publishing

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _entry(table: str, tbl: Table, branch: str) -> Quarantined:
    from datetime import datetime, timezone

    snap = branches.head(tbl, branch)
    props = summary_properties(snap)
    added = snap.summary.additional_properties.get("added-records") if snap.summary else None
    try:
        failures = json.loads(props.get(GATE_FAILURES, "[]"))
    except ValueError:
        failures = []
    return Quarantined(
        table=table,
        branch=branch,
        snapshot_id=snap.snapshot_id,
        run_id=props.get(RUN_ID),
        source=props.get(SOURCE_PATH),
        sha256=props.get(SOURCE_SHA256),
        suite=props.get(GATE_SUITE),
        rows=int(added) if added is not None else None,
        created_at=datetime.fromtimestamp(snap.timestamp_ms / 1000, tz=timezone.utc).isoformat(timespec="seconds"),
        failures=failures,
        data_docs=props.get(GATE_DOCS),
        kind="abandoned" if branch.startswith(AUDIT_PREFIX) else "quarantine",
    )


# A landing publishes within seconds of committing its audit snapshot; an hour means it died.
ABANDONED_AFTER_S = 3600


def _abandoned(tbl: Table, ref: str) -> bool:
    import time

    if not ref.startswith(AUDIT_PREFIX):
        return False
    snap = tbl.snapshot_by_name(ref)
    return snap is not None and time.time() - snap.timestamp_ms / 1000 > ABANDONED_AFTER_S


def list_quarantined(settings: Settings, table: str | None = None) -> list[Quarantined]:
    """Quarantine branches of one table, or of every table in the catalog."""
    catalog = load_catalog(settings)
    if table is not None:
        names = [TableName.parse(table)]
    else:
        names = [TableName(ns[0] if isinstance(ns, tuple) else str(ns), t) for ns in catalog.list_namespaces() for _, t in catalog.list_tables(ns)]
    out = []
    for name in names:
        try:
            tbl = load_table(catalog, name)
        except BrokenTableError as exc:
            if table is not None:
                raise
            log.warning("%s", exc)  # one broken table: report it, list the others' quarantines
            continue
        for ref in sorted(tbl.metadata.refs):
            if ref.startswith(QUARANTINE_PREFIX) or _abandoned(tbl, ref):
                out.append(_entry(str(name), tbl, ref))
    return sorted(out, key=lambda q: q.created_at)


def show(settings: Settings, table: str, branch: str, rows: int = 5) -> Quarantined:
    """One quarantined landing, with a few of the rows it would have added."""
    from lakehouse.pyiceberg_compat import read_data_files

    name = TableName.parse(table)
    tbl = load_table(load_catalog(settings), name)
    _check(tbl, name, branch)
    entry = _entry(str(name), tbl, branch)
    snap = branches.head(tbl, branch)
    added = branches.added_data_files(tbl, snap)
    if added and rows > 0:
        # In the snapshot's own schema: a refused file's new columns never became the table's.
        sample = read_data_files(tbl, added[:1], limit=rows, schema=schema_at(tbl, snap))
        entry.sample_rows = [{k: _plain(v) for k, v in r.items()} for r in sample.to_pylist()]
    return entry


def drop(settings: Settings, table: str, branch: str) -> Quarantined:
    """Remove a quarantine branch; the rows never reached main, so main is unaffected."""
    name = TableName.parse(table)
    catalog = load_catalog(settings)
    tbl = load_table(catalog, name)
    _check(tbl, name, branch)
    entry = _entry(str(name), tbl, branch)
    branches.drop(catalog, name, branch)
    return entry


def _check(tbl: Table, name: TableName, branch: str) -> None:
    if branch.startswith(AUDIT_PREFIX) and branch in tbl.metadata.refs:
        if not _abandoned(tbl, branch):
            raise QuarantineError(f"{branch} of {name} belongs to a landing still publishing; leave it (it is abandoned after {ABANDONED_AFTER_S // 60} minutes)")
        return
    if not branch.startswith(QUARANTINE_PREFIX):
        raise QuarantineError(f"{branch} is not a quarantine branch (they start with {QUARANTINE_PREFIX}); see `tidemark ingest quarantine list`")
    if branch not in tbl.metadata.refs:
        raise QuarantineError(f"{name} has no branch {branch}; see `tidemark ingest quarantine list --table {name}`")


def _plain(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
