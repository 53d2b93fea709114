"""Iceberg tables: names, creation, appends with commit retry, snapshot helpers."""

from __future__ import annotations

import functools
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from lakehouse import names
from lakehouse.exceptions import CommitConflictError, MissingDataFileError, TableNotFoundError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table, Transaction
    from pyiceberg.table.snapshots import Snapshot
    from pyiceberg.table.update.snapshot import ManageSnapshots

T = TypeVar("T")

# Snapshot summary keys Tidemark writes on every commit it makes, so a snapshot leads back to its run.
RUN_ID = "tidemark.run-id"
JOB_NAME = "tidemark.job-name"
# pyiceberg 0.12 retries a conflicting append by rebasing it onto the new main. Right for plain
# appends; wrong for a commit whose content depends on what it read (a version number, stored Kafka
# offsets): those tables set this so a conflict reaches `with_commit_retry`, which re-reads first.
NO_REBASE = {"commit.retry.num-retries": "0"}
# A table property: snapshots older than this (epoch ms) were expired, so time travel before it fails.
EXPIRED_BEFORE = "tidemark.expired-before-ms"
# A table property: who owns the table (a person or team; `tidemark ingest --owner`, a feed's
# `owner:`), emitted as the OpenLineage `ownership` facet of the table's datasets.
OWNER = "tidemark.owner"
# ...and a landing, the source file it came from.
SOURCE_SHA256 = "tidemark.source.sha256"
SOURCE_PATH = "tidemark.source.path"


@dataclass(frozen=True)
class TableName:
    namespace: str
    table: str

    @classmethod
    def parse(cls, text: str, parameter: str | None = None) -> TableName:
        return cls(*names.check_table(text, parameter))

    def __str__(self) -> str:
        return f"{self.namespace}.{self.table}"

    @property
    def identifier(self) -> tuple[str, str]:
        return (self.namespace, self.table)


def load_table(catalog: Catalog, name: TableName | str) -> Table:
    from pyiceberg.exceptions import NoSuchTableError

    tn = TableName.parse(name) if isinstance(name, str) else name
    try:
        return catalog.load_table(tn.identifier)
    except NoSuchTableError as exc:
        raise TableNotFoundError(f"table {tn} does not exist in catalog {catalog.name!r}; land data into it first") from exc


def transaction(table: Table, autocommit: bool = False) -> Transaction:
    """`table.transaction()`, but its pending metadata is worked out once per staged change.

    pyiceberg 0.12 rebuilds and deep-copies the whole table metadata (every snapshot, the
    metadata log) each time a transaction reads it, about 18 times in one append; profiled, that
    was half the CPU of a one-row append and made each model registration ~0.6 ms slower per
    version already registered. The metadata is immutable (frozen models, never changed in place),
    so one copy per (table state, staged updates) serves every read, and
    `pyiceberg_compat.apply_updates` skips the deep copy. Same commits, same checks.
    """
    return _transaction_class()(table, autocommit=autocommit)


@functools.cache
def _transaction_class() -> type[Transaction]:
    from pyiceberg.table import Transaction
    from pyiceberg.table.metadata import TableMetadata

    from lakehouse.pyiceberg_compat import apply_updates, staged

    class _Transaction(Transaction):
        _memo: tuple[object, object, TableMetadata] | None = None

        @property
        def table_metadata(self) -> TableMetadata:
            # Keyed by identity: staging replaces the updates tuple, a commit replaces the metadata.
            base, updates = staged(self)
            if not updates:
                return base  # nothing staged yet: the table's own (immutable) metadata
            if self._memo is None or self._memo[0] is not base or self._memo[1] is not updates:
                self._memo = (base, updates, apply_updates(base, updates))
            return self._memo[2]

    return _Transaction


def manage_snapshots(table: Table) -> ManageSnapshots:
    """`table.manage_snapshots()` on a `transaction` (tags and branches, committed on exit)."""
    from pyiceberg.table.update.snapshot import ManageSnapshots

    return ManageSnapshots(transaction=transaction(table, autocommit=True))


def table_exists(catalog: Catalog, name: TableName) -> bool:
    return bool(catalog.table_exists(name.identifier))


