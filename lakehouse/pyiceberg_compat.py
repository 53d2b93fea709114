"""Every pyiceberg internal Tidemark relies on, in one place. Written against pyiceberg 0.12.0.

pyiceberg's documented API (catalogs, `Table`, `Transaction`, `ManageSnapshots`, scans) covers
most of what Tidemark does. Where it does not, Tidemark reaches into pyiceberg, and only here:
no other module imports a pyiceberg name that starts with `_` or touches a private attribute of a
pyiceberg object (tests/lakehouse/test_pyiceberg_compat.py checks both, over the AST of every
module, and checks that the pinned pyiceberg still has each internal below with the signature
this module was written for). When pyiceberg is upgraded, that test names what moved; this is
the one module to adapt.

The internals and why each is needed:

- `pyiceberg.io.pyarrow._dataframe_to_data_files`: writes Arrow rows as data files of a table
  (target file size, the table's writer settings) without committing them. A landing writes its
  files while its gate validates them and commits them later on an audit branch
  (`ingest.write`); compaction writes the merged files inside its own overwrite
  (`lakehouse.maintenance`). pyiceberg's public `append` writes and commits in one step.
- `pyiceberg.io.pyarrow._check_pyarrow_schema_compatible`: the check `append` makes before it
  writes, made once per landing because the files are written without `append`.
- `pyiceberg.io.pyarrow._get_parquet_writer_kwargs`, and the undocumented statistics helpers
  `compute_statistics_plan`, `data_file_statistics_from_parquet_metadata`,
  `parquet_path_to_id_mapping`, `MetricModeTypes`: `lakehouse.datafiles` writes Parquet itself
  (for the lineage consumer's throughput) and must describe each file exactly as pyiceberg would
  (codec, row groups, column statistics by the table's metrics mode).
- `pyiceberg.catalog.Catalog._convert_schema_if_needed`: an Arrow schema without field ids as
  Iceberg types, the way `create_table` converts it; `ingest.schema` compares a source with a table.
- `pyiceberg.table.update._TableMetadataUpdateContext`, `_apply_table_update`,
  `_update_table_metadata_log`: the steps of `update_table_metadata`, run without its final deep
  copy of the whole metadata (`apply_updates` below; why: `lakehouse.tables.transaction`).
- `Transaction._table`, `Transaction._updates`: what a transaction started from and what it has
  staged (`staged`), so `lakehouse.tables.transaction` can work out its pending metadata once.
- `SqlCatalog._convert_orm_to_iceberg`, `Catalog._load_file_io`,
  `MetastoreCatalog._parse_metadata_version`, `MetastoreCatalog._write_metadata`: the steps of the
  SQL catalog's load and commit that `lakehouse.sqlcatalog` reuses (`SqlCatalogHooks`).
- `Transaction._apply`: stages table updates pyiceberg has no public call for (setting the current
  schema, adding a schema that is not made current), so a landing's new columns live only on its
  audit branch's snapshot until the publish (`lakehouse.branches`, `staged_in_schema`).
- `Transaction._rebuild_snapshot_updates`: pyiceberg re-runs a conflicting transaction's snapshot
  producers on the fresh table (a rebase) and keeps the other staged updates in front of them; a
  snapshot staged inside `staged_in_schema` would then record the wrong schema, so such a
  transaction refuses the rebase (`refuse_rebase`) and its caller starts over.
- A behaviour, not a name: pyiceberg 0.12's SQL catalog checks only a branch's own ref when
  committing a snapshot to that branch, then fails applying it onto metadata another writer has
  moved with `ValueError("Cannot add snapshot with sequence number ...")`, not a
  CommitFailedException; nothing was committed (`stale_is_conflict`).
"""

from __future__ import annotations

import functools
import itertools
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table, Transaction
    from pyiceberg.table.metadata import TableMetadata
    from pyiceberg.table.update import TableUpdate
    from pyiceberg.typedef import Properties

# The pyiceberg release this module was written against (and constraints.txt pins).
PYICEBERG_VERSION = "0.12.0"


# -- writing data files without committing them ---------------------------------------------------


