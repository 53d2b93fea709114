"""Branches of an Iceberg table, and the write-audit-publish protocol on them.

Write-audit-publish: new rows reach main only after they were checked, and only as checked.

1. `write`: all the new data files are committed as one snapshot on a branch made from main's
   current snapshot (the branch's base). Main does not change; readers of main never see them.
2. The caller audits the branch's snapshot (ingest runs a validation gate on the very rows).
3. `publish`: main moves to the audited snapshot, only if main is still the branch's base. The
   commit itself asserts that main is unchanged, so a concurrent publish makes it fail and
   never overwrites the other writer's snapshot. If main has moved, the audited snapshot's own data
   files (nothing else) are appended again on the branch, re-made from the new main, and that
   snapshot is published the same way: the rows published are exactly the rows audited, and the
   other writer's rows stay. Conflicts back off with jitter, PUBLISH_ATTEMPTS times at most.
   A published branch is removed in the same commit that moves main.

Schemas go with the data: a writer whose files have new columns or wider types adds their schema
with `add_schema` (not made current) and writes the branch's snapshot in it (`write(schema_id=)`).
Main's readers keep the current schema; `publish` makes the snapshot's schema current in the
same commit that moves main (merged with columns other landings published meanwhile), so a
landing that is never published (a refused one) never changes the table's schema: its schema is
only its quarantined snapshot's.

`rename` keeps a branch under another name (ingest's `quarantine-<run>`), `drop` removes one,
`added_data_files` lists the files a snapshot added (what a branch holds beyond its base).
Errors: BranchError (a missing branch, a publish that gave up; main is unchanged then), and
CommitConflictError from `with_commit_retry` when a branch commit kept conflicting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse import pyiceberg_compat as compat
from lakehouse.datafiles import append_data_files
from lakehouse.exceptions import BranchError
from lakehouse.pyiceberg_compat import stale_is_conflict
from lakehouse.tables import TableName, ancestors, load_table, manage_snapshots, schema_at, summary_properties, transaction, with_commit_retry

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.manifest import DataFile
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table, Transaction
    from pyiceberg.table.snapshots import Snapshot
    from pyiceberg.table.update import TableRequirement
    from pyiceberg.table.update.schema import UpdateSchema

MAIN = "main"
PUBLISH_ATTEMPTS = 30
# Summary properties a re-applied snapshot carries over from the audited one: Tidemark's own
# (run, job, source, gate verdict). Iceberg's counts and totals are computed anew for the new parent.
CARRIED_PREFIX = "tidemark."


@dataclass(frozen=True)
class Published:
    """The snapshot now at the head of main, and how often main moved under the publish."""

    snapshot: Snapshot
    reapplied: int = 0  # times the audited files were appended again on a moved main


def head(table: Table, branch: str) -> Snapshot:
    """The snapshot at the head of `branch`; BranchError if the table has no such branch."""
    snap = table.snapshot_by_name(branch)
    if snap is None:
        raise BranchError(f"{'.'.join(table.name())} has no branch {branch}: it was published or dropped already", parameter="branch")
    return snap


def create(catalog: Catalog, name: TableName, branch: str) -> int:
    """Make `branch` at main's current snapshot; returns that snapshot's id (the branch's base)."""

    def attempt() -> int:
        table = load_table(catalog, name)
        base = table.current_snapshot()
        if base is None:
            raise BranchError(f"{name} has no snapshot on main to branch from; commit one to main first")
        with manage_snapshots(table) as ms:
            ms.create_branch(base.snapshot_id, branch)
        return int(base.snapshot_id)

    return with_commit_retry(attempt, f"creating branch {branch} of {name}")


def add_schema(table: Table, change: Callable[[UpdateSchema], None]) -> Schema:
    """The schema `change` makes of the current one (columns added, types widened), added to the
    table *without* making it current; returns it with its id (the current schema if nothing changed).

    One metadata commit, which reserves the new columns' ids (data files can be written with them)
    and asserts that nobody changed the schemas meanwhile (CommitFailedException: reload and try
    again, e.g. under `with_commit_retry`). Main's readers see no change; see `write` and `publish`.
    `table` is updated in place.
    """
    from pyiceberg.table.update import AddSchemaUpdate, AssertCurrentSchemaId, AssertLastAssignedFieldId

    current = table.schema()
    probe = transaction(table)  # never committed: pyiceberg's own schema builder, for the new schema
    with probe.update_schema() as update:
        change(update)
    new = _reuse_pending_ids(table, probe.table_metadata.schema())
    if new == current:
        return current
    existing = next((s for s in table.metadata.schemas if s == new), None)
    if existing is not None:
        return existing
    tx = transaction(table)
    compat.stage_updates(
        tx,
        (AddSchemaUpdate(schema_=new),),
        (
            AssertCurrentSchemaId(current_schema_id=current.schema_id),
            AssertLastAssignedFieldId(last_assigned_field_id=table.metadata.last_column_id),
            compat.no_schema_added_since(max(s.schema_id for s in table.metadata.schemas)),
        ),
    )
    tx.commit_transaction()
    return new


@contextmanager
def schema_current(catalog: Catalog, name: TableName, schema_id: int, *, switching: Callable[[int], None] | None = None) -> Iterator[None]:
    """Schema `schema_id` (one `add_schema` added) is the current one while the block runs, and the
    one current before is current again after it, on a failure too (`restore_schema`).

    `switching(before)`: called with the id of the schema about to be replaced, just before the
    commit that makes `schema_id` current (again if that commit is retried); not when it already is.
    What needs to know whether the schema is switched (recovery's record) learns it here: this
    function alone decides, on the table as it is at the commit.

    For a writer that writes only in the table's current schema, even to a branch (Spark's Iceberg
    writer): its branch snapshot then records `schema_id`, as `write(schema_id=)` does, and
    `publish` makes it current for good. Main's readers see the added columns, empty, while the
    block runs; a process that dies inside it leaves them current until lineage recovery calls
    `restore_schema` (ingest.recovery).
    """
    def switch() -> int:
        table = load_table(catalog, name)
        current, wanted = table.schema(), table.metadata.schema_by_id(schema_id)
        if wanted is None:
            raise BranchError(f"{name} has no schema {schema_id} to write in", parameter="table")
        if current.schema_id != schema_id:
            if not {f.field_id for f in current.fields} <= {f.field_id for f in wanted.fields}:
                # Main's readers would lose columns another landing published since this one planned.
                raise BranchError(f"another landing changed the schema of {name} meanwhile; nothing was written, land the file again")
            if switching is not None:
                switching(current.schema_id)
            _make_current(transaction(table), schema_id, was=current.schema_id).commit_transaction()
        return current.schema_id

    before = with_commit_retry(switch, f"making schema {schema_id} of {name} current")
    if before == schema_id:
        yield
        return
    try:
        yield
    finally:
        restore_schema(catalog, name, schema_id, before)


def restore_schema(catalog: Catalog, name: TableName, evolved: int, before: int) -> bool:
    """Make schema `before` current again where `schema_current` left `evolved` current; True if it did.

    Left alone when the current schema is another one by now, or when main's head snapshot is in
    `evolved` (another landing bringing the same columns published it: main's readers need them).
    """
    from pyiceberg.table.update import AssertRefSnapshotId

    def attempt() -> bool:
        table = load_table(catalog, name)
        main = table.current_snapshot()
        if table.metadata.current_schema_id != evolved or (main is not None and main.schema_id == evolved):
            return False
        main_unmoved = AssertRefSnapshotId(ref=MAIN, snapshot_id=main.snapshot_id if main else None)
        _make_current(transaction(table), before, was=evolved, also=(main_unmoved,)).commit_transaction()
        return True

    return with_commit_retry(attempt, f"making schema {before} of {name} current again")


def _reuse_pending_ids(table: Table, new: Schema) -> Schema:
    """`new` with each added column given the id another unpublished landing already gave a column of
    that name and type (in a schema added, never main's), so two landings bringing the same new
    column write it under one id and both can be published. Others keep pyiceberg's fresh ids."""
    from pyiceberg.schema import Schema

    current = table.schema()
    main = table.current_snapshot()
    published = {sid for s in ancestors(table, main.snapshot_id if main else None) if (sid := s.schema_id) is not None}
    used_on_main = {f.field_id for s in table.metadata.schemas if s.schema_id in published | {current.schema_id} for f in s.fields}
    pending: dict[tuple[str, str], int] = {}
    for schema in sorted(table.metadata.schemas, key=lambda s: s.schema_id):
        for f in schema.fields:
            if f.field_id not in used_on_main and f.field_type.is_primitive:
                pending.setdefault((f.name, str(f.field_type)), f.field_id)
    known = {f.field_id for f in current.fields}
    fields, changed = [], False
    for f in new.fields:
        reuse = pending.get((f.name, str(f.field_type))) if f.field_id not in known and f.field_type.is_primitive else None
        if reuse is not None and reuse != f.field_id:
            f = f.model_copy(update={"field_id": reuse})
            changed = True
        fields.append(f)
    if not changed:
        return new
    return Schema(*fields, schema_id=new.schema_id, identifier_field_ids=new.identifier_field_ids)


def commit_files(
    catalog: Catalog, name: TableName, branch: str, files: list[DataFile], properties: dict[str, str], schema_id: int | None = None
) -> Snapshot:
    """One snapshot adding `files` (written, not yet committed) to `branch`; returns it.
    `schema_id`: the schema the files were written in (see `add_schema`); default the current one."""

    def attempt() -> Snapshot:
        table = load_table(catalog, name)
        _append(table, branch, files, properties, schema_id)
        return head(table, branch)  # the commit updated `table` in place

    return with_commit_retry(attempt, f"writing to branch {branch} of {name}")


def write(
    catalog: Catalog, name: TableName, branch: str, files: list[DataFile], properties: dict[str, str], schema_id: int | None = None
) -> Snapshot:
    """Step 1: `files` as one snapshot on a new `branch` made from main. Its parent is the base.

    `schema_id`: the schema the files were written in, when `add_schema` made one for them: the
    branch's snapshot is in that schema, the table's current schema stays as it is. On failure no
    branch is left behind; the files are the caller's to delete.
    """
    create(catalog, name, branch)
    try:
        return commit_files(catalog, name, branch, files, properties, schema_id)
    except BaseException:
        drop_quietly(catalog, name, branch)
        raise


def publish(
    catalog: Catalog,
    name: TableName,
    branch: str,
    *,
    files: list[DataFile] | None = None,
    properties: dict[str, str] | None = None,
    on_reapply: Callable[[], None] | None = None,
) -> Published:
    """Step 3: move main to the head of `branch`, re-applying its files if main moved (module docstring).

    `files`: the data files the audited snapshot added, when the caller has them (else read from it);
    `properties`: the summary properties a re-applied snapshot gets (else the audited one's
    `tidemark.*` properties); `on_reapply`: called each time main has moved and the files are
    appended again. On BranchError main is unchanged and the branch is left as it was last made.
    """
    from pyiceberg.exceptions import CommitFailedException

    table = load_table(catalog, name)
    audited = head(table, branch)
    if files is None:
        files = added_data_files(table, audited)
    if properties is None:
        properties = {k: v for k, v in summary_properties(audited).items() if k.startswith(CARRIED_PREFIX)}
    expected = {f.file_path for f in files}
    reapplied = 0
    for attempt in range(PUBLISH_ATTEMPTS):
        main = table.current_snapshot()
        try:
            schema = merged_schema(table, audited, name)
            if main is not None and main.snapshot_id == audited.parent_snapshot_id and schema.schema_id == schema_at(table, audited).schema_id:
                # The commit asserts main is still the base: a concurrent publish makes it fail, never
                # overwrite. The snapshot's schema becomes current in the same commit, and only then.
                _move_main(table, audited, branch)
                return Published(audited, reapplied)
            reapplied += 1
            if on_reapply is not None:
                on_reapply()
            audited = _reapply(table, name, branch, files, properties, schema)
            if {f.file_path for f in added_data_files(table, audited)} != expected:
                raise BranchError(
                    f"re-applying branch {branch} on the new main of {name} made a snapshot with other files than the "
                    "audited ones; nothing was published"
                )
            continue  # `table` is fresh as of the re-apply: try to move main right away
        except CommitFailedException:
            pass
        time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
        table = load_table(catalog, name)  # another writer committed: a fresh state
        head(table, branch)  # still there? (a concurrent drop ends the publish)
    raise BranchError(f"could not publish branch {branch} to {name}: main kept moving ({PUBLISH_ATTEMPTS} attempts); nothing was published")


def rename(catalog: Catalog, name: TableName, old: str, new: str) -> None:
    """Keep the head of branch `old` as branch `new` (one commit: `new` made, `old` removed)."""

    def attempt() -> None:
        table = load_table(catalog, name)
        snap = head(table, old)
        with manage_snapshots(table) as ms:
            ms.create_branch(snap.snapshot_id, new)
            ms.remove_branch(old)

    with_commit_retry(attempt, f"keeping branch {old} of {name} as {new}")


def drop(catalog: Catalog, name: TableName, branch: str) -> bool:
    """Remove `branch` if the table has it (its snapshots go with expiry); True if it was there."""

    def attempt() -> bool:
        table = load_table(catalog, name)
        if branch not in table.metadata.refs:
            return False
        with manage_snapshots(table) as ms:
            ms.remove_branch(branch)
        return True

    return with_commit_retry(attempt, f"removing branch {branch} of {name}")


def drop_quietly(catalog: Catalog, name: TableName, branch: str) -> None:
    """`drop` while cleaning up after another failure: a branch left behind must not hide that failure."""
    import logging

    try:
        drop(catalog, name, branch)
    except Exception:
        logging.getLogger(__name__).warning("could not remove branch %s of %s", branch, name)


def added_data_files(table: Table, snapshot: Snapshot) -> list[DataFile]:
    """The data files `snapshot` added, in order (its own manifests' entries ADDED by it): what an
    audit branch holds beyond its base, or what a commit brought to a table."""
    from pyiceberg.manifest import ManifestEntryStatus

    out: list[DataFile] = []
    for manifest in snapshot.manifests(table.io):
        if manifest.added_snapshot_id != snapshot.snapshot_id:
            continue  # a manifest an earlier snapshot wrote: nothing in it is new
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            if entry.status == ManifestEntryStatus.ADDED and entry.snapshot_id == snapshot.snapshot_id:
                out.append(entry.data_file)
    return out


def added_files(table: Table, snapshot: Snapshot) -> set[str]:
    """Paths of the data files `snapshot` added."""
    return {f.file_path for f in added_data_files(table, snapshot)}


def merged_schema(table: Table, snapshot: Snapshot, name: TableName | str) -> Schema:
    """The schema main gets when `snapshot` (a branch's head) is published: the current schema with
    the columns the snapshot's schema added and the types it widened. It is the snapshot's own
    schema unless other columns were published meanwhile; then a new one (not yet in the table,
    schema id one above the highest). BranchError when both added a column of the same name.
    """
    from pyiceberg.exceptions import ResolveError
    from pyiceberg.schema import Schema, promote

    current = table.schema()
    ours = schema_at(table, snapshot)
    if ours.schema_id == current.schema_id:
        return current
    by_id = {f.field_id: f for f in ours.fields}
    fields = []
    for f in current.fields:
        o = by_id.get(f.field_id)
        if o is None or o.field_type == f.field_type:
            fields.append(f)
            continue
        try:
            promote(f.field_type, o.field_type)  # the snapshot widened it
            fields.append(o)
            continue
        except ResolveError:
            pass
        try:
            promote(o.field_type, f.field_type)  # main's is wider already: the snapshot's files read as it
            fields.append(f)
        except ResolveError as exc:
            raise BranchError(
                f"column {f.name} of {name} is {f.field_type} on main but {o.field_type} on the branch"
            ) from exc
    known_ids, names = {f.field_id for f in current.fields}, {f.name for f in current.fields}
    for o in ours.fields:
        if o.field_id in known_ids:
            continue
        if o.name in names:
            raise BranchError(f"column {o.name} was added to {name} by another landing at the same time, as another column (another type, or both at once)")
        fields.append(o)
    merged = Schema(*fields, schema_id=ours.schema_id, identifier_field_ids=current.identifier_field_ids)
    if merged == ours:
        return ours
    existing = next((s for s in table.metadata.schemas if s == merged), None)
    if existing is not None:
        return existing
    highest = max(s.schema_id for s in table.metadata.schemas)
    return Schema(*fields, schema_id=highest + 1, identifier_field_ids=current.identifier_field_ids)


def _move_main(table: Table, snapshot: Snapshot, branch: str) -> None:
    """One commit: main to `snapshot`, its schema current, `branch` removed (asserting main and the current schema)."""
    from pyiceberg.table.update.snapshot import ManageSnapshots

    tx = transaction(table)
    with ManageSnapshots(transaction=tx) as ms:
        ms.set_current_snapshot(snapshot_id=snapshot.snapshot_id)
        ms.remove_branch(branch)
    current, target = table.metadata.current_schema_id, schema_at(table, snapshot).schema_id
    if target != current:
        _make_current(tx, target, was=current)
    tx.commit_transaction()


@contextmanager
def _in_schema(tx: Transaction, schema_id: int | None) -> Iterator[None]:
    """A snapshot staged in the block records schema `schema_id`; the commit leaves the current schema as it was."""
    current = tx.table_metadata.current_schema_id
    if schema_id is None or schema_id == current:
        yield
        return
    compat.refuse_rebase(tx)
    _make_current(tx, schema_id, was=current)
    yield
    _make_current(tx, current, was=None)  # asserted when the block began


def _make_current(tx: Transaction, schema_id: int, *, was: int | None, also: tuple[TableRequirement, ...] = ()) -> Transaction:
    """Stage making schema `schema_id` the current one in `tx` (returned), the commit asserting that
    the current one is still `was` (None: not asserted) and the requirements `also`."""
    from pyiceberg.table.update import AssertCurrentSchemaId, SetCurrentSchemaUpdate

    unchanged = () if was is None else (AssertCurrentSchemaId(current_schema_id=was),)
    compat.stage_updates(tx, (SetCurrentSchemaUpdate(schema_id=schema_id),), (*unchanged, *also))
    return tx


def _append(table: Table, branch: str, files: list[DataFile], properties: dict[str, str], schema_id: int | None = None) -> None:
    with stale_is_conflict():
        with transaction(table) as tx:
            with _in_schema(tx, schema_id):
                append_data_files(tx, files, properties, branch=branch)


def _add_merged(table: Table, schema: Schema) -> None:
    """Add a merged schema (`merged_schema`) the table does not have yet, not made current."""
    from pyiceberg.table.update import AddSchemaUpdate, AssertCurrentSchemaId

    if table.metadata.schema_by_id(schema.schema_id) is not None:
        return
    tx = transaction(table)
    compat.stage_updates(
        tx,
        (AddSchemaUpdate(schema_=schema),),
        (AssertCurrentSchemaId(current_schema_id=table.metadata.current_schema_id), compat.no_schema_added_since(schema.schema_id - 1)),
    )
    tx.commit_transaction()


def _reapply(table: Table, name: TableName, branch: str, files: list[DataFile], properties: dict[str, str], schema: Schema) -> Snapshot:
    """Re-make `branch` at main's head and append `files` to it, in `schema`; the new head, whose parent is main's head."""
    main = table.current_snapshot()
    assert main is not None  # main moved, so it has a snapshot
    _add_merged(table, schema)
    with manage_snapshots(table) as ms:
        ms.create_branch(main.snapshot_id, branch)  # moves the branch; asserts where it was
    _append(table, branch, files, properties, schema.schema_id)
    audited = head(table, branch)
    if audited.parent_snapshot_id != main.snapshot_id:
        raise BranchError(f"branch {branch} of {name} did not land on main's snapshot {main.snapshot_id}; nothing was published")
    return audited
