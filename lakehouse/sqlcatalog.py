"""pyiceberg's SQL catalog (SQLite, PostgreSQL) with a commit that does not re-read what it holds.

pyiceberg 0.12's `SqlCatalog.commit_table` loads the table again (reads and parses the whole
metadata JSON), applies the updates to that copy and deep-copies the result, then writes the new
metadata file and swaps the catalog row with `UPDATE ... WHERE metadata_location = <old>`. When
the table object being committed is still the current state (one indexed SELECT tells), the
reload is pointless: a metadata file never changes once written. Profiled on a model
registration (two small commits), the reload and the deep copies were ~30% of its cost, growing
with the table's history. For the same reason `load_table` keeps, per table, the last metadata it
parsed (or a commit wrote) with its file location: loading a table that did not change since is one
indexed SELECT, not a JSON parse of its whole history.

Correctness rests on the same two things as pyiceberg's own commit: the requirements are checked
against the current metadata, and the row swap is conditional on the metadata location the
update was computed from, so a concurrent writer makes it fail with CommitFailedException (the
callers retry). Creating a table, and databases without a reliable row count, take pyiceberg's
path unchanged.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.io import load_file_io
from pyiceberg.serializers import FromInputFile
from pyiceberg.table import CommitTableResponse, Table
from pyiceberg.table.locations import load_location_provider
from pyiceberg.typedef import EMPTY_DICT, Properties
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from lakehouse.exceptions import BrokenTableError, no_space, storage_full
from lakehouse.pyiceberg_compat import SqlCatalogHooks, apply_updates

if TYPE_CHECKING:
    from pyiceberg.table.metadata import TableMetadata
    from pyiceberg.table.update import TableRequirement, TableUpdate

# The `py-catalog-impl` value that selects this class in pyiceberg's load_catalog.
IMPL = f"{__name__}.TidemarkSqlCatalog"


class _MetadataCache:
    """Per table, the metadata file last parsed or written and its parsed metadata (immutable, so
    shared); the most recent 64 tables. One entry per table: only its current state is useful, and
    older ones of a long history would keep thousands of snapshot objects alive."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, ...], tuple[str, TableMetadata]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, table: tuple[str, ...], location: str) -> TableMetadata | None:
        with self._lock:
            item = self._items.get(table)
            if item is None or item[0] != location:
                return None
            self._items.move_to_end(table)
            return item[1]

    def put(self, table: tuple[str, ...], location: str, metadata: TableMetadata) -> None:
        with self._lock:
            self._items[table] = (location, metadata)
            self._items.move_to_end(table)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


_METADATA = _MetadataCache()


def _read_metadata(properties: Properties, table: str, location: str) -> TableMetadata:
    """The table's metadata file, parsed; a missing or unreadable one is this table's fault alone
    (BrokenTableError names table, file and fix), never an error that stops work on other tables."""
    try:
        return FromInputFile.table_metadata(load_file_io(properties, location).new_input(location))
    except Exception as exc:  # missing, truncated, not JSON, not Iceberg metadata, unreadable: one fault
        missing = isinstance(exc, FileNotFoundError)
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        what = "is missing" if missing else f"cannot be read ({exc.__class__.__name__}: {first[:160]})"
        raise BrokenTableError(
            f"table {table} is broken: its current metadata file {location} {what}; restore the file from a backup, "
            f"or run `tidemark catalog recover` to fall back to the table's newest readable metadata file (its later commits are lost)",
            table=table, location=location,
        ) from exc