def write_data_files(
    metadata: TableMetadata,
    data: pa.Table,
    io: FileIO,
    write_uuid: uuid.UUID | None = None,
    counter: itertools.count[int] | None = None,
) -> Iterable[DataFile]:
    """pyiceberg's own writer: `data` (in the table's schema) as Parquet data files, not committed
    (written as the result is iterated). A full device is StorageFullError naming the table's data folder."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    from lakehouse.exceptions import no_space, storage_full

    write_uuid = write_uuid or uuid.uuid4()
    done: set[str] = set()
    try:
        for f in _dataframe_to_data_files(metadata, data, io, write_uuid, counter):
            done.add(f.file_path)
            yield f
    except OSError as exc:
        if no_space(exc):
            _delete_partial_files(metadata.location, write_uuid, done)
            raise storage_full(f"{metadata.location}/data", "writing a data file") from exc
        raise


def _delete_partial_files(location: str, write_uuid: uuid.UUID, done: set[str]) -> None:
    """Delete the files of this write that a full local disk cut short (the caller deletes the finished
    ones, `done`): they hold the space the failed landing's clean-up (dropping a table it created,
    recording its FAIL event) needs. pyiceberg names them `00000-<task>-<write_uuid>.parquet`."""
    import logging
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    url = urlparse(location)
    if url.scheme not in ("", "file"):  # an object store does not run out of space mid-file
        return
    for path in (Path(unquote(url.path)) / "data").rglob(f"00000-*-{write_uuid}.parquet"):
        if path.as_uri() not in done and str(path) not in done:
            try:
                path.unlink()
            except OSError as exc:
                logging.getLogger(__name__).warning("could not delete the cut-short data file %s: %s", path, exc)


def check_schema_compatible(table_schema: Schema, arrow_schema: pa.Schema, format_version: int) -> None:
    """Raise ValueError, as `Table.append` would, when Arrow rows cannot be written to the table."""
    from pyiceberg.io.pyarrow import _check_pyarrow_schema_compatible

    _check_pyarrow_schema_compatible(table_schema, provided_schema=arrow_schema, format_version=format_version)  # type: ignore[arg-type]


def parquet_writer_options(properties: Properties) -> dict[str, Any]:
    """pyarrow ParquetWriter keyword arguments from the table's write properties (codec, page sizes, ...)."""
    from pyiceberg.io.pyarrow import _get_parquet_writer_kwargs

    return _get_parquet_writer_kwargs(properties)


def statistics_plan(schema: Schema, properties: dict[str, str]) -> dict[int, Any]:
    """Per field id, which column statistics the table's metrics mode keeps."""
    from pyiceberg.io.pyarrow import compute_statistics_plan

    return compute_statistics_plan(schema, properties)


def columns_without_statistics(plan: dict[int, Any]) -> set[str]:
    """The columns whose metrics mode is `none`: no Parquet statistics needed for them."""
    from pyiceberg.io.pyarrow import MetricModeTypes

    return {c.column_name for c in plan.values() if c.mode.type == MetricModeTypes.NONE}


def data_file_statistics(parquet_metadata: pq.FileMetaData, plan: dict[int, Any], schema: Schema) -> dict[str, Any]:
    """`DataFile.from_args` keyword arguments (counts, sizes, bounds) for a written Parquet file."""
    from pyiceberg.io.pyarrow import data_file_statistics_from_parquet_metadata, parquet_path_to_id_mapping

    stats = data_file_statistics_from_parquet_metadata(
        parquet_metadata=parquet_metadata, stats_columns=plan, parquet_column_mapping=parquet_path_to_id_mapping(schema)
    )
    return stats.to_serialized_dict()


def read_data_files(table: Table, files: list[DataFile], limit: int | None = None, schema: Schema | None = None) -> pa.Table:
    """The rows of these data files of `table` in `schema` (default its current one), at most `limit`."""
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan
    from pyiceberg.table import FileScanTask

    scan = ArrowScan(table.metadata, table.io, schema or table.schema(), AlwaysTrue(), case_sensitive=True, limit=limit)
    return scan.to_table([FileScanTask(f) for f in files])


# -- schemas ----------------------------------------------------------------------------------------


def arrow_to_iceberg_schema(schema: pa.Schema) -> Schema:
    """An Arrow schema without field ids as an Iceberg schema (ids not assigned yet), as `create_table` converts it."""
    from pyiceberg.catalog import Catalog

    return Catalog._convert_schema_if_needed(schema)


# -- table metadata updates -------------------------------------------------------------------------


def apply_updates(base: TableMetadata, updates: tuple[TableUpdate, ...], metadata_location: str | None = None) -> TableMetadata:
    """pyiceberg's `update_table_metadata` for an existing table, without its final deep copy.

    pyiceberg 0.12 ends every metadata update with `model_copy(deep=True)` of the whole metadata
    (every snapshot and summary, the logs): the largest single cost of a small commit, and it
    grows with the table's history (a model registration paid it four times). Each update below
    builds new objects with `model_copy(update=...)` and never changes one in place, so the result
    may share the unchanged parts with `base`. The same steps as pyiceberg's, in the same order;
    tests/lakehouse/test_lean_commit.py checks both give equal metadata.
    """
    from datetime import datetime

    from pyiceberg.table import update as u
    from pyiceberg.utils.datetime import datetime_to_millis

    context = u._TableMetadataUpdateContext()
    new = base
    for update in updates:
        new = u._apply_table_update(update, new, context)
    if context.has_changes():
        if metadata_location:
            new = u._update_table_metadata_log(new, metadata_location, base.last_updated_ms)
        if base.last_updated_ms == new.last_updated_ms:
            new = new.model_copy(update={"last_updated_ms": datetime_to_millis(datetime.now().astimezone())})
    new.spec().check_compatible(new.schema())
    new.sort_order().check_compatible(new.schema())
    return new


