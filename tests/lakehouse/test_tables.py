"""`lakehouse.tables.transaction`: pyiceberg's transaction with its pending metadata worked out once
per change. It must see every staged change, and commit exactly what a plain transaction commits."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
from lakehouse.tables import TableName, ensure_table, manage_snapshots, transaction


def _rows(n: int, start: int = 0) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64())})


def test_a_transaction_sees_each_staged_change_and_commits_them_all() -> None:
    catalog = load_catalog(load_settings())
    table = ensure_table(catalog, TableName("raw", "t"), _rows(0).schema)
    table.append(_rows(3))

    tx = transaction(table)
    before = tx.table_metadata
    assert tx.table_metadata is before  # nothing staged: the same metadata, not a new copy
    tx.set_properties({"k": "v"})
    assert "k" not in before.properties and tx.table_metadata.properties["k"] == "v"
    tx.append(_rows(2, start=3), snapshot_properties={"tidemark.run-id": "r1"})
    staged = tx.table_metadata
    assert staged.current_snapshot_id != before.current_snapshot_id
    tx.commit_transaction()

    fresh = catalog.load_table(("raw", "t"))
    assert sorted(fresh.scan().to_arrow()["id"].to_pylist()) == [0, 1, 2, 3, 4]
    assert fresh.properties["k"] == "v"
    assert fresh.current_snapshot().snapshot_id == staged.current_snapshot_id
    assert fresh.current_snapshot().summary["tidemark.run-id"] == "r1"


def test_a_stale_transaction_still_fails_its_commit() -> None:
    """The append asserts main did not move since the table was read, as a plain one does."""
    from pyiceberg.exceptions import CommitFailedException

    catalog = load_catalog(load_settings())
    stale = ensure_table(catalog, TableName("raw", "t"), _rows(0).schema, properties={"commit.retry.num-retries": "0"})
    catalog.load_table(("raw", "t")).append(_rows(1))
    with pytest.raises(CommitFailedException):
        with transaction(stale) as tx:
            tx.append(_rows(1, start=1))
    assert catalog.load_table(("raw", "t")).scan().to_arrow().num_rows == 1


def test_manage_snapshots_tags_on_a_transaction() -> None:
    catalog = load_catalog(load_settings())
    table = ensure_table(catalog, TableName("raw", "t"), _rows(0).schema)
    table.append(_rows(1))
    sid = catalog.load_table(("raw", "t")).current_snapshot().snapshot_id
    with manage_snapshots(catalog.load_table(("raw", "t"))) as ms:
        ms.create_tag(sid, "model/m/1")
    assert catalog.load_table(("raw", "t")).metadata.refs["model/m/1"].snapshot_id == sid


def test_schema_at_a_snapshot_is_the_one_it_was_written_in() -> None:
    from pyiceberg.types import StringType

    from lakehouse.tables import schema_at

    catalog = load_catalog(load_settings())
    table = ensure_table(catalog, TableName("raw", "evolving"), _rows(0).schema)
    table.append(_rows(2))
    old = table.current_snapshot()
    with table.update_schema() as update:
        update.add_column("note", StringType())
    table = catalog.load_table(("raw", "evolving"))
    assert [f.name for f in schema_at(table, old).fields] == ["id"]
    assert [f.name for f in schema_at(table, None).fields] == ["id", "note"]  # no snapshot: the current one
