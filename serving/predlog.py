"""The prediction log: every answered request, durable on local disk at once, in Iceberg within seconds.

`PredictionLog(settings, model).append(rows)` writes the rows to a local buffer and returns; a
flusher (`run`: a thread of this object, or in a service the flusher process of `serving.flusher`,
whose workers append with `commit=False`) commits them in micro-batches to the Iceberg table
`serving.<model>_predictions`
(columns: prediction_id, model, version, time, one per feature typed as the model was trained on,
prediction). The request path never waits on the catalog: a catalog that is down only delays the
commits (a warning says so, once per outage); the rows wait in the buffer until it answers.

**The guarantee.** The buffer is SQLite in WAL mode at `$TIDEMARK_HOME/serving/<model>.predlog.db`,
one transaction per `append`. With `serving.log_synchronous: full` (the default) `append` returns
after the transaction is fsynced: a row whose `append` returned survives SIGKILL, a crash of the
machine and a power cut. With `normal` it survives the death of the process however it dies
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
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
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


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


@dataclass(frozen=True)
class BufferedRow:
    seq: int
    prediction_id: str
    model: str
    version: int
    time_us: int
    features: dict[str, Any]
    prediction: Any


class Buffer:
    """The SQLite buffer of one model's log (module docstring): rows numbered by `seq`, never reused."""

    def __init__(self, path: Path, synchronous: str = "full") -> None:
        self.path = path
        self.synchronous = synchronous.upper()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # Group commit (see `put`): rows waiting for the next transaction, which batch they join,
        # the last batch committed, whether a transaction is being written, and failed batches.
        self._group = threading.Condition()
        self._queue: list[tuple[str, str, int, int, str, str]] = []
        self._open_batch, self._done, self._writing = 1, 0, False
        self._failed: dict[int, BaseException] = {}
        with immediate(self._db()) as db:  # one process sets the file up; another one starting waits
            db.execute(
                """CREATE TABLE IF NOT EXISTS rows (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, prediction_id TEXT NOT NULL, model TEXT NOT NULL,
                    version INTEGER NOT NULL, time_us INTEGER NOT NULL, features TEXT NOT NULL, prediction TEXT NOT NULL)"""
            )
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

    def put(self, rows: Sequence[tuple[str, str, int, int, str, str]]) -> None:
        """Store `rows`; returns once they are committed. Group commit: while one caller's
        transaction is being written (an fsync: ~4 ms here), the rows of callers arriving meanwhile
        wait in a queue, and the next of them writes them all in one transaction, so concurrent
        requests share fsyncs instead of queueing for one each."""
        with self._group:
            batch = self._open_batch
            self._queue.extend(rows)
            while True:
                if self._done >= batch:
                    failed = self._failed.get(batch)
                    if failed is not None:
                        raise failed
                    return
                if not self._writing:
                    break
                self._group.wait()
            self._writing = True
            take, self._queue = self._queue, []
            self._open_batch += 1
        error: BaseException | None = None
        try:
            with self._transaction() as db:
                db.executemany("INSERT INTO rows (prediction_id, model, version, time_us, features, prediction) VALUES (?, ?, ?, ?, ?, ?)", take)
        except BaseException as exc:
            error = exc
        with self._group:
            if error is not None:
                self._failed[batch] = error
            self._failed.pop(batch - 64, None)  # a waiter of a batch that old has long read it
            self._done, self._writing = batch, False
            self._group.notify_all()
        if error is not None:
            raise error

    def pending(self) -> int:
        return int(self._db().execute("SELECT count(*) FROM rows").fetchone()[0])

    def backlog(self) -> int:
        """About how many rows wait (the span of their numbers: two index lookups, where `pending`
        counts): cheap enough to ask several times a second."""
        low, high = self._db().execute("SELECT min(seq), max(seq) FROM rows").fetchone()
        return 0 if low is None else int(high) - int(low) + 1

    def rejected(self) -> list[dict[str, Any]]:
        cur = self._db().execute("SELECT seq, prediction_id, version, reason FROM rejected ORDER BY seq")
        return [dict(zip(("seq", "prediction_id", "version", "reason"), r)) for r in cur.fetchall()]

    def take(self, limit: int) -> list[BufferedRow]:
        cur = self._db().execute("SELECT seq, prediction_id, model, version, time_us, features, prediction FROM rows ORDER BY seq LIMIT ?", (limit,))
        loads = orjson.loads
        return [BufferedRow(s, p, m, int(v), int(t), loads(f), loads(pr)) for s, p, m, v, t, f, pr in cur.fetchall()]

    def drop_through(self, seq: int) -> int:
        """Remove the rows numbered up to `seq` (they are in the table)."""
        with self._transaction() as db:
            return db.execute("DELETE FROM rows WHERE seq <= ?", (seq,)).rowcount

    def reject(self, rows: Sequence[tuple[BufferedRow, str]]) -> None:
        with self._transaction() as db:
            for row, reason in rows:
                db.execute(
                    "INSERT OR REPLACE INTO rejected SELECT seq, prediction_id, model, version, time_us, features, prediction, ?, ? FROM rows WHERE seq = ?",
                    (reason, time.time(), row.seq),
                )
                db.execute("DELETE FROM rows WHERE seq = ?", (row.seq,))

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
        encoded = [self._encode(r) for r in rows]
        if not encoded:
            return
        self.buffer.put(encoded)
        self._appended += len(encoded)
        if self._appended >= self.batch_rows:
            self._wake.set()

    def _encode(self, row: Mapping[str, Any]) -> tuple[str, str, int, int, str, str]:
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
            version = int(row["version"])
            # Stored as text (decoded), as the json module wrote it: one format on disk either way.
            features = orjson.dumps(row["features"] if type(row["features"]) is dict else dict(row["features"]), default=_json_default, option=_ORJSON_OPTS).decode()
            prediction = orjson.dumps(row["prediction"], default=_json_default, option=_ORJSON_OPTS).decode()
        except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
            raise PredictionLogError(f"prediction row {row['prediction_id']}: {exc}", parameter="rows") from exc
        micros = (when - _EPOCH) // timedelta(microseconds=1)  # exact: a float timestamp may round a microsecond
        return (str(row["prediction_id"]), self.model, version, micros, features, prediction)

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
            while True:
                rows = self.buffer.take(min(self.batch_rows * MAX_BATCHES_PER_COMMIT, MAX_ROWS_PER_COMMIT))
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

    def _commit(self, catalog: Catalog, rows: list[BufferedRow], report: FlushReport) -> None:
        registry = Registry(self.settings, catalog)
        signatures = []
        for v in sorted({r.version for r in rows}):
            try:
                signatures.append(self._signature(registry, catalog, v))
            except ModelNotFoundError as exc:  # never registered: these rows can never be committed
                unknown = [(r, str(exc)) for r in rows if r.version == v]
                self.buffer.reject(unknown)
                report.rejected += len(unknown)
                log.warning("prediction log of %s: %d row(s) of version %d moved to the rejected table of %s: %s", self.model, len(unknown), v, self.buffer.path, exc)
        rows = [r for r in rows if r.version in self._signatures]
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
        seq_from, seq_to = good[0].seq, good[-1].seq
        answered = sorted({r.version for r in good})
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


