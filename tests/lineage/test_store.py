"""The lineage tables: their creation and layout, and the Arrow rows `Columns` makes of events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pyarrow as pa
import pytest

from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
from lakehouse.exceptions import InvalidTimeError
from lakehouse.tables import NO_REBASE
from lineage import events as ev
from lineage import store

UTC = timezone.utc


# -- the tables ---------------------------------------------------------------------------------------


def test_ensure_tables_creates_each_table_once_with_its_layout() -> None:
    settings = load_settings()
    catalog = load_catalog(settings)
    tables = store.ensure_tables(catalog, settings)
    assert set(tables) == {store.EVENTS, store.RUNS, store.RUN_DATASETS, store.JOBS, store.DEAD_LETTERS}
    assert {".".join(i) for i in catalog.list_tables("lineage")} == {f"lineage.{t}" for t in tables}
    for short, table in tables.items():
        assert table.schema().as_arrow() == store.arrow_schema(short)
        (part,) = table.spec().fields
        day_of = {store.DEAD_LETTERS: "received_time", store.JOBS: "first_seen"}.get(short, "event_time")
        assert (part.name, str(part.transform)) == (f"{day_of}_day", "day")
        props = table.properties
        assert props["write.parquet.compression-codec"] == "zstd" and table.metadata.format_version == 2
        assert all(props[k] == v for k, v in NO_REBASE.items())  # racing writers retry themselves
        # The JSON text columns carry no min/max statistics; the others keep the default.
        no_metrics = {k.rsplit(".", 1)[-1] for k, v in props.items() if k.startswith("write.metadata.metrics.column.") and v == "none"}
        assert no_metrics == {f.name for f in table.schema().fields if f.name in store.JSON_COLUMNS}
    assert tables[store.EVENTS].properties.get("write.metadata.metrics.column.payload") == "none"

    # Again: the same tables, nothing new (their metadata is not rewritten either).
    locations = {short: t.metadata_location for short, t in tables.items()}
    again = store.ensure_tables(catalog, settings)
    assert {short: t.metadata_location for short, t in again.items()} == locations


def test_missing_only_lists_once_and_makes_just_what_is_missing() -> None:
    settings = load_settings(overrides={"lineage": {"namespace": "lin2"}})
    catalog = load_catalog(settings)
    assert set(store.ensure_tables(catalog, settings, missing_only=True)) == set(store._schemas())  # a fresh store
    assert store.ensure_tables(catalog, settings, missing_only=True) == {}
    catalog.drop_table(("lin2", store.JOBS))
    assert set(store.ensure_tables(catalog, settings, missing_only=True)) == {store.JOBS}
    assert catalog.table_exists(("lin2", store.JOBS))


# -- times --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "micros"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), 0),
        (datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC), 1_000_005),
        (datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), -1_000_000),
        (datetime(2026, 11, 26, 19, 0, tzinfo=timezone(timedelta(hours=1))), 1_795_716_000_000_000),  # 18:00 UTC
    ],
)
def test_epoch_us(when: datetime, micros: int) -> None:
    assert store.epoch_us(when) == micros


# -- rows of events -----------------------------------------------------------------------------------


def _event(run_id: str = "r1", job: str = "etl.load", **more: Any) -> dict[str, Any]:
    return {**ev.run_event(producer="p", event_type="COMPLETE", run_id=run_id, job_namespace="ns", job_name=job), **more}


def _ds(name: str, version: str | None = None, **facets: Any) -> dict[str, Any]:
    own = dict(facets)
    if version is not None:
        own["version"] = {"datasetVersion": version}
    return {"namespace": "file:///w", "name": name, "facets": own}


def test_an_event_becomes_a_row_in_every_table() -> None:
    parent = {"run": {"runId": "parent-run"}, "job": {"namespace": "airflow", "name": "dag.task"},
              "root": {"run": {"runId": "root-run"}, "job": {"namespace": "airflow", "name": "dag"}}}
    event = _event(
        eventTime="2026-11-26T19:00:00+01:00",
        inputs=[_ds("/w/raw/a", "11", symlinks={"identifiers": [{"namespace": "tidemark", "name": "raw.a", "type": "TABLE"}]})],
        outputs=[{**_ds("/w/raw/b", "12"), "outputFacets": {"outputStatistics": {"rowCount": 3}}}],
    )
    event["run"]["facets"] = {"parent": parent, "errorMessage": {"message": "boom"}}
    cols = store.Columns()
    job_key, registry = cols.add(event, "e1", 2, 40)
    assert job_key == ("ns", "etl.load") and registry is False
    out = cols.tables()
    assert {short: t.schema for short, t in out.items()} == {short: store.arrow_schema(short) for short in store.ROW_TABLES}

    (row,) = out[store.EVENTS].to_pylist()
    assert row["event_id"] == "e1" and row["event_time"] == datetime(2026, 11, 26, 18, 0, tzinfo=UTC)
    assert (row["kafka_partition"], row["kafka_offset"], row["parent_run_id"], row["producer"]) == (2, 40, "parent-run", "p")
    assert orjson.loads(row["payload"]) == event  # the event itself when no bytes were given
    (run,) = out[store.RUNS].to_pylist()
    assert (run["parent_job_name"], run["root_run_id"], run["error_message"]) == ("dag.task", "root-run", "boom")
    assert orjson.loads(run["run_facets"]) == event["run"]["facets"]
    (job,) = out[store.JOBS].to_pylist()
    assert (job["job_name"], job["first_run_id"], job["first_seen"]) == ("etl.load", "r1", row["event_time"])
    datasets = out[store.RUN_DATASETS].to_pylist()
    assert [(d["direction"], d["dataset_name"], d["table_name"], d["version"]) for d in datasets] == [
        ("input", "/w/raw/a", "raw.a", "11"),
        ("output", "/w/raw/b", None, "12"),
    ]
    # A dataset's own facets and its input/output facets are stored apart (issue 17).
    assert set(orjson.loads(datasets[1]["facets"])) == {"version"}
    assert set(orjson.loads(datasets[1]["output_facets"])) == {"outputStatistics"}
    assert (datasets[0]["symlink_namespace"], datasets[0]["symlink_name"]) == ("tidemark", "raw.a")
    assert (run["parent_job_namespace"], run["root_job_namespace"], run["root_job_name"]) == ("airflow", "airflow", "dag")
    assert row["event_kind"] == "RunEvent"
    assert {d["event_id"] for d in datasets} == {"e1"} and all(d["run_id"] == "r1" for d in datasets)


def test_many_events_keep_their_datasets_and_payload_bytes() -> None:
    cols = store.Columns()
    payloads = []
    for i in range(5):
        event = _event(run_id=f"r{i}", inputs=[_ds(f"/w/d{j}") for j in range(i % 3)])
        payload = orjson.dumps(event) + "  é".encode()  # the bytes as received, kept as they are
        payloads.append(payload)
        cols.add(event, f"e{i}", 0, i, payload=payload, event_time=datetime(2026, 1, 1, tzinfo=UTC))
    out = cols.tables()
    assert [p.encode() for p in out[store.EVENTS].column("payload").to_pylist()] == payloads
    assert out[store.RUN_DATASETS].column("event_id").to_pylist() == ["e1", "e2", "e2", "e4"]
    assert cols.dataset_event == [1, 2, 2, 4] and cols.count == 5
    assert set(out[store.EVENTS].column("event_time").to_pylist()) == {datetime(2026, 1, 1, tzinfo=UTC)}


def test_registry_and_drift_facets_are_flagged() -> None:
    cols = store.Columns()
    for facet in sorted(store.REGISTRY_FACETS):
        where = "inputs" if facet == "tidemark_drift" else "outputs"
        key = "inputFacets" if facet == "tidemark_drift" else "facets"
        event = _event(**{where: [{"namespace": "n", "name": "m", key: {facet: {}}}]})
        assert cols.add(event, facet, None, None)[1] is True
    assert cols.add(_event(outputs=[_ds("m", other={})]), "plain", None, None)[1] is False


def test_an_event_without_a_job_is_stored_under_the_empty_job() -> None:
    cols = store.Columns()
    event = _event()
    event["job"] = {}
    assert cols.add(event, "e", None, None)[0] == ("", "")
    out = cols.tables()
    assert out[store.EVENTS].column("job_name").to_pylist() == [None]
    assert out[store.JOBS].column("job_name").to_pylist() == [""]  # required in `jobs`


def test_a_value_of_the_wrong_type_is_stored_as_text() -> None:
    cols = store.Columns()
    cols.add(_event(run_id="r", producer=42, eventType=7), "e", None, None)
    (row,) = cols.tables()[store.EVENTS].to_pylist()
    assert (row["producer"], row["event_type"]) == ("42", "7")


def test_a_bad_event_is_refused_whole_and_the_columns_stay_aligned() -> None:
    cols = store.Columns()
    cols.add(_event(run_id="good1", inputs=[_ds("/w/a")]), "g1", None, None)
    for bad in (
        _event(eventTime="2026-11-26T18:00:00"),  # no zone: refused as everywhere else
        _event(eventTime="yesterday"),
    ):
        with pytest.raises(InvalidTimeError):
            cols.add(bad, "bad", None, None)
    cols.add(_event(run_id="good2", outputs=[_ds("/w/b")]), "g2", None, None)
    # A malformed facet never drops the rest of the event (issue 17): it is kept as sent, and
    # identity, version and type come from what is well-formed.
    odd = _event(run_id="odd", inputs=[{"namespace": "n", "name": "x", "facets": "not an object"},
                                       {"namespace": "n", "name": "y", "facets": {"version": "v", "symlinks": [1], "datasetType": 3}}])
    odd["run"]["facets"] = {"parent": "not an object"}
    odd["job"]["facets"] = []
    cols.add(odd, "o1", None, None)
    out = cols.tables()
    assert out[store.EVENTS].column("event_id").to_pylist() == ["g1", "g2", "o1"]
    assert out[store.RUN_DATASETS].column("event_id").to_pylist() == ["g1", "g2", "o1", "o1"]
    odd_rows = out[store.RUN_DATASETS].to_pylist()[2:]
    assert [(r["dataset_name"], r["version"], r["table_name"], r["facets"]) for r in odd_rows] == [
        ("x", None, None, '"not an object"'), ("y", None, None, '{"version":"v","symlinks":[1],"datasetType":3}')]
    assert cols.count == 3


def test_no_events_make_empty_tables_of_each_schema() -> None:
    out = store.Columns().tables()
    assert all(out[short].num_rows == 0 and out[short].schema == store.arrow_schema(short) for short in store.ROW_TABLES)


def test_text_columns_hold_the_exact_bytes() -> None:
    values = [b'{"a":1}', "{\"name\":\"caf\u00e9 \u2603\"}".encode(), b"{}", b""]
    arr = store._utf8_array(values)
    assert arr.type == pa.string() and [v.encode() for v in arr.to_pylist()] == values
    assert store._utf8_array([]).to_pylist() == []
