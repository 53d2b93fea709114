"""The lineage consumer: Kafka topic -> Iceberg lineage tables, exactly once.

Exactly once without a transaction across Kafka and Iceberg: every commit to a lineage table
stores, in its snapshot summary, the next offset per partition that the table now includes
(`tidemark.kafka.offsets`). On start the consumer seeks to the lowest stored offset across the
tables, and each table skips records below its own stored offsets, so a crash between two commits
replays only what the later table lacks. Kafka's committed group offsets are a fallback for a store
that has none. Events also have a stable id (sha256 of their bytes); an id already in `events` is
never stored again, so a re-sent event (outbox retry, replayed backfill) is stored once.

Tables are written in a fixed order, `events` last: an event id in `events` therefore means every
other table already has that event's rows, which is what makes the id set a safe duplicate test.
"""

from __future__ import annotations

import gc
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import orjson

from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.tables import JOB_NAME, ancestors, expire_snapshots, summary_properties, with_commit_retry
from lineage import events as ev
from lineage import store
from lineage.broker import log_id as current_log_id

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

log = logging.getLogger(__name__)

OFFSETS = "tidemark.kafka.offsets"
CONSUMER_JOB = "tidemark.lineage.consumer"
MAINTENANCE_JOB = "tidemark.lineage.maintenance"
MAX_EVENT_BYTES = 1_000_000
_REQUIRED = ("eventTime", "eventType", "run", "job")
# Written in this order; `events` last (see the module docstring).
ROW_TABLES = (store.RUN_DATASETS, store.RUNS, store.JOBS, store.EVENTS)


@dataclass
class Record:
    partition: int
    offset: int
    value: bytes


@dataclass
class Parsed:
    record: Record
    event: dict[str, Any]
    event_id: str
    text: str


@dataclass
class ConsumeReport:
    records: int = 0
    stored_events: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    commits: int = 0
    compactions: int = 0
    registry_rows: int = 0
    drift_rows: int = 0
    offsets: dict[int, int] = field(default_factory=dict)


def stored_offsets(table: Table, topic: str, log_name: str) -> dict[int, int]:
    """Next offset per partition that `table` already holds, for this topic and this Kafka log."""
    snap = table.current_snapshot()
    for s in ancestors(table, snap.snapshot_id if snap else None):
        raw = summary_properties(s).get(OFFSETS)
        if raw:
            data = json.loads(raw)
            if data.get("topic") != topic or data.get("log") != log_name:
                # Offsets of another topic or of a log that no longer exists (a restarted local broker).
                return {}
            return {int(p): int(o) for p, o in data.get("offsets", {}).items()}
    return {}


def check_event(event: Any) -> str | None:
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
    if not isinstance(event["eventTime"], str):
        return "eventTime is not a string"
    try:
        store.parse_time(event["eventTime"])
    except ValueError:
        return f"eventTime {event['eventTime']!r} is not an ISO-8601 time"
    for key in ("inputs", "outputs"):
        value = event.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(d, dict) for d in value)):
            return f"{key} is not a list of datasets"
    return None


def parse(rec: Record) -> Parsed | tuple[Record, str]:
    """A stored-to-be event, or the record with the reason it is a dead letter."""
    if len(rec.value) > MAX_EVENT_BYTES:
        return rec, f"event of {len(rec.value)} bytes is over the {MAX_EVENT_BYTES}-byte limit"
    try:
        text = rec.value.decode("utf-8")
    except UnicodeDecodeError:
        return rec, "not UTF-8 text"
    try:
        event = orjson.loads(rec.value)
    except orjson.JSONDecodeError as exc:
        return rec, f"invalid JSON: {exc.msg} at char {exc.pos}"
    reason = check_event(event)
    if reason:
        return rec, reason
    return Parsed(rec, event, ev.event_id(rec.value), text)


