"""The prediction log: every answered request, durable on local disk at once, in Iceberg within seconds.

`PredictionLog(settings, model).append(rows)` writes the rows to a local buffer and returns; a
flusher (`run`: a thread of this object, or in a service the flusher process of `serving.flusher`,
whose workers append with `commit=False`) commits them in micro-batches to the Iceberg table
`serving.<model>_predictions`
(columns: prediction_id, model, version, time, one per feature typed as the model was trained on,
prediction). The request path never waits on the catalog: a catalog that is down only delays the
commits (a warning says so, once per outage); the rows wait in the buffer until it answers.

**The buffer.** SQLite in WAL mode at `$TIDEMARK_HOME/serving/<model>.predlog.db`. Each append is one
entry (one SQLite row: its rows' ids, versions, times, features and predictions as one orjson blob;
the service's entries hold the features as columns, so the flusher takes each column whole); the
rows are still numbered one by one (an entry of n rows takes n numbers, its own `seq` the last).
A writer thread per process writes the entries: every entry queued while it wrote the last goes
into one transaction with one fsync (group commit), then each waiter is woken (`append` in its
thread; `append_answered`, the service's, on its event loop without a thread per request).
Buffers of the earlier row-per-row format are read as they are.

**The guarantee.** With `serving.log_synchronous: full` (the default) `append` (and
`append_answered`) returns after the transaction holding its entry is fsynced: a row whose
`append` returned survives SIGKILL, a crash of the machine and a power cut. With `normal` it survives the death of the process however it dies
(SIGKILL included: the WAL is in the kernel's page cache), but a power cut or kernel crash may lose
the last appends (SQLite fsyncs the WAL at checkpoints only); fewer fsyncs per request. Either way
a row whose `append` had not returned when the process died may be lost: the service answers a
request only after its rows are appended, so no answered request is lost. `close()` (the SIGTERM
path) commits everything buffered; rows it cannot commit (catalog down) stay in the buffer and the
next `PredictionLog` of the model commits them.

**Each commit is a landing**, as ingest's: one Iceberg append whose snapshot summary carries the
run and job (`tidemark.run-id`, `tidemark.job-name`) and where the rows came from (`BUFFER_ID`,
`SEQ_FROM`..`SEQ_TO`: the buffer's row numbers, `MODEL`, `VERSIONS`, `ROWS`), inside a lineage run
`predlog.<model>` whose inputs are the model versions that answered and whose output is the table
at the new snapshot. The commit and the run's COMPLETE are one unit as ingest's are: the run notes
its resolver (`RESOLVER`) before the commit, so a process killed between the commit and the event
gets its COMPLETE from `lineage.recovery` (from the snapshot summary), and rows are never committed
twice: before each commit the flusher reads the newest `SEQ_TO` its buffer left in the table and
drops the rows up to it, so a commit whose process died before it emptied the buffer is not redone.

One flusher at a time per buffer (an flock), so service workers in several processes may share it.
A row the table cannot take (a feature value of the wrong type) is moved to the buffer's
`rejected` table with the reason (and a warning), never dropped, never blocking the others.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.exceptions import TableNotFoundError
from lakehouse.failpoints import step
from lakehouse.tables import JOB_NAME, RUN_ID, TableName, ancestors, ensure_table, load_table, summary_properties, transaction
from lineage import events as ev
from lineage.outbox import InFlight, OutboxTransport, immediate, use_wal
from lineage.recovery import Resolution
from lineage.run import run as lineage_run
from lineage.transport import Transport
from models.exceptions import ModelNotFoundError
from models.registry import ModelVersion, Registry, check_name
from models.signature import LOG_COLUMNS, Signature, input_schema, prediction_table
from serving.exceptions import CatalogUnavailableError, PredictionLogError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

log = logging.getLogger(__name__)

JOB_PREFIX = "predlog"
# How recovery finishes a flush whose process died (lineage.recovery).
RESOLVER = "serving.predlog:resolve"
BUFFER_DIR = "serving"
# Snapshot summary keys of a prediction-log commit, beside tidemark.run-id and tidemark.job-name.
BUFFER_ID = "tidemark.predlog.buffer"
SEQ_FROM = "tidemark.predlog.seq-from"
SEQ_TO = "tidemark.predlog.seq-to"
MODEL = "tidemark.predlog.model"
VERSIONS = "tidemark.predlog.versions"
ROWS = "tidemark.predlog.rows"
# One commit takes at most this many batches' worth of rows, and at most MAX_ROWS_PER_COMMIT, so
# a long catalog outage drains in commits of bounded memory.
MAX_BATCHES_PER_COMMIT = 50
MAX_ROWS_PER_COMMIT = 50_000
# While the catalog is down the flusher retries after the interval, doubling up to this.
MAX_BACKOFF_S = 30.0
# How often the flusher looks whether a batch's worth of rows waits.
_TICK_S = 0.2
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
REQUIRED = ("prediction_id", "model", "version", "time", "features", "prediction")


def buffer_path(settings: Settings, model: str) -> Path:
    return settings.home / BUFFER_DIR / f"{model}.predlog.db"


# orjson, not json: the encoding is per row on the request path and per row again in the flusher
# (json.dumps/loads cost 3-4 ms of CPU per 100-record request, measured). numpy arrays and scalars
# (what an estimator answers) are encoded natively; `_json_default` takes the other numpy-likes.
_ORJSON_OPTS = orjson.OPT_SERIALIZE_NUMPY


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_json_default, option=_ORJSON_OPTS)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


@dataclass(frozen=True)
class BufferedRow:
    seq: int  # the row's number in the buffer (a batch's rows: consecutive numbers ending at its entry's seq)
    prediction_id: str
    model: str
    version: int
    time_us: int
    features: dict[str, Any]
    prediction: Any
    entry: int = 0  # the seq of the batch entry holding the row (0: a row stored on its own, as older buffers did)


@dataclass
class Taken:
    """Rows taken from the buffer, a list per column, the features too (name -> values, None where
    a row lacks the feature; `keys`: the names each row carried). The flusher works a column at a
    time: an object per row, or a dict lookup per feature per row, cost more CPU than the rest of
    a commit (measured). `entry`: as BufferedRow's."""

    seq: list[int] = field(default_factory=list)
    prediction_id: list[str] = field(default_factory=list)
    model: list[str] = field(default_factory=list)
    version: list[int] = field(default_factory=list)
    time_us: list[int] = field(default_factory=list)
    prediction: list[Any] = field(default_factory=list)
    entry: list[int] = field(default_factory=list)
    keys: list[tuple[str, ...]] = field(default_factory=list)
    features: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.seq)

    def _lists(self) -> tuple[list[Any], ...]:
        return (self.seq, self.prediction_id, self.model, self.version, self.time_us, self.prediction, self.entry, self.keys)

    def row(self, i: int) -> BufferedRow:
        feats = {name: self.features[name][i] for name in self.keys[i]}
        return BufferedRow(self.seq[i], self.prediction_id[i], self.model[i], self.version[i], self.time_us[i], feats, self.prediction[i], self.entry[i])

    def select(self, keep: Sequence[int]) -> Taken:
        def pick(col: list[Any]) -> list[Any]:
            return [col[i] for i in keep]

        return Taken(
            pick(self.seq), pick(self.prediction_id), pick(self.model), pick(self.version), pick(self.time_us), pick(self.prediction),
            pick(self.entry), pick(self.keys), {n: pick(col) for n, col in self.features.items()},
        )

    @classmethod
    def concat(cls, parts: Sequence[Taken]) -> Taken:
        """One Taken of `parts`, in order (a feature some part lacks: None in its rows)."""
        chain = itertools.chain.from_iterable
        lists = [list(chain(cols)) for cols in zip(*(p._lists() for p in parts))] if parts else [[] for _ in range(8)]
        names: dict[str, None] = {}
        for p in parts:
            names.update(dict.fromkeys(p.features))
        features = {n: list(chain(p.features.get(n) or [None] * len(p) for p in parts)) for n in names}
        seq, ids, model, version, time_us, prediction, entry, keys = lists
        return cls(seq, ids, model, version, time_us, prediction, entry, keys, features)

    @classmethod
    def of_dicts(cls, rows: Taken, dicts: list[dict[str, Any]]) -> Taken:
        """`rows` (features empty) with the features of `dicts`, one per row, as columns."""
        names: dict[str, None] = {}
        for d in dicts:
            names.update(dict.fromkeys(d))
        rows.keys = [tuple(d) for d in dicts]
        rows.features = {n: [d.get(n) for d in dicts] for n in names}
        return rows


