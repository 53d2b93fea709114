"""Producers compress record batches (kafka.compression, zstd by default); every reader copes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from lakehouse.config import load_settings
from lakehouse.exceptions import ConfigError
from lineage import events as ev
from lineage.consumer import consume
from lineage.kafka import consumer as kafka_consumer
from lineage.kafka import ensure_topic, producer
from lineage.outbox import Outbox
from lineage.query import connect
from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def _send(settings: Any, n: int) -> set[str]:
    """`n` events through the producer Tidemark builds from these settings; returns their run ids."""
    ensure_topic(settings)
    p = producer(settings)
    runs = set()
    try:
        for i in range(n):
            run_id = ev.new_run_id()
            runs.add(run_id)
            event = ev.run_event(producer="test", event_type="COMPLETE", run_id=run_id, job_namespace="test", job_name=f"job.{i % 3}")
            p.send(settings.kafka.topic, key=run_id.encode(), value=ev.serialize(event))
        p.flush(30)
        return runs
    finally:
        p.close()


def _subscriber_reads(settings: Any, n: int) -> set[str]:
    """What a kafka-python subscriber in a group of its own (docs/events.md) reads: run ids."""
    c = kafka_consumer(settings, f"subscriber-{uuid.uuid4().hex[:8]}")
    try:
        c.subscribe([settings.kafka.topic])
        seen: set[str] = set()
        for _ in range(100):
            for records in c.poll(timeout_ms=200).values():
                seen.update(json.loads(r.value)["run"]["runId"] for r in records)
            if len(seen) >= n:
                break
        return seen
    finally:
        c.close()


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_events_round_trip_with_each_codec(kafka_env: str, compression: str) -> None:
    settings = load_settings(overrides={"kafka": {"compression": compression}})
    assert producer(settings).config["compression_type"] == (None if compression == "none" else compression)
    runs = _send(settings, 40)
    # The store's reader (librdkafka) and a plain kafka-python subscriber both decode the batches.
    assert consume(settings, once=True).stored_events == 40
    stored = {r[0] for r in connect(settings).execute("SELECT run_id FROM lineage.events").fetchall()}
    assert stored == runs
    assert _subscriber_reads(settings, 40) == runs


@pytest.fixture
def lz4_missing() -> None:
    """The missing-codec tests need a codec kafka-python cannot find: lz4 is not a dependency."""
    from kafka import codec

    if codec.has_lz4():
        pytest.skip("lz4 is installed here: this test needs a codec that is missing")


@pytest.mark.usefixtures("lz4_missing")
def test_a_codec_that_is_not_installed_is_named_with_the_fix(kafka_env: str) -> None:
    settings = load_settings(overrides={"kafka": {"compression": "lz4"}})
    with pytest.raises(ConfigError, match=r"kafka.compression is 'lz4' but its codec is not installed: pip install lz4"):
        producer(settings)


def test_compression_in_kafka_client_points_to_the_setting() -> None:
    # kafka.client goes to kafka-python unchanged, but not for what Tidemark sets itself.
    settings = load_settings(overrides={"kafka": {"client": {"compression_type": "gzip", "acks": 1}}})
    with pytest.raises(ConfigError, match=r"kafka.client sets acks, compression_type, which Tidemark sets itself: "
                                          r"remove it from kafka.client; set kafka.compression instead"):
        producer(settings)
    with pytest.raises(ConfigError, match=r"kafka.client sets group_id"):
        kafka_consumer(load_settings(overrides={"kafka": {"client": {"group_id": "x"}}}), "tidemark")


@pytest.mark.usefixtures("lz4_missing")
def test_flush_with_a_missing_codec_keeps_the_events_and_says_why(isolated_env: Path, kafka_env: str) -> None:
    lz4_env = {"TIDEMARK__KAFKA__COMPRESSION": "lz4"}
    line = json.dumps(ev.run_event(producer="test", event_type="START", run_id=ev.new_run_id(), job_namespace="test", job_name="job.backfill"))
    (isolated_env.parent / "events.jsonl").write_text(line + "\n")
    run_cli("lineage", "emit", str(isolated_env.parent / "events.jsonl"), env=lz4_env)  # the job goes on
    assert Outbox(load_settings()).pending() == 1
    proc = run_cli("lineage", "flush", check=False, env=lz4_env)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "pip install lz4" in errors[0], proc.stderr
    assert Outbox(load_settings()).pending() == 1  # nothing lost: the right codec delivers it
    run_cli("lineage", "flush")
    assert Outbox(load_settings()).pending() == 0


def test_the_documented_subscriber_reads_what_tidemark_produces(settings: Any) -> None:
    """docs/events.md's kafka-python example, run as written (but for the address and topic),
    reads Tidemark's zstd-compressed events."""
    import queue
    import re
    import subprocess
    import sys
    import threading
    import time

    doc = (Path(__file__).parents[2] / "docs" / "events.md").read_text()
    code = re.search(r"## Subscribe in a few lines.*?```python\n(.*?)```", doc, re.S)
    assert code, "docs/events.md lost its subscriber example"
    script = code.group(1).replace('"kafka:9092"', repr(settings.kafka.bootstrap_servers)).replace('"tidemark.lineage"', repr(settings.kafka.topic))
    runs = _send(settings, 5)
    proc = subprocess.Popen([sys.executable, "-u", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    # A thread reads, so a subscriber that prints nothing cannot hang the test.
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while len(seen) < 5 and time.monotonic() < deadline and proc.poll() is None:
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                pass
    finally:
        proc.kill()
        proc.wait()
        err = proc.stderr.read() if proc.stderr else ""
    assert {line.split()[2] for line in seen if line.strip()} == runs, err
