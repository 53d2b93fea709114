"""Spark and Tidemark committing to one table: at the same time (Iceberg's optimistic commits across the
Java and the Python implementation lose nothing), and Spark's maintenance procedures beside Tidemark's
pinned snapshots (a retrain stays identical). On the SQLite and on the PostgreSQL catalog.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from lakehouse import spark as lspark
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from tests.conftest import run_cli, shifted_wine

pytestmark = pytest.mark.integration


def test_spark_and_tidemark_writing_one_table_at_once_lose_nothing(shared: tuple[Any, Settings], wine_csv: Path) -> None:
    from pyspark.sql import functions as F

    spark, settings = shared
    first = json.loads(run_cli("ingest", str(wine_csv), "--table", "raw.wine", "--output", "json").stdout)
    table = lspark.table_name(settings, "raw.wine")
    from lakehouse.tables import ancestors

    before = load_catalog(settings).load_table(("raw", "wine"))
    main_before = len(list(ancestors(before, before.current_snapshot().snapshot_id)))
    seed = lspark.read_table(spark, settings, "raw.wine", snapshot_id=first["snapshot_id"]).limit(5).cache()
    seed.count()
    spark_commits, landings = 8, 4
    files = [shifted_wine(wine_csv, 0.01 * (i + 1), first_id=10_000 * (i + 1)) for i in range(landings)]
    errors: list[BaseException] = []

    def spark_writer() -> None:
        try:
            for k in range(spark_commits):
                seed.withColumn("id", F.col("id") + 1_000_000 * (k + 1)).writeTo(table).append()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    writer = threading.Thread(target=spark_writer)
    writer.start()
    landed = [json.loads(run_cli("ingest", str(f), "--table", "raw.wine", "--output", "json").stdout) for f in files]
    writer.join(timeout=600)
    assert not writer.is_alive() and not errors, errors

    t = load_catalog(settings).load_table(("raw", "wine"))
    ids = t.scan().to_arrow().column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 178 * (1 + landings) + 5 * spark_commits
    main = list(ancestors(t, t.current_snapshot().snapshot_id))
    # One snapshot on main per commit since: each landing, each Spark append.
    assert len(main) == main_before + landings + spark_commits
    published = {s.snapshot_id for s in main}
    assert all(result["snapshot_id"] in published for result in landed)
    assert sum(1 for s in main if s.summary.additional_properties.get("spark.app.id")) == spark_commits
    # Spark sees the same table.
    assert spark.sql(f"SELECT count(*) AS n FROM {table}").first().n == len(ids)


# On PostgreSQL only (the compose stack's catalog): the procedures are catalog-independent Java code.
@pytest.mark.parametrize("shared", ["postgres"], indirect=True)
def test_spark_maintenance_keeps_pinned_snapshots_and_retrain_identical(shared: tuple[Any, Settings], wine_csv: Path) -> None:
    spark, settings = shared
    run_cli("ingest", str(wine_csv), "--table", "raw.wine")
    run_cli("ingest", str(shifted_wine(wine_csv, 1.5)), "--table", "raw.wine")
    trained = json.loads(run_cli("train", "wine_classifier", "--output", "json").stdout)
    pinned = trained["inputs"][0]["snapshot_id"]
    run_cli("ingest", str(shifted_wine(wine_csv, 1.6, first_id=3000)), "--table", "raw.wine")

    name = settings.catalog.name
    ident = "raw.wine"
    rewritten = spark.sql(f"CALL `{name}`.system.rewrite_data_files(table => '{ident}', options => map('min-input-files', '2'))").first()
    assert rewritten.rewritten_data_files_count >= 2 and rewritten.added_data_files_count >= 1
    spark.sql(
        f"CALL `{name}`.system.expire_snapshots(table => '{ident}', older_than => TIMESTAMP '{(datetime.now(timezone.utc) + timedelta(days=1)).strftime('%Y-%m-%d %H:%M:%S')}', retain_last => 1)"
    ).first()

    t = load_catalog(settings).load_table(("raw", "wine"))
    kept = {s.snapshot_id for s in t.snapshots()}
    assert pinned in kept and t.current_snapshot().snapshot_id in kept
    assert len(kept) < 5  # the unpinned history was expired (3 landings and the rewrite made 4+ on main)
    assert t.refs()[f"model/wine/{trained['version']}"].snapshot_id == pinned
    again = json.loads(run_cli("retrain", f"wine:{trained['version']}", "--output", "json").stdout)
    assert again["data"]["identical"] and again["metrics"]["identical"] and again["artifact"]["identical"], again
