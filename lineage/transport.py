"""Where events go: a small Protocol with a Kafka implementation and an in-memory one for tests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from lakehouse.config import Settings
from lineage.events import serialize
from lineage.exceptions import EmitError

if TYPE_CHECKING:
    from kafka import KafkaProducer


class Transport(Protocol):
    def emit(self, event: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class InMemoryTransport:
    """Keeps every event it is given; a real plugin for tests, not a mock."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, event: Mapping[str, Any]) -> None:
        self.events.append(json.loads(serialize(event)))

    def close(self) -> None:
        pass


class KafkaTransport:
    """Sends each event to the lineage topic, keyed by run id so a run's events stay in order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: KafkaProducer | None = None

    def _ensure(self) -> KafkaProducer:
        if self._producer is None:
            from lineage.kafka import ensure_topic, producer

            ensure_topic(self.settings)
            self._producer = producer(self.settings)
        return self._producer

    def emit(self, event: Mapping[str, Any]) -> None:
        from kafka.errors import KafkaError

        prod = self._ensure()
        key = str(event.get("run", {}).get("runId", "")).encode()
        try:
            future = prod.send(self.settings.kafka.topic, key=key, value=serialize(event))
            prod.flush(timeout=self.settings.kafka.connect_timeout_s + 5)  # don't sit out the linger
            future.get(timeout=self.settings.kafka.connect_timeout_s + 5)
        except KafkaError as exc:
            raise EmitError(
                f"could not deliver a {event.get('eventType')} event of job {event.get('job', {}).get('name')} "
                f"to topic {self.settings.kafka.topic}: {exc.__class__.__name__}; check that Kafka is up"
            ) from exc

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
