"""A broken table (its current metadata file gone) is that table's error only, in the library."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse import identity, sql
from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
from lakehouse.exceptions import BrokenTableError
from lakehouse.maintenance import expire_all_snapshots, remove_all_orphan_files
from lakehouse.tables import TableName, ensure_table


def _two_tables_one_broken() -> tuple[object, str]:
    catalog = load_catalog(load_settings())
    for name in ("raw.good", "raw.bad"):
        data = pa.table({"id": [1, 2, 3]})
        ensure_table(catalog, TableName.parse(name), data.schema).append(data)
    location = catalog.load_table(("raw", "bad")).metadata_location
    Path(location.removeprefix("file://")).unlink()
    # As a new process finds it: this one keeps the metadata it parsed (lakehouse.sqlcatalog).
    from lakehouse import sqlcatalog

    sqlcatalog._METADATA = sqlcatalog._MetadataCache()
    return load_catalog(load_settings()), location


def test_views_for_the_healthy_tables_and_a_failing_view_for_the_broken_one(isolated_env: Path) -> None:
    catalog, location = _two_tables_one_broken()
    broken: list[BrokenTableError] = []
    con = sql.connect(iceberg=False)
    made = sql.attach_tables(con, catalog, on_broken=broken.append)
    assert made == ["raw.good"] and [(b.table, b.location) for b in broken] == [("raw.bad", location)]
    assert sql.query(con, "SELECT count(*) AS n FROM raw.good").to_pylist() == [{"n": 3}]
    with pytest.raises(Exception, match=r"table raw.bad is broken: its current metadata file .* is missing"):
        sql.query(con, "SELECT count(*) FROM raw.bad")


def test_the_sweeps_do_every_healthy_table_then_name_the_broken_one(isolated_env: Path) -> None:
    catalog, _ = _two_tables_one_broken()
    with pytest.raises(BrokenTableError, match=r"expired snapshots in 1 table\(s\); skipped 1 broken table\(s\): raw.bad"):
        expire_all_snapshots(catalog, timedelta(0))
    with pytest.raises(BrokenTableError, match=r"skipped 1 broken table\(s\): raw.bad"):
        remove_all_orphan_files(catalog, timedelta(0))
    # The broken table's files were left alone: its metadata cannot say which are orphans.
    assert list((isolated_env / "warehouse" / "raw" / "bad" / "data").glob("*.parquet"))


def test_recover_points_the_broken_table_at_its_newest_readable_metadata(isolated_env: Path) -> None:
    catalog, location = _two_tables_one_broken()
    dry = {t.table: t.action for t in identity.recover(catalog, dry_run=True).tables}
    assert dry == {"raw.good": "already registered", "raw.bad": "would repair"}
    report = {t.table: t for t in identity.recover(catalog).tables}
    assert report["raw.bad"].action == "repaired" and location in report["raw.bad"].note
    table = load_catalog(load_settings()).load_table(("raw", "bad"))
    assert table.metadata_location != location  # the last commit (the append) is lost with its file
    assert table.scan().to_arrow().num_rows == 0
