"""A durable outbox for lineage events (SQLite under TIDEMARK_HOME), and the runs in flight.

An event is written here first and stays until the lineage store holds it: sending it to Kafka
(acks=all) only marks it *sent*; the lineage consumer's commit is the acknowledgement that removes
it (`acknowledge`, by event id, and `reconcile` against the lineage tables for a consumer that runs
elsewhere). So a job never loses its lineage because Kafka was down or slow, and a broker that
lost its log (the local broker keeps it in memory: `tidemark down`, a crash) gets the events again:
a new local broker log re-queues every sent, unacknowledged event (`requeue_sent`), and the
consumer stores each event id once, so the re-sent copies are harmless.

`emit` returns once the event is durably in the outbox; a background thread of the transport
delivers it to Kafka meanwhile, so a job does not wait for the broker's acknowledgement. `close`
(and process exit) waits, bounded, for that delivery to finish.

Runs in flight: a run's START is written together with a row of `runs_in_flight` (one SQLite
transaction), and its COMPLETE or FAIL together with that row's removal. A row left behind is a
run whose process died; `lineage.recovery` finishes it from what its commit left in the tables.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.config import Settings
from lakehouse.exceptions import TidemarkError, no_space, storage_full
from lineage.events import event_id
from lineage.transport import serialize

if TYPE_CHECKING:
    from kafka import KafkaProducer

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.db"
# A claim older than this is taken to belong to a process that died mid-delivery.
CLAIM_TIMEOUT_S = 60.0
# After a failed delivery, this process waits this long before trying again on its own, so a job
# that emits many events while Kafka is down pays the connection timeout once, not per event.
RETRY_AFTER_S = 30.0
# A START waits this long on the delivery thread for its run's terminal event, so a short run (a
# training of a small model, a small landing) is delivered once, START and COMPLETE together,
# after the job, instead of twice with the first delivery competing with the job for the
# interpreter (kafka-python is pure Python): ~5 ms of a ~50 ms training on this 2-core machine.
# Durability does not change (the event is in the outbox when emit returns); a longer run's START
# reaches the broker this much later.
START_LINGER_S = 0.25
# Shared by every transport in the process (each job run makes its own), keyed by outbox file.
_NEXT_TRY: dict[str, float] = {}
# Lock files of the runs in flight: the process running one holds an flock on its file, which the
# kernel releases when the process dies however it dies, so recovery can tell dead runs from live ones.
RUN_LOCKS = "runs"
TERMINAL = ("COMPLETE", "FAIL", "ABORT")


def hold_run_lock(home: Path, run_id: str) -> int | None:
    """An exclusive lock on the run's lock file (its descriptor), or None if a live process holds it."""
    path = home / RUN_LOCKS / f"{run_id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def release_run_lock(home: Path, run_id: str, fd: int) -> None:
    # Unlinked while still locked: whoever opens the path afterwards gets a new file, and finds
    # the run no longer in flight.
    (home / RUN_LOCKS / f"{run_id}.lock").unlink(missing_ok=True)
    os.close(fd)


def _process_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True  # another user's process, or a claim we cannot read: leave it to the timeout
    return True


@contextlib.contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction taken at once (BEGIN IMMEDIATE), rolled back if the block raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _insert(db: sqlite3.Connection, topic: str, key: bytes, value: bytes) -> int:
    cur = db.execute(
        "INSERT INTO outbox (topic, key, value, created, event_id) VALUES (?, ?, ?, ?, ?)",
        # The id the lineage store gives the event (the hash of its canonical form), so the consumer's
        # commit can acknowledge it here.
        (topic, key, value, time.time(), event_id(value)),
    )
    return int(cur.lastrowid or 0)


def _note(db: sqlite3.Connection, run_id: str, resolver: str, context: Mapping[str, Any]) -> None:
    """Set run `run_id`'s resolver and merge `context` into its recovery context."""
    row = db.execute("SELECT context FROM runs_in_flight WHERE run_id = ?", (run_id,)).fetchone()
    merged = {**json.loads(row[0] or "{}"), **dict(context)} if row else dict(context)
    db.execute("UPDATE runs_in_flight SET resolver = ?, context = ? WHERE run_id = ?", (resolver, json.dumps(merged, default=str), run_id))


