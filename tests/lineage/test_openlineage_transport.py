"""The transport Airflow's OpenLineage provider uses: the official client's events into the outbox
first, delivered when the broker answers, stored by the consumer."""

from __future__ import annotations

import socket
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _client_event(run_id: str) -> Any:
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState

    return RunEvent(eventType=RunState.COMPLETE, eventTime=datetime.now(timezone.utc).isoformat(), run=Run(runId=run_id),
                    job=Job(namespace="airflow", name="dag.task"), producer="https://github.com/apache/airflow/tree/providers-openlineage/2.20.3")


def _client() -> Any:
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport import get_default_factory

    # Exactly how the provider makes it from `[openlineage] transport`.
    return OpenLineageClient(transport=get_default_factory().create({"type": "lineage.openlineage_transport.OutboxTransport"}))


def test_events_wait_in_the_outbox_while_the_broker_is_down_then_arrive(isolated_env: Path, broker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse.config import load_settings
    from lineage.consumer import consume
    from lineage.outbox import Outbox, flush
    from lineage.query import run_sql

    with socket.socket() as s:  # a port nobody listens on: the broker is down
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("TIDEMARK__KAFKA__BOOTSTRAP_SERVERS", dead)
    monkeypatch.setenv("TIDEMARK__KAFKA__CONNECT_TIMEOUT_S", "2")
    monkeypatch.setenv("TIDEMARK__KAFKA__TOPIC", f"lineage-{uuid.uuid4().hex[:12]}")
    run_id = str(uuid.uuid4())
    _client().emit(_client_event(run_id))  # returns: the provider's listener is not held up
    assert Outbox(load_settings()).pending() == 1

    monkeypatch.setenv("TIDEMARK__KAFKA__BOOTSTRAP_SERVERS", broker)
    settings = load_settings()
    assert flush(settings).pending == 0
    consume(settings, once=True)
    rows = run_sql(settings, f'SELECT run_id, job_namespace, job_name, event_type FROM "{settings.lineage.namespace}".runs').to_pylist()
    assert rows == [{"run_id": run_id, "job_namespace": "airflow", "job_name": "dag.task", "event_type": "COMPLETE"}]
