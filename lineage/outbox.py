"""A durable outbox for lineage events (SQLite under TIDEMARK_HOME).

An event is written here first and leaves only after the broker acknowledged it (acks=all), so a
job never loses its lineage because Kafka was down or slow: the job goes on after a bounded wait
and a warning, and the events go out later — on the next emit of any job on this machine, at
process exit, or with `tidemark lineage flush`.

`emit` returns once the event is durably in the outbox; a background thread of the transport
delivers it to Kafka meanwhile, so a job does not wait for the broker's acknowledgement. `close`
(and process exit) waits, bounded, for that delivery to finish.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.config import Settings
from lakehouse.exceptions import TidemarkError, no_space, storage_full
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
# Shared by every transport in the process (each job run makes its own), keyed by outbox file.
_NEXT_TRY: dict[str, float] = {}


@dataclass
class FlushReport:
    delivered: int
    pending: int
    error: str | None = None


class Outbox:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.path: Path = settings.home / OUTBOX_FILE
        self._local = threading.local()
        with self._db() as db:
            db.execute(
                """CREATE TABLE IF NOT EXISTS outbox (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL,
                    created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                    claimed_by TEXT, claimed_at REAL, last_error TEXT)"""
            )

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # an event in the outbox survives a power cut
            self._local.conn = conn
        return conn

    def put(self, topic: str, key: bytes, value: bytes) -> int:
        try:
            with self._db() as db:
                cur = db.execute(
                    "INSERT INTO outbox (topic, key, value, created) VALUES (?, ?, ?, ?)", (topic, key, value, time.time())
                )
                return int(cur.lastrowid or 0)
        except sqlite3.OperationalError as exc:
            if no_space(exc):
                raise storage_full(str(self.path), "recording a lineage event in the outbox") from exc
            raise

    def pending(self) -> int:
        return int(self._db().execute("SELECT count(*) FROM outbox").fetchone()[0])

    def oldest_created(self) -> float | None:
        """When the oldest undelivered event was put here (epoch seconds), or None if none waits."""
        row = self._db().execute("SELECT min(created) FROM outbox").fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def _claim(self, limit: int) -> list[tuple[int, str, bytes, bytes]]:
        me = f"{os.getpid()}-{threading.get_ident()}"
        now = time.time()
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = db.execute(
                "SELECT id, topic, key, value FROM outbox WHERE claimed_by IS NULL OR claimed_at < ? ORDER BY id LIMIT ?",
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
        with self._db() as db:
            db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in delivered])
            db.executemany(
                "UPDATE outbox SET claimed_by = NULL, claimed_at = NULL, last_error = ? WHERE id = ?",
                [(error, i) for i in failed],
            )

    def deliver(self, producer: KafkaProducer, timeout_s: float, batch: int = 5000) -> FlushReport:
        """Send everything pending; delete what the broker acknowledged. Stops at the first failed batch."""
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
        self._tried = 0
        self._progress = threading.Condition()
        # One delivery at a time: the worker and a caller's flush() share the producer.
        self._lock = threading.Lock()
        atexit.register(self._final_flush)

    def emit(self, event: Mapping[str, Any]) -> None:
        key = str((event.get("run") or {}).get("runId", "")).encode()
        self.outbox.put(self.settings.kafka.topic, key, serialize(event))
        if not self.background:
            self.flush()
            return
        if self._worker is None:
            self._worker = threading.Thread(target=self._deliver_in_background, name="tidemark-outbox", daemon=True)
            self._worker.start()
        with self._progress:
            self._emitted += 1
        self._wake.set()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until the background thread has tried to deliver every event emitted so far
        (delivered, or kept in the outbox after a failure); False if `timeout_s` ran out first."""
        with self._progress:
            return self._progress.wait_for(lambda: self._tried >= self._emitted, timeout=timeout_s)

    def _deliver_in_background(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()  # an emit during the flush below sets it again: nothing is missed
            # Read before flushing: once close() has asked, every event emitted before it is in the
            # outbox, so this flush sends it; a close() that comes during the flush wakes us again.
            closing = self._closing
            with self._progress:
                target = self._emitted  # each of these was put in the outbox before it was counted
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