def _to_arrow(rows: list[BufferedRow], schema: pa.Schema) -> tuple[list[BufferedRow], pa.Table, list[tuple[BufferedRow, str]]]:
    """The rows the table's schema takes (and as Arrow), and the others with why (tried one by one
    only when the whole batch does not convert)."""
    import pyarrow as pa

    known = set(schema.names)
    bad: list[tuple[BufferedRow, str]] = []
    good = []
    for r in rows:
        if not known.issuperset(r.features):
            extra = sorted(set(r.features) - known)
            bad.append((r, f"feature(s) {', '.join(extra)} not in {', '.join(n for n in schema.names if n not in LOG_COLUMNS)}"))
        else:
            good.append(r)
    try:
        return good, _columns(good, schema), bad
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        pass
    kept = []
    for r in good:
        try:
            _columns([r], schema)
            kept.append(r)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            bad.append((r, f"{exc.__class__.__name__}: {exc}"))
    return kept, _columns(kept, schema), bad


def _columns(rows: list[BufferedRow], schema: pa.Schema) -> pa.Table:
    """`rows` as an Arrow table of `schema`, built a column at a time (one list per column, times
    as integer microseconds): the flusher runs in the serving process and its Python work holds the
    GIL the event loop needs, and a dict plus a datetime per row (`from_pylist`) cost several times more."""
    import pyarrow as pa

    fixed = {
        "prediction_id": [r.prediction_id for r in rows], "model": [r.model for r in rows], "version": [r.version for r in rows],
        "time": [r.time_us for r in rows], "prediction": [r.prediction for r in rows],
    }
    arrays = [
        pa.array(fixed[f.name] if f.name in fixed else [r.features.get(f.name) for r in rows], type=f.type)
        for f in schema
    ]
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
