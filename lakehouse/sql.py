"""DuckDB over Iceberg: extensions loaded from pip packages (never downloaded), tables as views.

Each view reads the table's *current* metadata_location as the catalog reports it: DuckDB's own
version guessing can pick a stale metadata file, so we never rely on it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from lakehouse.exceptions import QueryError, TidemarkError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    from pyiceberg.catalog import Catalog

DUCKDB_VERSION = "v1.5.5"


def _extension_path(module_name: str, ext: str) -> str:
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        pkg = module_name.replace("_", "-")
        raise TidemarkError(f"DuckDB extension package {pkg} is missing; run `pip install {pkg}==1.5.5`") from exc
    path = os.path.join(os.path.dirname(module.__file__ or ""), "extensions", DUCKDB_VERSION, f"{ext}.duckdb_extension")
    if not os.path.isfile(path):
        raise TidemarkError(f"{path} is missing; reinstall {module_name.replace('_', '-')}==1.5.5 to match duckdb 1.5.5")
    return path


def connect(s3: dict[str, str] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with avro and iceberg loaded by path (and httpfs when `s3` is given)."""
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    if s3:
        con.execute(f"LOAD '{_extension_path('duckdb_extension_httpfs', 'httpfs')}'")
    # avro before iceberg: the iceberg extension reads manifests through it.
    con.execute(f"LOAD '{_extension_path('duckdb_extension_avro', 'avro')}'")
    con.execute(f"LOAD '{_extension_path('duckdb_extension_iceberg', 'iceberg')}'")
    return con


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def attach_tables(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    namespaces: Iterable[str] | None = None,
    as_of_ms: int | None = None,
) -> list[str]:
    """Create a schema per namespace and a view per table; returns the `ns.table` names made.

    With `as_of_ms` (epoch milliseconds), each view reads the snapshot that was current then:
    time travel, so a question is answered as the store stood at that moment.
    """
    made: list[str] = []
    names = list(namespaces) if namespaces is not None else [ns[0] for ns in catalog.list_namespaces()]
    for ns in names:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote_ident(ns)}")
        for ident in catalog.list_tables(ns):
            table = catalog.load_table(ident)
            name = ident[-1]
            # A view body cannot take bound parameters; the location comes from the catalog, quoted here.
            target = f"{_quote_ident(ns)}.{_quote_ident(name)}"
            snap = table.current_snapshot() if as_of_ms is None else table.snapshot_as_of_timestamp(as_of_ms)
            if snap is None:
                # iceberg_scan fails on a table with no snapshot: an empty table of the same schema
                # keeps the name usable in queries.
                con.register("__tidemark_empty", table.schema().as_arrow().empty_table())
                con.execute(f"DROP VIEW IF EXISTS {target}")
                con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM __tidemark_empty")
                con.unregister("__tidemark_empty")
            else:
                # A view body cannot take bound parameters; the location comes from the catalog, quoted here.
                con.execute(f"DROP TABLE IF EXISTS {target}")
                travel = f", snapshot_from_id => {int(snap.snapshot_id)}" if as_of_ms is not None else ""
                con.execute(
                    f"CREATE OR REPLACE VIEW {target} AS "
                    f"SELECT * FROM iceberg_scan({_quote_literal(table.metadata_location)}{travel})"
                )
            made.append(f"{ns}.{name}")
    return made


def query(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
    """Run SQL with bound parameters; a DuckDB error becomes a QueryError naming the problem."""
    import duckdb

    try:
        return con.execute(sql, list(params or [])).to_arrow_table()
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {str(exc).splitlines()[0]}") from exc
