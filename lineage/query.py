"""Lineage questions in SQL: a DuckDB connection with every catalog table as a view `ns.table`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lakehouse import sql
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lineage import store

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa


def connect(
    settings: Settings, as_of: datetime | None = None, only: Iterable[str] | None = None, iceberg: bool = True
) -> duckdb.DuckDBPyConnection:
    """DuckDB with the lineage tables (created if missing) and all other tables as views.

    `as_of`: every view reads its table as it stood at that time (Iceberg time travel).
    `only`: just these tables (`ns.table`); `iceberg=False`: skip loading the iceberg extension
    unless a table needs it — both make a one-question connection fast.
    """
    catalog = load_catalog(settings)
    store.ensure_tables(catalog, settings, missing_only=True)
    con = sql.connect(settings.catalog.properties, iceberg=iceberg)
    sql.attach_tables(con, catalog, as_of_ms=int(as_of.timestamp() * 1000) if as_of else None, only=only)
    return con


def run_sql(settings: Settings, text: str, params: Sequence[Any] | None = None, as_of: datetime | None = None) -> pa.Table:
    return sql.query(connect(settings, as_of), text, params)


def parse_time(text: str) -> datetime:
    """An ISO-8601 time from the command line; naive times are UTC."""
    from lineage.exceptions import NotFoundError

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise NotFoundError(f"--as-of {text!r} is not an ISO-8601 time, e.g. 2026-11-26T18:00:00Z") from exc
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
