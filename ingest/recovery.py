"""Finishing a landing (or a publish) whose process died: from the table's snapshot summaries.

`lineage.recovery` calls `resolve` for a run `land` or `staged.publish_audited` left in flight (they name
it with `run.recoverable` before their first commit). Every Tidemark commit carries its run id in
the snapshot summary (`tidemark.run-id`), so the table says how far the run got:

- a main snapshot of this run: it was published; COMPLETE with that snapshot (the real id, after a
  re-apply too) and the gate's assertions, so the promotion gate accepts models trained on it;
- a `quarantine-<run>` branch, or an `audit-<run>` branch whose gate failed (then renamed as the
  landing would have): the gate refused it; FAIL with the assertions, main untouched;
- an `audit-<run>` branch of `land(publish=False)`: its run ends at the audit; COMPLETE with it;
- an `audit-<run>` branch of a landing that was to publish: main never saw it; the branch is
  dropped (no stray branch), FAIL "interrupted": land the file again;
- nothing: FAIL "interrupted".
In every case but the first, the data files of the run's write (the uuid `land` records before its
first file) that no snapshot references are deleted: the process died (SIGKILL, or SIGSEGV in a
native library under a memory limit) with them written and uncommitted; a table it created and
nothing else used since is dropped. Files a kept branch or snapshot holds are left alone.
A Spark landing that died while the schema evolved for its file was current (`context["schema"]`:
that schema's id and the one current before) and was not published gets the old one current
again (`lakehouse.branches.restore_schema`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest import datasets, target
from ingest.verdict import AUDIT_PREFIX, GATE_SUCCESS, QUARANTINE_PREFIX
from lakehouse import branches, maintenance
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.exceptions import TableNotFoundError
from lakehouse.tables import RUN_ID, TableName, ancestors, load_table, summary_properties
from lineage.outbox import InFlight
from lineage.recovery import Resolution

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot


def resolve(settings: Settings, run: InFlight) -> Resolution:
    """The terminal event of landing run `run`, read from its table (module docstring)."""
    ctx = run.context
    if "table" not in ctx:
        return Resolution("FAIL", note="died before it opened its table")
    name = TableName.parse(str(ctx["table"]))
    catalog = load_catalog(settings)
    try:
        table = load_table(catalog, name)
    except TableNotFoundError:
        return Resolution("FAIL", note=f"{name} was never created")
    landing_run = str(ctx.get("landing_run") or run.run_id)
    published = _on_main(table, landing_run)
    if published is None and isinstance(ctx.get("schema"), list):
        # A Spark landing died while the schema evolved for its file was current: main never got
        # its rows, so its readers get the schema they had back.
        evolved, before = (int(i) for i in ctx["schema"])
        branches.restore_schema(catalog, name, evolved, before)
    if published is not None:
        return Resolution("COMPLETE", [_dataset(settings, table, name, published, ctx)], note=f"published snapshot {published.snapshot_id} found on main")
    resolution = _unpublished(settings, catalog, name, table, run, landing_run)
    # After the branch work above, on the table as it is now: what no snapshot holds can go.
    left = _remove_unreferenced(catalog, name, ctx)
    if left:
        resolution.note = f"{resolution.note}; {left}"
    return resolution


def _unpublished(settings: Settings, catalog: Catalog, name: TableName, table: Table, run: InFlight, landing_run: str) -> Resolution:
    """The terminal event of a run with no snapshot on main (module docstring); `landing_run`: the run whose snapshot was looked for."""
    ctx = run.context
    if "landing_run" in ctx:
        return Resolution("FAIL", note=f"no main snapshot of landing {landing_run}: not published")
    quarantined = table.snapshot_by_name(QUARANTINE_PREFIX + run.run_id)
    if quarantined is not None:
        return Resolution(
            "FAIL", [_dataset(settings, table, name, quarantined, ctx)], reason=f"the validation gate of {name} failed",
            note=f"rows kept on branch {QUARANTINE_PREFIX}{run.run_id}",
        )
    audited = table.snapshot_by_name(AUDIT_PREFIX + run.run_id)
    if audited is not None and summary_properties(audited).get(GATE_SUCCESS) == "false" and ctx.get("publish", True):
        # Died between the audit and the quarantine: finish the quarantine, as the landing would have.
        branches.rename(catalog, name, AUDIT_PREFIX + run.run_id, QUARANTINE_PREFIX + run.run_id)
        return Resolution(
            "FAIL", [_dataset(settings, table, name, audited, ctx)], reason=f"the validation gate of {name} failed",
            note=f"rows kept on branch {QUARANTINE_PREFIX}{run.run_id}",
        )
    if audited is not None and not ctx.get("publish", True):
        return Resolution("COMPLETE", [_dataset(settings, table, name, audited, ctx)], note=f"audited snapshot {audited.snapshot_id} left for publishing")
    if audited is not None:
        branches.drop_quietly(catalog, name, AUDIT_PREFIX + run.run_id)
        return Resolution("FAIL", note=f"audited but never published; branch {AUDIT_PREFIX}{run.run_id} dropped, main unchanged: land the file again")
    return Resolution("FAIL", note="no commit of this run in the table")


def _remove_unreferenced(catalog: Catalog, name: TableName, ctx: dict[str, object]) -> str:
    """Delete the data files of the run's write (`ctx["write"]`, the uuid in their names, recorded
    before the first was written) that no snapshot of any branch or tag references: the process
    died with them written and never committed, so only this run knew of them. A table the run
    created and nothing else used since goes too. What was done, for the note ('' for nothing)."""
    write = str(ctx.get("write") or "")
    if not write:
        return ""
    table = load_table(catalog, name)
    removed = maintenance.remove_uncommitted(table, write, keep=maintenance.referenced_files(table))
    done = f"{removed} uncommitted data file(s) of write {write} deleted" if removed else ""
    if ctx.get("created") and target.drop_if_pristine(catalog, name):
        done = f"{done}; the empty table it created dropped" if done else "the empty table it created dropped"
    return done


def _on_main(table: Table, run_id: str) -> Snapshot | None:
    current = table.current_snapshot()
    for snap in ancestors(table, current.snapshot_id if current else None):
        if summary_properties(snap).get(RUN_ID) == run_id:
            return snap
    return None


def _dataset(settings: Settings, table: Table, name: TableName, snapshot: Snapshot, ctx: dict[str, object]) -> dict[str, object]:
    checks = ctx.get("checks")
    return datasets.snapshot_dataset(
        settings, table, str(name), snapshot,
        rows=int(ctx.get("rows") or 0), size=int(ctx.get("size") or 0), files=int(ctx.get("files") or 0),  # type: ignore[call-overload]
        checks=list(checks) if isinstance(checks, list) else None,
    )
