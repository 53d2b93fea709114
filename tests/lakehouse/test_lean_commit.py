"""The SQL catalog's commit without a reload (lakehouse.sqlcatalog) and metadata updates without a
deep copy (lakehouse.pyiceberg_compat.apply_updates): the same metadata as pyiceberg's own path, and the same
refusal of a commit that lost a race. On SQLite and on the real PostgreSQL."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException

from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
from lakehouse.sqlcatalog import TidemarkSqlCatalog
from lakehouse.pyiceberg_compat import apply_updates, staged
from lakehouse.tables import NO_REBASE, TableName, ensure_table, manage_snapshots, transaction


def _rows(n: int, start: int = 0) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64())})


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    if request.param == "postgresql":
        monkeypatch.setenv("TIDEMARK__CATALOG__URI", request.getfixturevalue("postgres_catalog_uri"))
    return load_catalog(load_settings())


def test_the_configured_sql_catalog_is_tidemarks(catalog: SqlCatalog) -> None:
    assert isinstance(catalog, TidemarkSqlCatalog)


def test_apply_updates_gives_what_pyiceberg_gives(catalog: SqlCatalog) -> None:
    from pyiceberg.table.update import update_table_metadata

    table = ensure_table(catalog, TableName("raw", "t"), _rows(0).schema)
    table.append(_rows(3))
    table = catalog.load_table(("raw", "t"))
    tx = table.transaction()
    tx.set_properties({"k": "v"})
    tx.append(_rows(2, start=3))
    from pyiceberg.table.update.snapshot import ManageSnapshots

    ManageSnapshots(transaction=tx).create_tag(table.current_snapshot().snapshot_id, "model/m/1").commit()
    base, updates = staged(tx)
    assert base is table.metadata
    ours = apply_updates(base, updates, metadata_location=table.metadata_location)
    theirs = update_table_metadata(base, updates, metadata_location=table.metadata_location)
    # last_updated_ms comes from the clock when no update sets it; everything else must match.
    assert ours.model_copy(update={"last_updated_ms": 0}) == theirs.model_copy(update={"last_updated_ms": 0})
    assert ours.metadata_log == theirs.metadata_log and ours.refs["model/m/1"] == theirs.refs["model/m/1"]
    assert table.metadata.properties.get("k") is None  # the base is untouched


def test_commits_from_the_current_state_and_from_a_stale_one(catalog: SqlCatalog) -> None:
    table = ensure_table(catalog, TableName("raw", "t"), _rows(0).schema)
    table.append(_rows(1))
    stale = catalog.load_table(("raw", "t"))
    table = catalog.load_table(("raw", "t"))
    table.append(_rows(1, start=1))  # `stale` is one commit behind now
    # Nothing asserts what a property change read: from the stale object it lands on the current state.
    with transaction(stale) as tx:
        tx.set_properties({"owner": "models"})
    fresh = catalog.load_table(("raw", "t"))
    assert fresh.properties["owner"] == "models"
    assert sorted(fresh.scan().to_arrow()["id"].to_pylist()) == [0, 1]
    assert len(fresh.metadata.metadata_log) == 3  # every commit logged its predecessor
    sid = fresh.current_snapshot().snapshot_id
    with manage_snapshots(fresh) as ms:
        ms.create_tag(sid, "model/m/1")
    assert catalog.load_table(("raw", "t")).metadata.refs["model/m/1"].snapshot_id == sid


def test_a_commit_on_the_current_table_is_one_conditional_update(catalog: SqlCatalog) -> None:
    """The row is read only when the table handed over is no longer the current one."""
    from sqlalchemy import event

    table = ensure_table(catalog, TableName("raw", "t"), _rows(0).schema)
    stale = catalog.load_table(("raw", "t"))
    seen: list[str] = []

    def statement(_conn, _cursor, sql: str, *_args) -> None:  # type: ignore[no-untyped-def]
        if "iceberg_tables" in sql:
            seen.append(sql.split()[0].upper())

    event.listen(catalog.engine, "before_cursor_execute", statement)
    try:
        table.append(_rows(1))
        assert seen == ["UPDATE"]
        seen.clear()
        with transaction(stale) as tx:  # one commit behind: the swap misses, the row is read, it lands
            tx.set_properties({"owner": "models"})
        assert seen[:2] == ["UPDATE", "SELECT"] and seen[-1] == "UPDATE"
    finally:
        event.remove(catalog.engine, "before_cursor_execute", statement)
    fresh = catalog.load_table(("raw", "t"))
    assert fresh.properties["owner"] == "models" and fresh.scan().to_arrow()["id"].to_pylist() == [0]


def test_a_commit_that_lost_the_race_is_refused_and_changes_nothing(catalog: SqlCatalog) -> None:
    ensure_table(catalog, TableName("raw", "t"), _rows(0).schema, properties=NO_REBASE)
    first, second = catalog.load_table(("raw", "t")), catalog.load_table(("raw", "t"))
    first.append(_rows(1))
    with pytest.raises(CommitFailedException):
        with transaction(second) as tx:
            tx.append(_rows(1, start=100))
    assert catalog.load_table(("raw", "t")).scan().to_arrow()["id"].to_pylist() == [0]


def test_concurrent_writers_each_land_exactly_once(catalog: SqlCatalog) -> None:
    """Four threads append ten times each through the retrying helper: forty rows, no more, no fewer."""
    from lakehouse.tables import with_commit_retry

    ensure_table(catalog, TableName("raw", "t"), _rows(0).schema, properties=NO_REBASE)
    settings = load_settings()

    def writer(k: int) -> None:
        own = load_catalog(settings)
        for i in range(10):
            def attempt(i: int = i) -> None:
                with transaction(own.load_table(("raw", "t"))) as tx:
                    tx.append(_rows(1, start=k * 100 + i))

            with_commit_retry(attempt, "test append", attempts=40, base_delay_s=0.005)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = sorted(catalog.load_table(("raw", "t")).scan().to_arrow()["id"].to_pylist())
    assert ids == sorted(k * 100 + i for k in range(4) for i in range(10))


def test_load_reuses_parsed_metadata_until_another_writer_commits(catalog: SqlCatalog) -> None:
    """Metadata files never change, so a load of an unchanged table reuses what was parsed; a
    commit by a writer this process knows nothing of (pyiceberg's own catalog class) is seen."""
    table = ensure_table(catalog, TableName("raw", "t"), _rows(0).schema)
    table.append(_rows(1))
    a, b = catalog.load_table(("raw", "t")), catalog.load_table(("raw", "t"))
    assert a.metadata is b.metadata and a is not b
    props = {k: v for k, v in catalog.properties.items() if k != "py-catalog-impl"}
    other = SqlCatalog(catalog.name, **props)
    assert type(other) is SqlCatalog
    other.load_table(("raw", "t")).append(_rows(1, start=1))
    fresh = catalog.load_table(("raw", "t"))
    assert fresh.metadata is not a.metadata
    assert sorted(fresh.scan().to_arrow()["id"].to_pylist()) == [0, 1]
