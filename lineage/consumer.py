"""The lineage consumer: Kafka topic -> Iceberg lineage tables, exactly once.

Exactly once without a transaction across Kafka and Iceberg: every commit to a lineage table
stores, in its snapshot summary, the next offset per partition that the table now includes
(`tidemark.kafka.offsets`). On start the consumer seeks to the lowest stored offset across the
tables, and each table skips records below its own stored offsets, so a crash between two
commits replays only what the later table lacks. Kafka's committed group offsets are a fallback
for a store that has none. The stable event id guards against the same event sent twice.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.tables import JOB_NAME, ancestors, summary_properties, with_commit_retry
from lineage import events as ev
from lineage import store
from lineage.broker import log_id as current_log_id

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

OFFSETS = "tidemark.kafka.offsets"
CONSUMER_JOB = "tidemark.lineage.consumer"
MAX_EVENT_BYTES = 1_000_000
_REQUIRED = ("eventTime", "eventType", "run", "job")


@dataclass
class Record:
    partition: int
    offset: int
    value: bytes


@dataclass
class ConsumeReport:
    records: int = 0
    stored_events: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    commits: int = 0
    registry_rows: int = 0
    offsets: dict[int, int] = field(default_factory=dict)


def stored_offsets(table: Table, topic: str, log: str) -> dict[int, int]:
    """Next offset per partition that `table` already holds, for this topic and this Kafka log."""
    snap = table.current_snapshot()
    for s in ancestors(table, snap.snapshot_id if snap else None):
        raw = summary_properties(s).get(OFFSETS)
        if raw:
            data = json.loads(raw)
            if data.get("topic") != topic or data.get("log") != log:
                # Offsets of another topic or of a log that no longer exists (a restarted local broker).
                return {}
            return {int(p): int(o) for p, o in data.get("offsets", {}).items()}
    return {}


def _check(event: Any) -> str | None:
    """Why an event cannot be stored, or None. Full schema conformance is the producer's contract."""
    if not isinstance(event, dict):
        return "not a JSON object"
    missing = [k for k in _REQUIRED if k not in event]
    if missing:
        return f"missing required field(s): {', '.join(missing)}"
    if not isinstance(event["run"], dict) or not event["run"].get("runId"):
        return "run.runId is missing"
    if not isinstance(event["job"], dict) or not event["job"].get("name"):
        return "job.name is missing"
    try:
        store.parse_time(str(event["eventTime"]))
    except ValueError:
        return f"eventTime {event['eventTime']!r} is not an ISO-8601 time"
    return None


