"""Walks over datasets without a version (issue 17): a read sees the latest write done before its
run started; versioned reads keep exact snapshot matching; symlink names find the same node;
JobEvents' declared edges take part; `--as-of` still holds."""

from __future__ import annotations

import itertools
import json
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from lakehouse.catalog import load_catalog
from lineage.consumer import ConsumeReport, LineageWriter
from lineage.graph import Node, connect_for_walk, walk
from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def _ds(ns: str, name: str, version: str | None = None, symlink: tuple[str, str] | None = None) -> dict[str, Any]:
    facets: dict[str, Any] = {}
    if version is not None:
        facets["version"] = {"datasetVersion": version}
    if symlink is not None:
        facets["symlinks"] = {"identifiers": [{"namespace": symlink[0], "name": symlink[1], "type": "TABLE"}]}
    return {"namespace": ns, "name": name, "facets": facets}


def _run(run_id: str, job: str, start: str, end: str, inputs: list[Any], outputs: list[Any]) -> list[dict[str, Any]]:
    """A START and a COMPLETE event of one run (times are minutes past 10:00 on one day)."""
    base = {"producer": "https://example.test/producer", "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": run_id}, "job": {"namespace": "airflow", "name": job}, "inputs": inputs, "outputs": outputs}
    return [{**base, "eventType": "START", "eventTime": f"2026-11-20T10:{start}:00Z"},
            {**base, "eventType": "COMPLETE", "eventTime": f"2026-11-20T10:{end}:00Z"}]


def _store(settings: Any, events: list[dict[str, Any]]) -> None:
    writer = LineageWriter(settings, load_catalog(settings))
    values = [json.dumps(e).encode() for e in events]
    # Offsets go on rising across calls, as on a topic (a writer skips offsets it already stored).
    offsets = [next(_OFFSETS) for _ in values]
    writer.write_columns([0] * len(values), offsets, values, ConsumeReport())


_OFFSETS = itertools.count()


BQ = [
    # The issue's example: three Airflow tasks, no dataset carries a version.
    *_run("00000000-0000-4000-8000-000000000001", "bq.upload", "00", "01",
          [_ds("gs://bucket", "copied.csv")], [_ds("bigquery", "project.test.upload")]),
    *_run("00000000-0000-4000-8000-000000000002", "bq.copy", "02", "03",
          [_ds("bigquery", "project.test.upload")], [_ds("bigquery", "project.test.upload_cp")]),
    *_run("00000000-0000-4000-8000-000000000003", "bq.download", "04", "05",
          [_ds("bigquery", "project.test.upload_cp")], [_ds("gs://bucket", "download.csv")]),
]


def test_the_issue_repro_walks_every_hop_through_the_cli(settings: Any) -> None:
    _store(settings, BQ)
    out = run_cli("lineage", "downstream", "dataset:gs://bucket:copied.csv", "--depth", "4", "--output", "json").stdout
    rows = json.loads(out)
    assert {(r["depth"], r["job_name"]) for r in rows} == {(1, "bq.upload"), (2, "bq.copy"), (3, "bq.download")}
    up = json.loads(run_cli("lineage", "upstream", "dataset:gs://bucket:download.csv", "--depth", "4", "--output", "json").stdout)
    assert {r["job_name"] for r in up} == {"bq.upload", "bq.copy", "bq.download"}


def test_a_read_sees_the_latest_write_before_its_run_started(settings: Any) -> None:
    d = [_ds("hive", "db.daily")]
    _store(settings, [
        *_run("00000000-0000-4000-8000-00000000000a", "write", "00", "01", [], d),   # write 1, done 10:01
        *_run("00000000-0000-4000-8000-00000000000b", "read", "02", "03", d, []),    # sees write 1
        *_run("00000000-0000-4000-8000-00000000000c", "write", "04", "06", [], d),   # write 2, done 10:06
        *_run("00000000-0000-4000-8000-00000000000d", "read", "05", "07", d, []),    # started 10:05: still write 1
        *_run("00000000-0000-4000-8000-00000000000e", "read", "08", "09", d, []),    # sees write 2
    ])
    con = connect_for_walk(settings)

    def up(run: str) -> set[str]:
        return {r["run_id"][-1] for r in walk(con, Node("run", run), "upstream", 2) if r["depth"] == 2}

    assert up("00000000-0000-4000-8000-00000000000b") == {"a"}
    assert up("00000000-0000-4000-8000-00000000000d") == {"a"}
    assert up("00000000-0000-4000-8000-00000000000e") == {"c"}
    down = {r["run_id"][-1] for r in walk(con, Node("run", "00000000-0000-4000-8000-00000000000a"), "downstream", 2)}
    assert down == {"a", "b", "d"}
    down = {r["run_id"][-1] for r in walk(con, Node("run", "00000000-0000-4000-8000-00000000000c"), "downstream", 2)}
    assert down == {"c", "e"}


def test_versioned_reads_keep_exact_snapshots_and_symlinks_name_one_node(settings: Any) -> None:
    spark_out = _ds("file", "/warehouse/x", symlink=("file:/warehouse", "default.x"))
    _store(settings, [
        *_run("00000000-0000-4000-8000-000000000011", "spark.write", "00", "01", [], [_ds("file", "/warehouse/x", "5"), spark_out]),
        *_run("00000000-0000-4000-8000-000000000012", "spark.write", "02", "03", [], [_ds("file", "/warehouse/x", "6")]),
        # reads snapshot 5 although 6 is newer: exact matching
        *_run("00000000-0000-4000-8000-000000000013", "reader.v5", "04", "05", [_ds("file", "/warehouse/x", "5")], []),
        # names the table only by its symlink identity
        *_run("00000000-0000-4000-8000-000000000014", "reader.sym", "04", "05", [_ds("file:/warehouse", "default.x")], []),
    ])
    con = connect_for_walk(settings)
    ups = {r["run_id"][-2:] for r in walk(con, Node("run", "00000000-0000-4000-8000-000000000013"), "upstream", 2)}
    assert ups == {"13", "11"}
    ups = {r["run_id"][-2:] for r in walk(con, Node("run", "00000000-0000-4000-8000-000000000014"), "upstream", 2)}
    assert ups == {"14", "12"}  # the latest write before it, found through the symlink
    # Three names, one node.
    for text in ("default.x", "dataset:file:/warehouse/x", "dataset:file:/warehouse:default.x"):
        readers = {r["run_id"][-2:] for r in walk(con, Node.parse(text), "downstream", 1)}
        assert readers == {"13", "14"}, text


