"""Lineage questions in SQL: a DuckDB connection with every catalog table as a view `ns.table`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lakehouse import sql
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lineage import store

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """DuckDB with the lineage tables (created if missing) and all other tables as views."""
    catalog = load_catalog(settings)
    store.ensure_tables(catalog, settings)
    con = sql.connect()
    sql.attach_tables(con, catalog)
    return con


def run_sql(settings: Settings, text: str, params: Sequence[Any] | None = None) -> pa.Table:
    return sql.query(connect(settings), text, params)
