"""Lineage questions in SQL: a DuckDB connection with every catalog table as a view `ns.table`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
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


def connect(
    settings: Settings,
    as_of: str | datetime | None = None,
    only: Iterable[str] | None = None,
    iceberg: bool = True,
    on_broken: Callable[[BrokenTableError], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """DuckDB with the lineage tables (created if missing) and all other tables as views.

    `as_of`: every view reads its table as it stood at that time (Iceberg time travel); ISO 8601
    with a time zone or an aware datetime (`lakehouse.times.parse_time`).
    `only`: just these tables (`ns.table`); `iceberg=False`: skip loading the iceberg extension
    unless a table needs it — both make a one-question connection fast. `on_broken`: see
    `lakehouse.sql.attach_tables` (default: a warning per broken table).
    """
    when = None if as_of is None else times.parse_time(as_of, parameter="as_of")
    catalog = load_catalog(settings)
    store.ensure_tables(catalog, settings, missing_only=True)
    con = sql.connect(settings.catalog.properties, iceberg=iceberg)
    sql.attach_tables(con, catalog, as_of_ms=int(when.timestamp() * 1000) if when else None, only=only, on_broken=on_broken)
    return con


def run_sql(settings: Settings, text: str, params: Sequence[Any] | None = None, as_of: str | datetime | None = None) -> pa.Table:
    """The answer to `text` (DuckDB SQL, `params` bound to its `?`s), with every table as of `as_of`.

    A broken table is one warning line when the query does not read it; when it does, the query's
    error is that table's (which table, which file, the fix), and nothing else is said.
    """
    broken: list[BrokenTableError] = []
    con = connect(settings, as_of, on_broken=broken.append)
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