def ensure_table(
    catalog: Catalog,
    name: TableName,
    schema: Schema | pa.Schema,
    partition_spec: PartitionSpec | None = None,
    properties: Mapping[str, str] | None = None,
) -> Table:
    """Load the table, or create it (and its namespace) if missing. Safe when two processes race."""
    from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError

    from pyiceberg.exceptions import NoSuchTableError

    try:
        return catalog.load_table(name.identifier)
    except NoSuchTableError:
        pass
    try:
        catalog.create_namespace(name.namespace)
    except NamespaceAlreadyExistsError:
        pass
    except Exception:
        # Two processes creating it at once: the SQL catalog's check-then-insert loses the race
        # with a database integrity error rather than NamespaceAlreadyExistsError.
        if not catalog.namespace_exists(name.namespace):
            raise
    kwargs: dict[str, object] = {"schema": schema, "properties": dict(properties or {})}
    if partition_spec is not None:
        kwargs["partition_spec"] = partition_spec
    try:
        return catalog.create_table(name.identifier, **kwargs)  # type: ignore[arg-type]
    except TableAlreadyExistsError:
        return catalog.load_table(name.identifier)
    except Exception:
        if not catalog.table_exists(name.identifier):  # same race, for the table
            raise
        return catalog.load_table(name.identifier)


def with_commit_retry(
    action: Callable[[], T],
    what: str,
    attempts: int = 12,
    base_delay_s: float = 0.05,
    max_delay_s: float = 2.0,
) -> T:
    """Run `action` (which must reload the table itself) until its commit stops conflicting.

    pyiceberg 0.12 itself retries only commits that make a snapshot, by rebasing them onto the new
    main (`commit.retry.num-retries`, default 4). What reaches this loop: commits without a snapshot
    (expiry, properties, refs), tables that set NO_REBASE because their content depends on what they
    read, and appends that lost every rebase to busier writers. Concurrent writers are normal here
    (several landings, consumers, writers on a PostgreSQL catalog), so back off with jitter and try
    again on a fresh table state. A ValidationException is a lost race too: pyiceberg raises it when
    a rebase finds the snapshot it started from expired, or files it rewrites deleted meanwhile,
    and it guarantees the commit did not land.
    """
    from pyiceberg.exceptions import CommitFailedException, ValidationException

    for attempt in range(attempts):
        try:
            return action()
        except (CommitFailedException, ValidationException) as exc:
            if attempt == attempts - 1:
                raise CommitConflictError(
                    f"{what}: the commit conflicted with other writers {attempts} times; "
                    "try again, or reduce the number of concurrent writers"
                ) from exc
            delay = min(max_delay_s, base_delay_s * 2**attempt)
            time.sleep(delay * (0.5 + random.random()))
    raise AssertionError("unreachable")


