"""The outbox: jobs go on while Kafka is away, and every event arrives later, exactly once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
from lineage import broker
from lineage import run as lineage_run
from lineage.consumer import consume
from lineage.outbox import Outbox, flush
from tests.conftest import run_cli
from tests.faults.report import FaultReport

pytestmark = pytest.mark.integration


def _stored(settings: Any) -> list[dict[str, Any]]:
    t = load_catalog(settings).load_table((settings.lineage.namespace, "events"))
    return t.scan().to_arrow().to_pylist() if t.current_snapshot() else []


def _jobs(settings: Any, n: int, tag: str) -> None:
    for i in range(n):
        with lineage_run(f"job.{tag}.{i}", settings=settings, parameters={"i": i}):
            pass


def test_events_emitted_while_the_broker_is_down_arrive_once_it_is_back(isolated_env: Path, fault_report: FaultReport) -> None:
    settings = load_settings(overrides={"kafka": {"connect_timeout_s": 2}})
    try:
        broker.start(settings)
        _jobs(settings, 5, "before")
        assert Outbox(settings).pending() == 0
        assert consume(settings, once=True).stored_events == 10

        broker.stop(settings)
        _jobs(settings, 7, "down")  # each job goes on; its events wait in the outbox
        before = {"events": len(_stored(settings)), "outbox": Outbox(settings).pending()}
        assert before == {"events": 10, "outbox": 14}
        assert flush(settings).pending == 14  # still down: nothing lost, nothing sent

        broker.start(settings)  # a new (empty) log: the local broker keeps it in memory only
        report = flush(settings)
        assert (report.delivered, report.pending) == (14, 0)
        _jobs(settings, 2, "after")
        consume(settings, once=True)
        rows = _stored(settings)
        jobs = {json.loads(r["payload"])["job"]["name"] for r in rows}
        # Consuming again, from the same log, adds nothing.
        again = consume(settings, once=True).stored_events
        after = {"events": len(rows), "distinct": len({r["event_id"] for r in rows}), "outbox": Outbox(settings).pending()}
        held = after == {"events": 28, "distinct": 28, "outbox": 0} and {f"job.down.{i}" for i in range(7)} <= jobs and again == 0
        fault_report.record(
            "broker", "broker stopped while 7 jobs emit, restarted with an empty log", trials=1, held=held, before=before, after=after,
            note="the 14 waiting events delivered once; consuming again stores none",
        )
        assert held, (after, again)
    finally:
        broker.stop(settings)


def test_flush_command_reports_and_outbox_survives_the_process(isolated_env: Path) -> None:
    # No broker running: the CLI job keeps its events in the outbox file, another process flushes them.
    from tidemark.demo import write_wine_csv

    csv = write_wine_csv(isolated_env.parent / "wine.csv")
    run_cli("ingest", str(csv), "--table", "raw.wine", env={"TIDEMARK__KAFKA__CONNECT_TIMEOUT_S": "1"})
    settings = load_settings()
    assert Outbox(settings).pending() == 2
    try:
        run_cli("up")
        out = json.loads(run_cli("lineage", "flush", "--output", "json").stdout)
        assert out == {"delivered": 2, "pending": 0, "error": None}
        consumed = json.loads(run_cli("lineage", "consume", "--once", "--output", "json").stdout)
        assert consumed["stored_events"] == 2
    finally:
        run_cli("down")


def test_emit_returns_after_the_durable_write_and_a_background_thread_delivers(settings: Any) -> None:
    from lineage import events as ev
    from lineage.outbox import OutboxTransport

    def event(i: int) -> dict[str, Any]:
        return ev.run_event(
            producer=settings.lineage.producer, event_type="COMPLETE", run_id=ev.new_run_id(),
            job_namespace=settings.lineage.job_namespace, job_name=f"job.bg.{i}",
        )

    tr = OutboxTransport(settings)
    try:
        for i in range(3):
            tr.emit(event(i))
        assert tr.wait_idle(60)
        assert Outbox(settings).pending() == 0
        tr.emit(event(3))
        tr.emit(event(4))
    finally:
        tr.close()  # waits for the delivery still under way
    assert Outbox(settings).pending() == 0
    consume(settings, once=True)
    jobs = {json.loads(r["payload"])["job"]["name"] for r in _stored(settings)}
    assert jobs == {f"job.bg.{i}" for i in range(5)}


def test_a_start_waits_for_its_run_to_end_and_goes_out_with_it_or_alone_after_the_linger(settings: Any) -> None:
    import time

    from lineage import events as ev
    from lineage.outbox import START_LINGER_S, OutboxTransport

    def event(kind: str, run_id: str) -> dict[str, Any]:
        return ev.run_event(
            producer=settings.lineage.producer, event_type=kind, run_id=run_id,  # type: ignore[arg-type]
            job_namespace=settings.lineage.job_namespace, job_name="job.linger",
        )

    tr = OutboxTransport(settings)
    try:
        short = ev.new_run_id()
        tr.emit(event("START", short))
        assert not tr.wait_idle(START_LINGER_S / 5) and Outbox(settings).pending() == 1  # durable, not sent yet
        tr.emit(event("COMPLETE", short))  # the run ended: both go now
        assert tr.wait_idle(30) and Outbox(settings).pending() == 0
        started = time.monotonic()
        tr.emit(event("START", ev.new_run_id()))  # a long run: its START goes once the linger passed
        assert tr.wait_idle(30) and Outbox(settings).pending() == 0
        assert time.monotonic() - started >= START_LINGER_S * 0.9
    finally:
        tr.close()


def test_events_are_written_durably_and_delivery_bookkeeping_is_not(settings: Any) -> None:
    # synchronous FULL (2) for the events and in-flight rows: each is on the disk when emit returns;
    # NORMAL (1) for claims and sent marks, whose loss only sends an event again.
    box = Outbox(settings)
    assert box._db().execute("PRAGMA synchronous").fetchone()[0] == 2
    assert box._db(durable=False).execute("PRAGMA synchronous").fetchone()[0] == 1
    assert box._db().execute("PRAGMA journal_mode").fetchone()[0] == box._db(durable=False).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_fault_while_sending_hands_the_events_back_at_once(settings: Any) -> None:
    # A fault on our side (not the broker's answer) must not leave the events claimed until the
    # claim times out: the next flush, right away, delivers them.
    from lineage.kafka import ensure_topic, producer

    class FaultyProducer:  # fails as kafka-python did on a text max_request_size
        def send(self, *args: Any, **kwargs: Any) -> Any:
            raise TypeError("'>' not supported between instances of 'int' and 'str'")

    box = Outbox(settings)
    box.put(settings.kafka.topic, b"run-1", b'{"n": 1}')
    with pytest.raises(TypeError):
        box.deliver(FaultyProducer(), timeout_s=5)  # type: ignore[arg-type]
    assert box.pending() == 1
    ensure_topic(settings)
    p = producer(settings)
    try:
        assert box.deliver(p, timeout_s=10).delivered == 1
    finally:
        p.close()
    assert box.pending() == 0


def _open_outbox_at(home: str, start: float) -> str:
    import time as _time

    from lakehouse.config import load_settings as _load

    while _time.time() < start:
        _time.sleep(0.001)
    try:
        Outbox(_load(overrides={"home": home}))
    except Exception as exc:  # reported to the parent, which names it
        import traceback

        return "".join(traceback.format_exception(exc))
    return ""


def test_processes_opening_an_old_outbox_at_once_upgrade_it_once(tmp_path: Path) -> None:
    """CI once saw `duplicate column name: sent_at`: two processes both upgraded an old outbox."""
    import concurrent.futures
    import multiprocessing
    import sqlite3
    import time

    for trial in range(3):
        home = tmp_path / f"home{trial}"
        home.mkdir()
        old = sqlite3.connect(home / "outbox.db")
        # The outbox as it was before events carried their id and their sent time.
        old.execute(
            """CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key BLOB,
               value BLOB NOT NULL, created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
               claimed_by TEXT, claimed_at REAL, last_error TEXT)"""
        )
        old.execute("INSERT INTO outbox (topic, key, value, created) VALUES ('t', NULL, ?, 0)", (b'{"a": 1}',))
        old.commit()
        old.close()
        start = time.time() + 1.0
        with concurrent.futures.ProcessPoolExecutor(6, mp_context=multiprocessing.get_context("spawn")) as pool:
            errors = [e for e in pool.map(_open_outbox_at, [str(home)] * 6, [start] * 6) if e]
        assert errors == []
        columns = {r[1] for r in sqlite3.connect(home / "outbox.db").execute("PRAGMA table_info(outbox)")}
        assert {"event_id", "sent_at"} <= columns
