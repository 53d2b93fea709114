"""Spark and Tidemark on one catalog: a real local[2] Spark (Iceberg's Java runtime, JDBC catalog) beside
Tidemark's CLI, on the SQLite and on the PostgreSQL catalog (the `shared` fixture).

Spark reads what Tidemark writes (every table, snapshot, branch and tag: the same rows as DuckDB, and
the `tidemark.*` summary keys); Tidemark reads, trains on, traces and retrains what Spark writes
(merge-on-read deletes included). Writing at once and maintenance: test_spark_commits.py.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lakehouse import spark as lspark
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from tests.conftest import run_cli, shifted_wine

pytestmark = pytest.mark.integration


def _norm(value: Any) -> Any:
    """One value as both engines' Python rows can be compared: timestamps as UTC, structs/maps as sorted pairs."""
    from pyspark.sql import Row

    if isinstance(value, Row):
        value = value.asDict()
    if isinstance(value, dict):
        return tuple(sorted(((str(k), _norm(v)) for k, v in value.items()), key=repr))
    if isinstance(value, (list, tuple)):
        return tuple(_norm(v) for v in value)
    if isinstance(value, datetime):
        # pyspark gives timestamptz as naive local time, DuckDB as aware: both to UTC.
        return (value.astimezone(timezone.utc) if value.tzinfo else value.astimezone().astimezone(timezone.utc)).isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, (date, Decimal, uuid.UUID)):
        return str(value)
    return value


def _spark_rows(spark: Any, settings: Settings, name: str, **ref: Any) -> tuple[list[str], list[Any]]:
    df = lspark.read_table(spark, settings, name, **ref)
    return df.columns, sorted((tuple(_norm(v) for v in row) for row in df.collect()), key=repr)


def _duckdb_rows(con: Any, table: Any, snapshot_id: int, columns: list[str]) -> list[Any]:
    from lakehouse import sql

    body = sql.snapshot_sql(con, table, snapshot_id)
    if not body:
        return []
    select = ", ".join(f'"{c}"' for c in columns)
    rows = con.execute(f"SELECT {select} FROM ({body})").to_arrow_table().to_pylist()
    return sorted((tuple(_norm(row[c]) for c in columns) for row in rows), key=repr)


def _tidemark_writes_everything(wine_csv: Path) -> dict[str, Any]:
    """A landing, a second landing, a quarantined one, a training run (tags), a promotion, the lineage store."""
    landed = json.loads(run_cli("ingest", str(wine_csv), "--table", "raw.wine", "--output", "json").stdout)
    run_cli("ingest", str(shifted_wine(wine_csv, 1.5)), "--table", "raw.wine")
    bad = run_cli("ingest", str(shifted_wine(wine_csv, 50.0, first_id=5000)), "--table", "raw.wine", check=False)
    assert bad.returncode != 0 and "quarantine" in (bad.stdout + bad.stderr)
    trained = json.loads(run_cli("train", "wine_classifier", "--output", "json").stdout)
    run_cli("lineage", "consume", "--once")  # promotion wants the validations of the inputs in the store
    run_cli("models", "promote", "wine", str(trained["version"]), "--alias", "production")
    run_cli("lineage", "consume", "--once")
    return {"landed": landed, "trained": trained}