def append_missing(
    catalog: Catalog,
    identifier: tuple[str, str],
    rows: Sequence[Mapping[str, Any]],
    key_columns: tuple[str, ...],
    schema: pa.Schema,
    *,
    job_name: str,
    row_filter: Any = None,
    sort_by: Sequence[str] = (),
) -> int:
    """Append the rows whose key (their `key_columns` values) the table does not hold yet, and
    no key twice; returns how many were appended.

    Idempotent, so a replayed event adds nothing. On a NO_REBASE table a concurrent writer makes
    the commit fail, and the retry re-reads the keys first: a key is never stored twice.
    `row_filter` narrows the scan of stored keys to where these rows' keys can be. The snapshot
    records `job_name`, and the run id of the first row appended when rows have a `run_id`.
    `sort_by`: columns the appended rows are written in order of (a file layout readers can skip
    row groups by), ascending with nulls last; which rows are kept and the run id do not change.
    """
    import pyarrow as pa

    def key(r: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(r[c] for c in key_columns)

    added = 0

    def attempt() -> None:
        nonlocal added
        table = catalog.load_table(identifier)
        have: set[tuple[Any, ...]] = set()
        if table.current_snapshot() is not None:
            scan = table.scan(selected_fields=key_columns, **({"row_filter": row_filter} if row_filter is not None else {}))
            have = {key(r) for r in scan.to_arrow().to_pylist()}
        fresh = []
        for r in rows:
            if key(r) not in have:
                have.add(key(r))
                fresh.append(r)
        added = len(fresh)
        if fresh:
            props = {JOB_NAME: job_name, **({RUN_ID: str(fresh[0]["run_id"])} if "run_id" in fresh[0] else {})}
            data = pa.Table.from_pylist(list(fresh), schema=schema)
            if sort_by:
                data = data.sort_by([(c, "ascending") for c in sort_by])
            with transaction(table) as tx:
                tx.append(data, snapshot_properties=props)

    with_commit_retry(attempt, f"storing rows in {identifier[0]}.{identifier[1]}")
    return added


def ancestors(table: Table, snapshot_id: int | None) -> Iterator[Snapshot]:
    """The snapshot and its ancestors, newest first."""
    while snapshot_id is not None:
        snap = table.snapshot_by_id(snapshot_id)
        if snap is None:
            return
        yield snap
        snapshot_id = snap.parent_snapshot_id


def schema_at(table: Table, snapshot: Snapshot | None) -> Schema:
    """The schema `snapshot` was written in (a branch's or an older snapshot's may differ from the
    current one); the table's current schema for no snapshot, or one that recorded none (format v1)."""
    recorded = table.metadata.schema_by_id(snapshot.schema_id) if snapshot is not None and snapshot.schema_id is not None else None
    return recorded or table.schema()


def summary_properties(snapshot: Snapshot) -> dict[str, str]:
    return dict(snapshot.summary.additional_properties) if snapshot.summary else {}


def expire_snapshots(table: Table, older_than_ms: int, keep_last: int = 0) -> int:
    """Expire unprotected snapshots older than the cutoff, but never the newest `keep_last`, and
    record in the same commit how far back time travel still reaches (a table property), so a later
    question about the expired period gets a clear answer instead of a wrong one."""
    from pyiceberg.table import Transaction
    from pyiceberg.table.update.snapshot import ExpireSnapshots

    newest_first = sorted(table.snapshots(), key=lambda s: s.timestamp_ms, reverse=True)
    kept, candidates = newest_first[:keep_last], newest_first[keep_last:]
    protected = {ref.snapshot_id for ref in table.metadata.refs.values()}
    doomed = [s.snapshot_id for s in candidates if s.timestamp_ms < older_than_ms and s.snapshot_id not in protected]
    if not doomed:
        return 0
    # With keep_last, time travel reaches back to the oldest snapshot kept for its rank, not to the cutoff.
    reach_ms = min([older_than_ms, *(s.timestamp_ms for s in kept)])
    with table.transaction() as tx:
        ExpireSnapshots(tx).by_ids(doomed).commit()
        if int(table.properties.get(EXPIRED_BEFORE, "0")) < reach_ms:
            tx.set_properties({EXPIRED_BEFORE: str(reach_ms)})
    return len(doomed)


# How pyarrow and DuckDB say a file is not there, and where they quote its path.
_MISSING = ("no such file", "failed to open local file", "no files found that match the pattern", "path does not exist", "not found")
_QUOTED_PATH = re.compile(r"""['"]([^'"]+)['"]""")


def missing_data_file(table: str, snapshot_id: int, exc: BaseException) -> MissingDataFileError | None:
    """The error naming table, snapshot and file, when `exc` (from pyarrow or DuckDB reading a
    snapshot) says a data file is missing; None when it says something else."""
    text = str(exc)
    if not (isinstance(exc, FileNotFoundError) or any(words in text.lower() for words in _MISSING)):
        return None
    quoted = _QUOTED_PATH.search(text)
    path = quoted.group(1) if quoted else getattr(exc, "filename", None) or "(not named by the reader)"
    return MissingDataFileError(
        f"table {table} snapshot {snapshot_id} cannot be read: its data file {path} is missing (deleted outside "
        "Tidemark?); restore the file from a backup: without it the rows of this snapshot are gone",
        table=table, location=str(path), snapshot_id=snapshot_id,
    )


def read_snapshot(table: Table, snapshot_id: int) -> pa.Table:
    """The rows of `table` as of `snapshot_id` (time travel, in the snapshot's schema); a missing
    data file is MissingDataFileError naming table, snapshot and file."""
    try:
        return table.scan(snapshot_id=snapshot_id).to_arrow()
    except OSError as exc:  # FileNotFoundError, and pyarrow's OSError for object stores
        missing = missing_data_file(".".join(table.name()), snapshot_id, exc)
        if missing is None:
            raise
        raise missing from exc


def set_owner(catalog: Catalog, name: TableName, owner: str) -> Table:
    """Record `owner` as the table's owner (`OWNER`), if it is not already; returns the table as it is now."""

    def attempt() -> Table:
        table = load_table(catalog, name)
        if table.properties.get(OWNER) != owner:
            with table.transaction() as tx:
                tx.set_properties({OWNER: owner})
        return table

    return with_commit_retry(attempt, f"setting the owner of {name}")
