"""Reliability against real processes: a consumer killed with SIGKILL again and again, and a corpus
of bad input, end with every good event stored exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from lakehouse.catalog import load_catalog
from lineage import events as ev
from lineage.consumer import consume
from lineage.decode import MAX_EVENT_BYTES
from lineage.query import run_sql
from lineage.transport import KafkaTransport
from tests.conftest import TEST_BROKER

pytestmark = pytest.mark.integration


def _producer_thread(settings: Any, events: list[dict[str, Any]], seconds: float) -> threading.Thread:
    def send() -> None:
        tr = KafkaTransport(settings)
        pause = seconds / len(events)
        for e in events:
            tr.emit(e)
            time.sleep(pause)
        tr.close()

    t = threading.Thread(target=send, daemon=True)
    t.start()
    return t


def test_consumer_killed_20_times_while_5000_events_flow(settings: Any) -> None:
    events = [
        ev.run_event(producer="p", event_type="COMPLETE" if i % 2 else "START", run_id=f"run-{i // 2}",
                     job_namespace="n", job_name=f"job.{i % 7}", event_time=f"2026-11-26T10:{i // 600:02d}:{(i // 10) % 60:02d}.{i:06d}Z")
        for i in range(5000)
    ]
    sender = _producer_thread(settings, events, seconds=45)
    rng = random.Random(20261126)
    # --all-partitions: a restarted group member would wait out the dead one's session timeout each time.
    cmd = [sys.executable, "-m", "tidemark", "lineage", "consume", "--all-partitions", "--batch-size", "200", "--interval", "0.3"]
    kills = 0
    while kills < 20:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        committed = threading.Event()

        def watch(p: subprocess.Popen[str] = proc, seen: threading.Event = committed) -> None:
            for line in p.stderr or []:
                if "committed:" in line:
                    seen.set()

        threading.Thread(target=watch, daemon=True).start()
        # Kill at a random moment after the consumer is really working (start-up time varies a lot
        # with machine load), so kills land between and inside commits; give up waiting after 10 s.
        committed.wait(timeout=10)
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    sender.join(timeout=60)
    assert not sender.is_alive()
    # The killed consumers did real work (so kills interrupted real commits), and the last one resumes.
    events_table = load_catalog(settings).load_table((settings.lineage.namespace, "events"))
    assert len(events_table.snapshots()) >= 10
    final = consume(settings, once=True)
    assert final.records < 5000
    counts = run_sql(
        settings,
        "SELECT (SELECT count(*) FROM lineage.events) AS events, (SELECT count(DISTINCT event_id) FROM lineage.events) AS ids, "
        "(SELECT count(*) FROM lineage.runs) AS runs, (SELECT count(DISTINCT event_id) FROM lineage.runs) AS run_ids",
    ).to_pylist()
    assert counts == [{"events": 5000, "ids": 5000, "runs": 5000, "run_ids": 5000}]
    stored = set(run_sql(settings, "SELECT event_id FROM lineage.events").column("event_id").to_pylist())
    assert stored == {ev.event_id(e) for e in events}


def _bad_corpus() -> dict[str, bytes]:
    ok = ev.run_event(producer="p", event_type="START", run_id="r", job_namespace="n", job_name="j")

    def with_(**changes: Any) -> bytes:
        return json.dumps({**ok, **changes}).encode()

    return {
        "not utf-8": b"\xff\xfe\x00garbage",
        "latin-1 text": "{\"job\": \"caf\xe9\"}".encode("latin-1"),
        "truncated json": json.dumps(ok).encode()[:-7],
        "not json": b"hello world",
        "empty value": b"",
        "json array": b"[1, 2, 3]",
        "json string": b'"an event"',
        "json number": b"42",
        "json null": b"null",
        "no eventTime": json.dumps({k: v for k, v in ok.items() if k != "eventTime"}).encode(),
        "no run": json.dumps({k: v for k, v in ok.items() if k != "run"}).encode(),
        "run not an object": with_(run="r"),
        "no runId": with_(run={"facets": {}}),
        "no job name": with_(job={"namespace": "n"}),
        "eventTime garbage": with_(eventTime="yesterday at noon"),
        "eventTime a number": with_(eventTime=1732600000),
        "inputs not a list": with_(inputs={"name": "x"}),
        "outputs with a string": with_(outputs=["x"]),
        "oversized": with_(job={"namespace": "n", "name": "j", "facets": {"blob": "x" * (MAX_EVENT_BYTES + 10)}}),
    }


def test_bad_input_corpus_goes_to_dead_letters_and_good_events_survive(settings: Any) -> None:
    from lineage.kafka import ensure_topic, producer

    corpus = _bad_corpus()
    assert len(corpus) >= 15
    good = [ev.run_event(producer="p", event_type="COMPLETE", run_id=ev.new_run_id(), job_namespace="n", job_name=f"good.{i}") for i in range(len(corpus) + 1)]
    ensure_topic(settings)
    p = producer(settings)
    p.config["max_request_size"] = 4 * MAX_EVENT_BYTES  # the oversized one must reach the broker to test the consumer
    p._max_request_size = 4 * MAX_EVENT_BYTES  # kafka-python checks this copy before sending
    sequence: list[bytes] = []
    for g, bad in zip(good, [*corpus.values(), None]):
        sequence.append(ev.serialize(g))
        if bad is not None:
            sequence.append(bad)
    for value in sequence:
        p.send(settings.kafka.topic, key=b"same-key", value=value)  # one partition: a strict interleaving
    p.send(settings.kafka.topic, key=b"tombstone", value=None)
    p.flush(30)
    p.close()
    report = consume(settings, once=True)
    assert report.stored_events == len(good)
    assert report.dead_letters == len(corpus) + 1  # + the tombstone (no value)
    table = load_catalog(settings).load_table((settings.lineage.namespace, "dead_letters"))
    dead = table.scan().to_arrow().to_pylist()
    assert {d["raw"] for d in dead} == set(corpus.values()) | {b""}
    assert all(d["reason"] and d["topic"] == settings.kafka.topic and d["kafka_offset"] is not None for d in dead)
    reasons = {d["raw"]: d["reason"] for d in dead}
    assert "over the" in reasons[corpus["oversized"]] and "not UTF-8" in reasons[corpus["not utf-8"]]
    stored = run_sql(settings, "SELECT job_name FROM lineage.events ORDER BY 1").column("job_name").to_pylist()
    assert sorted(stored) == sorted(g["job"]["name"] for g in good)


def _stored_count(settings: Any) -> int:
    table = load_catalog(settings).load_table((settings.lineage.namespace, "events"))
    return table.scan(selected_fields=("event_id",)).to_arrow().num_rows if table.current_snapshot() else 0


def test_consumers_on_their_own_partitions_share_the_topic_and_a_replacement_takes_over(settings: Any) -> None:
    """Scaled out without a group coordinator (runs on the local broker, whose group rebalances
    never finish after a member dies): one consumer on partitions 0,1, one on 2, all committing to
    the same tables. The first is killed mid-stream and a replacement started on its partitions
    resumes from the offsets in the tables. Every event ends up stored exactly once."""
    events = [
        ev.run_event(producer="p", event_type="COMPLETE", run_id=f"scale-{i}", job_namespace="n", job_name=f"s.{i % 5}")
        for i in range(3000)
    ]
    sender = _producer_thread(settings, events, seconds=15)
    base = [sys.executable, "-m", "tidemark", "lineage", "consume", "--batch-size", "100", "--interval", "0.3"]

    def start(parts: str) -> tuple[subprocess.Popen[str], threading.Event]:
        proc = subprocess.Popen([*base, "--partitions", parts], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        committed = threading.Event()

        def watch() -> None:
            for line in proc.stderr or []:
                if "committed:" in line:
                    committed.set()

        threading.Thread(target=watch, daemon=True).start()
        return proc, committed

    first, first_committed = start("0,1")
    other, _ = start("2")
    procs = [first, other]
    try:
        assert first_committed.wait(timeout=120), "the first consumer never committed"
        first.send_signal(signal.SIGKILL)  # mid-stream: the producer is still sending
        first.wait()
        replacement, _ = start("0,1")
        procs.append(replacement)
        sender.join(timeout=120)
        assert not sender.is_alive()
        deadline = time.monotonic() + 180  # generous: a loaded machine; never part of what is asserted
        while _stored_count(settings) < len(events) and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(60)
    counts = run_sql(
        settings,
        "SELECT (SELECT count(*) FROM lineage.events) AS events, (SELECT count(DISTINCT event_id) FROM lineage.events) AS ids, "
        "(SELECT count(DISTINCT kafka_partition) FROM lineage.events) AS parts, "
        "(SELECT count(*) FROM lineage.runs) AS runs, (SELECT count(DISTINCT event_id) FROM lineage.runs) AS run_ids, "
        "(SELECT count(*) FROM lineage.jobs) AS jobs",
    ).to_pylist()
    assert counts == [{"events": 3000, "ids": 3000, "parts": 3, "runs": 3000, "run_ids": 3000, "jobs": 5}]
    stored = set(run_sql(settings, "SELECT event_id FROM lineage.events").column("event_id").to_pylist())
    assert stored == {ev.event_id(e) for e in events}
    # The tables' offsets cover every record of every partition: a restart replays nothing.
    assert consume(settings, once=True).records == 0


REAL_KAFKA = os.environ.get("TIDEMARK_TEST_KAFKA")


@pytest.mark.skipif(
    not REAL_KAFKA and TEST_BROKER != "testcontainers",
    reason="needs Apache Kafka (set TIDEMARK_TEST_KAFKA=host:port, or TIDEMARK_TEST_BROKER=testcontainers): the local Tansu 0.6 broker was seen never to "
    "finish a consumer-group rebalance after a member leaves or dies, so group hand-over cannot be tested on it "
    "(test_consumers_on_their_own_partitions_share_the_topic_and_a_replacement_takes_over covers scale-out there)",
)
def test_two_group_members_share_partitions_and_hand_over(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    if REAL_KAFKA:  # else the session's testcontainers Kafka, which `settings` already points at
        monkeypatch.setenv("TIDEMARK__KAFKA__BOOTSTRAP_SERVERS", str(REAL_KAFKA))
    from lakehouse.config import load_settings

    settings = load_settings()
    events = [ev.run_event(producer="p", event_type="COMPLETE", run_id=f"g-{i}", job_namespace="n", job_name=f"g.{i % 5}") for i in range(1500)]
    sender = _producer_thread(settings, events, seconds=20)
    cmd = [sys.executable, "-m", "tidemark", "lineage", "consume", "--batch-size", "100", "--interval", "0.5"]
    a = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    b = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(12)  # both joined (the group rebalances a few times) and are committing
        a.send_signal(signal.SIGKILL)  # mid-stream: after its session timeout, b gets its partitions
        a.wait()
        sender.join(timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = run_sql(settings, "SELECT count(*) AS n FROM lineage.events").to_pylist()[0]["n"]
            if n >= 1500:
                break
            time.sleep(1)
    finally:
        b.terminate()
        b.wait(30)
    counts = run_sql(settings, "SELECT count(*) AS n, count(DISTINCT event_id) AS ids, count(DISTINCT kafka_partition) AS parts FROM lineage.events").to_pylist()
    assert counts == [{"n": 1500, "ids": 1500, "parts": 3}]  # b finished every partition, each event once
    # ...and both members did part of the work (the partitions really were shared).
    writers = run_sql(settings, "SELECT count(DISTINCT kafka_partition) AS p FROM lineage.events").to_pylist()
    assert writers == [{"p": 3}]
