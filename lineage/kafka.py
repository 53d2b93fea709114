"""kafka-python clients configured the one way Tidemark uses them, with clear errors when Kafka is away."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakehouse.config import Settings, text_to_bool
from lakehouse.exceptions import ConfigError
from lineage.broker import bootstrap_servers
from lineage.exceptions import BrokerUnavailableError

if TYPE_CHECKING:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer


def _config(settings: Settings, client_class: type[Any], **ours: Any) -> dict[str, Any]:
    """The settings for one kafka-python client: Tidemark's own (`ours`), the connection, and the
    keys of kafka.client that this client knows.

    kafka.client serves every client, but each rejects keys it does not know (a producer-only
    `linger_ms` would stop the admin client), so each gets its own share. A key no client knows
    is a typo, and a key Tidemark sets itself would be a duplicate keyword (and they carry the
    delivery guarantees): both are named here, not as a failure to reach the broker.
    """
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    client = settings.kafka.client
    unknown = sorted(k for k in client if not any(k in c.DEFAULT_CONFIG for c in (KafkaProducer, KafkaConsumer, KafkaAdminClient)))
    if unknown:
        raise ConfigError(f"kafka.client sets {', '.join(unknown)}, which is not a kafka-python setting; fix or remove it")
    clash = sorted(set(ours) & set(client))
    if clash:
        hint = "; set kafka.compression instead" if "compression_type" in clash else ""
        raise ConfigError(f"kafka.client sets {', '.join(clash)}, which Tidemark sets itself: remove it from kafka.client{hint}")
    timeout_ms = int(settings.kafka.connect_timeout_s * 1000)
    return {
        **ours,
        "bootstrap_servers": bootstrap_servers(settings).split(","),
        "bootstrap_timeout_ms": timeout_ms,
        "request_timeout_ms": max(timeout_ms, 5000) + 1000,
        **{k: _typed(k, v, client_class.DEFAULT_CONFIG[k]) for k, v in client.items() if k in client_class.DEFAULT_CONFIG},
    }


def _typed(key: str, value: Any, default: Any) -> Any:
    """A kafka.client value from the environment is text: give it the type of kafka-python's
    default (a text max_request_size failed at the first send, deep inside kafka-python)."""
    if not isinstance(value, str) or default is None or isinstance(default, str):
        return value
    try:
        if isinstance(default, bool):
            return text_to_bool(value)
        if isinstance(default, (int, float)):
            return type(default)(value)
    except ValueError:
        raise ConfigError(f"kafka.client.{key} must be a number, got {value!r}") from None
    return value


# The package that brings each codec kafka-python does not have built in (gzip it has).
_CODEC_PACKAGES = {"snappy": "python-snappy", "lz4": "lz4", "zstd": "zstandard"}


def _compression(settings: Settings) -> str | None:
    """The producer's compression_type, after checking its codec is installed (kafka-python would
    fail with a bare RuntimeError, after connecting)."""
    from kafka import codec

    name = settings.kafka.compression
    if name == "none":
        return None
    if name in _CODEC_PACKAGES and not getattr(codec, f"has_{name}")():
        raise ConfigError(
            f"kafka.compression is {name!r} but its codec is not installed: pip install {_CODEC_PACKAGES[name]}, "
            "or set kafka.compression to zstd or none"
        )
    return name


def _unavailable(settings: Settings, exc: Exception) -> BrokerUnavailableError:
    where = bootstrap_servers(settings)
    return BrokerUnavailableError(
        f"Kafka at {where} did not answer within {settings.kafka.connect_timeout_s:g} s ({exc.__class__.__name__}); "
        "start it (`tidemark up` for the local broker) or fix kafka.bootstrap_servers"
    )


def producer(settings: Settings) -> KafkaProducer:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from lineage.partition import KeyPartitioner

    try:
        # acks=all and idempotence: an acknowledged event is on every in-sync replica, once.
        return KafkaProducer(**_config(
            settings,
            KafkaProducer,
            acks="all",
            enable_idempotence=True,
            # Big batches: kafka-python sends ~10k small records/s one batch at a time, ~25k/s batched.
            linger_ms=20,
            batch_size=1 << 20,
            max_block_ms=int(settings.kafka.connect_timeout_s * 1000),
            partitioner=KeyPartitioner(),
            compression_type=_compression(settings),
        ))
    except KafkaError as exc:
        raise _unavailable(settings, exc) from exc


def consumer(settings: Settings, group_id: str | None) -> KafkaConsumer:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        return KafkaConsumer(**_config(
            settings,
            KafkaConsumer,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            max_poll_interval_ms=10000,
            heartbeat_interval_ms=2000,
            # Lineage events are small and many: fetch big chunks so a few polls fill a commit batch.
            # The limits count compressed bytes: zstd batches (kafka.compression) hold several times more.
            max_partition_fetch_bytes=2 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
        ))
    except KafkaError as exc:
        raise _unavailable(settings, exc) from exc


def admin(settings: Settings) -> KafkaAdminClient:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        return KafkaAdminClient(**_config(settings, KafkaAdminClient))
    except KafkaError as exc:
        raise _unavailable(settings, exc) from exc


def ensure_topic(settings: Settings) -> None:
    """Create the lineage topic with the configured partitions if it does not exist yet."""
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    client = admin(settings)
    try:
        if settings.kafka.topic in client.list_topics():
            return
        client.create_topics([NewTopic(settings.kafka.topic, settings.kafka.partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    except KafkaError as exc:
        raise _unavailable(settings, exc) from exc
    finally:
        client.close()
