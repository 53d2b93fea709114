"""The lineage consumer: Kafka topic -> Iceberg lineage tables, exactly once.

Exactly once without a transaction across Kafka and Iceberg: every commit to a lineage table
stores, in its snapshot summary, the next offset per partition that the table now includes
(`tidemark.kafka.offsets`). On start the consumer seeks to the lowest stored offset across the
tables, and each table skips records below its own stored offsets, so a crash between two commits
replays only what the later table lacks. Kafka's committed group offsets are a fallback for a store
that has none. Events also have a stable id (sha256 of their bytes); an id already in `events` is
never stored again, so a re-sent event (outbox retry, replayed backfill) is stored once.

Tables are written in a fixed order, `events` last: an event id in `events` therefore means every
other table already has that event's rows. Each event-keyed table also keeps its own id set.

Several consumers may write the same tables (each on its own partitions, or as group members).
Offsets are read back as the highest any snapshot recorded, per partition; before each append the
table's id set takes in the files other writers added since, on the very table state the append
builds on, and the lineage tables refuse a commit whose base moved (`commit.retry.num-retries=0`),
so a racing writer re-reads and retries instead of storing an event twice.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from lakehouse.branches import added_data_files
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.datafiles import append_data_files, write_data_files
from lakehouse.failpoints import step
from lakehouse.tables import JOB_NAME, ancestors, expire_snapshots, summary_properties, transaction, with_commit_retry
from lineage import decode, store
# By name: inside the consumer class, `decode` is its method.
from lineage.decode import Decoded
from lineage import events as ev
from lineage.broker import log_id as current_log_id
from lineage.outbox import OUTBOX_FILE, Outbox
from lineage.outbox import flush as flush_outbox
from lineage.recovery import recover_once

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

log = logging.getLogger(__name__)

OFFSETS = "tidemark.kafka.offsets"
# What identifies a row's origin in each table, for duplicate checks.
_KEY_COLUMNS = {
    store.EVENTS: ("event_id",),
    store.RUNS: ("event_id",),
    store.RUN_DATASETS: ("event_id",),
    store.JOBS: ("job_namespace", "job_name", "facet_name", "facet_value", "facet_time"),
}
CONSUMER_JOB = "tidemark.lineage.consumer"
MAINTENANCE_JOB = "tidemark.lineage.maintenance"
# Written in this order; `events` last (see the module docstring).
ROW_TABLES = (store.RUN_DATASETS, store.RUNS, store.JOBS, store.EVENTS)


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
    column_rows: int = 0
    offsets: dict[int, int] = field(default_factory=dict)


def stored_offsets(table: Table, topic: str, log_name: str) -> dict[int, int]:
    """Next offset per partition that `table` already holds, for this topic and this Kafka log.

    Per partition, the highest offset any snapshot recorded, not just the newest snapshot's: with
    several consumers on one table, each commit records what its writer knew, and a writer that
    only holds some partitions must not hide the others' progress.
    """
    out: dict[int, int] = {}
    snap = table.current_snapshot()
    for s in ancestors(table, snap.snapshot_id if snap else None):
        raw = summary_properties(s).get(OFFSETS)
        if raw:
            data = json.loads(raw)
            if data.get("topic") != topic or data.get("log") != log_name:
                # Offsets of another topic or of a log that no longer exists (a restarted local
                # broker): nothing older counts either.
                break
            for p, o in data.get("offsets", {}).items():
                out[int(p)] = max(out.get(int(p), 0), int(o))
    return out


class LineageWriter:
    """Turns batches of records into rows and commits them to each lineage table, exactly once."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self.ns = settings.lineage.namespace
        self.topic = settings.kafka.topic
        self.log = current_log_id(settings)
        store.ensure_tables(catalog, settings)
        # Per table, what it holds: event ids (16 bytes of the sha256) in `events`, `runs` and
        # `run_datasets`, job identities in `jobs`; and the snapshot each set reflects. Read on
        # the table's first commit (`_sync`), so a writer that only compacts never scans them.
        self._known: dict[str, set[Any]] = {}
        self._known_at: dict[str, int | None] = {}
        # The latest value (canonical JSON) of each job facet stored, and its event time (us).
        self._job_facets: dict[tuple[tuple[str, str], str], tuple[int, bytes]] = {}
        self._dead_ids: set[str] | None = None
        self._dead_ids_at: Any = None
        self._pending_facets: dict[Any, tuple[int, bytes]] = {}

    def _table(self, short: str) -> Table:
        return self.catalog.load_table((self.ns, short))

    def _load_known(self, short: str, table: Table) -> None:
        snap = table.current_snapshot()
        self._known[short] = set()
        if snap is not None:
            self._add_known(short, table.scan(selected_fields=_KEY_COLUMNS[short]).to_arrow())
        self._known_at[short] = snap.snapshot_id if snap else None

    def _add_known(self, short: str, data: pa.Table) -> None:
        if short == store.JOBS:
            keys = list(zip(data.column("job_namespace").to_pylist(), data.column("job_name").to_pylist()))
            self._known[short].update(keys)
            if "facet_name" in data.column_names:
                self._note_job_facets(keys, data)
        else:
            self._known[short].update(bytes.fromhex(i[: decode.KEY_BYTES * 2]) for i in data.column("event_id").to_pylist())

    def _note_job_facets(self, keys: list[tuple[str, str]], data: pa.Table) -> None:
        """Take in stored job facet changes: the latest per job and facet wins."""
        import pyarrow.compute as pc

        names, values = data.column("facet_name").to_pylist(), data.column("facet_value").to_pylist()
        times = pc.cast(data.column("facet_time"), "int64").to_pylist()
        for key, name, value, when in zip(keys, names, values, times):
            if name is None or when is None:
                continue
            have = self._job_facets.get((key, name))
            if have is None or when > have[0]:
                self._job_facets[(key, name)] = (when, value.encode())

    def _job_facet_changes(self, batch: Decoded, fresh: list[int]) -> tuple[list[Any], dict[Any, tuple[int, bytes]]]:
        """The job facets of these events that differ from the latest stored value, newer than it.

        "Latest" is by event time, so an older event arriving late (another partition, another
        producer) never replaces a newer value. Returns the `jobs` rows to add and the new state.
        """
        import orjson

        wanted = set(fresh) if len(fresh) != len(batch.keys) else None
        latest: dict[Any, tuple[int, bytes]] = {}
        rows: list[Any] = []
        run_ids = batch.tables[store.EVENTS].column("run_id") if batch.job_facets else None
        for j, key, when, facets in sorted(batch.job_facets, key=lambda f: f[2]):
            if wanted is not None and j not in wanted:
                continue
            for name, value in facets.items():
                text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
                have = latest.get((key, name)) or self._job_facets.get((key, name))
                if have is None or (when > have[0] and text != have[1]):
                    latest[(key, name)] = (when, text)
                    rows.append((key, when, name, text, run_ids[j].as_py() if run_ids is not None else None))
        return rows, latest

    def _sync(self, short: str, table: Table) -> None:
        """Bring the set of `short` up to this state of it: other consumers commit to the same
        tables. Reads only the files added since the set was read; all of them the first time, or
        if that snapshot is gone (expired) or the table went back."""
        added = _added_files(table, self._known_at[short]) if short in self._known else None
        if added is None:
            self._load_known(short, table)
            return
        for data in _read_columns(table, added, _KEY_COLUMNS[short]):
            self._add_known(short, data)
        snap = table.current_snapshot()
        self._known_at[short] = snap.snapshot_id if snap else None

    def start_offsets(self) -> dict[int, int] | None:
        """Lowest stored offset per partition over the row tables; None if none records any."""
        per_table = [stored_offsets(self._table(t), self.topic, self.log) for t in ROW_TABLES]
        if not any(per_table):
            return None
        parts = set().union(*per_table)
        return {p: min(t.get(p, 0) for t in per_table) for p in parts}

    def write_columns(self, partitions: list[int], offsets: list[int], values: list[bytes], report: ConsumeReport) -> list[str]:
        """Store one batch of records, given as parallel lists (what the record source hands over).

        Returns the event ids of the records now in the store (events and dead letters whose bytes
        parse as an event): what a producer's outbox is acknowledged by."""
        batch = self.decode(partitions, offsets, values)
        self.store(batch, partitions, offsets, values, report)
        ids = list(batch.ids)
        for i, _ in batch.dead:
            try:
                ids.append(ev.event_id(values[i]))
            except Exception:  # not JSON at all: no outbox holds it under an event id
                continue
        return ids

    def decode(self, partitions: list[int], offsets: list[int], values: list[bytes]) -> Decoded:
        """The rows every table would get from these records, and the dead letters among them."""
        return decode.decode(partitions, offsets, values)

    def store(self, batch: Decoded, partitions: list[int], offsets: list[int], values: list[bytes], report: ConsumeReport) -> None:
        """Commit a decoded batch to every table, exactly once (see the module docstring)."""
        import pyarrow as pa

        now = datetime.now(timezone.utc)
        dead: list[dict[str, Any]] = [
            {"received_time": now, "topic": self.topic, "kafka_partition": partitions[i], "kafka_offset": offsets[i], "reason": reason,
             "raw": values[i], "dead_letter_id": hashlib.sha256(values[i]).hexdigest()}
            for i, reason in batch.dead
        ]
        high: dict[int, int] = {}
        for p, o in zip(partitions, offsets):
            if o >= high.get(p, 0):
                high[p] = o + 1
        if dead:

            def dead_rows(table: Table) -> pa.Table:
                # A replayed batch (crash after this commit) must not store its dead letters again.
                have = stored_offsets(table, self.topic, self.log)
                # The same bytes sent again (another offset, another producer) are the same dead letter.
                known = self._dead_letter_ids(table)
                fresh = []
                for d in dead:
                    if d["kafka_offset"] >= have.get(d["kafka_partition"], 0) and d["dead_letter_id"] not in known:
                        known.add(d["dead_letter_id"])
                        fresh.append(d)
                return pa.Table.from_pylist(fresh, schema=store.arrow_schema(store.DEAD_LETTERS))

            self._commit(store.DEAD_LETTERS, dead_rows, high)
            report.dead_letters += len(dead)
        self._sync_registry(batch.registry_events, report)
        self._sync_columns(batch.column_events, report)
        stored = 0
        for short in ROW_TABLES:
            stored = self._commit_rows(short, batch, high)
        for short in (store.EVENTS, store.RUNS, store.RUN_DATASETS):
            self._known[short].update(batch.keys)
        report.stored_events += stored
        report.duplicates += len(batch.keys) - stored
        report.records += len(values)
        report.commits += 1
        for p, o in high.items():
            report.offsets[p] = max(report.offsets.get(p, 0), o)

    def _dead_letter_ids(self, table: Table) -> set[str]:
        """Ids of the dead letters stored (read once per writer; a racing writer's new ones are
        re-read when the table moved, as the commit is then refused and retried)."""
        snap = table.current_snapshot()
        at = snap.snapshot_id if snap else None
        if self._dead_ids is None or self._dead_ids_at != at:
            ids: set[str] = set()
            if table.current_snapshot() is not None:
                data = table.scan(selected_fields=("dead_letter_id", "raw")).to_arrow()
                for i, raw in zip(data.column("dead_letter_id").to_pylist(), data.column("raw").to_pylist()):
                    ids.add(i or hashlib.sha256(raw or b"").hexdigest())  # rows from before the id column
            self._dead_ids, self._dead_ids_at = ids, at
        return self._dead_ids

    def _sync_registry(self, events: list[dict[str, Any]], report: ConsumeReport) -> None:
        """Registrations, alias moves and drift checks into the registry and drift tables, before the offsets move past them.

        Idempotent (keyed by model+version and by the move's run id), so running it ahead of the
        offset-bearing commits means a crash replays the batch and adds only what is missing.
        """
        if not events:
            return
        from lineage import drift_store, model_store

        added = model_store.upsert_from_events(self.catalog, self.settings, events)
        report.registry_rows += sum(added.values())
        # Drift-check results (lineage.drift), idempotent the same way (keyed by run, table, column).
        report.drift_rows += drift_store.upsert_from_events(self.catalog, self.settings, events)

    def _sync_columns(self, events: list[dict[str, Any]], report: ConsumeReport) -> None:
        """Column-level lineage (`columnLineage` facets) into `lineage.column_lineage`, before the
        offsets move past these events; idempotent (keyed by run and edge), like the registry sync."""
        if events:
            from lineage import columns

            report.column_rows += columns.upsert_from_events(self.catalog, self.settings, events)

    def _fresh(self, short: str, table: Table, batch: Decoded) -> list[int]:
        """Events of this batch that `table` does not hold yet: above its offsets, ids it never
        stored (`jobs` has no ids: its rows are new job identities, see `_rows`)."""
        have = stored_offsets(table, self.topic, self.log)
        seen = self._known[short] if short != store.JOBS else set()
        keys = batch.keys
        # The usual batch: nothing stored yet, no id twice. Set operations in C decide it.
        if all(o >= have.get(p, 0) for p, o in batch.lowest.items()) and seen.isdisjoint(keys) and batch.keys_unique:
            return list(range(len(keys)))
        out = []
        batch_ids: set[bytes] = set()
        for j, (key, p, o) in enumerate(zip(keys, batch.partitions, batch.offsets)):
            if key in seen or key in batch_ids:
                continue
            batch_ids.add(key)
            if o >= have.get(p, 0):
                out.append(j)
        return out

    def _rows(self, short: str, batch: Decoded, fresh: list[int]) -> tuple[pa.Table, set[tuple[str, str]]]:
        """The rows of `short` for these events, and (for `jobs`) the jobs they add."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = batch.tables[short]
        self._pending_facets = {}
        if short != store.JOBS and len(fresh) == len(batch.keys):
            return table, set()  # the usual batch: every event is new (a take would copy every payload)
        if short == store.RUN_DATASETS:
            mask = pc.is_in(pa.array(batch.dataset_event, pa.int64()), value_set=pa.array(fresh, pa.int64()))
            return table.filter(mask), set()
        if short != store.JOBS:
            return table.take(pa.array(fresh, pa.int64())), set()
        new: dict[tuple[str, str], int] = {}
        for j in fresh:
            key = batch.job_keys[j]
            if key not in self._known[store.JOBS] and key not in new:
                new[key] = j
        out = table.take(pa.array(list(new.values()), pa.int64()))
        changes, self._pending_facets = self._job_facet_changes(batch, fresh)
        if changes:
            out = pa.concat_tables([out, store.job_facet_rows(changes)])
        return out, set(new)

    def _commit_rows(self, short: str, batch: Decoded, offsets: Mapping[int, int]) -> int:
        """Append the rows of the events this table lacks; returns how many events were new to it."""
        count = 0
        jobs: set[tuple[str, str]] = set()

        def rows(table: Table) -> pa.Table:
            nonlocal count, jobs
            fresh = self._fresh(short, table, batch)
            count = len(fresh)
            data, jobs = self._rows(short, batch, fresh)
            return data

        self._commit(short, rows, offsets)
        if jobs:
            self._known[store.JOBS] |= jobs
        if short == store.JOBS:
            self._job_facets.update(self._pending_facets)
        return count

    def _commit(self, short: str, rows: Callable[[Table], pa.Table], offsets: Mapping[int, int]) -> None:
        def attempt() -> None:
            table = self._table(short)
            # What other consumers stored is no longer ours to store: the set is synced with the
            # very state this append builds on, and the table refuses a commit whose base moved
            # meanwhile (commit.retry.num-retries=0), so a racing writer means another attempt.
            if short in ROW_TABLES:
                self._sync(short, table)
            # Parquet written here, not by pyiceberg's append (see lakehouse.datafiles), then one
            # fast append. (`transaction`: pyiceberg's own deep-copies these tables' growing
            # metadata many times per append.)
            files = write_data_files(table, rows(table), dictionary=store.DICTIONARY_COLUMNS)
            with transaction(table) as tx:
                append_data_files(tx, files, self._props(table, offsets))
            if short in ROW_TABLES:
                snap = table.current_snapshot()
                self._known_at[short] = snap.snapshot_id if snap else None

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
        rewritten += self._compact_column_lineage(min_files, keep)
        return rewritten

    def _compact_column_lineage(self, min_files: int, keep_s: float) -> int:
        """`column_lineage` gets a file per batch that carried column lineage, and a column walk
        reads them all: rewrite them as one when there are many (the table is not partitioned),
        then expire old snapshots. Returns 1 if it rewrote."""
        from lineage import columns

        if not self.catalog.table_exists((self.ns, columns.COLUMN_LINEAGE)):
            return 0
        done = 0
        # Ensured, as every writer of it does: a table made before its layout gets the row-group property first.
        if len(list(columns.ensure(self.catalog, self.settings).scan().plan_files())) >= min_files:

            def attempt() -> None:
                t = self._table(columns.COLUMN_LINEAGE)
                rows = t.scan().to_arrow().sort_by([(c, "ascending") for c in columns.ORDER])
                with transaction(t) as tx:
                    tx.overwrite(rows, snapshot_properties={JOB_NAME: MAINTENANCE_JOB})

            with_commit_retry(attempt, f"compacting {self.ns}.{columns.COLUMN_LINEAGE}")
            done = 1
        self._expire(columns.COLUMN_LINEAGE, keep_s)
        return done

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


def _added_files(table: Table, since: int | None) -> list[Any] | None:
    """Data files the snapshots after `since` added to `table`, oldest first; None if `since` is
    not an ancestor of the current snapshot (expired, or the table was rolled back)."""
    snap = table.current_snapshot()
    newer = []
    for s in ancestors(table, snap.snapshot_id if snap else None):
        if s.snapshot_id == since:
            break
        newer.append(s)
    else:
        if since is not None:
            return None
    return [f for s in reversed(newer) for f in added_data_files(table, s)]


def _read_columns(table: Table, files: list[Any], columns: tuple[str, ...]) -> Iterator[pa.Table]:
    """These columns of these data files (Parquet, written by this writer's schema)."""
    import pyarrow.parquet as pq

    for f in files:
        with table.io.new_input(f.file_path).open() as stream:
            pf = pq.ParquetFile(stream)
            names = set(pf.schema_arrow.names)  # files written before a column was added lack it
            yield pf.read(columns=[c for c in columns if c in names])


def _partition_filter(table: Table, day: Any) -> Any:
    """A row filter selecting exactly one day partition (day = days since 1970-01-01)."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    spec_field = table.spec().fields[0]
    source = table.schema().find_field(spec_field.source_id).name
    start = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(days=int(day))
    end = start + timedelta(days=1)
    return And(GreaterThanOrEqual(term=source, value=start.isoformat()), LessThan(term=source, value=end.isoformat()))


def consume(
    settings: Settings,
    *,
    once: bool = True,
    group: bool | None = None,
    partitions: Sequence[int] | None = None,
    batch_size: int | None = None,
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
    tables every `compact_every` commits.

    Which partitions: as a member of the consumer group (`group=True`, a service) it shares them
    with the other members; `group=False` takes every partition itself (no group join or session
    timeout to wait for: one consumer that restarts fast); `partitions=[...]` takes exactly those,
    also without the group: several consumers, each started with its own partitions, share the
    topic with no group coordinator involved, and a replacement for one that died is started with
    the same partitions. Default: a group member on a configured Kafka; every partition on the
    embedded local broker, whose group coordinator (Tansu 0.6) never finishes a rebalance after
    a member leaves or dies.
    """
    if partitions is not None:
        group = False
    elif group is None:
        group = not settings.uses_local_broker
    from lineage.kafka import ensure_topic

    stop = stop or threading.Event()
    if not once and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    catalog = load_catalog(settings)
    writer = LineageWriter(settings, catalog)
    ensure_topic(settings)
    loop = _Batcher(writer, ConsumeReport(), batch_size or settings.lineage.batch_size, interval_s, compact_every if not once else 0, on_batch)
    if (settings.home / OUTBOX_FILE).exists():
        # Events this home's jobs left behind go out first: runs a killed process left in flight
        # get their terminal event, and what waits in the outbox is sent, then drained here.
        loop.outbox = Outbox(settings)
        recover_once(settings)
        if loop.outbox.pending():
            flush_outbox(settings)
    with _collect_between_batches():
        if group and not once:
            _consume_in_group(settings, writer, loop, stop)
        else:
            _consume_partitions(settings, writer, loop, stop, partitions, once, idle_timeout_s)
    return loop.report


def compact(settings: Settings, min_files: int = 2) -> int:
    """Rewrite the lineage tables' small files and expire their old snapshots, as the consumer does
    between batches (`LineageWriter.compact`), for a scheduler to run as well. A scheduled run comes
    rarely, so it merges every day partition holding more than one file by default. Returns how many
    partitions were rewritten."""
    return LineageWriter(settings, load_catalog(settings)).compact(min_files=min_files)


_FULL_COLLECTION_EVERY = 20  # batches


@contextmanager
def _collect_between_batches() -> Iterator[None]:
    """No automatic cyclic GC while consuming; `_Batcher.flush` collects after each batch.

    Every record polled and every value decoded is a new object, and the writer keeps sets of
    every stored id: the automatic GC ran a young collection every ~700 records and regularly
    walked those sets, ~2.5 µs per event (measured on 200k events). Almost nothing here forms
    cycles (reference counting frees it), so collecting once per batch loses nothing.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Batcher:
    """Collects records into batches and stores each batch; shared by both ways of reading."""

    def __init__(
        self,
        writer: LineageWriter,
        report: ConsumeReport,
        batch_size: int,
        interval_s: float,
        compact_every: int,
        on_batch: Callable[[ConsumeReport], None] | None,
    ) -> None:
        self.writer, self.report = writer, report
        self.batch_size, self.interval_s, self.compact_every = batch_size, interval_s, compact_every
        self.on_batch = on_batch
        self.partitions: list[int] = []
        self.offsets: list[int] = []
        self.values: list[bytes] = []
        self.last_flush = time.monotonic()
        self.since_compaction = 0
        self.batches = 0
        # This home's outbox, if it has one: the events just stored leave it (end-to-end ack).
        self.outbox: Outbox | None = None

    def _acknowledge(self, event_ids: list[str]) -> None:
        """The store now holds these events (stored, duplicate or dead letter): the outbox may forget them."""
        if self.outbox is None or not self.outbox.unacknowledged():
            return
        try:
            self.outbox.acknowledge(event_ids)
        except Exception as exc:  # the events stay; `tidemark lineage recover` acknowledges them later
            log.warning("could not acknowledge stored events in %s: %s", self.outbox.path, exc)

    def add(self, partitions: list[int], offsets: list[int], values: list[bytes]) -> None:
        self.partitions += partitions
        self.offsets += offsets
        self.values += values

    def room(self) -> int:
        return max(1, self.batch_size - len(self.values))

    def due(self) -> bool:
        return len(self.values) >= self.batch_size or (
            bool(self.values) and time.monotonic() - self.last_flush >= self.interval_s
        )

    def flush(self, commit_group_offsets: Callable[[Mapping[int, int]], None]) -> None:
        if self.values:
            stored = self.writer.write_columns(self.partitions, self.offsets, self.values, self.report)
            step("consume.consumed-committed")
            self._acknowledge(stored)
            step("consume.acknowledged")
            self.partitions, self.offsets, self.values = [], [], []
            self.since_compaction += 1
            self.batches += 1
            gc.collect(1 if self.batches % _FULL_COLLECTION_EVERY else 2)  # see _collect_between_batches
            commit_group_offsets(self.report.offsets)
            if self.on_batch:
                self.on_batch(self.report)
        self.last_flush = time.monotonic()
        if self.compact_every and self.since_compaction >= self.compact_every:
            self.report.compactions += self.writer.compact()
            self.since_compaction = 0


def _consume_partitions(
    settings: Settings,
    writer: LineageWriter,
    loop: _Batcher,
    stop: threading.Event,
    partitions: Sequence[int] | None,
    once: bool,
    idle_timeout_s: float,
) -> None:
    """Read fixed partitions (all, or the given ones) with no group membership."""
    from lineage.exceptions import ConsumerError
    from lineage.fetch import PartitionReader

    reader = PartitionReader(settings, settings.lineage.consumer_group)
    try:
        available = reader.partitions()
        wanted = sorted(set(partitions)) if partitions is not None else available
        missing = sorted(set(wanted) - set(available))
        if missing:
            raise ConsumerError(
                f"partition(s) {', '.join(map(str, missing))} of topic {settings.kafka.topic!r} do not exist "
                f"(it has {len(available)}: 0..{len(available) - 1}); fix partitions",
                parameter="partitions",
            )
        # Where the Iceberg tables say we are; Kafka's committed offsets only if they record nothing.
        start = writer.start_offsets()
        committed = reader.committed(wanted) if start is None else {}
        reader.assign({p: start[p] if start is not None and p in start else committed.get(p) for p in wanted})
        last_progress = time.monotonic()
        while not stop.is_set():
            parts, offsets, values = reader.poll(loop.room(), 0.1)
            if values:
                loop.add(parts, offsets, values)
                last_progress = time.monotonic()
            if loop.due():
                loop.flush(reader.commit)
            if once and (reader.drained() or time.monotonic() - last_progress > idle_timeout_s):
                break
        loop.flush(reader.commit)
    finally:
        reader.close()


def _consume_in_group(settings: Settings, writer: LineageWriter, loop: _Batcher, stop: threading.Event) -> None:
    """A member of the consumer group (kafka-python): the group shares the partitions among its members."""
    from kafka import ConsumerRebalanceListener, TopicPartition
    from kafka.errors import KafkaError
    from kafka.structs import OffsetAndMetadata

    from lineage.kafka import consumer as make_consumer

    kc = make_consumer(settings, settings.lineage.consumer_group)

    def commit(offsets: Mapping[int, int]) -> None:
        try:
            kc.commit({TopicPartition(settings.kafka.topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
        except KafkaError:
            pass  # group offsets are only a fallback (and fail during a rebalance); Iceberg holds the truth

    class Rebalance(ConsumerRebalanceListener):
        # Partitions move between the group's members: store what we hold before they go, and
        # start the new ones from the offsets in the tables (another member may have moved them).
        def on_partitions_revoked(self, revoked: Any) -> None:
            loop.flush(commit)

        def on_partitions_assigned(self, assigned: Any) -> None:
            # A partition without stored offsets is left alone: the group's committed offset (or
            # the earliest) applies by itself, and asking for it here would block the coordinator.
            # (What the other members stored reaches the duplicate checks at each commit: `_sync`.)
            start = writer.start_offsets() or {}
            for tp in assigned:
                if tp.partition in start:
                    kc.seek(tp, start[tp.partition])

    try:
        kc.subscribe([settings.kafka.topic], listener=Rebalance())
        while not stop.is_set():
            polled = kc.poll(timeout_ms=100, max_records=loop.room())
            for tp, recs in polled.items():
                loop.add([tp.partition] * len(recs), [r.offset for r in recs], [r.value if r.value is not None else b"" for r in recs])
            if loop.due():
                loop.flush(commit)
        loop.flush(commit)
    finally:
        kc.close()
