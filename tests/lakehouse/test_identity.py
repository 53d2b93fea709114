"""Catalog identity (lakehouse/identity.py): a catalog and its warehouse know each other."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse import identity
from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
from lakehouse.exceptions import CatalogIdentityError
from lakehouse.maintenance import remove_orphan_files
from lakehouse.tables import TableName, ensure_table


def empty_file(path: Path) -> None:
    """`: > catalog.db` as a user does it: after every process closed the file (the last connection
    to close checkpoints SQLite's write-ahead log into it and deletes the log)."""
    import gc

    gc.collect()  # this process's catalogs close their connections
    path.write_bytes(b"")
    assert not path.with_name(path.name + "-wal").exists()


def _table_with_rows(name: str = "raw.t", rows: int = 3) -> None:
    catalog = load_catalog(load_settings())
    data = pa.table({"id": list(range(rows))})
    ensure_table(catalog, TableName.parse(name), data.schema).append(data)


def test_first_use_marks_catalog_and_warehouse_with_one_identity(isolated_env: Path) -> None:
    catalog = load_catalog(load_settings())
    marker = json.loads((isolated_env / "warehouse" / identity.MARKER_FILE).read_text())
    mine = identity.catalog_identity(catalog)
    assert mine is not None and marker["catalog_id"] == mine.catalog_id and marker["catalog_name"] == "tidemark"
    # Opening it again keeps the identity.
    assert identity.verify(load_catalog(load_settings())) == mine


def test_an_emptied_catalog_is_refused_and_recovered_with_every_row(isolated_env: Path) -> None:
    _table_with_rows("raw.t", 3)
    _table_with_rows("raw.u", 2)
    before = identity.catalog_identity(load_catalog(load_settings()))
    empty_file(isolated_env / "catalog.db")
    with pytest.raises(CatalogIdentityError, match=r"is empty, but its warehouse .* holds Iceberg tables .*tidemark catalog recover"):
        load_catalog(load_settings())
    catalog = load_catalog(load_settings(), verify=False)
    dry = identity.recover(catalog, dry_run=True)
    assert sorted((t.table, t.action) for t in dry.tables) == [("raw.t", "would register"), ("raw.u", "would register")]
    assert not catalog.table_exists(("raw", "t"))  # a dry run changes nothing
    report = identity.recover(catalog)
    assert sorted((t.table, t.action) for t in report.tables) == [("raw.t", "registered"), ("raw.u", "registered")]
    assert report.catalog_id == before.catalog_id  # the warehouse's identity is kept
    catalog = load_catalog(load_settings())
    assert catalog.load_table(("raw", "t")).scan().to_arrow().num_rows == 3
    # Nothing of the recovered tables is an orphan.
    assert remove_orphan_files(catalog.load_table(("raw", "t")), older_than=__import__("datetime").timedelta(0), dry_run=True).orphans == []
    # Recovering again is a no-op.
    assert {t.action for t in identity.recover(catalog).tables} == {"already registered"}


def test_a_catalog_of_another_warehouse_is_refused_and_orphan_removal_never_runs(isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _table_with_rows("raw.t", 3)
    table = load_catalog(load_settings()).load_table(("raw", "t"))
    # A second catalog, its own identity, pointed at the first one's warehouse.
    monkeypatch.setenv("TIDEMARK__CATALOG__URI", f"sqlite:///{tmp_path / 'other.db'}")
    monkeypatch.setenv("TIDEMARK__CATALOG__WAREHOUSE", (tmp_path / "other-wh").as_uri())
    other = load_catalog(load_settings())
    monkeypatch.setenv("TIDEMARK__CATALOG__WAREHOUSE", (isolated_env / "warehouse").as_uri())
    with pytest.raises(CatalogIdentityError, match=r"does not belong to warehouse .*tidemark catalog recover"):
        load_catalog(load_settings())
    # Even a table object from such a catalog (opened unchecked) gets no orphan removal.
    unchecked = load_catalog(load_settings(), verify=False)
    unchecked.create_namespace("raw")
    unchecked.register_table(("raw", "t"), table.metadata_location)
    files = sorted(p for p in (isolated_env / "warehouse").rglob("*") if p.is_file())
    with pytest.raises(CatalogIdentityError):
        remove_orphan_files(unchecked.load_table(("raw", "t")), older_than=__import__("datetime").timedelta(0))
    assert sorted(p for p in (isolated_env / "warehouse").rglob("*") if p.is_file()) == files
    assert other is not None


def test_a_catalog_from_before_identities_is_adopted(isolated_env: Path) -> None:
    _table_with_rows("raw.t", 3)
    catalog = load_catalog(load_settings())
    with catalog.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {identity.IDENTITY_TABLE}")
    (isolated_env / "warehouse" / identity.MARKER_FILE).unlink()
    adopted = identity.verify(load_catalog(load_settings()))
    assert adopted is not None and json.loads((isolated_env / "warehouse" / identity.MARKER_FILE).read_text())["catalog_id"] == adopted.catalog_id


def test_a_lost_warehouse_marker_is_written_again_from_the_catalog(isolated_env: Path) -> None:
    mine = identity.catalog_identity(load_catalog(load_settings()))
    (isolated_env / "warehouse" / identity.MARKER_FILE).unlink()
    assert identity.verify(load_catalog(load_settings())) == mine
    assert json.loads((isolated_env / "warehouse" / identity.MARKER_FILE).read_text())["catalog_id"] == mine.catalog_id


def test_recovery_skips_an_unreadable_newest_metadata_file(isolated_env: Path) -> None:
    _table_with_rows("raw.t", 3)
    catalog = load_catalog(load_settings())
    good = catalog.load_table(("raw", "t")).metadata_location
    meta = Path(good.removeprefix("file://")).parent
    torn = meta / "00099-00000000-0000-0000-0000-000000000000.metadata.json"
    torn.write_text('{"format-version": 2, "table-uu')  # a write cut short
    catalog.drop_table(("raw", "t"))
    report = identity.recover(catalog)
    [row] = report.tables
    assert row.action == "registered" and row.metadata_location == good and "00099-" in row.note and "unreadable" in row.note
    assert catalog.load_table(("raw", "t")).scan().to_arrow().num_rows == 3
