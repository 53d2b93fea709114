"""A gate's verdict on a landing: kept with the rows it judged, read back, and told.

The audited snapshot's summary carries the verdict (GATE_* keys), so it travels with the rows: a
scheduler that landed with `publish=False` reads it back (`read`) to decide, in a separate step,
whether to publish or quarantine. A landing's branch name says where it stands: `audit-<run>`
while it waits to be published, `quarantine-<run>` once its gate failed (main never saw it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingest import gate as gates
from ingest.exceptions import PublishError
from lakehouse.config import Settings
from lakehouse.tables import TableName, summary_properties

if TYPE_CHECKING:
    from pyiceberg.table import Table

log = logging.getLogger(__name__)

AUDIT_PREFIX = "audit-"
QUARANTINE_PREFIX = "quarantine-"
# Summary keys of the audited snapshot: the gate's verdict travels with the rows it judged.
GATE_SUITE = "tidemark.gate.suite"
GATE_SUCCESS = "tidemark.gate.success"
GATE_FAILURES = "tidemark.gate.failures"
GATE_DOCS = "tidemark.gate.data-docs"
# Summaries live in table metadata, read on every commit: keep the failures' text small.
FAILURES_MAX_CHARS = 4000


@dataclass
class AuditVerdict:
    """What the gate said about an audited, unpublished snapshot (read back from its summary)."""

    table: str
    branch: str
    snapshot_id: int
    base_snapshot_id: int | None
    rows: int
    suite: str | None
    success: bool | None  # None: the table has no suite, the landing was ungated
    failures: str | None
    data_docs: str | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def properties(result: gates.GateResult) -> dict[str, str]:
    """The GATE_* summary properties for a verdict."""
    failures = [{k: v for k, v in o.to_json().items() if v not in (None, [])} for o in result.failures()]
    text = json.dumps(failures, default=str)
    if len(text) > FAILURES_MAX_CHARS:
        text = json.dumps([{k: f[k] for k in ("expectation", "column", "unexpected_count") if k in f} for f in failures], default=str)
    return {GATE_SUITE: result.suite, GATE_SUCCESS: str(result.success).lower(), GATE_FAILURES: text}


def read(table: Table, name: TableName, branch: str) -> AuditVerdict:
    """The verdict on the snapshot at the head of `branch`, from its summary."""
    snap = table.snapshot_by_name(branch)
    if snap is None:
        raise PublishError(f"{name} has no branch {branch}: it was published, quarantined or dropped already; land the file again", parameter="branch")
    props = summary_properties(snap)
    success = props.get(GATE_SUCCESS)
    return AuditVerdict(
        table=str(name),
        branch=branch,
        snapshot_id=int(snap.snapshot_id),
        base_snapshot_id=snap.parent_snapshot_id,
        rows=int(props.get("added-records", 0)),
        suite=props.get(GATE_SUITE),
        success=None if success is None else success == "true",
        failures=props.get(GATE_FAILURES) or None,
        data_docs=props.get(GATE_DOCS),
    )


def write_data_docs(settings: Settings, name: TableName, run_id: str, gate: gates.StreamingGate | gates.SparkGate, result: gates.GateResult, warnings: list[str]) -> str | None:
    """GX Data Docs for the verdict, under the home's data_docs folder; the page, or None (with a warning) if it failed."""
    try:
        page = gate.write_docs(settings.home / "data_docs" / str(name), run_id, result)
    except Exception as exc:  # the docs are a report; the gate's verdict stands without them
        msg = f"could not write GX Data Docs for {name}: {exc.__class__.__name__}: {exc}"
        warnings.append(msg)
        log.warning(msg)
        return None
    return str(page) if page else None


def failed_message(name: TableName, source: str, quarantine: str, result: gates.GateResult, docs: str | None) -> str:
    """The one line a failed gate raises: every failed expectation with its counts, where the rows are kept."""
    parts = []
    for o in result.failures():
        where = f" on {o.column}" if o.column else ""
        if o.unexpected_count is not None:
            of = f" of {o.element_count}" if o.element_count is not None else ""
            count = f" ({o.unexpected_count}{of} rows)"
        elif o.observed_value is not None:
            count = f" (observed {o.observed_value})"
        else:
            count = ""
        sample = f", e.g. {o.sample[:3]}" if o.sample else ""
        parts.append(f"{o.expectation}{where}{count}{sample}")
    where_docs = f"; report: {docs}" if docs else ""
    return (
        f"{source}: validation gate {result.suite} failed for {name}: {'; '.join(parts)}. "
        f"main is unchanged; the rows are kept on branch {quarantine} "
        f"(`tidemark ingest quarantine show {name} {quarantine}`){where_docs}"
    )
