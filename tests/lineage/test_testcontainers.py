"""Apache Kafka from testcontainers, where a Docker engine runs: Tidemark's clients against the real
thing (topic creation, acks=all idempotent produce, group consume). Skips, saying why, elsewhere;
`TIDEMARK_TEST_BROKER=testcontainers make test` runs the whole suite on it."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import docker_engine, kafka_in_docker

pytestmark = pytest.mark.integration


def test_produce_and_consume_through_apache_kafka_in_docker() -> None:
    reason = docker_engine()
    if reason:
        pytest.skip(f"{reason}; the local broker serves the suite")
    from lakehouse.config import load_settings
    from lineage.kafka import consumer, ensure_topic, producer

    with kafka_in_docker() as bootstrap:
        topic = f"lineage-{uuid.uuid4().hex[:8]}"
        settings = load_settings(environ={"TIDEMARK__KAFKA__BOOTSTRAP_SERVERS": bootstrap, "TIDEMARK__KAFKA__TOPIC": topic})
        ensure_topic(settings)
        ensure_topic(settings)  # idempotent
        p = producer(settings)
        for i in range(3):
            p.send(topic, key=b"k", value=f'{{"n": {i}}}'.encode())
        p.flush()
        p.close()
        c = consumer(settings, f"g-{uuid.uuid4().hex[:8]}")
        c.subscribe([topic])
        seen: list[bytes] = []
        for _ in range(10):  # a group join takes a few polls; bounded by count, not by sleeping
            batch = c.poll(timeout_ms=5_000)
            seen += [r.value for recs in batch.values() for r in recs]
            if len(seen) >= 3:
                break
        c.close()
        assert seen == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