class LineageWriter:
    """Turns a batch of records into rows and commits them to each lineage table, exactly once."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self.topic = settings.kafka.topic
        self.log = current_log_id(settings)
        self.tables = store.ensure_tables(catalog, settings)

    def start_offsets(self) -> dict[int, int] | None:
        """Lowest stored offset per partition over the tables that record offsets; None if none do."""
        per_table = [stored_offsets(self.tables[t], self.topic, self.log) for t in (store.EVENTS, store.RUN_DATASETS)]
        if not any(per_table):
            return None
        parts = set().union(*per_table)
        return {p: min(t.get(p, 0) for t in per_table) for p in parts}

    def write(self, records: list[Record], report: ConsumeReport) -> None:
        good: list[tuple[Record, dict[str, Any], str]] = []
        dead: list[dict[str, Any]] = []
        for rec in records:
            reason = None
            event: Any = None
            if len(rec.value) > MAX_EVENT_BYTES:
                reason = f"event of {len(rec.value)} bytes is over the {MAX_EVENT_BYTES}-byte limit"
            else:
                try:
                    event = json.loads(rec.value.decode("utf-8"))
                except UnicodeDecodeError:
                    reason = "not UTF-8 text"
                except json.JSONDecodeError as exc:
                    reason = f"invalid JSON: {exc.msg} at char {exc.pos}"
                else:
                    reason = _check(event)
            if reason:
                dead.append(
                    {
                        "received_time": datetime.now(timezone.utc),
                        "topic": self.topic,
                        "kafka_partition": rec.partition,
                        "kafka_offset": rec.offset,
                        "reason": reason,
                        "raw": rec.value,
                    }
                )
            else:
                good.append((rec, event, ev.event_id(event)))
        offsets: dict[int, int] = {}
        for rec in records:
            offsets[rec.partition] = max(offsets.get(rec.partition, 0), rec.offset + 1)

        # Dead letters first: if we crash later they are re-derived, and a duplicate dead letter is harmless.
        if dead:
            self._append(store.DEAD_LETTERS, dead, None)
            report.dead_letters += len(dead)
        self._sync_registry(good, report)
        stored = self._commit_rows(
            store.RUN_DATASETS,
            good,
            lambda rec, event, eid: store.run_dataset_rows(event, eid),
            offsets,
        )
        stored = self._commit_rows(
            store.EVENTS,
            good,
            lambda rec, event, eid: [store.event_row(event, eid, rec.partition, rec.offset)],
            offsets,
        )
        report.stored_events += stored
        report.duplicates += len(good) - stored
        report.records += len(records)
        report.commits += 1
        for p, o in offsets.items():
            report.offsets[p] = max(report.offsets.get(p, 0), o)

    def _sync_registry(self, good: list[tuple[Record, dict[str, Any], str]], report: ConsumeReport) -> None:
        """Registrations and alias moves into the registry tables, before the offsets move past them.

        Idempotent (keyed by model+version and by run id), so running it ahead of the offset-bearing
        commits means a crash replays the batch and adds only what is missing.
        """
        from lineage import model_store

        added = model_store.upsert_from_events(self.catalog, self.settings, (event for _, event, _ in good))
        report.registry_rows += sum(added.values())

    def _commit_rows(
        self,
        short: str,
        good: list[tuple[Record, dict[str, Any], str]],
        to_rows: Callable[[Record, dict[str, Any], str], list[dict[str, Any]]],
        offsets: Mapping[int, int],
    ) -> int:
        """Append the rows of events this table lacks; returns how many events were new to it."""
        name = f"{self.settings.lineage.namespace}.{short}"
        new_events = 0

        def attempt() -> None:
            nonlocal new_events
            table = self.catalog.load_table((self.settings.lineage.namespace, short))
            have = stored_offsets(table, self.topic, self.log)
            fresh = [g for g in good if g[0].offset >= have.get(g[0].partition, 0)]
            seen = self._existing_ids(table, {eid for _, _, eid in fresh})
            rows: list[dict[str, Any]] = []
            new_events = 0
            for rec, event, eid in fresh:
                if eid in seen:
                    continue
                seen.add(eid)
                new_events += 1
                rows.extend(to_rows(rec, event, eid))
            merged = dict(have)
            for p, o in offsets.items():
                merged[p] = max(merged.get(p, 0), o)
            props = {
                OFFSETS: json.dumps({"topic": self.topic, "log": self.log, "offsets": {str(p): o for p, o in sorted(merged.items())}}),
                JOB_NAME: CONSUMER_JOB,
            }
            import pyarrow as pa

            # An empty append still records the offsets, so a batch of duplicates is not replayed.
            table.append(pa.Table.from_pylist(rows, schema=store.arrow_schema(short)), snapshot_properties=props)

        with_commit_retry(attempt, f"storing lineage rows in {name}")
        return new_events

    def _existing_ids(self, table: Table, ids: set[str]) -> set[str]:
        if not ids or table.current_snapshot() is None:
            return set()
        from pyiceberg.expressions import In

        found = table.scan(row_filter=In("event_id", ids), selected_fields=("event_id",)).to_arrow()
        return set(found.column("event_id").to_pylist())

    def _append(self, short: str, rows: list[dict[str, Any]], props: Mapping[str, str] | None) -> None:
        import pyarrow as pa

        def attempt() -> None:
            table = self.catalog.load_table((self.settings.lineage.namespace, short))
            table.append(pa.Table.from_pylist(rows, schema=store.arrow_schema(short)), snapshot_properties=dict(props or {}))

        with_commit_retry(attempt, f"storing rows in {self.settings.lineage.namespace}.{short}")


def consume(
    settings: Settings,
    *,
    once: bool = True,
    batch_size: int = 1000,
    interval_s: float = 2.0,
    idle_timeout_s: float = 10.0,
    stop: threading.Event | None = None,
    on_batch: Callable[[ConsumeReport], None] | None = None,
) -> ConsumeReport:
    """Drain the lineage topic into the lineage tables.

    once=True: read to the end of every partition as it stood when we got there, then return.
    once=False: run until `stop` is set (or SIGTERM/SIGINT in the main thread), committing a batch
    every `batch_size` records or `interval_s` seconds, whichever comes first.
    """
    from kafka import TopicPartition
    from kafka.errors import CommitFailedError, KafkaError
    from kafka.structs import OffsetAndMetadata

    from lineage.kafka import consumer as make_consumer
    from lineage.kafka import ensure_topic

    stop = stop or threading.Event()
    if not once and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())

    catalog = load_catalog(settings)
    writer = LineageWriter(settings, catalog)
    ensure_topic(settings)
    kc = make_consumer(settings, settings.lineage.consumer_group)
    report = ConsumeReport()
    try:
        parts = sorted(kc.partitions_for_topic(settings.kafka.topic) or [])
        tps = [TopicPartition(settings.kafka.topic, p) for p in parts]
        kc.assign(tps)
        start = writer.start_offsets()
        for tp in tps:
            if start is not None and tp.partition in start:
                kc.seek(tp, start[tp.partition])
            else:
                committed = kc.committed(tp) if start is None else None
                if committed is not None:
                    kc.seek(tp, committed)
                else:
                    kc.seek_to_beginning(tp)
        batch: list[Record] = []
        last_flush = time.monotonic()
        last_progress = time.monotonic()

        def flush() -> None:
            nonlocal batch, last_flush
            if batch:
                writer.write(batch, report)
                try:
                    kc.commit({TopicPartition(settings.kafka.topic, p): OffsetAndMetadata(o, "", -1) for p, o in report.offsets.items()})
                except (CommitFailedError, KafkaError):
                    pass  # group offsets are only a fallback; the Iceberg snapshot holds the truth
                if on_batch:
                    on_batch(report)
            batch = []
            last_flush = time.monotonic()

        while not stop.is_set():
            polled = kc.poll(timeout_ms=200, max_records=batch_size)
            for tp, recs in polled.items():
                for r in recs:
                    batch.append(Record(tp.partition, r.offset, r.value if r.value is not None else b""))
                last_progress = time.monotonic()
            if len(batch) >= batch_size or (batch and time.monotonic() - last_flush >= interval_s):
                flush()
            if once:
                drained = all(
                    kc.highwater(tp) is not None and kc.position(tp) >= (kc.highwater(tp) or 0) for tp in tps
                )
                if drained or time.monotonic() - last_progress > idle_timeout_s:
                    break
        flush()
    finally:
        kc.close()
    return report
