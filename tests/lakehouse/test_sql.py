"""DuckDB reads our Iceberg tables with extensions from pip packages, including time travel."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lakehouse import sql
from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
from lakehouse.exceptions import InvalidTableNameError, QueryError
from lakehouse.tables import TableName, ensure_table


def test_views_time_travel_and_bound_parameters() -> None:
    catalog = load_catalog(load_settings())
    data = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["a", "b'; DROP TABLE x; --", "c"]})
    table = ensure_table(catalog, TableName("raw", "things"), data.schema)
    table.append(data.slice(0, 2))
    first = table.current_snapshot().snapshot_id
    table.append(data.slice(2))
    ensure_table(catalog, TableName("raw", "empty"), data.schema)

    con = sql.connect()
    assert sorted(sql.attach_tables(con, catalog)) == ["raw.empty", "raw.things"]
    assert sql.query(con, "SELECT count(*) AS n FROM raw.things").to_pylist() == [{"n": 3}]
    assert sql.query(con, "SELECT count(*) AS n FROM raw.empty").to_pylist() == [{"n": 0}]
    loc = catalog.load_table("raw.things").metadata_location
    old = sql.query(con, "SELECT count(*) AS n FROM iceberg_scan(?, snapshot_from_id = ?)", [loc, first])
    assert old.to_pylist() == [{"n": 2}]
    hit = sql.query(con, "SELECT id FROM raw.things WHERE name = ?", ["b'; DROP TABLE x; --"])
    assert hit.to_pylist() == [{"id": 2}]


def test_query_error_is_one_clear_line() -> None:
    con = sql.connect()
    with pytest.raises(QueryError, match="query failed: .*no_such_table"):
        sql.query(con, "SELECT * FROM no_such_table")


@pytest.mark.parametrize("bad", ["", "raw", "raw.wine.x", "raw.", ".wine", "raw.wi-ne", "1raw.wine"])
def test_table_names_must_be_namespace_dot_table(bad: str) -> None:
    with pytest.raises(InvalidTableNameError, match="is not of the form namespace.table"):
        TableName.parse(bad)
