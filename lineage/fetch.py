"""The consumer's record source on fixed partitions: confluent-kafka (librdkafka), not kafka-python.

kafka-python decodes each record in Python (~45 µs, more than the whole budget of the 25,000
events/s target); librdkafka fetches and decodes in C threads, ~3 µs a record here. The producer
side stays on kafka-python. Group membership (the consumer as a service on a real Kafka cluster)
also stays on kafka-python, in `lineage.consumer`; this module serves the assignments that need no
group coordinator: every partition, or the ones it is given.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from lakehouse.config import Settings
from lineage.broker import bootstrap_servers
from lineage.exceptions import BrokerUnavailableError, ConsumerError

if TYPE_CHECKING:
    import confluent_kafka

log = logging.getLogger(__name__)

# kafka-python names (what `kafka.client` in tidemark.yaml holds) -> librdkafka names.
_CLIENT_KEYS = {
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "ssl_password": "ssl.key.password",
    "client_id": "client.id",
}


class PartitionReader:
    """Reads the given partitions of the lineage topic from the given offsets, in big batches."""

    def __init__(self, settings: Settings, group_id: str) -> None:
        try:
            import confluent_kafka
        except ImportError as exc:
            raise ConsumerError(
                "the lineage consumer needs confluent-kafka: pip install 'confluent-kafka==2.16.1' (or `make venv`)"
            ) from exc
        self._ck = confluent_kafka
        self.topic = settings.kafka.topic
        self._timeout_s = settings.kafka.connect_timeout_s
        self._where = bootstrap_servers(settings)
        config: dict[str, Any] = {
            "bootstrap.servers": self._where,
            "group.id": group_id,  # only for the committed-offset fallback: assign() joins no group
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,  # "drained" from the fetch's own high watermark, not a separate query
            # librdkafka's default, read_committed, ends partitions at the last stable offset, which
            # Tansu 0.6 reports wrong (below the end: "drained" too early). Tidemark's producers
            # are idempotent, never transactional, so both levels read the same records.
            "isolation.level": "read_uncommitted",
            # Lineage events are small and many: a prefetch queue keeps the decoder fed while the
            # previous batch is being committed to Iceberg. Two things measured at 1M events of
            # 1.4 KB (benchmarks/bench_lineage_throughput.py):
            # - librdkafka waits fetch.queue.backoff.ms (default 1 s) before fetching again once
            #   the queue is full; a consumer that empties it in a fraction of that sat idle: 18k
            #   events/s uncompressed, 31k with 10 ms.
            # - The sizes count compressed bytes: with zstd batches (kafka.compression) 8 MB
            #   partition fetches kept ~1 GB of events in the consumer; 512 KB fetches (~3.5 MB of
            #   events each) were as fast with ~700 MB peak.
            "fetch.max.bytes": 2 * 1024 * 1024,
            "max.partition.fetch.bytes": 512 * 1024,
            "queued.max.messages.kbytes": 2 * 1024,
            "fetch.queue.backoff.ms": 10,
            **_client_config(settings.kafka.client),
        }
        self._c = confluent_kafka.Consumer(config, logger=log)
        self._assigned: list[int] = []
        self._at_end: set[int] = set()

    def partitions(self) -> list[int]:
        """The topic's partitions, as the broker reports them."""
        try:
            md = self._c.list_topics(self.topic, timeout=self._timeout_s)
        except self._ck.KafkaException as exc:
            raise BrokerUnavailableError(
                f"Kafka at {self._where} did not answer within {self._timeout_s:g} s ({exc}); "
                "start it (`tidemark up` for the local broker) or fix kafka.bootstrap_servers"
            ) from exc
        topic = md.topics.get(self.topic)
        return sorted(topic.partitions) if topic is not None else []

    def committed(self, partitions: Iterable[int]) -> dict[int, int]:
        """The group's committed offsets (the fallback when the Iceberg tables record none)."""
        tps = [self._ck.TopicPartition(self.topic, p) for p in partitions]
        try:
            got = self._c.committed(tps, timeout=self._timeout_s)
        except self._ck.KafkaException:
            return {}
        return {tp.partition: tp.offset for tp in got if tp.offset >= 0}

    def assign(self, starts: Mapping[int, int | None]) -> None:
        """Read these partitions, each from its offset (None: from the beginning)."""
        beginning = self._ck.OFFSET_BEGINNING
        self._c.assign([self._ck.TopicPartition(self.topic, p, beginning if o is None else o) for p, o in starts.items()])
        self._assigned = sorted(starts)
        self._at_end = set()

    def poll(self, max_records: int, timeout_s: float) -> tuple[list[int], list[int], list[bytes]]:
        """Up to max_records records as (partitions, offsets, values); a missing value is b""."""
        messages = self._c.consume(num_messages=max_records, timeout=timeout_s)
        if any([m.error() for m in messages]):
            return self._sort_out(messages)
        # The usual poll holds records only: one comprehension per column, about half the cost
        # of a per-record loop with branches.
        parts = [m.partition() for m in messages]
        self._at_end.difference_update(parts)
        offsets = [m.offset() for m in messages]
        # A record (no error) always has its partition and offset; the types allow None for error events.
        return cast("list[int]", parts), cast("list[int]", offsets), [m.value() or b"" for m in messages]

    def _sort_out(self, messages: list[Any]) -> tuple[list[int], list[int], list[bytes]]:
        """Records, end-of-partition markers (in order: a record after one means more came) and errors."""
        parts: list[int] = []
        offsets: list[int] = []
        values: list[bytes] = []
        eof = self._ck.KafkaError._PARTITION_EOF
        for m in messages:
            err = m.error()
            if err is not None:
                if err.code() == eof:
                    self._at_end.add(m.partition())
                else:
                    log.warning("lineage consumer: %s", err)
                continue
            p = m.partition()
            self._at_end.discard(p)
            parts.append(p)
            offsets.append(m.offset())
            values.append(m.value() or b"")
        return parts, offsets, values

    def drained(self) -> bool:
        """Every assigned partition was read to its end (as of the last fetch)."""
        return all(p in self._at_end for p in self._assigned)

    def commit(self, offsets: Mapping[int, int]) -> None:
        """Record the group's offsets too: a fallback only, so a failure is no error."""
        tps = [self._ck.TopicPartition(self.topic, p, o) for p, o in offsets.items()]
        try:
            self._c.commit(offsets=tps, asynchronous=True)
        except self._ck.KafkaException as exc:
            log.info("group offset commit skipped: %s", exc)

    def close(self) -> None:
        self._c.close()


def _client_config(client: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in client.items():
        if key in _CLIENT_KEYS:
            out[_CLIENT_KEYS[key]] = value
        elif "." in key:  # already a librdkafka name
            out[key] = value
        else:
            log.warning("kafka.client.%s has no librdkafka equivalent known to the lineage consumer; ignored there", key)
    return out