def staged(tx: Transaction) -> tuple[TableMetadata, tuple[TableUpdate, ...]]:
    """The metadata a transaction started from and the updates it has staged so far."""
    return tx._table.metadata, tx._updates


@contextmanager
def stale_is_conflict() -> Iterator[None]:
    """A branch commit built on metadata another writer has since moved raises CommitFailedException.

    pyiceberg 0.12 raises a ValueError there (see the module docstring); nothing was committed, so
    it is a lost race like any other and `lakehouse.tables.with_commit_retry` tries it again on a
    fresh table state.
    """
    from pyiceberg.exceptions import CommitFailedException

    try:
        yield
    except ValueError as exc:
        if "sequence number" in str(exc):
            raise CommitFailedException(str(exc)) from exc
        raise


# -- schemas a branch's snapshot is written in ----------------------------------------------------


def stage_updates(tx: Transaction, updates: tuple[TableUpdate, ...], requirements: tuple[Any, ...] = ()) -> None:
    """Stage table updates (and the requirements the commit asserts) in a transaction, unchecked by any builder."""
    tx._apply(updates, requirements)


def refuse_rebase(tx: Transaction) -> Transaction:
    """A conflicting commit of this transaction raises CommitFailedException instead of being rebased.

    See the module docstring: with schema updates staged around a snapshot, pyiceberg's rebase
    would rebuild the snapshot after them. The caller retries on a fresh table state
    (`lakehouse.tables.with_commit_retry`); nothing was committed.
    """
    from pyiceberg.exceptions import CommitFailedException

    def refuse() -> None:
        raise CommitFailedException("the table changed during the commit; not rebased (its schema updates are ordered)")

    tx._rebuild_snapshot_updates = refuse  # type: ignore[method-assign]
    return tx


def no_schema_added_since(highest_schema_id: int) -> Any:
    """A commit requirement pyiceberg lacks: no schema was added to the table since (checked by the SQL catalog).

    pyiceberg's AddSchemaUpdate carries its schema id, and nothing else asserts that another writer
    has not added a schema with that same id meanwhile (adding one does not change the current
    schema, and a widening adds no column id). Two schemas with one id would corrupt the table.
    """
    return _assert_highest_schema_id()(highest_schema_id=highest_schema_id)


@functools.cache
def _assert_highest_schema_id() -> type:
    from typing import Literal

    from pydantic import Field
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.table.update import ValidatableTableRequirement

    class AssertHighestSchemaId(ValidatableTableRequirement):
        type: Literal["assert-highest-schema-id"] = Field(default="assert-highest-schema-id")
        highest_schema_id: int

        # pyiceberg's requirements name their check `validate`, shadowing pydantic's deprecated classmethod.
        def validate(self, base_metadata: TableMetadata | None) -> None:  # type: ignore[override]
            found = max((s.schema_id for s in base_metadata.schemas), default=-1) if base_metadata else None
            if found != self.highest_schema_id:
                raise CommitFailedException(f"Requirement failed: a schema was added meanwhile (highest schema id {found}, expected {self.highest_schema_id})")

    return AssertHighestSchemaId


# -- the SQL catalog's private steps ----------------------------------------------------------------


class SqlCatalogHooks:
    """Mix in before pyiceberg's `SqlCatalog`: its private steps under names of ours.

    `table_from_row` may build the table for a catalog row itself (None: pyiceberg's own way);
    `file_io`, `metadata_version` and `write_metadata` are the steps of pyiceberg's commit.
    """

    def _convert_orm_to_iceberg(self, orm_table: Any) -> Table:
        table = self.table_from_row(orm_table.metadata_location, orm_table.table_namespace, orm_table.table_name)
        if table is not None:
            return table
        return super()._convert_orm_to_iceberg(orm_table)  # type: ignore[misc]

    def table_from_row(self, metadata_location: str | None, namespace: str | None, name: str | None) -> Table | None:
        return None

    def file_io(self, properties: Properties, location: str | None = None) -> FileIO:
        """The FileIO for a table's files, as the catalog configures it."""
        return self._load_file_io(properties, location)  # type: ignore[attr-defined]

    @staticmethod
    def metadata_version(metadata_location: str) -> int:
        """N of a `NNNNN-<uuid>.metadata.json` metadata file location."""
        from pyiceberg.catalog import MetastoreCatalog

        return MetastoreCatalog._parse_metadata_version(metadata_location)

    @staticmethod
    def write_metadata(metadata: TableMetadata, io: FileIO, location: str) -> None:
        """Write a metadata JSON file (never overwriting one)."""
        from pyiceberg.catalog import MetastoreCatalog

        MetastoreCatalog._write_metadata(metadata, io, location)