class LineageWriter:
    """Turns batches of records into rows and commits them to each lineage table, exactly once."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self.ns = settings.lineage.namespace
        self.topic = settings.kafka.topic
        self.log = current_log_id(settings)
        store.ensure_tables(catalog, settings)
        self._seen: set[bytes] = set()
        self._jobs: set[tuple[str, str]] = set()
        self._seen_at: int | None = None  # the events snapshot the id set reflects
        self._load_seen()

    def _table(self, short: str) -> Table:
        return self.catalog.load_table((self.ns, short))

    def _load_seen(self) -> None:
        """Read the ids already stored (and the jobs known) so duplicates are found in memory."""
        events = self._table(store.EVENTS)
        snap = events.current_snapshot()
        self._seen = set()
        if snap is not None:
            ids = events.scan(selected_fields=("event_id",)).to_arrow().column("event_id")
            # 16 bytes of a sha256 are plenty to tell events apart and keep the set small.
            self._seen = {bytes.fromhex(i[:32]) for i in ids.to_pylist()}
        self._seen_at = snap.snapshot_id if snap else None
        jobs = self._table(store.JOBS)
        if jobs.current_snapshot() is not None:
            rows = jobs.scan(selected_fields=("job_namespace", "job_name")).to_arrow().to_pylist()
            self._jobs = {(r["job_namespace"], r["job_name"]) for r in rows}

    def start_offsets(self) -> dict[int, int] | None:
        """Lowest stored offset per partition over the row tables; None if none records any."""
        per_table = [stored_offsets(self._table(t), self.topic, self.log) for t in ROW_TABLES]
        if not any(per_table):
            return None
        parts = set().union(*per_table)
        return {p: min(t.get(p, 0) for t in per_table) for p in parts}

    def write(self, records: list[Record], report: ConsumeReport) -> None:
        # A batch allocates millions of small objects that all live until the commit: the cyclic
        # GC would walk them again and again (it cost ~40% of the consumer's time). None of them
        # form cycles, so collect once after the batch instead.
        gc.disable()
        try:
            self._write(records, report)
        finally:
            gc.enable()

    def _write(self, records: list[Record], report: ConsumeReport) -> None:
        parsed: list[Parsed] = []
        dead: list[dict[str, Any]] = []
        now = datetime.now(timezone.utc)
        for rec in records:
            result = parse(rec)
            if isinstance(result, Parsed):
                parsed.append(result)
            else:
                r, reason = result
                dead.append(
                    {"received_time": now, "topic": self.topic, "kafka_partition": r.partition, "kafka_offset": r.offset, "reason": reason, "raw": r.value}
                )
        offsets: dict[int, int] = {}
        for rec in records:
            offsets[rec.partition] = max(offsets.get(rec.partition, 0), rec.offset + 1)
        if dead:
            self._commit(store.DEAD_LETTERS, lambda: dead, offsets)
            report.dead_letters += len(dead)
        self._sync_registry(parsed, report)
        stored = 0
        for short in ROW_TABLES:
            stored = self._commit_rows(short, parsed, offsets)
        for p in parsed:
            self._seen.add(bytes.fromhex(p.event_id[:32]))
        report.stored_events += stored
        report.duplicates += len(parsed) - stored
        report.records += len(records)
        report.commits += 1
        for p, o in offsets.items():
            report.offsets[p] = max(report.offsets.get(p, 0), o)

    def _sync_registry(self, parsed: list[Parsed], report: ConsumeReport) -> None:
        """Registrations and alias moves into the model registry tables, before the offsets move past them.

        Idempotent (keyed by model+version and by the move's run id), so running it ahead of the
        offset-bearing commits means a crash replays the batch and adds only what is missing.
        """
        from lineage import drift_store, model_store

        added = model_store.upsert_from_events(self.catalog, self.settings, (p.event for p in parsed))
        report.registry_rows += sum(added.values())
        # Drift-check results (lineage.drift), idempotent the same way (keyed by run, table, column).
        report.drift_rows += drift_store.upsert_from_events(self.catalog, self.settings, (p.event for p in parsed))

    def _fresh(self, short: str, parsed: list[Parsed]) -> list[Parsed]:
        """Events of this batch that `short` does not hold yet: above its offsets, ids never stored."""
        have = stored_offsets(self._table(short), self.topic, self.log)
        out = []
        batch_ids: set[bytes] = set()
        for p in parsed:
            key = bytes.fromhex(p.event_id[:32])
            if key in self._seen or key in batch_ids:
                continue
            batch_ids.add(key)
            if p.record.offset >= have.get(p.record.partition, 0):
                out.append(p)
        return out

    def _rows(self, short: str, fresh: list[Parsed]) -> list[dict[str, Any]]:
        if short == store.EVENTS:
            return [store.event_row(p.event, p.event_id, p.record.partition, p.record.offset, p.text) for p in fresh]
        if short == store.RUNS:
            return [store.run_row(p.event, p.event_id) for p in fresh]
        if short == store.RUN_DATASETS:
            return [row for p in fresh for row in store.run_dataset_rows(p.event, p.event_id)]
        rows = []
        for p in fresh:
            job = store.job_row(p.event)
            key = (job["job_namespace"], job["job_name"])
            if key not in self._jobs:
                self._jobs.add(key)
                rows.append(job)
        return rows

    def _commit_rows(self, short: str, parsed: list[Parsed], offsets: Mapping[int, int]) -> int:
        """Append the rows of the events this table lacks; returns how many events were new to it."""
        count = 0

        def rows() -> list[dict[str, Any]]:
            nonlocal count
            fresh = self._fresh(short, parsed)
            count = len(fresh)
            return self._rows(short, fresh)

        self._commit(short, rows, offsets)
        return count

    def _commit(self, short: str, rows: Callable[[], list[dict[str, Any]]], offsets: Mapping[int, int]) -> None:
        import pyarrow as pa

        first = True

        def attempt() -> None:
            nonlocal first
            if not first:
                # Another consumer committed meanwhile: what it stored is no longer ours to store.
                self._load_seen()
            first = False
            table = self._table(short)
            data = pa.Table.from_pylist(rows(), schema=store.arrow_schema(short))
            # Even an empty append records the offsets, so a batch of duplicates is not replayed.
            table.append(data, snapshot_properties=self._props(table, offsets))

        with_commit_retry(attempt, f"storing lineage rows in {self.ns}.{short}")

    def _props(self, table: Table, offsets: Mapping[int, int]) -> dict[str, str]:
        merged = stored_offsets(table, self.topic, self.log)
        for p, o in offsets.items():
            merged[p] = max(merged.get(p, 0), o)
        record = {"topic": self.topic, "log": self.log, "offsets": {str(p): o for p, o in sorted(merged.items())}}
        return {OFFSETS: json.dumps(record), JOB_NAME: CONSUMER_JOB}

    # -- maintenance ------------------------------------------------------------------------------

    def compact(self, min_files: int = 8, keep_snapshots_s: float | None = None) -> int:
        """Rewrite each day partition that has many small files into one, then expire old snapshots.

        Every commit made here carries the offsets record forward, so expiring the snapshots that
        held it never loses the consumer's position. Returns how many partitions were rewritten.
        """
        keep = self.settings.lineage.keep_snapshots_s if keep_snapshots_s is None else keep_snapshots_s
        rewritten = 0
        for short in (*ROW_TABLES, store.DEAD_LETTERS):
            rewritten += self._compact_table(short, min_files)
            self._expire(short, keep)
        return rewritten

    def _compact_table(self, short: str, min_files: int) -> int:
        table = self._table(short)
        if table.current_snapshot() is None:
            return 0
        by_day: dict[Any, int] = {}
        for task in table.scan().plan_files():
            day = task.file.partition[0] if len(task.file.partition) else None
            by_day[day] = by_day.get(day, 0) + 1
        done = 0
        for day, files in by_day.items():
            if files < min_files or day is None:
                continue

            def attempt(day: Any = day) -> None:
                t = self._table(short)
                flt = _partition_filter(t, day)
                props = {**self._props(t, {}), JOB_NAME: MAINTENANCE_JOB}
                t.overwrite(t.scan(row_filter=flt).to_arrow(), overwrite_filter=flt, snapshot_properties=props)

            with_commit_retry(attempt, f"compacting {self.ns}.{short}")
            done += 1
        return done

    def _expire(self, short: str, keep_s: float) -> None:
        cutoff_ms = int((time.time() - keep_s) * 1000)
        try:
            expire_snapshots(self._table(short), cutoff_ms)
        except Exception as exc:  # expiry is housekeeping: a conflict or refusal waits for the next round
            log.info("snapshot expiry of %s.%s skipped: %s", self.ns, short, exc)


def _partition_filter(table: Table, day: Any) -> Any:
    """A row filter selecting exactly one day partition (day = days since 1970-01-01)."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    spec_field = table.spec().fields[0]
    source = table.schema().find_field(spec_field.source_id).name
    start = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(days=int(day))
    end = start + timedelta(days=1)
    return And(GreaterThanOrEqual(source, start.isoformat()), LessThan(source, end.isoformat()))


def consume(
    settings: Settings,
    *,
    once: bool = True,
    group: bool | None = None,
    batch_size: int = 1000,
    interval_s: float = 2.0,
    idle_timeout_s: float = 10.0,
    compact_every: int = 100,
    stop: threading.Event | None = None,
    on_batch: Callable[[ConsumeReport], None] | None = None,
) -> ConsumeReport:
    """Drain the lineage topic into the lineage tables.

    once=True: read to the end of every partition as it stood when we got there, then return.
    once=False: run until `stop` is set (or SIGTERM/SIGINT in the main thread), committing a batch
    every `batch_size` records or `interval_s` seconds, whichever comes first, and compacting the
    tables every `compact_every` commits. As a member of the consumer group (`group=True`) it shares
    the partitions with the other members; `group=False` takes every partition itself (no group
    join or session timeout to wait for: one consumer that restarts fast). Default: a group member
    on a configured Kafka; every partition on the embedded local broker, which serves one machine
    (and whose group coordinator was seen to stall after a member died).
    """
    if group is None:
        group = not settings.uses_local_broker
    from kafka import TopicPartition
    from kafka.errors import KafkaError
    from kafka.structs import OffsetAndMetadata

    from lineage.kafka import consumer as make_consumer
    from lineage.kafka import ensure_topic

    stop = stop or threading.Event()
    if not once and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())

    from kafka import ConsumerRebalanceListener

    catalog = load_catalog(settings)
    writer = LineageWriter(settings, catalog)
    ensure_topic(settings)
    kc = make_consumer(settings, settings.lineage.consumer_group)
    report = ConsumeReport()
    batch: list[Record] = []
    last_flush = time.monotonic()
    commits_since_compaction = 0

    def flush() -> None:
        nonlocal batch, last_flush, commits_since_compaction
        if batch:
            writer.write(batch, report)
            commits_since_compaction += 1
            try:
                kc.commit({TopicPartition(settings.kafka.topic, p): OffsetAndMetadata(o, "", -1) for p, o in report.offsets.items()})
            except KafkaError:
                pass  # group offsets are only a fallback (and fail during a rebalance); Iceberg holds the truth
            if on_batch:
                on_batch(report)
        batch = []
        last_flush = time.monotonic()
        if not once and commits_since_compaction >= compact_every:
            report.compactions += writer.compact()
            commits_since_compaction = 0

    def seek_to_stored(tps: list[Any], in_group: bool) -> None:
        """Position each partition where the Iceberg tables say we are; Kafka's offsets only as fallback.

        In a group, a partition without stored offsets is left alone: the group's committed offset
        (or the earliest) applies by itself, and asking for it inside the rebalance callback would
        block the coordinator.
        """
        start = writer.start_offsets()
        for tp in tps:
            if start is not None and tp.partition in start:
                kc.seek(tp, start[tp.partition])
            elif in_group:
                continue
            elif start is None and (committed := kc.committed(tp)) is not None:
                kc.seek(tp, committed)
            else:
                kc.seek_to_beginning(tp)

    class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
        # Partitions move between the group's members: store what we hold before they go, and
        # start the new ones from the offsets in the tables (another member may have moved them).
        def on_partitions_revoked(self, revoked: Any) -> None:
            flush()

        def on_partitions_assigned(self, assigned: Any) -> None:
            writer._load_seen()
            seek_to_stored(list(assigned), in_group=True)

    try:
        if once or not group:
            # Take every partition now (no group join to wait for); concurrent consumers are safe,
            # as each table refuses what it already holds.
            tps = [TopicPartition(settings.kafka.topic, p) for p in sorted(kc.partitions_for_topic(settings.kafka.topic) or [])]
            kc.assign(tps)
            seek_to_stored(tps, in_group=False)
        else:
            # A service: share the partitions with the other members of the consumer group.
            kc.subscribe([settings.kafka.topic], listener=Rebalance())
            tps = []
        last_progress = time.monotonic()
        while not stop.is_set():
            polled = kc.poll(timeout_ms=100, max_records=batch_size)
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
