"""Lineage questions in SQL: a DuckDB connection with every catalog table as a view `ns.table`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lakehouse import sql, times
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.exceptions import BrokenTableError, QueryError
from lineage import store

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    from pyiceberg.catalog import Catalog


def connect(
    settings: Settings,
    as_of: str | datetime | None = None,
    only: Iterable[str] | None = None,
    iceberg: bool = True,
    read_only: bool = False,
    snapshots: Mapping[str, int] | None = None,
    on_broken: Callable[[BrokenTableError], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """DuckDB with the lineage tables (created if missing) and all other tables as views.

    `as_of`: every view reads its table as it stood at that time (Iceberg time travel); ISO 8601
    with a time zone or an aware datetime (`lakehouse.times.parse_time`).
    `only`: just these tables (`ns.table`); `iceberg=False`: skip loading the iceberg extension
    unless a table needs it — both make a one-question connection fast. `read_only`: the connection
    reads only the warehouse and the tables' locations and writes nothing (`lakehouse.sql.read_only`);
    for SQL someone typed. `snapshots`: {"ns.table": snapshot id} whose views read that snapshot
    instead (time travel on one table, `tidemark sql --snapshot`). `on_broken`: see
    `lakehouse.sql.attach_tables` (default: a warning per broken table).
    """
    when = None if as_of is None else times.parse_time(as_of, parameter="as_of")
    catalog = load_catalog(settings)
    store.ensure_tables(catalog, settings, missing_only=True)
    con = sql.connect(settings.catalog.properties, iceberg=iceberg)
    locations: list[str] = []
    sql.attach_tables(
        con, catalog, as_of_ms=int(when.timestamp() * 1000) if when else None, only=only, locations=locations, on_broken=on_broken
    )
    for name, sid in (snapshots or {}).items():
        _pin_snapshot(con, catalog, name, sid)
    if read_only:
        sql.read_only(con, [settings.warehouse, *locations])
    return con


def _pin_snapshot(con: duckdb.DuckDBPyConnection, catalog: Catalog, name: str, sid: int) -> None:
    """Make the view of `name` read snapshot `sid` (before `read_only` locks the connection)."""
    from lakehouse.exceptions import TidemarkError
    from lakehouse.tables import load_table

    t = load_table(catalog, name)
    if t.snapshot_by_id(sid) is None:
        raise TidemarkError(
            f"--snapshot {name}={sid}: {name} has no snapshot {sid}; `tidemark tables` and `tidemark sql \"SELECT ...\"` show the ids",
            parameter="snapshots",
        )
    ns, _, short = name.rpartition(".")
    body = sql.snapshot_sql(con, t, sid)
    target = f"{sql.quote_ident(ns)}.{sql.quote_ident(short)}"
    con.execute(f"DROP VIEW IF EXISTS {target}")
    con.execute(f"DROP TABLE IF EXISTS {target}")
    if body:
        con.execute(f"CREATE VIEW {target} AS {body}")
    else:  # a snapshot without data files: an empty table of its schema
        con.register("__tidemark_empty", t.schema().as_arrow().empty_table())
        con.execute(f"CREATE TABLE {target} AS SELECT * FROM __tidemark_empty")
        con.unregister("__tidemark_empty")


def run_sql(
    settings: Settings,
    text: str,
    params: Sequence[Any] | None = None,
    as_of: str | datetime | None = None,
    read_only: bool = False,
    snapshots: Mapping[str, int] | None = None,
) -> pa.Table:
    """The answer to `text` (DuckDB SQL, `params` bound to its `?`s), with every table as of `as_of`.

    `read_only`: refuse anything but queries, and files outside the warehouse (`tidemark sql`'s default).
    A broken table is one warning line when the query does not read it; when it does, the query's
    error is that table's (which table, which file, the fix), and nothing else is said.
    """
    sql.require_text(text)  # before any table is read
    broken: list[BrokenTableError] = []
    con = connect(settings, as_of, read_only=read_only, snapshots=snapshots, on_broken=broken.append)
    if read_only:
        sql.check_read_only(con, text)
    try:
        result = sql.query(con, text, params)
    except QueryError as exc:
        read = next((b for b in broken if str(b) in str(exc)), None)
        if read is not None:
            raise QueryError(str(read)) from exc
        raise
    for b in broken:
        log.warning("%s", b)
    return result
