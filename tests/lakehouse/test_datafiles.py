"""Parquet data files written by Tidemark (lakehouse.datafiles) make the same table as pyiceberg's
append: same rows, same partitions, readable by pyiceberg and DuckDB; statistics and dictionaries
only where the table asks; a batch in the wrong schema is refused before anything is written."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
from lakehouse.datafiles import append_data_files, write_data_files
from lakehouse.tables import TableName, ensure_table, transaction
from lineage import store

DAY0 = datetime(2026, 11, 25, 23, 0, tzinfo=timezone.utc)


def _schema():  # type: ignore[no-untyped-def]
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, TimestamptzType

    return Schema(
        store.column(1, "id", LongType(), required=True),
        store.column(2, "at", TimestamptzType(), required=True),
        store.column(3, "kind"),
        store.column(4, "payload"),
    )


def _table(name: str, partitioned: bool = True):  # type: ignore[no-untyped-def]
    schema = _schema()
    props = {"write.metadata.metrics.column.payload": "none", "write.parquet.compression-codec": "zstd"}
    spec = store._partition_by_day(schema, "at") if partitioned else None
    return ensure_table(load_catalog(load_settings()), TableName("raw", name), schema, partition_spec=spec, properties=props)


def _rows(n: int, hours_apart: float = 1.0) -> pa.Table:
    schema = _schema().as_arrow()
    return pa.Table.from_pydict(
        {
            "id": list(range(n)),
            "at": [DAY0 + timedelta(hours=i * hours_apart) for i in range(n)],
            "kind": [f"k{i % 3}" for i in range(n)],
            "payload": ['{"n": %d, "text": "%s"}' % (i, "x" * 200) for i in range(n)],
        },
        schema=schema,
    )


def _files(table) -> list:  # type: ignore[no-untyped-def]
    return [task.file for task in table.scan().plan_files()]


def test_same_table_as_pyiceberg_append_across_days() -> None:
    rows = _rows(60)  # 60 hours from 23:00: four days
    ours, theirs = _table("ours"), _table("theirs")
    with transaction(ours) as tx:
        append_data_files(tx, write_data_files(ours, rows, dictionary={"kind"}), {"tidemark.test": "1"})
    theirs.append(rows)
    ours, theirs = (load_catalog(load_settings()).load_table(("raw", n)) for n in ("ours", "theirs"))
    assert ours.scan().to_arrow().sort_by("id").equals(theirs.scan().to_arrow().sort_by("id"))
    assert ours.current_snapshot().summary["tidemark.test"] == "1"  # type: ignore[union-attr]
    assert ours.current_snapshot().summary["added-records"] == "60"  # type: ignore[union-attr]
    # One file per day, each under its day's partition, as pyiceberg lays them out.
    def layout(t) -> list[tuple[int, int, str]]:  # type: ignore[no-untyped-def]
        return sorted((f.partition[0], f.record_count, Path(f.file_path).parent.name) for f in _files(t))

    assert layout(ours) == layout(theirs)
    assert [day for day, _, _ in layout(ours)] == [20782, 20783, 20784, 20785]  # 2026-11-25 .. 28, days since 1970
    # A filter on the partition column prunes to one file, and the other engine reads the same.
    from pyiceberg.expressions import GreaterThanOrEqual

    assert len(list(ours.scan(row_filter=GreaterThanOrEqual("at", "2026-11-28T00:00:00+00:00")).plan_files())) == 1
    import duckdb

    con = duckdb.connect()
    paths = [f.file_path.removeprefix("file://") for f in _files(ours)]
    assert con.execute("SELECT count(*), sum(id) FROM read_parquet(?)", [paths]).fetchone() == (60, sum(range(60)))


def test_statistics_and_dictionaries_only_where_asked() -> None:
    table = _table("stats")
    with transaction(table) as tx:
        append_data_files(tx, write_data_files(table, _rows(10, hours_apart=0.1), dictionary={"kind"}), {})
    table = load_catalog(load_settings()).load_table(("raw", "stats"))
    (data_file,) = _files(table)
    ids = {f.name: f.field_id for f in table.schema().fields}
    # The manifest: bounds for id and kind, none for the JSON payload (metrics mode none).
    assert ids["id"] in data_file.lower_bounds and ids["kind"] in data_file.upper_bounds
    assert ids["payload"] not in data_file.lower_bounds and ids["payload"] not in data_file.value_counts
    # The Parquet file itself: no min/max computed for payload; a dictionary only for kind.
    meta = pq.ParquetFile(data_file.file_path.removeprefix("file://")).metadata
    columns = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)}
    assert columns["id"].is_stats_set and not columns["payload"].is_stats_set
    assert columns["kind"].has_dictionary_page and not columns["payload"].has_dictionary_page


def test_unpartitioned_table_gets_one_file() -> None:
    table = _table("flat", partitioned=False)
    files = write_data_files(table, _rows(30))
    assert len(files) == 1 and files[0].record_count == 30
    with transaction(table) as tx:
        append_data_files(tx, files, {})
    assert load_catalog(load_settings()).load_table(("raw", "flat")).scan().to_arrow().num_rows == 30


def test_no_rows_still_commits_the_snapshot_properties() -> None:
    # The lineage consumer relies on it: a batch of duplicates only still moves the offsets on.
    table = _table("empty")
    files = write_data_files(table, _rows(0))
    assert files == []
    with transaction(table) as tx:
        append_data_files(tx, files, {"tidemark.kafka.offsets": "{}"})
    table = load_catalog(load_settings()).load_table(("raw", "empty"))
    assert table.current_snapshot().summary["tidemark.kafka.offsets"] == "{}"  # type: ignore[union-attr]
    assert table.scan().to_arrow().num_rows == 0


def test_rows_in_another_schema_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    table = _table("strict")
    wrong = _rows(5).rename_columns(["id", "at", "kind", "body"])
    with pytest.raises(ValueError, match=r"rows for raw.strict do not match its schema .*build them with the table's Arrow schema"):
        write_data_files(table, wrong)
    # Same names and types, but field ids of another schema: readers would map them wrongly.
    renumbered = pa.schema([f.with_metadata({b"PARQUET:field_id": str(i + 10).encode()}) for i, f in enumerate(_rows(0).schema)])
    with pytest.raises(ValueError, match="do not match its schema"):
        write_data_files(table, _rows(5).cast(renumbered))
    table = load_catalog(load_settings()).load_table(("raw", "strict"))
    assert table.current_snapshot() is None
    assert not list(Path(table.location().removeprefix("file://")).rglob("*.parquet"))
