"""An openlineage-python transport that writes into Tidemark's outbox: how Airflow's OpenLineage
provider (apache-airflow-providers-openlineage) reaches the lineage topic.

Configured in Airflow as `[openlineage] transport = {"type": "lineage.openlineage_transport.OutboxTransport"}`
(`tidemark.airflow_env` and docker-compose.yml set it). Why the outbox and not the client's own
Kafka transport (docs/events.md, "Airflow's own events"): an event is durable in
`$TIDEMARK_HOME/outbox.db` before delivery is even tried, so a broker that is down or slow while a
task or DAG run ends loses nothing (the client's KafkaTransport logs and drops it, and the provider
gives its listener only `[openlineage] execution_timeout` seconds); the events are keyed by run id
like every other Tidemark event, so one run's events stay in one partition in order (the client keys
by parent job); and Tidemark's Kafka settings (TLS, SASL, compression) apply unchanged.

Delivery is synchronous here (outbox write, then one delivery attempt bounded by
`kafka.connect_timeout_s`): the provider emits from short-lived forked processes that may end
without running exit handlers, so a background thread could be cut off. Whatever is not delivered
stays in the outbox for the next emit, process exit, or `tidemark lineage flush`.

Imports openlineage-python, which comes with the provider: only Airflow's processes load this module.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import attr
from openlineage.client.transport.transport import Config, Transport

log = logging.getLogger(__name__)


@attr.define
class OutboxConfig(Config):
    """No settings of its own: Tidemark's (tidemark.yaml, TIDEMARK__... variables) say where the
    outbox and the broker are."""

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> OutboxConfig:  # noqa: ARG003 - nothing to read
        return cls()


class OutboxTransport(Transport):
    kind = "tidemark_outbox"
    config_class = OutboxConfig

    def __init__(self, config: OutboxConfig) -> None:
        self.config = config

    def emit(self, event: Any) -> None:
        """Put the event in the outbox (durable), then try to deliver what is pending."""
        from openlineage.client.serde import Serde

        from lakehouse.config import load_settings
        from lineage.outbox import OutboxTransport as Outbox

        data = json.loads(Serde.to_json(event))
        transport = Outbox(load_settings(), warn=True, background=False)
        try:
            transport.emit(data)
        finally:
            transport.close()

    def close(self, timeout: float = -1) -> bool:  # noqa: ARG002 - every emit closes its own connection
        return True
