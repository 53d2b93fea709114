"""Lineage events are partitioned by their key exactly as every Kafka client partitions keys."""

from __future__ import annotations

import os
from typing import Any

import pytest
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from lineage.partition import KeyPartitioner, murmur2


def test_murmur2_matches_kafka_python_for_every_length() -> None:
    # Every tail length (0-3 bytes past the last whole word) and every word count up to 20.
    for length in range(0, 81):
        for _ in range(25):
            key = os.urandom(length)
            assert murmur2(key) == kafka_python_murmur2(key), key


def test_murmur2_matches_java_test_vectors() -> None:
    # Kafka's own UtilsTest.testMurmur2 (Java ints, signed).
    vectors = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for key, java in vectors.items():
        assert murmur2(key) == java & 0xFFFFFFFF, key


@pytest.mark.integration
def test_events_land_where_the_key_says_on_a_real_broker(settings: Any) -> None:
    """Through the producer Tidemark configures: each key on murmur2(key) % partitions, as the
    Java client would put it, whether its hash was computed or remembered."""
    from confluent_kafka import Consumer, TopicPartition

    from lineage.kafka import ensure_topic, producer

    ensure_topic(settings)
    p = producer(settings)
    partitions = sorted(p.partitions_for(settings.kafka.topic))
    assert len(partitions) > 1
    keys = [f"run-{i:04d}-{'x' * (i % 7)}".encode() for i in range(60)]
    sent = {}
    for round_ in range(2):  # the second round hits the remembered hashes
        for k in keys:
            meta = p.send(settings.kafka.topic, key=k, value=b"%d" % round_).get(timeout=10)
            sent.setdefault(k, set()).add(meta.partition)
    p.close()
    for k, where in sent.items():
        assert where == {(kafka_python_murmur2(k) & 0x7FFFFFFF) % len(partitions)}, k
    # And the broker holds them there.
    c = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "partition-test", "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(settings.kafka.topic, part, 0) for part in partitions])
        seen, ended = {}, set()
        while len(ended) < len(partitions):
            for msg in c.consume(500, 5.0):
                if msg.error():
                    ended.add(msg.partition())
                elif msg.key() in sent:
                    seen.setdefault(msg.key(), set()).add(msg.partition())
    finally:
        c.close()
    assert seen == sent


def test_keyless_records_still_get_a_partition() -> None:
    class Cluster:
        def topics(self) -> set[str]:
            return {"t"}

        def partitions_for_topic(self, topic: str) -> set[int]:
            return {0, 1, 2}

        def available_partitions_for_topic(self, topic: str) -> set[int]:
            return {0, 1, 2}

    part = KeyPartitioner()
    assert {part.partition("t", None, None, b"v", b"v", Cluster()) for _ in range(200)} <= {0, 1, 2}
    assert part.partition("t", b"k", b"k", b"v", b"v", Cluster()) == (kafka_python_murmur2(b"k") & 0x7FFFFFFF) % 3