class TidemarkSqlCatalog(SqlCatalogHooks, SqlCatalog):
    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """A full device under the catalog database is StorageFullError naming it, not a driver traceback."""
        try:
            yield
        except DBAPIError as exc:
            if no_space(exc):
                from lakehouse.redact import redact

                uri = str(self.properties.get("uri", ""))
                where = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else f"the catalog database at {redact(uri)}"
                raise storage_full(where, what) from exc
            raise

    def create_namespace(self, namespace: str | tuple[str, ...], properties: Properties = EMPTY_DICT) -> None:
        with self._writing(f"creating namespace {namespace}"):
            super().create_namespace(namespace, properties)

    def create_table(self, identifier: str | tuple[str, ...], *args: Any, **kwargs: Any) -> Table:
        with self._writing(f"creating table {identifier}"):
            return super().create_table(identifier, *args, **kwargs)

    def register_table(self, identifier: str | tuple[str, ...], metadata_location: str, overwrite: bool = False) -> Table:
        with self._writing(f"registering table {identifier}"):
            return super().register_table(identifier, metadata_location, overwrite)

    def drop_table(self, identifier: str | tuple[str, ...]) -> None:
        with self._writing(f"dropping table {identifier}"):
            super().drop_table(identifier)

    def table_from_row(self, location: str | None, namespace: str | None, name: str | None) -> Table | None:
        if not (location and namespace and name):
            return None  # pyiceberg's own conversion names what is missing
        key = (self.name, namespace, name)
        metadata = _METADATA.get(key, location)
        if metadata is None:
            metadata = _read_metadata(self.properties, f"{namespace}.{name}", location)
            _METADATA.put(key, location, metadata)
        return Table(
            identifier=Catalog.identifier_to_tuple(namespace) + (name,),
            metadata=metadata,
            metadata_location=location,
            io=self.file_io(metadata.properties, location),
            catalog=self,
        )

    def commit_table(
        self, table: Table, requirements: tuple[TableRequirement, ...], updates: tuple[TableUpdate, ...]
    ) -> CommitTableResponse:
        with self._writing(f"committing to {'.'.join(table.name())}"):
            return self._commit_table(table, requirements, updates)

    def _commit_table(
        self, table: Table, requirements: tuple[TableRequirement, ...], updates: tuple[TableUpdate, ...]
    ) -> CommitTableResponse:
        if not self.engine.dialect.supports_sane_rowcount:
            return super().commit_table(table, requirements, updates)
        identifier = table.name()
        namespace = Catalog.namespace_to_string(Catalog.namespace_from(identifier))
        name = Catalog.table_name_from(identifier)
        where = (
            IcebergTables.catalog_name == self.name,
            IcebergTables.table_namespace == namespace,
            IcebergTables.table_name == name,
        )
        # The table handed over is nearly always the current one (a registration or a pin loaded
        # it moments before): try the swap on it first, and read the row only if it moved on. The
        # swap is conditional on the row still pointing at it, so a stale table is never committed
        # over; its metadata file is then an orphan, like any failed Iceberg commit's.
        if table.metadata_location:
            try:
                done = self._swap(table, requirements, updates, namespace, name, where, confirmed=False)
            except CommitFailedException:
                done = None  # judged below against the current metadata, as before
            if done is not None:
                return done
        with Session(self.engine) as session:
            location = session.scalar(select(IcebergTables.metadata_location).where(*where))
        if location is None:  # a new table (or a dropped one): pyiceberg's path
            return super().commit_table(table, requirements, updates)
        current = table if location == table.metadata_location else self.load_table(identifier)
        done = self._swap(current, requirements, updates, namespace, name, where)
        if done is None:
            raise CommitFailedException(f"Table has been updated by another process: {namespace}.{name}")
        return done

    def _swap(
        self, current: Table, requirements: tuple[TableRequirement, ...], updates: tuple[TableUpdate, ...],
        namespace: str, name: str, where: tuple[Any, ...], confirmed: bool = True,
    ) -> CommitTableResponse | None:
        """Commit `updates` onto `current`: write the new metadata file and point the row at it, if
        the row still points at `current`'s (else None, nothing pointed). `confirmed`: the row was
        read and points at `current` (else a change that changes nothing is left to the caller)."""
        for requirement in requirements:
            requirement.validate(current.metadata)
        metadata = apply_updates(current.metadata, updates, metadata_location=current.metadata_location)
        if metadata == current.metadata:
            if not confirmed:
                return None
            return CommitTableResponse(metadata=current.metadata, metadata_location=current.metadata_location)
        version = self.metadata_version(current.metadata_location) + 1
        new_location = load_location_provider(metadata.location, metadata.properties).new_table_metadata_file_location(version)
        try:
            self.write_metadata(metadata, self.file_io(metadata.properties, new_location), new_location)
        except OSError as exc:
            if no_space(exc):
                raise storage_full(new_location.rsplit("/", 1)[0], f"writing the metadata of {namespace}.{name}") from exc
            raise
        with Session(self.engine) as session:
            swapped = session.execute(
                update(IcebergTables)
                .where(*where, IcebergTables.metadata_location == current.metadata_location)
                .values(metadata_location=new_location, previous_metadata_location=current.metadata_location)
            )
            if swapped.rowcount < 1:  # type: ignore[attr-defined]
                return None
            session.commit()
        _METADATA.put((self.name, namespace, name), new_location, metadata)
        return CommitTableResponse(metadata=metadata, metadata_location=new_location)

    def repoint(self, identifier: tuple[str, ...], old_location: str, new_location: str) -> bool:
        """Point a table's row at another metadata file of its own (a repair: `identity.recover`),
        only if it still points at `old_location`; whether it did."""
        namespace = Catalog.namespace_to_string(Catalog.namespace_from(identifier))
        name = Catalog.table_name_from(identifier)
        with Session(self.engine) as session:
            swapped = session.execute(
                update(IcebergTables)
                .where(
                    IcebergTables.catalog_name == self.name, IcebergTables.table_namespace == namespace,
                    IcebergTables.table_name == name, IcebergTables.metadata_location == old_location,
                )
                .values(metadata_location=new_location, previous_metadata_location=old_location)
            )
            session.commit()
        return bool(swapped.rowcount)  # type: ignore[attr-defined]
