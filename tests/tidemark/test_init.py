"""`tidemark init`: what the compose init job runs against configured Kafka and catalog."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def test_init_creates_topic_and_tables_and_can_run_again(kafka_env: str) -> None:
    first = json.loads(run_cli("init", "--output", "json").stdout)
    assert first == {"topic": kafka_env, "namespace": "lineage", "tables": sorted(first["tables"])}
    assert {"events", "runs", "run_datasets"} <= set(first["tables"])
    assert json.loads(run_cli("init", "--output", "json").stdout) == first  # idempotent: every `compose up`

    from kafka import KafkaAdminClient

    from lakehouse.config import load_settings
    from lineage.kafka import admin

    client: KafkaAdminClient = admin(load_settings())
    try:
        assert kafka_env in client.list_topics()
    finally:
        client.close()


def test_init_refuses_to_run_without_a_configured_kafka() -> None:
    proc = run_cli("init", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "tidemark: error: tidemark init prepares a configured Kafka: set TIDEMARK__KAFKA__BOOTSTRAP_SERVERS (or use `tidemark up`)"
    )