def test_declared_job_edges_and_as_of(settings: Any) -> None:
    _store(settings, _run("00000000-0000-4000-8000-000000000021", "load", "00", "01", [], [_ds("pg", "raw.orders")]))
    time.sleep(0.05)
    then = datetime.now(timezone.utc)
    time.sleep(0.05)
    job_event = {"eventTime": "2026-11-20T10:02:00Z", "producer": "https://example.test/p",
                 "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent",
                 "job": {"namespace": "dbt", "name": "orders_model"},
                 "inputs": [_ds("pg", "raw.orders")], "outputs": [_ds("pg", "mart.orders")]}
    _store(settings, [job_event, *_run("00000000-0000-4000-8000-000000000022", "report", "03", "04", [_ds("pg", "mart.orders")], [])])
    con = connect_for_walk(settings)
    rows = walk(con, Node("run", "00000000-0000-4000-8000-000000000022"), "upstream", 3)
    assert [(r["depth"], r["run_id"]) for r in rows if r["direction"] == "output"] == [
        (2, "job:dbt:orders_model"), (3, "00000000-0000-4000-8000-000000000021")]
    # As the store stood before the JobEvent: the report run was not there either.
    with pytest.raises(Exception, match="nothing in the lineage store"):
        walk(connect_for_walk(settings, then), Node("run", "00000000-0000-4000-8000-000000000022"), "upstream", 3)
    now = walk(con, Node.parse("dataset:pg:raw.orders"), "downstream", 3)
    assert {r["run_id"] for r in now} == {"job:dbt:orders_model", "00000000-0000-4000-8000-000000000022"}
    with pytest.raises(Exception, match="nothing in the lineage store"):
        walk(connect_for_walk(settings, then), Node.parse("dataset:pg:raw.orders"), "downstream", 3)


def test_edges_cached_per_store_state_and_a_damaged_cache_is_rebuilt(settings: Any) -> None:
    _store(settings, BQ[:2])
    node = Node.parse("dataset:gs://bucket:copied.csv")
    first = walk(connect_for_walk(settings), node, "downstream", 4)
    cache = settings.home / "cache" / "walk"
    (edges,) = cache.glob("walk-edges-*.parquet")
    assert walk(connect_for_walk(settings), node, "downstream", 4) == first  # read from the file
    edges.write_bytes(b"not parquet")
    assert walk(connect_for_walk(settings), node, "downstream", 4) == first  # worked out again
    # A new commit is a new state: new edges, which see the new runs.
    _store(settings, BQ[2:])
    later = walk(connect_for_walk(settings), node, "downstream", 4)
    assert {r["job_name"] for r in later} == {"bq.upload", "bq.copy", "bq.download"}
    assert len(list(cache.glob("walk-edges-*.parquet"))) == 2


def test_a_store_written_before_issue_17_gets_the_new_columns_and_still_walks(settings: Any) -> None:
    """Tables an older Tidemark created (no symlink, facet-split, kind or parent-job columns):
    the consumer adds the columns, old rows read them as null, and walks cross old and new files."""
    import pyarrow as pa
    from pyiceberg.schema import Schema

    from lineage import store

    catalog = load_catalog(settings)
    ns = settings.lineage.namespace
    catalog.create_namespace(ns)
    old_fields = {
        store.RUN_DATASETS: 13, store.EVENTS: 11, store.RUNS: 11, store.JOBS: 5, store.DEAD_LETTERS: 6,
    }
    for short, keep in old_fields.items():
        full = store._schemas()[short]
        catalog.create_table((ns, short), schema=Schema(*full.fields[:keep]), properties=dict(store.NO_REBASE))
    # One old row: BQ.upload wrote project.test.upload (no symlink columns in its file).
    old = catalog.load_table((ns, store.RUN_DATASETS))
    when = datetime(2026, 11, 20, 10, 1, tzinfo=timezone.utc)
    old.append(pa.Table.from_pylist([{
        "event_id": "ab" * 32, "event_time": when, "event_type": "COMPLETE", "run_id": "00000000-0000-4000-8000-000000000001",
        "job_namespace": "airflow", "job_name": "bq.upload", "direction": "output", "dataset_namespace": "bigquery",
        "dataset_name": "project.test.upload", "table_name": None, "dataset_type": None, "version": None, "facets": "{}"}],
        schema=old.schema().as_arrow()))
    _store(settings, BQ[2:])  # the new writer: bq.copy reads project.test.upload
    fields = {f.name for f in catalog.load_table((ns, store.RUN_DATASETS)).schema().fields}
    assert {"symlink_namespace", "symlink_name", "input_facets", "output_facets"} <= fields
    assert "event_kind" in {f.name for f in catalog.load_table((ns, store.EVENTS)).schema().fields}
    rows = walk(connect_for_walk(settings), Node.parse("dataset:bigquery:project.test.upload_cp"), "upstream", 3)
    assert {r["job_name"] for r in rows} == {"bq.copy", "bq.upload"}
