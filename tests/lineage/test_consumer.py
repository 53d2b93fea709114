"""The consumer stores each event exactly once, keeps bad input as dead letters, and resumes from Iceberg."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lakehouse.catalog import load_catalog
from lineage import events as ev
from lineage import store
from lineage.consumer import OFFSETS, LineageWriter, consume, stored_offsets
from lineage.transport import KafkaTransport

pytestmark = pytest.mark.integration


def _event(i: int, run_id: str | None = None) -> dict[str, Any]:
    return ev.run_event(
        producer="tests",
        event_type="COMPLETE",
        run_id=run_id or ev.new_run_id(),
        job_namespace="tests",
        job_name=f"job.{i % 3}",
        event_time=f"2026-11-26T10:00:{i % 60:02d}.000000Z",
    )


def _send_raw(settings: Any, values: list[bytes]) -> None:
    from lineage.kafka import ensure_topic, producer

    ensure_topic(settings)
    p = producer(settings)
    for v in values:
        p.send(settings.kafka.topic, key=b"k", value=v)
    p.flush(10)
    p.close()


def _table_rows(settings: Any, short: str) -> list[dict[str, Any]]:
    t = load_catalog(settings).load_table((settings.lineage.namespace, short))
    return t.scan().to_arrow().to_pylist() if t.current_snapshot() else []


def test_each_event_once_even_when_sent_twice_and_consumed_twice(settings: Any) -> None:
    tr = KafkaTransport(settings)
    sent = [_event(i) for i in range(30)]
    for e in sent + sent[:10]:  # the first ten go out twice (a producer retry, a replay)
        tr.emit(e)
    tr.close()
    first = consume(settings, once=True)
    assert first.records == 40 and first.stored_events == 30 and first.duplicates == 10
    again = consume(settings, once=True)
    assert again.records == 0  # resumed from the offsets in the snapshot summary
    rows = _table_rows(settings, store.EVENTS)
    assert sorted(r["event_id"] for r in rows) == sorted(ev.event_id(e) for e in sent)
    assert {r["job_name"] for r in rows} == {"job.0", "job.1", "job.2"}
    assert json.loads(rows[0]["payload"])["run"]["runId"] == rows[0]["run_id"]


def test_offsets_live_in_the_snapshot_summary(settings: Any) -> None:
    tr = KafkaTransport(settings)
    for i in range(12):
        tr.emit(_event(i))
    tr.close()
    consume(settings, once=True)
    table = load_catalog(settings).load_table((settings.lineage.namespace, store.EVENTS))
    recorded = json.loads(table.current_snapshot().summary.additional_properties[OFFSETS])
    assert recorded["topic"] == settings.kafka.topic
    assert sum(recorded["offsets"].values()) == 12
    assert stored_offsets(table, settings.kafka.topic, recorded["log"]) == {int(p): o for p, o in recorded["offsets"].items()}


def test_crash_between_the_two_table_commits_replays_only_what_is_missing(settings: Any) -> None:
    catalog = load_catalog(settings)
    tr = KafkaTransport(settings)
    sent = [_event(i) for i in range(8)]
    for e in sent:
        tr.emit(e)
    tr.close()
    # Simulate a consumer that committed run_datasets and died before committing events.
    writer = LineageWriter(settings, catalog)
    from kafka import TopicPartition

    from lineage.kafka import consumer as make_consumer

    kc = make_consumer(settings, None)
    tps = [TopicPartition(settings.kafka.topic, p) for p in kc.partitions_for_topic(settings.kafka.topic)]
    kc.assign(tps)
    kc.seek_to_beginning(*tps)
    partitions: list[int] = []
    positions: list[int] = []
    values: list[bytes] = []
    for _ in range(20):
        for tp, recs in kc.poll(500).items():
            for r in recs:
                partitions.append(tp.partition)
                positions.append(r.offset)
                values.append(r.value)
        if len(values) == 8:
            break
    kc.close()
    batch = writer.decode(partitions, positions, values)
    offsets: dict[int, int] = {}
    for p, o in zip(partitions, positions):
        offsets[p] = max(offsets.get(p, 0), o + 1)
    for short in (store.RUN_DATASETS, store.RUNS):  # ...and died before jobs and events
        writer._commit_rows(short, batch, offsets)
    assert _table_rows(settings, store.EVENTS) == []

    report = consume(settings, once=True)
    assert report.stored_events == 8
    assert len(_table_rows(settings, store.EVENTS)) == 8
    # runs had them already: no second copy; jobs got theirs on the replay.
    assert sorted(r["event_id"] for r in _table_rows(settings, store.RUNS)) == sorted(ev.event_id(e) for e in sent)
    assert {r["job_name"] for r in _table_rows(settings, store.JOBS)} == {"job.0", "job.1", "job.2"}
    t = catalog.load_table((settings.lineage.namespace, store.RUN_DATASETS))
    assert stored_offsets(t, settings.kafka.topic, writer.log) == offsets


def test_bad_input_goes_to_dead_letters_and_good_events_around_it_are_stored(settings: Any) -> None:
    good = [_event(i) for i in range(3)]
    bad = [
        b"\xff\xfe not utf-8",
        b"{not json",
        b"[1, 2, 3]",
        json.dumps({"eventType": "START"}).encode(),
        json.dumps({**good[0], "eventTime": "yesterday"}).encode(),
        json.dumps({**good[0], "run": {}}).encode(),
        b"",
    ]
    values = [json.dumps(good[0]).encode(), *bad[:4], json.dumps(good[1]).encode(), *bad[4:], json.dumps(good[2]).encode()]
    _send_raw(settings, values)
    report = consume(settings, once=True)
    assert report.stored_events == 3 and report.dead_letters == len(bad)
    dead = _table_rows(settings, store.DEAD_LETTERS)
    assert sorted(d["raw"] for d in dead) == sorted(bad)
    reasons = " | ".join(d["reason"] for d in dead)
    for expected in ("not UTF-8", "invalid JSON", "not a JSON object", "missing required field", "not an ISO-8601 time", "run.runId is missing"):
        assert expected in reasons
    assert all(d["topic"] == settings.kafka.topic and d["kafka_offset"] is not None for d in dead)


def test_run_datasets_rows_carry_identity_and_snapshot(settings: Any) -> None:
    ds = ev.iceberg_dataset(
        producer="p", catalog_name="tidemark", catalog_type="sql", table="raw.x", location="file:///w/raw/x",
        snapshot_id=42, direction="output", row_count=5,
    )
    e = ev.run_event(producer="p", event_type="COMPLETE", run_id=ev.new_run_id(), job_namespace="n", job_name="j", outputs=[ds])
    tr = KafkaTransport(settings)
    tr.emit(e)
    tr.close()
    consume(settings, once=True)
    (row,) = _table_rows(settings, store.RUN_DATASETS)
    assert (row["direction"], row["dataset_namespace"], row["dataset_name"], row["table_name"], row["version"]) == (
        "output", "file", "/w/raw/x", "raw.x", "42",
    )
    # Output facets stay apart from the dataset facets (issue 17): which side a facet came from is kept.
    assert json.loads(row["output_facets"])["outputStatistics"]["rowCount"] == 5
    assert "outputStatistics" not in json.loads(row["facets"]) and "symlinks" in json.loads(row["facets"])
    assert row["input_facets"] is None
    assert (row["symlink_namespace"], row["symlink_name"]) == (settings.catalog.name, f"{settings.catalog.name}.raw.x")


def test_compaction_and_expiry_keep_rows_and_the_offsets_record(settings: Any) -> None:
    tr = KafkaTransport(settings)
    sent = [_event(i) for i in range(40)]
    for chunk in range(10):  # ten small commits: ten small files per table
        for e in sent[chunk * 4 : chunk * 4 + 4]:
            tr.emit(e)
        consume(settings, once=True)
    tr.close()
    catalog = load_catalog(settings)
    events = catalog.load_table((settings.lineage.namespace, store.EVENTS))
    before = stored_offsets(events, settings.kafka.topic, LineageWriter(settings, catalog).log)
    assert len(list(events.scan().plan_files())) >= 10
    writer = LineageWriter(settings, catalog)
    assert writer.compact(min_files=8, keep_snapshots_s=0) >= 1
    events = catalog.load_table((settings.lineage.namespace, store.EVENTS))
    assert len(list(events.scan().plan_files())) == 1
    assert len(events.snapshots()) == 1  # everything older expired
    assert stored_offsets(events, settings.kafka.topic, writer.log) == before
    assert sorted(r["event_id"] for r in _table_rows(settings, store.EVENTS)) == sorted(ev.event_id(e) for e in sent)
    assert consume(settings, once=True).records == 0  # resumes after the compaction, replays nothing


def test_two_consumers_racing_on_the_same_tables_store_each_event_once(settings: Any) -> None:
    """Two writers (two consumers with their own partitions) commit to the same tables; one commits
    a whole batch while the other is between loading a table and appending to it. The second's
    commit is refused (the table's base moved), retried on the new state, and nothing is doubled:
    not the event both batches carry (the same bytes on two partitions), not a job, not an offset."""
    from lineage.consumer import ConsumeReport

    shared = ev.serialize(_event(0, run_id="shared-run"))
    a_values = [shared, *(ev.serialize(_event(i)) for i in range(1, 6))]
    b_values = [shared, *(ev.serialize(_event(i)) for i in range(6, 11))]
    a = LineageWriter(settings, load_catalog(settings))
    b = LineageWriter(settings, load_catalog(settings))
    commit = a._commit
    raced: list[str] = []

    def commit_with_b_in_between(short: str, rows: Any, offsets: Any) -> None:
        def rows_then_b_commits(table: Any) -> Any:
            if not raced and short in (store.RUNS, store.EVENTS):
                raced.append(short)
                b.write_columns([1] * len(b_values), list(range(len(b_values))), b_values, ConsumeReport())
            return rows(table)

        commit(short, rows_then_b_commits, offsets)

    a._commit = commit_with_b_in_between  # type: ignore[method-assign]
    report = ConsumeReport()
    a.write_columns([0] * len(a_values), list(range(len(a_values))), a_values, report)
    assert raced == [store.RUNS]
    assert report.stored_events == 5 and report.duplicates == 1  # b had stored the shared one meanwhile
    events = _table_rows(settings, store.EVENTS)
    expected = sorted({ev.event_id(v) for v in a_values + b_values})
    assert sorted(r["event_id"] for r in events) == expected
    assert sorted(r["event_id"] for r in _table_rows(settings, store.RUNS)) == expected
    jobs = [(r["job_namespace"], r["job_name"]) for r in _table_rows(settings, store.JOBS)]
    assert sorted(jobs) == sorted(set(jobs))
    table = load_catalog(settings).load_table((settings.lineage.namespace, store.EVENTS))
    assert stored_offsets(table, settings.kafka.topic, a.log) == {0: 6, 1: 6}


def test_offsets_are_the_highest_any_snapshot_recorded(settings: Any) -> None:
    """A consumer holding some partitions records only what it knows; reading back takes, per
    partition, the highest offset of any snapshot, so no consumer hides another's progress."""
    catalog = load_catalog(settings)
    writer = LineageWriter(settings, catalog)
    table = catalog.load_table((settings.lineage.namespace, store.EVENTS))
    import pyarrow as pa

    empty = pa.Table.from_pylist([], schema=store.arrow_schema(store.EVENTS))
    for offsets in ({"0": 10, "1": 4}, {"1": 7}, {"0": 3, "2": 5}):
        record = {"topic": settings.kafka.topic, "log": writer.log, "offsets": offsets}
        table.append(empty, snapshot_properties={OFFSETS: json.dumps(record)})
    assert stored_offsets(table, settings.kafka.topic, writer.log) == {0: 10, 1: 7, 2: 5}
    # Another topic's or another log's records (an older local broker) count for nothing.
    assert stored_offsets(table, "other-topic", writer.log) == {}


def test_consuming_leaves_the_garbage_collector_as_it_found_it(settings: Any) -> None:
    """The consumer turns automatic GC off while it runs (it collects after each batch itself)."""
    import gc

    tr = KafkaTransport(settings)
    tr.emit(_event(0))
    tr.close()
    assert gc.isenabled()
    assert consume(settings, once=True).stored_events == 1
    assert gc.isenabled()
    gc.disable()
    try:
        consume(settings, once=True)
        assert not gc.isenabled()
    finally:
        gc.enable()