@dataclass(frozen=True)
class InFlight:
    """A run whose START is in the outbox and whose terminal event is not (yet)."""

    run_id: str
    job_name: str
    topic: str
    start_event: dict[str, Any] | None
    resolver: str | None  # "module:function" that finishes it from its commit; None: FAIL if interrupted
    context: dict[str, Any]
    created: float
    pid: int | None


@dataclass
class FlushReport:
    delivered: int
    pending: int
    error: str | None = None


def use_wal(conn: sqlite3.Connection, patience_s: float = 30.0) -> None:
    # Switching the journal mode does not wait on SQLite's busy timeout: a process opening the file
    # while another one converts it gets "database is locked" at once (seen with 6 at a time).
    # A plain loop, not a retry library: this module is imported by the job runner inside a model's
    # recorded environment, which holds the job's own packages only.
    deadline = time.monotonic() + patience_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.01, 0.1))


class Outbox:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.path: Path = settings.home / OUTBOX_FILE
        self._local = threading.local()
        db = self._db()
        # One writer at a time sets the file up: without the write lock two processes starting
        # together both see an old outbox and both add its new columns (the second one fails).
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                """CREATE TABLE IF NOT EXISTS outbox (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL,
                    created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                    claimed_by TEXT, claimed_at REAL, last_error TEXT,
                    event_id TEXT, sent_at REAL)"""
            )
            columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
            # An outbox made before events were kept until the store acknowledged them.
            if "event_id" not in columns:
                db.execute("ALTER TABLE outbox ADD COLUMN event_id TEXT")
                # Events waiting from before: their ids, so the store's acknowledgement finds them.
                db.executemany(
                    "UPDATE outbox SET event_id = ? WHERE id = ?",
                    [(event_id(bytes(v)), i) for i, v in db.execute("SELECT id, value FROM outbox").fetchall()],
                )
            if "sent_at" not in columns:
                db.execute("ALTER TABLE outbox ADD COLUMN sent_at REAL")
            db.execute("CREATE INDEX IF NOT EXISTS outbox_event_id ON outbox (event_id)")
            db.execute(
                """CREATE TABLE IF NOT EXISTS runs_in_flight (
                    run_id TEXT PRIMARY KEY, job_name TEXT NOT NULL, topic TEXT NOT NULL,
                    start_event BLOB, resolver TEXT, context TEXT NOT NULL DEFAULT '{}',
                    created REAL NOT NULL, pid INTEGER)"""
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _db(self, durable: bool = True) -> sqlite3.Connection:
        """This thread's connection. `durable`: each commit is on the disk when it returns
        (synchronous=FULL: an event in the outbox survives a power cut). Else synchronous=NORMAL, for
        delivery's bookkeeping only (claims, sent marks): a power cut may undo the last of those, and
        the events they marked are then sent again, which the lineage store keeps once (by event id).
        A delivery used to fsync twice per batch, inside the write lock a job's next event waits for.
        Both modes keep the file consistent, and a durable commit makes every commit before it durable."""
        attr = "conn" if durable else "bookkeeping"
        conn = getattr(self._local, attr, None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            use_wal(conn)
            conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            setattr(self._local, attr, conn)
        return conn

    def put(self, topic: str, key: bytes, value: bytes) -> int:
        try:
            with self._db() as db:
                return _insert(db, topic, key, value)
        except sqlite3.OperationalError as exc:
            if no_space(exc):
                raise storage_full(str(self.path), "recording a lineage event in the outbox") from exc
            raise

    def pending(self) -> int:
        """Events not yet acknowledged by the broker."""
        return int(self._db().execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0])

    def unacknowledged(self) -> int:
        """Events the broker acknowledged that the lineage store has not acknowledged yet."""
        return int(self._db().execute("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL").fetchone()[0])

    def oldest_created(self) -> float | None:
        """When the oldest undelivered event was put here (epoch seconds), or None if none waits."""
        row = self._db().execute("SELECT min(created) FROM outbox WHERE sent_at IS NULL").fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def acknowledge(self, event_ids: Iterable[str]) -> int:
        """Forget the events the lineage store now holds (the consumer's commit is the acknowledgement)."""
        ids = list(event_ids)
        if not ids:
            return 0
        with self._db() as db:
            done = 0
            for i in range(0, len(ids), 500):  # SQLite's limit on bound parameters
                chunk = ids[i : i + 500]
                done += db.execute(f"DELETE FROM outbox WHERE event_id IN ({','.join('?' * len(chunk))})", chunk).rowcount
            return done

    def sent_unacknowledged(self, older_than_s: float = 0.0) -> list[str]:
        """Event ids sent at least `older_than_s` ago that the lineage store has not acknowledged."""
        rows = self._db().execute(
            "SELECT event_id FROM outbox WHERE sent_at IS NOT NULL AND sent_at <= ? AND event_id IS NOT NULL",
            (time.time() - older_than_s,),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def requeue_sent(self, event_ids: Iterable[str] | None = None) -> int:
        """Send again events the broker acknowledged but may have lost (a new broker log, or these ids)."""
        with self._db() as db:
            if event_ids is None:
                return db.execute("UPDATE outbox SET sent_at = NULL WHERE sent_at IS NOT NULL").rowcount
            ids = list(event_ids)
            return sum(
                db.execute("UPDATE outbox SET sent_at = NULL WHERE event_id = ? AND sent_at IS NOT NULL", (i,)).rowcount for i in ids
            )

    # -- runs in flight ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One SQLite transaction (the connection autocommits each statement otherwise). A full
        device is StorageFullError naming this outbox, not a driver traceback."""
        db = self._db()
        try:
            with immediate(db) as conn:
                yield conn
        except sqlite3.OperationalError as exc:
            if db.in_transaction:  # a COMMIT that failed leaves it open
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if no_space(exc):
                raise storage_full(str(self.path), "recording a lineage event in the outbox") from exc
            raise

    def begin_run(
        self, topic: str, run_id: str, job_name: str, start: bytes | None, resolver: str | None = None, context: Mapping[str, Any] | None = None
    ) -> None:
        """The run's START (if any) and its in-flight row, in one transaction; with `resolver`, the
        row says from the start how recovery finishes the run (as `note_run` does later)."""
        with self._transaction() as db:
            if start is not None:
                _insert(db, topic, run_id.encode(), start)
            added = db.execute(
                "INSERT OR IGNORE INTO runs_in_flight (run_id, job_name, topic, start_event, resolver, context, created, pid)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, job_name, topic, start, resolver, json.dumps(dict(context or {}), default=str), time.time(), os.getpid()),
            ).rowcount
            if resolver is not None and not added:  # in flight already: the note is merged as note_run merges it
                _note(db, run_id, resolver, context or {})

    def note_run(self, run_id: str, resolver: str, context: Mapping[str, Any]) -> None:
        """Say how recovery finishes this run if its process dies (before the commit it describes)."""
        with self._transaction() as db:
            _note(db, run_id, resolver, context)

    def finish_run(self, topic: str, run_id: str, terminal: bytes) -> bool:
        """The run's terminal event and the removal of its in-flight row, in one transaction;
        True if the run was in flight (a run may also end without a START, e.g. an alias move)."""
        with self._transaction() as db:
            gone = db.execute("DELETE FROM runs_in_flight WHERE run_id = ?", (run_id,)).rowcount
            _insert(db, topic, run_id.encode(), terminal)
            return bool(gone)

    def runs_in_flight(self) -> list[InFlight]:
        rows = self._db().execute(
            "SELECT run_id, job_name, topic, start_event, resolver, context, created, pid FROM runs_in_flight ORDER BY created"
        ).fetchall()
        return [
            InFlight(str(r[0]), str(r[1]), str(r[2]), None if r[3] is None else json.loads(r[3]), r[4], json.loads(r[5] or "{}"), float(r[6]), r[7])
            for r in rows
        ]

    def in_flight(self, run_id: str) -> bool:
        return self._db().execute("SELECT 1 FROM runs_in_flight WHERE run_id = ?", (run_id,)).fetchone() is not None

    def _claim(self, limit: int) -> list[tuple[int, str, bytes, bytes]]:
        me = f"{os.getpid()}-{threading.get_ident()}"
        now = time.time()
        db = self._db(durable=False)  # a claim lost to a power cut is void anyway: its process is gone
        db.execute("BEGIN IMMEDIATE")
        try:
            # A claim of a process that is gone (killed mid-delivery) is void at once, not after the timeout.
            for (owner,) in db.execute("SELECT DISTINCT claimed_by FROM outbox WHERE claimed_by IS NOT NULL").fetchall():
                if not _process_alive(str(owner).split("-", 1)[0]):
                    db.execute("UPDATE outbox SET claimed_by = NULL, claimed_at = NULL WHERE claimed_by = ?", (owner,))
            rows = db.execute(
                "SELECT id, topic, key, value FROM outbox WHERE sent_at IS NULL AND (claimed_by IS NULL OR claimed_at < ?) ORDER BY id LIMIT ?",
                (now - CLAIM_TIMEOUT_S, limit),
            ).fetchall()
            if rows:
                db.executemany(
                    "UPDATE outbox SET claimed_by = ?, claimed_at = ?, attempts = attempts + 1 WHERE id = ?",
                    [(me, now, r[0]) for r in rows],
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return [(int(r[0]), str(r[1]), bytes(r[2] or b""), bytes(r[3])) for r in rows]

    def _finish(self, delivered: list[int], failed: list[int], error: str | None) -> None:
        now = time.time()
        with self._db(durable=False) as db:
            # Kept, marked sent: only the lineage store's acknowledgement removes an event.
            db.executemany(
                "UPDATE outbox SET sent_at = ?, claimed_by = NULL, claimed_at = NULL, last_error = NULL WHERE id = ?",
                [(now, i) for i in delivered],
            )
            db.executemany(
                "UPDATE outbox SET claimed_by = NULL, claimed_at = NULL, last_error = ? WHERE id = ?",
                [(error, i) for i in failed],
            )

    def deliver(self, producer: KafkaProducer, timeout_s: float, batch: int = 5000) -> FlushReport:
        """Send everything pending; mark sent what the broker acknowledged. Stops at the first failed batch."""
        from kafka.errors import KafkaError

        delivered_total = 0
        deadline = time.monotonic() + timeout_s
        while True:
            rows = self._claim(batch)
            if not rows:
                return FlushReport(delivered_total, self.pending())
            try:
                futures = [(rid, producer.send(topic, key=key or None, value=value)) for rid, topic, key, value in rows]
            except BaseException as exc:
                # Not the broker's answer but a fault on our side: hand the claimed events back
                # now (the claim would hold them for CLAIM_TIMEOUT_S), then let the fault be seen.
                self._finish([], [r[0] for r in rows], f"{exc.__class__.__name__}: {exc}")
                raise
            try:
                producer.flush(timeout=max(0.1, deadline - time.monotonic()))  # send now, not after the linger
            except KafkaError:
                pass  # each future below says what happened to its event
            ok: list[int] = []
            bad: list[int] = []
            error: str | None = None
            for rid, fut in futures:
                remaining = max(0.1, deadline - time.monotonic())
                try:
                    fut.get(timeout=remaining)
                    ok.append(rid)
                except KafkaError as exc:
                    bad.append(rid)
                    error = error or f"{exc.__class__.__name__}: {exc}"
            self._finish(ok, bad, error)
            delivered_total += len(ok)
            if bad:
                return FlushReport(delivered_total, self.pending(), error)


class OutboxTransport:
    """The default transport: outbox first, then Kafka; never blocks a job for long on a dead broker."""

    def __init__(self, settings: Settings, wait_s: float | None = None, warn: bool = True, background: bool = True) -> None:
        self.settings = settings
        self.outbox = Outbox(settings)
        self.wait_s = settings.kafka.connect_timeout_s if wait_s is None else wait_s
        self._producer: KafkaProducer | None = None
        self._warned = not warn
        # `background`: emit returns after the durable write and a thread delivers; else emit delivers.
        self.background = background
        self._wake = threading.Event()
        self._closing = False
        self._worker: threading.Thread | None = None
        # Events emitted, and how many of them the worker has since tried to deliver (wait_idle).
        self._emitted = 0
        # An event other than a START was emitted since the worker last took its count: deliver now.
        self._urgent = False
        self._tried = 0
        self._progress = threading.Condition()
        # One delivery at a time: the worker and a caller's flush() share the producer.
        self._lock = threading.Lock()
        # Lock descriptors of this transport's runs in flight, by run id.
        self._run_locks: dict[str, int] = {}
        atexit.register(self._final_flush)
        from lineage.recovery import recover_once

        recover_once(settings)  # runs a dead process left in flight: finished before new ones start

    def emit(self, event: Mapping[str, Any]) -> None:
        self._emit(event)

    def emit_recoverable(self, event: Mapping[str, Any], resolver: str, context: Mapping[str, Any]) -> None:
        """Emit a START whose in-flight row already says how recovery finishes the run (`note_run`'s
        note, written in the same transaction as the event: one durable write instead of two)."""
        self._emit(event, (resolver, context))

    def _emit(self, event: Mapping[str, Any], recovery: tuple[str, Mapping[str, Any]] | None = None) -> None:
        run_id = str((event.get("run") or {}).get("runId", ""))
        kind = event.get("eventType")
        topic = self.settings.kafka.topic
        if kind == "START":
            self._hold(run_id)
            resolver, context = recovery or (None, None)
            self.outbox.begin_run(topic, run_id, str((event.get("job") or {}).get("name", "")), serialize(event), resolver, context)
        elif kind in TERMINAL:
            self.outbox.finish_run(topic, run_id, serialize(event))
            fd = self._run_locks.pop(run_id, None)
            if fd is not None:
                release_run_lock(self.settings.home, run_id, fd)
        else:
            self.outbox.put(topic, run_id.encode(), serialize(event))
        self._wake_delivery(urgent=kind != "START")

    def expect(self, run_id: str, job_name: str, resolver: str, context: Mapping[str, Any]) -> None:
        """A run without a START (an alias move) is in flight from here: recovery finishes it with
        `resolver` if this process dies before its terminal event is in the outbox."""
        self._hold(run_id)
        self.outbox.begin_run(self.settings.kafka.topic, run_id, job_name, None)
        self.outbox.note_run(run_id, resolver, context)

    def note_run(self, run_id: str, resolver: str, context: Mapping[str, Any]) -> None:
        """How recovery finishes run `run_id` (started here) if this process dies before it ends."""
        self.outbox.note_run(run_id, resolver, context)

    def _hold(self, run_id: str) -> None:
        if run_id not in self._run_locks:
            fd = hold_run_lock(self.settings.home, run_id)
            if fd is not None:
                self._run_locks[run_id] = fd

    def _wake_delivery(self, urgent: bool = True) -> None:
        if not self.background:
            self.flush()
            return
        if self._worker is None:
            self._worker = threading.Thread(target=self._deliver_in_background, name="tidemark-outbox", daemon=True)
            self._worker.start()
        with self._progress:
            self._emitted += 1
            self._urgent = self._urgent or urgent
        self._wake.set()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until the background thread has tried to deliver every event emitted so far
        (delivered, or kept in the outbox after a failure); False if `timeout_s` ran out first.
        Events that are all STARTs are tried once `START_LINGER_S` has passed."""
        with self._progress:
            return self._progress.wait_for(lambda: self._tried >= self._emitted, timeout=timeout_s)

    def _deliver_in_background(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()  # an emit during the flush below sets it again: nothing is missed
            # Only STARTs waiting: their runs get START_LINGER_S to end, to go out with their ends.
            deadline = time.monotonic() + START_LINGER_S
            while not self._closing:
                with self._progress:
                    if self._urgent or self._emitted <= self._tried:
                        break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(left)
                self._wake.clear()
            # Read before flushing: once close() has asked, every event emitted before it is in the
            # outbox, so this flush sends it; a close() that comes during the flush wakes us again.
            closing = self._closing
            with self._progress:
                target = self._emitted  # each of these was put in the outbox before it was counted
                self._urgent = False  # an emit from here on sets it (and the wake) again
            try:
                self.flush()
            except Exception:  # the events stay in the outbox; the next emit, exit or flush retries
                log.exception("delivering lineage events from %s failed", self.outbox.path)
            with self._progress:
                self._tried = max(self._tried, target)
                self._progress.notify_all()
            if closing:
                return

    def _stop_worker(self) -> bool:
        """Let the worker deliver what is pending and end; False if it is still busy after the wait."""
        worker = self._worker
        if worker is None:
            return True
        self._closing = True
        self._wake.set()
        # Bounded like a blocking emit: the broker connection timeout plus the delivery timeout.
        worker.join(timeout=self.wait_s + 10)
        if worker.is_alive():
            return False
        self._worker = None
        return True

    def flush(self, force: bool = False) -> FlushReport:
        with self._lock:
            return self._flush(force)

    def _flush(self, force: bool) -> FlushReport:
        if not force and time.monotonic() < _NEXT_TRY.get(str(self.outbox.path), 0.0):
            return FlushReport(0, self.outbox.pending(), "waiting before the next delivery attempt")
        try:
            producer = self._connect()
            report = self.outbox.deliver(producer, timeout_s=self.wait_s + 5)
        except TidemarkError as exc:
            report = FlushReport(0, self.outbox.pending(), str(exc))
        else:
            _NEXT_TRY.pop(str(self.outbox.path), None)
        if report.error and report.pending:
            _NEXT_TRY[str(self.outbox.path)] = time.monotonic() + RETRY_AFTER_S
            if not self._warned:
                log.warning(
                    "lineage events kept in the outbox (%d pending in %s): %s; they are sent on the next "
                    "emit or with `tidemark lineage flush`",
                    report.pending,
                    self.outbox.path,
                    report.error,
                )
                self._warned = True
            self._drop_producer()
        return report

    def _connect(self) -> KafkaProducer:
        if self._producer is None:
            from lineage.kafka import ensure_topic, producer

            ensure_topic(self.settings)
            self._producer = producer(self.settings)
        return self._producer

    def _drop_producer(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=1)
            except Exception:  # closing a producer to a dead broker may complain; it is gone either way
                pass
            self._producer = None

    def _final_flush(self) -> None:
        if not self._stop_worker():
            return  # still delivering against a slow broker: what is left waits in the outbox
        if self._producer is not None and self.outbox.pending() and time.monotonic() >= _NEXT_TRY.get(str(self.outbox.path), 0.0):
            self.flush()

    def close(self) -> None:
        if self._stop_worker():
            with self._lock:
                self._drop_producer()
        for run_id, fd in list(self._run_locks.items()):
            os.close(fd)  # still in flight (no terminal event): recovery may finish it from now on
        self._run_locks.clear()
        # Every job run makes a transport: a closed one must not stay alive in the atexit list.
        atexit.unregister(self._final_flush)


def flush(settings: Settings) -> FlushReport:
    """Deliver everything pending in this TIDEMARK_HOME's outbox now (`tidemark lineage flush`)."""
    transport = OutboxTransport(settings, warn=False)  # the caller reports the outcome itself
    try:
        return transport.flush(force=True)
    finally:
        transport.close()


def peek(settings: Settings, limit: int = 10) -> list[dict[str, Any]]:
    rows = Outbox(settings)._db().execute(
        "SELECT id, topic, created, attempts, last_error, value FROM outbox ORDER BY id LIMIT ?", (limit,)
    ).fetchall()
    out = []
    for rid, topic, created, attempts, err, value in rows:
        event = json.loads(value)
        out.append(
            {
                "id": rid,
                "topic": topic,
                "created": created,
                "attempts": attempts,
                "last_error": err,
                "job": (event.get("job") or {}).get("name"),
                "event_type": event.get("eventType"),
                "run_id": (event.get("run") or {}).get("runId"),
            }
        )
    return out