def test_spark_reads_every_tidemark_table_at_every_snapshot_branch_and_tag(
    shared: tuple[Any, Settings], wine_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakehouse import sql
    from lakehouse.tables import summary_properties

    spark, settings = shared
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    _tidemark_writes_everything(wine_csv)
    catalog = load_catalog(settings)
    con = sql.connect()
    checked: dict[str, int] = {}
    refs_seen: set[str] = set()
    for (ns,) in catalog.list_namespaces():
        for ident in catalog.list_tables(ns):
            name = ".".join(ident)
            table = catalog.load_table(ident)
            spark_table = lspark.table_name(settings, name)
            spark_summaries = {r.snapshot_id: dict(r.summary) for r in spark.sql(f"SELECT snapshot_id, summary FROM {spark_table}.snapshots").collect()}
            assert set(spark_summaries) == {s.snapshot_id for s in table.snapshots()}, name
            for snap in table.snapshots():
                ours = summary_properties(snap)
                theirs = {k: v for k, v in spark_summaries[snap.snapshot_id].items() if k.startswith("tidemark.")}
                assert theirs == {k: v for k, v in ours.items() if k.startswith("tidemark.")}, (name, snap.snapshot_id)
                columns, rows = _spark_rows(spark, settings, name, snapshot_id=snap.snapshot_id)
                assert rows == _duckdb_rows(con, table, snap.snapshot_id, columns), (name, snap.snapshot_id)
                checked[name] = checked.get(name, 0) + 1
            spark_refs = {r.name: (r.type, r.snapshot_id) for r in spark.sql(f"SELECT name, type, snapshot_id FROM {spark_table}.refs").collect()}
            assert spark_refs == {ref: (r.snapshot_ref_type.value.upper(), r.snapshot_id) for ref, r in table.refs().items()}, name
            for ref, r in table.refs().items():
                kind = "branch" if r.snapshot_ref_type.value == "branch" else "tag"
                columns, rows = _spark_rows(spark, settings, name, **{kind: ref})
                assert rows == _duckdb_rows(con, table, r.snapshot_id, columns), (name, ref)
                refs_seen.add(f"{kind}:{ref.split('-')[0]}")
    # What the scenario made: the landed table with its quarantine branch and the model's tag, the
    # registry, the lineage store; every one of their snapshots was compared.
    assert "raw.wine" in checked and checked["raw.wine"] >= 3
    assert any(t.startswith("lineage.") for t in checked) and len(checked) >= 5
    assert {"branch:main", "branch:quarantine", "tag:model/wine/1"} <= refs_seen


def _spark_writes_wine(spark: Any, settings: Settings, wine_csv: Path) -> tuple[int, int]:
    """raw.wine created and filled by Spark (format v2, merge-on-read deletes), then every tenth wine
    deleted by Spark: returns (rows left, the delete's snapshot id)."""
    table = lspark.table_name(settings, "raw.wine")
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {lspark.table_name(settings, 'raw')}")
    df = spark.read.csv(str(wine_csv), header=True, inferSchema=True)
    (
        df.writeTo(table)
        .using("iceberg")
        .tableProperty("format-version", "2")
        .tableProperty("write.delete.mode", "merge-on-read")
        .create()
    )
    spark.sql(f"DELETE FROM {table} WHERE id % 10 = 0")
    # Merge-on-read: the delete wrote a position-delete file, the data file is untouched.
    deletes = spark.sql(f"SELECT count(*) AS n FROM {table}.delete_files").first().n
    assert deletes >= 1
    left = spark.sql(f"SELECT count(*) AS n FROM {table}").first().n
    snapshot = spark.sql(f"SELECT snapshot_id FROM {table}.snapshots ORDER BY committed_at DESC LIMIT 1").first().snapshot_id
    return left, snapshot


# On SQLite: the reads above cover both catalogs, and the PostgreSQL catalog's commits are covered by
# test_spark_commits.py.
@pytest.mark.parametrize("shared", ["sqlite"], indirect=True)
def test_tidemark_reads_trains_on_and_traces_a_table_spark_wrote(shared: tuple[Any, Settings], wine_csv: Path) -> None:
    spark, settings = shared
    left, snapshot = _spark_writes_wine(spark, settings, wine_csv)
    assert left == 178 - 17  # ids 10, 20, ... 170

    rows = json.loads(run_cli("sql", "SELECT count(*) AS n, count(*) FILTER (WHERE id % 10 = 0) AS tens FROM raw.wine", "--output", "json").stdout)
    assert rows == [{"n": left, "tens": 0}]
    trained = json.loads(run_cli("train", "wine_classifier", "--output", "json").stdout)
    (inp,) = trained["inputs"]
    assert (inp["table"], inp["snapshot_id"], inp["rows"]) == ("raw.wine", snapshot, left)
    run_cli("lineage", "consume", "--once")
    trace = json.loads(run_cli("trace", f"wine:{trained['version']}", "--output", "json").stdout)
    (traced,) = trace["inputs"]
    assert (traced["table"], traced["snapshot_id"], traced["in_lineage_events"]) == ("raw.wine", snapshot, True)
    # No Tidemark landing made this snapshot: the trace says so rather than inventing one.
    assert not traced.get("source_files")
    again = json.loads(run_cli("retrain", f"wine:{trained['version']}", "--output", "json").stdout)
    assert again["data"]["identical"] and again["metrics"]["identical"] and again["artifact"]["identical"], again