# An entry of the buffer: one append's rows as one SQLite row (module docstring, "The buffer").
Entry = tuple[str, str, int, int, int, bytes]  # first prediction id, model, first version, first time (us), rows, batch blob


class Buffer:
    """The SQLite buffer of one model's log (module docstring): one entry per append holding its
    rows as one blob; the rows are numbered by `seq` (an entry of n rows takes n numbers, its own
    seq being the last), never reused."""

    def __init__(self, path: Path, synchronous: str = "full") -> None:
        self.path = path
        self.synchronous = synchronous.upper()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # Group commit (see `submit`): entries waiting for the writer thread's next transaction.
        self._cond = threading.Condition()
        self._queue: list[tuple[Entry, Callable[[BaseException | None], None]]] = []
        self._writer: threading.Thread | None = None
        self._stopping = False
        with immediate(self._db()) as db:  # one process sets the file up; another one starting waits
            # Older buffers stored a row per SQLite row (features and prediction as JSON text, no
            # `batch`); they are read as they are, and gain the column.
            db.execute(
                """CREATE TABLE IF NOT EXISTS rows (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, prediction_id TEXT NOT NULL, model TEXT NOT NULL,
                    version INTEGER NOT NULL, time_us INTEGER NOT NULL, features TEXT NOT NULL, prediction TEXT NOT NULL,
                    n INTEGER NOT NULL DEFAULT 1, batch BLOB)"""
            )
            have = {r[1] for r in db.execute("PRAGMA table_info(rows)")}
            if "batch" not in have:
                db.execute("ALTER TABLE rows ADD COLUMN n INTEGER NOT NULL DEFAULT 1")
                db.execute("ALTER TABLE rows ADD COLUMN batch BLOB")
            db.execute(
                """CREATE TABLE IF NOT EXISTS rejected (
                    seq INTEGER PRIMARY KEY, prediction_id TEXT, model TEXT, version INTEGER, time_us INTEGER,
                    features TEXT, prediction TEXT, reason TEXT NOT NULL, rejected_at REAL NOT NULL)"""
            )
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            # The buffer's identity in the table's snapshot summaries: a new file (the old one
            # deleted) starts its row numbers again, and must not take the old commits for its own.
            db.execute("INSERT OR IGNORE INTO meta VALUES ('buffer_id', ?)", (uuid.uuid4().hex,))
        self.buffer_id = str(self._db().execute("SELECT value FROM meta WHERE key = 'buffer_id'").fetchone()[0])

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            use_wal(conn)  # retried: several service workers may open the new file at once
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            self._local.conn = conn
        return conn

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return immediate(self._db())

    def put(self, entries: Sequence[Entry]) -> None:
        """Store `entries`; returns once they are committed (see `submit`)."""
        done = threading.Event()
        failed: list[BaseException] = []

        def settle(exc: BaseException | None) -> None:
            if exc is not None:
                failed.append(exc)
            done.set()

        for entry in entries[:-1]:
            self.submit(entry, lambda exc: failed.append(exc) if exc is not None else None)
        if entries:
            self.submit(entries[-1], settle)  # one transaction per batch taken, in order: the last one settles all
            done.wait()
        if failed:
            raise failed[0]

    def submit(self, entry: Entry, done: Callable[[BaseException | None], None]) -> None:
        """Queue `entry` for the writer thread, which calls `done(None)` once it is committed (or
        `done(error)`). Group commit: the writer takes every entry queued while it wrote the last
        transaction (an fsync: 4-12 ms on this disk) into one transaction, so concurrent requests
        share one fsync each time instead of one each, and a request costs no thread of its own."""
        with self._cond:
            if self._stopping:
                raise PredictionLogError(f"the prediction log buffer {self.path} is closed")
            self._queue.append((entry, done))
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name=f"predlog-writer-{self.path.stem}", daemon=True)
                self._writer.start()
            self._cond.notify()

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    break
                take, self._queue = self._queue, []
            error: BaseException | None = None
            try:
                self._insert([entry for entry, _ in take])
            except BaseException as exc:  # every waiter hears of it; the writer goes on
                error = exc
            for _, done in take:
                try:
                    done(error)
                except Exception:  # a waiter's callback must not stop the others' answers
                    log.exception("prediction log: a writer callback failed")
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()

    def _insert(self, entries: Sequence[Entry]) -> None:
        with self._transaction() as db:
            # An entry of n rows takes the n numbers after the last one given (AUTOINCREMENT keeps
            # it in sqlite_sequence), its seq being the last: `backlog` and the commits' SEQ_FROM/
            # SEQ_TO count rows, and a rejected row keeps its own number.
            got = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'rows'").fetchone()
            last = int(got[0]) if got else 0
            values = []
            for pid, model, version, time_us, n, blob in entries:
                last += n
                values.append((last, pid, model, version, time_us, n, blob))
            db.executemany(
                "INSERT INTO rows (seq, prediction_id, model, version, time_us, features, prediction, n, batch) VALUES (?, ?, ?, ?, ?, '', '', ?, ?)", values
            )

    def pending(self) -> int:
        """Rows buffered (a batch's rows set aside as rejected not counted)."""
        db = self._db()
        total = int(db.execute("SELECT coalesce(sum(n), 0) FROM rows").fetchone()[0])
        if total:
            total -= int(
                db.execute(
                    "SELECT count(*) FROM rejected j JOIN rows r ON r.batch IS NOT NULL AND j.seq BETWEEN r.seq - r.n + 1 AND r.seq"
                ).fetchone()[0]
            )
        return total

    def backlog(self) -> int:
        """About how many rows wait (the span of their numbers: two index lookups, where `pending`
        counts): cheap enough to ask several times a second."""
        low, high = self._db().execute("SELECT min(seq), max(seq) FROM rows").fetchone()
        return 0 if low is None else int(high) - int(low) + 1

    def rejected(self) -> list[dict[str, Any]]:
        cur = self._db().execute("SELECT seq, prediction_id, version, reason FROM rejected ORDER BY seq")
        return [dict(zip(("seq", "prediction_id", "version", "reason"), r)) for r in cur.fetchall()]

    def newest(self) -> int:
        """The number of the newest entry (0: none)."""
        got = self._db().execute("SELECT max(seq) FROM rows").fetchone()[0]
        return int(got or 0)

    def take(self, limit: int, through: int | None = None) -> Taken:
        """The oldest rows (numbered up to `through`), whole entries only (a commit never splits an
        entry), at least `limit` rows when that many wait; a batch's rows set aside as rejected are left out."""
        db = self._db()
        gone = {
            int(r[0]) for r in db.execute("SELECT seq FROM rejected WHERE seq >= (SELECT min(seq - n + 1) FROM rows WHERE batch IS NOT NULL)")
        }
        cur = db.execute(
            "SELECT seq, prediction_id, model, version, time_us, features, prediction, n, batch FROM rows WHERE seq <= ? ORDER BY seq",
            (through if through is not None else 2**63 - 1,),
        )
        loads = orjson.loads
        parts: list[Taken] = []
        held = 0
        for seq, pid, model, version, time_us, features, prediction, n, batch in cur:
            if batch is None:
                part = Taken.of_dicts(Taken([seq], [pid], [model], [int(version)], [int(time_us)], [loads(prediction)], [0]), [loads(features)])
            else:
                b = loads(batch)
                first = seq - n + 1
                numbers = range(first, seq + 1)
                versions, times = b["version"], b["time"]
                part = Taken(
                    list(numbers), b["id"], [model] * n, [versions] * n if type(versions) is int else versions,
                    [times] * n if type(times) is int else times, b["prediction"], [seq] * n,
                )
                if "names" in b:  # the service's entries: the features as columns
                    names = tuple(b["names"])
                    part.keys = [names] * n
                    part.features = dict(zip(names, b["columns"]))
                else:
                    part = Taken.of_dicts(part, b["features"])
                if gone and not gone.isdisjoint(numbers):
                    part = part.select([i for i, k in enumerate(numbers) if k not in gone])
            parts.append(part)
            held += len(part)
            if held >= limit:
                break
        out = Taken.concat(parts)
        cur.close()
        return out

    def drop_through(self, seq: int) -> int:
        """Remove the entries numbered up to `seq` (their rows are in the table, or rejected); the
        number of rows removed that were not rejected."""
        with self._transaction() as db:
            rows = int(db.execute("SELECT coalesce(sum(n), 0) FROM rows WHERE seq <= ?", (seq,)).fetchone()[0])
            if rows:
                rows -= int(
                    db.execute(
                        "SELECT count(*) FROM rejected j JOIN rows r ON r.seq <= ? AND r.batch IS NOT NULL AND j.seq BETWEEN r.seq - r.n + 1 AND r.seq",
                        (seq,),
                    ).fetchone()[0]
                )
                db.execute("DELETE FROM rows WHERE seq <= ?", (seq,))
            return rows

    def reject(self, rows: Sequence[tuple[BufferedRow, str]]) -> None:
        """Set `rows` aside in the `rejected` table with why. A batch's row is copied there (its
        entry keeps it, skipped by `take`, until the entry's other rows are committed; an entry
        whose rows are all rejected goes)."""
        entries = set()
        with self._transaction() as db:
            for row, reason in rows:
                if not row.entry:
                    db.execute(
                        "INSERT OR REPLACE INTO rejected SELECT seq, prediction_id, model, version, time_us, features, prediction, ?, ? FROM rows WHERE seq = ?",
                        (reason, time.time(), row.seq),
                    )
                    db.execute("DELETE FROM rows WHERE seq = ?", (row.seq,))
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO rejected VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        row.seq, row.prediction_id, row.model, row.version, row.time_us,
                        _dumps(row.features).decode(), _dumps(row.prediction).decode(), reason, time.time(),
                    ),
                )
                entries.add(row.entry)
            for entry in entries:
                got = db.execute("SELECT n FROM rows WHERE seq = ?", (entry,)).fetchone()
                if got is None:
                    continue
                held = db.execute("SELECT count(*) FROM rejected WHERE seq BETWEEN ? AND ?", (entry - got[0] + 1, entry)).fetchone()[0]
                if held >= got[0]:
                    db.execute("DELETE FROM rows WHERE seq = ?", (entry,))

    @contextlib.contextmanager
    def flusher(self) -> Iterator[None]:
        """The buffer's flush lock (an flock the kernel releases when its holder dies)."""
        with open(self.path.with_suffix(".flush.lock"), "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def close(self) -> None:
        """Stop the writer thread once every queued entry is written, and close this thread's connection."""
        with self._cond:
            self._stopping = True
            writer = self._writer
            self._cond.notify_all()
        if writer is not None and writer is not threading.current_thread():
            writer.join()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def committed_through(table: Table, buffer_id: str) -> int:
    """The highest buffer row number of `buffer_id` the table's main branch holds (0: none)."""
    snap = table.current_snapshot()
    for s in ancestors(table, snap.snapshot_id if snap else None):
        props = summary_properties(s)
        if props.get(BUFFER_ID) == buffer_id:
            return int(props.get(SEQ_TO, "0"))  # flushes of one buffer commit in order (one flusher)
    return 0


@dataclass
class FlushReport:
    committed: int = 0  # rows committed to the table
    commits: int = 0
    snapshot_id: int | None = None  # the last commit's
    rejected: int = 0  # rows moved to the buffer's rejected table
    already: int = 0  # rows an earlier, interrupted flush had committed (dropped from the buffer)
    pending: int = 0  # rows still buffered afterwards


class PredictionLog:
    """The prediction log of one model (module docstring).

    `append(rows)`: each row a dict with prediction_id (str), model (str), version (int), time
    (timezone-aware datetime), features (dict: feature -> value), prediction; returns once they
    are durable in the buffer. `flush()` commits now (raises CatalogUnavailableError, rows kept,
    if the catalog does not answer); `close()` stops the flusher and commits what is buffered.
    `start`: run the flusher in a thread of this process. `commit=False`: append only, never
    commit (no thread, `close()` only closes the buffer): a service worker's log, whose rows the
    service's flusher process commits (`serving.flusher`).
    """

    def __init__(
        self, settings: Settings, model_name: str, *, start: bool = True, commit: bool = True, transport: Transport | None = None
    ) -> None:
        self.settings = settings
        self.model = check_name("model", model_name, "model_name")
        self.table_name = TableName.parse(prediction_table(self.model))
        self.job_name = f"{JOB_PREFIX}.{self.model}"
        self.batch_rows = settings.serving.log_batch_rows
        self.interval_s = settings.serving.log_interval_s
        self.buffer = Buffer(buffer_path(settings, self.model), settings.serving.log_synchronous)
        self._transport = transport
        self._own_transport: OutboxTransport | None = None
        self._signatures: dict[int, Signature] = {}
        self._versions: dict[int, ModelVersion] = {}
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._appended = 0  # since the last flush (a cheap count: no query per request)
        self._down_since: float | None = None
        self._closed = False
        self._commits = commit
        self._thread: threading.Thread | None = None
        if start and commit:
            self._thread = threading.Thread(target=self._run, name=f"predlog-{self.model}", daemon=True)
            self._thread.start()

    # -- the request path ------------------------------------------------------------------------

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Buffer `rows` durably (see the guarantee in the module docstring); never waits on the catalog."""
        if self._closed:
            raise PredictionLogError(f"the prediction log of {self.model} is closed; make a new PredictionLog to append")
        if not rows:
            return
        self.buffer.put([self._encode(rows)])
        self._appended += len(rows)
        if self._appended >= self.batch_rows:
            self._wake.set()

    async def append_answered(
        self, prediction_ids: Sequence[str], version: int, when: datetime, names: Sequence[str], rows: Any, predictions: Sequence[Any]
    ) -> None:
        """The service's append, awaited on its event loop: the rows of one answered request (one
        version, one time; `rows` the validated feature matrix, a row per record, a column per
        name: numpy or lists), durable in the buffer when it returns. No thread per request: the
        buffer's writer thread commits the waiting requests together and wakes each one's loop."""
        import asyncio

        import numpy as np

        if self._closed:
            raise PredictionLogError(f"the prediction log of {self.model} is closed; make a new PredictionLog to append")
        micros = (when - _EPOCH) // timedelta(microseconds=1)
        n = len(prediction_ids)
        # Stored as columns, so the flusher takes each feature's values whole (no lookup per row).
        columns = np.ascontiguousarray(rows.T) if isinstance(rows, np.ndarray) else list(zip(*rows))
        try:
            blob = _dumps({"id": prediction_ids, "version": version, "time": micros, "names": names, "columns": columns, "prediction": predictions})
        except TypeError as exc:
            raise PredictionLogError(f"prediction rows {prediction_ids[0]}..: {exc}", parameter="predictions") from exc
        loop = asyncio.get_running_loop()
        answered = loop.create_future()

        def settle(exc: BaseException | None) -> None:
            if answered.done():  # the request was cancelled (its client went away)
                return
            if exc is None:
                answered.set_result(None)
            else:
                answered.set_exception(exc)

        def wake(exc: BaseException | None) -> None:  # on the writer thread
            loop.call_soon_threadsafe(settle, exc)

        self.buffer.submit((prediction_ids[0], self.model, version, micros, n, blob), wake)
        await answered
        self._appended += n
        if self._appended >= self.batch_rows:
            self._wake.set()

    def _encode(self, rows: Sequence[Mapping[str, Any]]) -> Entry:
        """`rows` as one buffer entry: a blob of columns (ids, versions, times, features, predictions)."""
        ids, versions, times, features, predictions = [], [], [], [], []
        for row in rows:
            missing = [k for k in REQUIRED if k not in row]
            if missing:
                raise PredictionLogError(f"prediction row lacks {', '.join(missing)}; every row needs {', '.join(REQUIRED)}", parameter="rows")
            if row["model"] != self.model:
                raise PredictionLogError(f"prediction row of model {row['model']!r} given to the log of {self.model!r}; use that model's PredictionLog", parameter="rows")
            when = row["time"]
            if not isinstance(when, datetime) or when.tzinfo is None:
                raise PredictionLogError(f"prediction row {row['prediction_id']}: time must be a timezone-aware datetime (UTC), got {when!r}", parameter="rows")
            if not isinstance(row["features"], Mapping):
                raise PredictionLogError(f"prediction row {row['prediction_id']}: features must be a mapping of feature -> value", parameter="rows")
            try:
                versions.append(int(row["version"]))
            except (TypeError, ValueError) as exc:
                raise PredictionLogError(f"prediction row {row['prediction_id']}: {exc}", parameter="rows") from exc
            ids.append(str(row["prediction_id"]))
            times.append((when - _EPOCH) // timedelta(microseconds=1))  # exact: a float timestamp may round a microsecond
            features.append(row["features"] if type(row["features"]) is dict else dict(row["features"]))
            predictions.append(row["prediction"])
        try:
            blob = _dumps({"id": ids, "version": versions, "time": times, "features": features, "prediction": predictions})
        except TypeError:  # orjson.JSONEncodeError is a TypeError; name the row
            for row in rows:
                try:
                    _dumps([row["features"], row["prediction"]])
                except TypeError as exc:
                    raise PredictionLogError(f"prediction row {row['prediction_id']}: {exc}", parameter="rows") from exc
            raise
        return (ids[0], self.model, versions[0], times[0], len(ids), blob)

    def pending(self) -> int:
        """Rows buffered and not yet in the table."""
        return self.buffer.pending()

    # -- the background flusher ----------------------------------------------------------------

    def _run(self) -> None:
        self.run(self._stop)

    def run(self, stop: threading.Event) -> None:
        """Commit on the log's schedule until `stop` is set: every `log_interval_s` while rows wait,
        and as soon as `log_batch_rows` wait (looked at every `_TICK_S`: the appends may be another
        process's). While the catalog is down the interval doubles (at most MAX_BACKOFF_S)."""
        backoff = self.interval_s
        last = time.monotonic()
        while not stop.is_set():
            self._wake.wait(min(_TICK_S, backoff))
            self._wake.clear()
            if stop.is_set():
                return
            waited = time.monotonic() - last
            if waited < backoff and (backoff > self.interval_s or self.buffer.backlog() < self.batch_rows):
                continue
            last = time.monotonic()
            try:
                if self.buffer.backlog():  # an idle service opens no catalog every interval
                    self.flush()
                backoff = self.interval_s
            except Exception as exc:  # never let the flusher die: the rows are safe in the buffer
                backoff = min(MAX_BACKOFF_S, backoff * 2)
                if not isinstance(exc, CatalogUnavailableError):
                    log.warning("prediction log of %s: flush failed: %s; rows stay buffered, retrying in %.0f s", self.model, exc, backoff)

    def prepare(self) -> None:
        """Import and open what a commit needs (pyiceberg's writer, pyarrow, the catalog and table):
        a flusher process does it as it starts, not in its first commit, so the first rows wait no
        longer than the others (seconds of CPU on a loaded machine). A catalog that does not answer
        is left to the first flush to report."""
        import pyarrow.parquet  # noqa: F401
        import pyiceberg.io.pyarrow  # noqa: F401

        try:
            catalog = load_catalog(self.settings)
            if catalog.table_exists(self.table_name.identifier):
                load_table(catalog, self.table_name)
        except Exception as exc:  # noqa: BLE001  (reported by the first flush)
            log.debug("prediction log of %s: catalog not ready at start (%s)", self.model, exc)

    def flush(self) -> FlushReport:
        """Commit every row buffered now (in commits of at most MAX_BATCHES_PER_COMMIT batches, MAX_ROWS_PER_COMMIT rows)."""
        report = FlushReport()
        with self._flush_lock, self.buffer.flusher():
            self._appended = 0
            try:
                catalog = load_catalog(self.settings)
                table = load_table(catalog, self.table_name) if catalog.table_exists(self.table_name.identifier) else None
            except Exception as exc:  # Tidemark's, or a driver error of whatever kind the catalog's database raised
                raise self._catalog_down(exc) from exc
            if table is not None:
                report.already = self.buffer.drop_through(committed_through(table, self.buffer.buffer_id))
            # What is buffered now, no more: under steady traffic, rows keep arriving, and taking
            # them too kept the flusher committing back to back (a commit of a few hundred rows
            # each time, ~0.1 s of CPU each, measured) instead of once per interval.
            through = self.buffer.newest()
            while True:
                rows = self.buffer.take(min(self.batch_rows * MAX_BATCHES_PER_COMMIT, MAX_ROWS_PER_COMMIT), through)
                if not rows:
                    break
                try:
                    self._commit(catalog, rows, report)
                except Exception as exc:
                    raise self._catalog_down(exc) from exc
            if self._down_since is not None:
                log.warning("prediction log of %s: the catalog answers again; buffered rows committed", self.model)
                self._down_since = None
        report.pending = self.buffer.pending()
        return report

    def _catalog_down(self, exc: BaseException) -> CatalogUnavailableError:
        if self._down_since is None:
            self._down_since = time.time()
            log.warning(
                "prediction log of %s: cannot commit to %s (%s); predictions go on, rows stay buffered in %s and are committed when it answers",
                self.model, self.table_name, exc, self.buffer.path,
            )
        return CatalogUnavailableError(
            f"prediction log of {self.model}: cannot commit to {self.table_name} now ({exc}); the rows stay in {self.buffer.path} "
            "and are committed when the catalog answers"
        )

    def _signature(self, registry: Registry, catalog: Catalog, version: int) -> Signature:
        if version not in self._signatures:
            self._versions[version] = registry.get(self.model, version)
            self._signatures[version] = input_schema(self.settings, self._versions[version], catalog)
        return self._signatures[version]

    def _commit(self, catalog: Catalog, rows: Taken, report: FlushReport) -> None:
        registry = Registry(self.settings, catalog)
        signatures = []
        versions = set(rows.version)
        for v in sorted(versions):
            try:
                signatures.append(self._signature(registry, catalog, v))
            except ModelNotFoundError as exc:  # never registered: these rows can never be committed
                unknown = [(rows.row(i), str(exc)) for i, rv in enumerate(rows.version) if rv == v]
                self.buffer.reject(unknown)
                report.rejected += len(unknown)
                log.warning("prediction log of %s: %d row(s) of version %d moved to the rejected table of %s: %s", self.model, len(unknown), v, self.buffer.path, exc)
        if not versions <= self._signatures.keys():
            rows = rows.select([i for i, rv in enumerate(rows.version) if rv in self._signatures])
        if not rows:
            return
        table = self._table(catalog, signatures)
        schema = _plain(table.schema().as_arrow())
        good, data, bad = _to_arrow(rows, schema)
        if bad:
            self.buffer.reject(bad)
            report.rejected += len(bad)
            log.warning(
                "prediction log of %s: %d row(s) the table cannot take moved to the rejected table of %s (first: %s)",
                self.model, len(bad), self.buffer.path, bad[0][1],
            )
        if not good:
            return
        # SEQ_TO is the last entry's own number (its last row's): the entry goes as a whole once committed.
        seq_from, seq_to = good.seq[0], good.entry[-1] or good.seq[-1]
        answered = sorted(set(good.version))
        with lineage_run(
            self.job_name,
            inputs=[registry.model_dataset(self._versions[v]) for v in answered],
            parameters={"table": str(self.table_name), "rows": len(good), "buffer": self.buffer.buffer_id, "seq_from": seq_from, "seq_to": seq_to},
            settings=self.settings,
            transport=self._lineage_transport(),
            code=PredictionLog,
            steps=JOB_PREFIX,
        ) as run:
            run.recoverable(RESOLVER, table=str(self.table_name), rows=len(good), buffer=self.buffer.buffer_id, seq_to=seq_to)
            props = {
                RUN_ID: run.run_id, JOB_NAME: run.job_name, BUFFER_ID: self.buffer.buffer_id, SEQ_FROM: str(seq_from), SEQ_TO: str(seq_to),
                MODEL: self.model, VERSIONS: ",".join(str(v) for v in answered), ROWS: str(len(good)),
            }
            with transaction(table) as tx:
                tx.append(data, snapshot_properties=props)
            step(f"{JOB_PREFIX}.committed")
            snap = _snapshot_of(table, run.run_id)
            run.add_output(output_dataset(self.settings, table, str(self.table_name), snap, len(good)))
        # After COMPLETE: dying here leaves the rows buffered, and the next flush drops them
        # (`committed_through`) instead of committing them again.
        self.buffer.drop_through(seq_to)
        report.committed += len(good)
        report.commits += 1
        report.snapshot_id = snap.snapshot_id

    def _table(self, catalog: Catalog, signatures: Sequence[Signature]) -> Table:
        """The log table, made on first use; a version with features the table lacks adds them."""
        import pyarrow as pa

        features: dict[str, pa.Field] = {}
        for sig in signatures:
            for f in sig.features:
                features.setdefault(f.name, f)
        target = next((s.target for s in signatures if s.target is not None), None)
        wanted = pa.schema(
            [
                pa.field("prediction_id", pa.string(), nullable=False), pa.field("model", pa.string()), pa.field("version", pa.int32()),
                pa.field("time", pa.timestamp("us", tz="UTC")), *features.values(), pa.field("prediction", target or pa.string()),
            ]
        )
        table = ensure_table(catalog, self.table_name, wanted, properties={"format-version": "2"})
        have = set(table.schema().column_names)
        if set(wanted.names) - have:
            with table.update_schema() as update:
                update.union_by_name(wanted)
            table = load_table(catalog, self.table_name)
        return table

    def _lineage_transport(self) -> Transport:
        if self._transport is not None:
            return self._transport
        if self._own_transport is None:
            self._own_transport = OutboxTransport(self.settings)
        return self._own_transport

    # -- shutting down ---------------------------------------------------------------------------

    def close(self, timeout_s: float = 60.0) -> FlushReport:
        """Stop the flusher and commit everything buffered (the SIGTERM path). A catalog that does
        not answer leaves the rows in the buffer (a warning; the next PredictionLog commits them)."""
        if self._closed:
            return FlushReport(pending=self.buffer.pending())
        self._closed = True
        if not self._commits:
            self.buffer.close()
            return FlushReport()
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        try:
            report = self.flush()
        except CatalogUnavailableError as exc:
            log.warning("%s", exc)
            report = FlushReport(pending=self.buffer.pending())
        finally:
            if self._own_transport is not None:
                self._own_transport.close()
            self.buffer.close()
        return report

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _plain(schema: pa.Schema) -> pa.Schema:
    """An Arrow schema without Iceberg's field-id metadata (what `from_pylist` builds against)."""
    import pyarrow as pa

    return pa.schema([pa.field(f.name, f.type, nullable=f.nullable) for f in schema])


def _to_arrow(rows: Taken, schema: pa.Schema) -> tuple[Taken, pa.Table, list[tuple[BufferedRow, str]]]:
    """The rows the table's schema takes (and as Arrow), and the others with why (tried one by one
    only when the whole batch does not convert)."""
    import pyarrow as pa

    known = set(schema.names)
    bad: list[tuple[BufferedRow, str]] = []
    fits = {k: known.issuperset(k) for k in set(rows.keys)}
    odd = [i for i, k in enumerate(rows.keys) if not fits[k]]
    if odd:
        for i in odd:
            extra = sorted(set(rows.keys[i]) - known)
            bad.append((rows.row(i), f"feature(s) {', '.join(extra)} not in {', '.join(n for n in schema.names if n not in LOG_COLUMNS)}"))
        skip = set(odd)
        rows = rows.select([i for i in range(len(rows)) if i not in skip])
    try:
        return rows, _columns(rows, schema), bad
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        pass
    kept = []
    for i in range(len(rows)):
        try:
            _columns(rows.select([i]), schema)
            kept.append(i)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            bad.append((rows.row(i), f"{exc.__class__.__name__}: {exc}"))
    rows = rows.select(kept)
    return rows, _columns(rows, schema), bad


def _columns(rows: Taken, schema: pa.Schema) -> pa.Table:
    """`rows` as an Arrow table of `schema`, a column at a time (times as integer microseconds)."""
    import pyarrow as pa

    fixed = {"prediction_id": rows.prediction_id, "model": rows.model, "version": rows.version, "time": rows.time_us, "prediction": rows.prediction}
    features, missing = rows.features, None
    arrays = []
    for f in schema:
        values = fixed.get(f.name) or features.get(f.name)
        if values is None:
            values = missing = missing or [None] * len(rows)
        arrays.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _snapshot_of(table: Table, run_id: str) -> Snapshot:
    snap = table.current_snapshot()
    for s in ancestors(table, snap.snapshot_id if snap else None):
        if summary_properties(s).get(RUN_ID) == run_id:
            return s
    raise PredictionLogError(f"{'.'.join(table.name())}: the commit of run {run_id} is not on main; report this as a bug")


def output_dataset(settings: Settings, table: Table, name: str, snapshot: Snapshot, rows: int) -> dict[str, Any]:
    """The log table at a commit's snapshot, as the run's OpenLineage output."""
    return ev.table_dataset(
        settings, name, table, snapshot.snapshot_id, "output",
        sequence_number=snapshot.sequence_number,
        operation=str(snapshot.summary.operation.value) if snapshot.summary else None,
        row_count=rows,
    )


def resolve(settings: Settings, run: InFlight) -> Resolution:
    """The terminal event of a flush whose process died: COMPLETE with the snapshot if its commit
    is on main (found by `tidemark.run-id`), else FAIL: the rows are still buffered and the next
    flush commits them."""
    ctx = run.context
    if "table" not in ctx:
        return Resolution("FAIL", note="died before it named its table")
    name = TableName.parse(str(ctx["table"]))
    try:
        table = load_table(load_catalog(settings), name)
    except TableNotFoundError:
        return Resolution("FAIL", note=f"{name} was never created; the rows stay buffered")
    try:
        snap = _snapshot_of(table, run.run_id)
    except PredictionLogError:
        return Resolution("FAIL", note="no commit of this run in the table; its rows stay buffered and the next flush commits them")
    return Resolution("COMPLETE", [output_dataset(settings, table, str(name), snap, int(ctx.get("rows") or 0))], note=f"commit {snap.snapshot_id} found on main")
