"""Landing a source into Iceberg by write-audit-publish, streaming.

1. Checksum the file (streamed). A sha256 already in a main-ancestor snapshot summary: a no-op.
2. Read the first batch and reconcile its columns with the table's schema (refuse before writing).
3. Stream the file in batches of about BATCH_ROWS rows: each batch is written as Parquet data
   files (in a worker thread) while the table's GX suite validates the very same batch.
4. Commit all the data files as one snapshot on an audit branch of this run, made from main.
5. Gate passed: publish by moving main to the audited snapshot, only if main is still its parent.
   If another landing moved main first, the same (validated) data files are appended again on a
   branch from the new main and that snapshot is published: never an unvalidated row, never the
   other writer's rows lost. Gate failed: main is untouched and the branch becomes `quarantine-<run>`.
A failure before the commit deletes the data files written and leaves no branch and no commit.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest import gate as gates
from ingest import schema as schemas
from ingest import sources
from ingest.exceptions import GateFailedError, PublishError, SourceError, SuiteError
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.tables import (
    JOB_NAME,
    RUN_ID,
    SOURCE_PATH,
    SOURCE_SHA256,
    TableName,
    ancestors,
    ensure_table,
    summary_properties,
    with_commit_retry,
)
from lineage import events as ev
from lineage.run import run as lineage_run
from lineage.transport import Transport

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table

log = logging.getLogger(__name__)

AUDIT_PREFIX = "audit-"
QUARANTINE_PREFIX = "quarantine-"
# Summary keys of the audited snapshot: the gate's verdict travels with the rows it judged.
GATE_SUITE = "tidemark.gate.suite"
GATE_SUCCESS = "tidemark.gate.success"
GATE_FAILURES = "tidemark.gate.failures"
GATE_DOCS = "tidemark.gate.data-docs"
# Rows per batch: the unit of writing and of validation. Memory holds about two batches at once
# (one being written, one being validated), so ~1M rows keeps a 100-byte-wide row well under 1 GB.
BATCH_ROWS = 1_000_000
BATCH_BYTES = 256 << 20
PUBLISH_ATTEMPTS = 30

Progress = Callable[[str], None]
Advance = Callable[[int, "float | None"], None]  # rows so far, fraction of the file done (None: unknown)


@dataclass
class LandingResult:
    table: str
    source: str
    sha256: str
    run_id: str | None
    snapshot_id: int | None
    rows: int
    skipped: bool = False
    gate: gates.GateResult | None = None
    warnings: list[str] = field(default_factory=list)
    data_docs: str | None = None
    data_files: int = 0
    bytes_written: int = 0
    reapplied: int = 0  # times main moved under this landing and its validated files were re-applied
    audit_branch: str | None = None  # set when land(publish=False) left the audited snapshot unpublished
    seconds: dict[str, float] = field(default_factory=dict)  # read_write, gate, commit, total

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "source": self.source,
            "sha256": self.sha256,
            "run_id": self.run_id,
            "snapshot_id": self.snapshot_id,
            "rows": self.rows,
            "skipped": self.skipped,
            "gate": None
            if self.gate is None
            else {
                "suite": self.gate.suite,
                "success": self.gate.success,
                "expectations": len(self.gate.outcomes),
                "failures": [_outcome_json(o) for o in self.gate.failures()],
            },
            "data_docs": self.data_docs,
            "data_files": self.data_files,
            "reapplied": self.reapplied,
            "audit_branch": self.audit_branch,
            "warnings": self.warnings,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def _outcome_json(o: gates.ExpectationOutcome) -> dict[str, Any]:
    return {
        "expectation": o.expectation,
        "column": o.column,
        "unexpected_count": o.unexpected_count,
        "element_count": o.element_count,
        "observed_value": o.observed_value,
        "sample": o.sample[:5],
        "rows": o.rows[:3],
    }


def landed_snapshot(table: Table, sha256: str) -> int | None:
    """The main-branch snapshot that already holds this source file, if any (from summary properties)."""
    snap = table.current_snapshot()
    for s in ancestors(table, snap.snapshot_id if snap else None):
        if summary_properties(s).get(SOURCE_SHA256) == sha256:
            return s.snapshot_id
    return None


def land_all(
    settings: Settings,
    location: str,
    table: str,
    **kwargs: Any,
) -> list[LandingResult]:
    """Land every file a location names (a path, a URI, or a glob); each file is its own landing.

    Files land one after the other; the first failure stops the rest (earlier ones stay landed).
    """
    TableName.parse(table)
    return [land(settings, loc, table, **kwargs) for loc in sources.expand(location, settings.catalog.properties)]


def land(
    settings: Settings,
    location: str,
    table: str,
    *,
    suite_file: str | None = None,
    fmt: str | None = None,
    force: bool = False,
    strict: bool = False,
    transport: Transport | None = None,
    progress: Progress = lambda _msg: None,
    advance: Advance | None = None,
    batch_rows: int = BATCH_ROWS,
    data_docs: bool = True,
    publish: bool = True,
) -> LandingResult:
    """Land one source file into `namespace.table` through the table's gate. See the module docstring.

    `publish=False` stops after step 4: the audited snapshot stays on branch `result.audit_branch`
    with the gate's verdict in its summary, for a scheduler to decide in separate, visible steps
    (`publish_audited` or `quarantine_audited`), as the Airflow ingest DAGs do.
    """
    started = time.perf_counter()
    name = TableName.parse(table)
    if sources.GLOB_CHARS & set(location):
        raise SourceError(f"{location}: a pattern names several files; use land_all (the CLI does) to land each")
    suite = _suite(settings, name, suite_file, strict)
    src = sources.open_source(location, fmt, settings.catalog.properties)
    warnings: list[str] = []
    if suite is None:
        msg = f"no validation suite for {name} (looked for {name}.yaml in the suites folder); landing ungated"
        warnings.append(msg)
        log.info(msg)  # callers show result.warnings (the CLI prints them); no second copy on stderr
    progress(f"{src.uri}: {src.fmt}, {src.size:,} bytes, sha256 {src.sha256[:12]}…")
    result = LandingResult(table=str(name), source=src.uri, sha256=src.sha256, run_id=None, snapshot_id=None, rows=0, warnings=warnings)

    catalog = load_catalog(settings)
    if not force and catalog.table_exists(name.identifier):
        already = landed_snapshot(catalog.load_table(name.identifier), src.sha256)
        if already is not None:
            progress(f"{src.uri} (sha256 {src.sha256[:12]}…) is already in {name} at snapshot {already}; nothing to do (force lands it again)")
            result.skipped = True
            result.snapshot_id = already
            return result

    # Read up to the first rows before the run starts: an unreadable or empty file is refused
    # without a lineage run, a table, or a branch.
    stream = _Rebatcher(sources.batches(src, batch_rows=min(batch_rows, 256_000)), batch_rows)
    first = stream.peek()
    if first is None:
        raise SourceError(f"{src.uri}: no data rows (header only?); nothing to land")
    ignored = schemas.droppable_empty_columns(first.schema)

    source_ds = ev.file_dataset(producer=settings.lineage.producer, path=src.uri, sha256=src.sha256, size=src.size, fmt=src.fmt)
    with lineage_run(
        f"ingest.{name}",
        inputs=[source_ds],
        parameters={"table": str(name), "source": src.uri, "suite": suite.name if suite else None, "force": force},
        settings=settings,
        transport=transport,
        code=land,
    ) as run:
        result.run_id = run.run_id
        tbl, created = _prepare_table(settings, name, first.schema, src.uri, result)
        props = {RUN_ID: run.run_id, JOB_NAME: run.job_name, SOURCE_SHA256: src.sha256, SOURCE_PATH: src.uri}
        files: list[DataFile] = []  # filled as they are written, so a failure can delete them
        try:
            gate = _write_and_validate(tbl, stream, src, suite, ignored, files, result, progress, advance)
            sources.check_unchanged(src)
        except BaseException:
            _delete_files(tbl, files)
            if created:
                _drop_if_pristine(catalog, name)
            raise
        gate_result = result.gate
        if gate_result is not None:
            props.update(_gate_properties(gate_result))
            if data_docs and gate is not None:
                docs = _write_data_docs(settings, name, run.run_id, gate, result)
                if docs:
                    props[GATE_DOCS] = docs
        commit_started = time.perf_counter()
        branch = f"{AUDIT_PREFIX}{run.run_id}"
        try:
            audited, base_id = _commit_to_branch(catalog, name, branch, files, props)
        except BaseException:
            _drop_branch(catalog, name, branch)
            _delete_files(tbl, files)
            raise
        progress(f"audited snapshot {audited.snapshot_id} on branch {branch}")
        if not publish:
            result.audit_branch = branch
            result.snapshot_id = audited.snapshot_id
            result.seconds["commit"] = time.perf_counter() - commit_started
            tbl = catalog.load_table(name.identifier)
            run.add_output(_output_dataset(settings, tbl, str(name), audited, result))
            progress(f"gate {'passed' if gate_result is None or gate_result.success else 'FAILED'}; not published (publish=False)")
            result.seconds["total"] = time.perf_counter() - started
            return result
        if gate_result is not None and not gate_result.success:
            quarantine = f"{QUARANTINE_PREFIX}{run.run_id}"
            _rename_branch(catalog, name, branch, quarantine)
            tbl = catalog.load_table(name.identifier)
            run.add_output(_output_dataset(settings, tbl, str(name), audited, result))
            raise GateFailedError(_gate_message(name, src.uri, quarantine, gate_result, result.data_docs), result=gate_result)
        try:
            audited = _publish(catalog, name, branch, base_id, audited, files, props, progress, result)
        except BaseException:
            _drop_branch(catalog, name, branch)
            raise
        result.seconds["commit"] = time.perf_counter() - commit_started
        result.snapshot_id = audited.snapshot_id
        tbl = catalog.load_table(name.identifier)
        run.add_output(_output_dataset(settings, tbl, str(name), audited, result))
        progress(f"published snapshot {audited.snapshot_id} to {name} main ({result.rows:,} rows)")
    result.seconds["total"] = time.perf_counter() - started
    return result


@dataclass
class AuditVerdict:
    """What the gate said about an audited, unpublished snapshot (read back from its summary)."""

    table: str
    branch: str
    snapshot_id: int
    base_snapshot_id: int | None
    rows: int
    suite: str | None
    success: bool | None  # None: the table has no suite, the landing was ungated
    failures: str | None
    data_docs: str | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def audit_verdict(settings: Settings, table: str, branch: str) -> AuditVerdict:
    """The gate's verdict on the snapshot at the head of `branch` (left there by land(publish=False))."""
    name = TableName.parse(table)
    tbl = load_catalog(settings).load_table(name.identifier)
    snap = tbl.snapshot_by_name(branch)
    if snap is None:
        raise PublishError(f"{name} has no branch {branch}: it was published, quarantined or dropped already; land the file again")
    props = summary_properties(snap)
    success = props.get(GATE_SUCCESS)
    return AuditVerdict(
        table=str(name),
        branch=branch,
        snapshot_id=int(snap.snapshot_id),
        base_snapshot_id=snap.parent_snapshot_id,
        rows=int(props.get("added-records", 0)),
        suite=props.get(GATE_SUITE),
        success=None if success is None else success == "true",
        failures=props.get(GATE_FAILURES) or None,
        data_docs=props.get(GATE_DOCS),
    )


def publish_audited(settings: Settings, table: str, branch: str, *, transport: Transport | None = None, progress: Progress = lambda _msg: None) -> LandingResult:
    """Publish an audited snapshot that passed its gate: main moves to it (or its files are re-applied).

    Refuses a snapshot whose gate failed. The publish is its own lineage run (`publish.NS.TABLE`),
    reading the audited snapshot and writing the published one, which differ only if main moved.
    """
    verdict = audit_verdict(settings, table, branch)
    if verdict.success is False:
        raise PublishError(f"{verdict.table} branch {branch}: the gate failed ({verdict.failures}); quarantine it instead of publishing")
    name = TableName.parse(table)
    catalog = load_catalog(settings)
    tbl = catalog.load_table(name.identifier)
    audited = tbl.snapshot_by_name(branch)
    assert audited is not None
    props = summary_properties(audited)
    files = _added_data_files(tbl, audited)
    result = LandingResult(table=str(name), source=props.get(SOURCE_PATH, ""), sha256=props.get(SOURCE_SHA256, ""), run_id=props.get(RUN_ID), snapshot_id=None, rows=verdict.rows)
    result.data_files, result.bytes_written = len(files), sum(f.file_size_in_bytes for f in files)
    with lineage_run(
        f"publish.{name}",
        inputs=[ev.table_dataset(settings, str(name), tbl, audited.snapshot_id, "input")],
        parameters={"table": str(name), "branch": branch, "landing_run": result.run_id},
        settings=settings,
        transport=transport,
        code=publish_audited,
    ) as run:
        try:
            published = _publish(catalog, name, branch, int(verdict.base_snapshot_id or 0), audited, files, props, progress, result)
        except BaseException:
            _drop_branch(catalog, name, branch)
            raise
        result.snapshot_id = published.snapshot_id
        run.add_output(_output_dataset(settings, catalog.load_table(name.identifier), str(name), published, result))
    progress(f"published snapshot {result.snapshot_id} to {name} main ({result.rows:,} rows)")
    return result


def quarantine_audited(settings: Settings, table: str, branch: str) -> str:
    """Keep a failed landing's rows on `quarantine-<run>` (main untouched); returns the new branch name."""
    name = TableName.parse(table)
    quarantine = QUARANTINE_PREFIX + branch.removeprefix(AUDIT_PREFIX)
    _rename_branch(load_catalog(settings), name, branch, quarantine)
    return quarantine


def _added_data_files(tbl: Table, snapshot: Any) -> list[DataFile]:
    """The DataFile entries a snapshot added, to re-apply exactly those files if main moved."""
    from pyiceberg.manifest import ManifestEntryStatus

    out: list[DataFile] = []
    for manifest in snapshot.manifests(tbl.io):
        if manifest.added_snapshot_id != snapshot.snapshot_id:
            continue
        for entry in manifest.fetch_manifest_entry(tbl.io, discard_deleted=True):
            if entry.status == ManifestEntryStatus.ADDED:
                out.append(entry.data_file)
    return out


def _suite(settings: Settings, name: TableName, suite_file: str | None, strict: bool) -> gates.Suite | None:
    suite_path = Path(suite_file) if suite_file else gates.suite_path(settings, name)
    if suite_path is None:
        if strict:
            raise SuiteError(
                f"no validation suite for {name}; add {name}.yaml to the suites folder or pass suite_file (refused because strict is set)",
                parameter="suite_file",
            )
        return None
    return gates.load_suite(suite_path)


class _Rebatcher:
    """Source record batches regrouped into tables of about `rows` rows (and at most BATCH_BYTES)."""

    def __init__(self, batches: Iterator[pa.RecordBatch], rows: int) -> None:
        self._batches = batches
        self._rows = rows
        self._peeked: list[pa.RecordBatch] = []
        self.rows_read = 0
        self.first_rows = 0

    def peek(self) -> pa.RecordBatch | None:
        for batch in self._batches:
            if batch.num_rows:
                self._peeked.append(batch)
                self.first_rows = batch.num_rows
                return batch
        return None

    def __iter__(self) -> Iterator[pa.Table]:
        import itertools

        import pyarrow as pa

        pending: list[pa.RecordBatch] = []
        rows = size = 0
        for whole in itertools.chain(self._peeked, self._batches):
            # A reader may hand out more rows at once than a batch holds (a whole CSV block).
            for off in range(0, whole.num_rows, self._rows):
                batch = whole.slice(off, self._rows)
                if rows + batch.num_rows > self._rows:
                    cut = self._rows - rows
                    pending.append(batch.slice(0, cut))
                    self.rows_read += self._rows
                    yield pa.Table.from_batches(pending)
                    batch = batch.slice(cut)
                    pending, rows, size = [], 0, 0
                pending.append(batch)
                rows += batch.num_rows
                size += batch.nbytes
                if rows >= self._rows or size >= BATCH_BYTES:
                    self.rows_read += rows
                    yield pa.Table.from_batches(pending)
                    pending, rows, size = [], 0, 0
        self._peeked = []
        if pending:
            self.rows_read += rows
            yield pa.Table.from_batches(pending)


def _prepare_table(settings: Settings, name: TableName, source_schema: pa.Schema, source_name: str, result: LandingResult) -> tuple[Table, bool]:
    """Load or create the table and evolve its schema for this source; refuse before writing anything.

    Returns the table and whether this landing created it. A new table gets an empty first snapshot
    on main, because Iceberg refuses branch writes to a table with no snapshot.
    """
    import pyarrow as pa

    catalog = load_catalog(settings)
    empty = schemas.droppable_empty_columns(source_schema)
    usable = pa.schema([f for f in source_schema if f.name not in empty])
    created = False
    if not catalog.table_exists(name.identifier):
        if not len(usable):
            raise SourceError(f"{source_name}: every column is empty; nothing to land")
        ensure_table(catalog, name, usable)

        def init() -> bool:
            t = catalog.load_table(name.identifier)
            if t.current_snapshot() is None:
                with _stale_is_conflict():
                    t.append(usable.empty_table(), snapshot_properties={JOB_NAME: "tidemark.ingest.create"})
                return True
            return False

        # "Created" means this landing gave the table its first snapshot; only then may a failure
        # drop it again (a concurrent landing that raced to create it did not).
        created = with_commit_retry(init, f"creating {name}")

    def evolve() -> None:
        t = catalog.load_table(name.identifier)
        change = schemas.plan(t.schema(), source_schema, str(name), source_name)
        for col in change.ignored_empty:
            msg = f"column {col} of {source_name} has no values in its first rows and is not added to {name}"
            if msg not in result.warnings:
                result.warnings.append(msg)
        schemas.apply(t, change)

    with_commit_retry(evolve, f"evolving the schema of {name}")
    return catalog.load_table(name.identifier), created


def _write_and_validate(
    tbl: Table,
    stream: _Rebatcher,
    src: sources.Source,
    suite: gates.Suite | None,
    ignored: list[str],
    files: list[DataFile],
    result: LandingResult,
    progress: Progress,
    advance: Advance | None,
) -> gates.StreamingGate | None:
    """Write each batch as data files (worker thread) while the gate checks the same batch here.

    Writing Parquet releases the GIL, so on two cores the write and GX's pandas work overlap.
    At most one write is in flight, which bounds memory to about two batches.
    """
    from pyiceberg.io.pyarrow import _check_pyarrow_schema_compatible, _dataframe_to_data_files

    import itertools

    started = time.perf_counter()
    gate = gates.StreamingGate(suite) if suite is not None else None
    if suite is not None:
        progress(f"gate: suite {suite.name} ({len(suite.expectations)} expectations) on every batch written")
    table_schema = tbl.schema()
    metadata = tbl.metadata
    write_uuid = uuid.uuid4()
    counter = itertools.count(0)
    pending: Future[list[DataFile]] | None = None
    total_rows = _total_rows(src)
    checked = False
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidemark-write") as pool:
        try:
            for chunk in stream:
                if ignored:
                    chunk = chunk.drop_columns([c for c in ignored if c in chunk.column_names])
                data = schemas.conform(chunk, table_schema, src.uri)
                if not checked:
                    _check_pyarrow_schema_compatible(table_schema, provided_schema=data.schema, format_version=metadata.format_version)
                    checked = True
                if pending is not None:
                    files.extend(pending.result())
                pending = pool.submit(lambda d=data: list(_dataframe_to_data_files(metadata, d, tbl.io, write_uuid, counter)))
                if gate is not None:
                    gate.check(data)
                result.rows += data.num_rows
                if advance is not None:
                    done = (result.rows / total_rows) if total_rows else _text_fraction(stream, src, result.rows)
                    advance(result.rows, min(1.0, done) if done is not None else None)
            if pending is not None:
                files.extend(pending.result())
                pending = None
            if advance is not None:
                advance(result.rows, 1.0)
        except BaseException:
            if pending is not None:
                try:
                    files.extend(pending.result())
                except BaseException:
                    pass
            raise
    if result.rows == 0:
        raise SourceError(f"{src.uri}: no data rows; nothing to land")
    written = sum(f.record_count for f in files)
    if written != result.rows:
        raise PublishError(f"{src.uri}: wrote {written} rows but read {result.rows}; nothing was published, land it again")
    result.data_files = len(files)
    result.bytes_written = sum(f.file_size_in_bytes for f in files)
    if gate is not None:
        result.gate = gate.finish()
        result.seconds["gate"] = gate.seconds
    result.seconds["read_write_validate"] = time.perf_counter() - started
    return gate


def _total_rows(src: sources.Source) -> int | None:
    if src.fmt != "parquet":
        return None
    try:
        import pyarrow.parquet as pq

        with src.filesystem.open_input_file(src.path) as fh:
            return int(pq.ParquetFile(fh).metadata.num_rows)
    except Exception:
        return None


def _text_fraction(stream: _Rebatcher, src: sources.Source, rows: int) -> float | None:
    """Share of a CSV / JSON Lines file done, estimated from rows: the parser reads ahead of the
    rows handed out, so bytes read overstate progress. Each parse block is one record batch, so the
    first batch gives the rows per block."""
    first = stream.first_rows
    if not first or not src.size:
        return None
    blocks = max(1.0, src.size / sources.TEXT_BLOCK_BYTES)
    return min(0.99, rows / (first * blocks))


def _write_data_docs(settings: Settings, name: TableName, run_id: str, gate: gates.StreamingGate, result: LandingResult) -> str | None:
    if result.gate is None:
        return None
    try:
        page = gate.write_docs(settings.home / "data_docs" / str(name), run_id, result.gate)
    except Exception as exc:  # the docs are a report; the gate's verdict stands without them
        msg = f"could not write GX Data Docs for {name}: {exc.__class__.__name__}: {exc}"
        result.warnings.append(msg)
        log.warning(msg)
        return None
    result.data_docs = str(page) if page else None
    return result.data_docs


def _gate_properties(result: gates.GateResult) -> dict[str, str]:
    failures = [
        {k: v for k, v in _outcome_json(o).items() if v not in (None, [])}
        for o in result.failures()
    ]
    text = json.dumps(failures, default=str)
    if len(text) > 4000:  # summaries live in table metadata; keep them small
        text = json.dumps([{k: f[k] for k in ("expectation", "column", "unexpected_count") if k in f} for f in failures], default=str)
    return {GATE_SUITE: result.suite, GATE_SUCCESS: str(result.success).lower(), GATE_FAILURES: text}


def _delete_files(tbl: Table, files: list[DataFile]) -> None:
    for f in files:
        try:
            tbl.io.delete(f.file_path)
        except Exception:  # best effort: an orphan file is harmless, expire/orphan cleanup removes it
            log.warning("could not delete uncommitted data file %s", f.file_path)


def _drop_if_pristine(catalog: Any, name: TableName) -> None:
    """Undo a table this landing created, if nobody else has used it since (only the empty first snapshot)."""
    try:
        t = catalog.load_table(name.identifier)
        if set(t.metadata.refs) <= {"main"} and len(t.metadata.snapshots) <= 1:
            catalog.drop_table(name.identifier)
    except Exception:
        log.warning("could not drop the empty table %s this failed landing created", name)


def _append_files(tbl: Table, branch: str, files: list[DataFile], props: dict[str, str]) -> None:
    with _stale_is_conflict():
        with tbl.transaction() as tx:
            with tx.update_snapshot(snapshot_properties=props, branch=branch).fast_append() as append:
                for f in files:
                    append.append_data_file(f)


@contextmanager
def _stale_is_conflict() -> Iterator[None]:
    """A commit built on metadata another writer has since moved is a conflict: retry it on fresh metadata.

    pyiceberg 0.12's SQL catalog checks only the branch's own ref for a branch append, then fails
    applying it onto the newer metadata with a ValueError ("Cannot add snapshot with sequence number
    N older than last sequence number N"), not a CommitFailedException; nothing was committed.
    """
    from pyiceberg.exceptions import CommitFailedException

    try:
        yield
    except ValueError as exc:
        if "sequence number" in str(exc):
            raise CommitFailedException(str(exc)) from exc
        raise


def _commit_to_branch(catalog: Any, name: TableName, branch: str, files: list[DataFile], props: dict[str, str]) -> tuple[Any, int]:
    """One snapshot with all the landing's data files, on a branch made from main now. (snapshot, base id)."""

    def create() -> int:
        tbl = catalog.load_table(name.identifier)
        base = tbl.current_snapshot()
        assert base is not None  # _prepare_table made one
        with tbl.manage_snapshots() as ms:
            ms.create_branch(base.snapshot_id, branch)
        return int(base.snapshot_id)

    base_id = with_commit_retry(create, f"creating branch {branch} of {name}")

    def append() -> Any:
        tbl = catalog.load_table(name.identifier)
        _append_files(tbl, branch, files, props)
        return catalog.load_table(name.identifier).snapshot_by_name(branch)

    audited = with_commit_retry(append, f"writing to branch {branch} of {name}")
    return audited, base_id


def _publish(
    catalog: Any,
    name: TableName,
    branch: str,
    base_id: int,
    audited: Any,
    files: list[DataFile],
    props: dict[str, str],
    progress: Progress,
    result: LandingResult,
) -> Any:
    """Move main to the audited snapshot if main is still its parent; else re-apply on the new main.

    Re-applying appends the very data files the gate validated (nothing else) on a branch made from
    the new main, so the rows published are still exactly the rows validated and the other writer's
    rows stay. Conflicts back off with jitter.
    """
    from pyiceberg.exceptions import CommitFailedException

    expected = {f.file_path for f in files}
    for attempt in range(PUBLISH_ATTEMPTS):
        tbl = catalog.load_table(name.identifier)
        current = tbl.current_snapshot()
        if current is not None and current.snapshot_id == base_id:
            try:
                # The commit asserts main is still `base_id`: a concurrent publish makes it fail, never overwrite.
                with tbl.manage_snapshots() as ms:
                    ms.set_current_snapshot(snapshot_id=audited.snapshot_id)
                    ms.remove_branch(branch)
                return audited
            except CommitFailedException:
                pass
        else:
            progress(f"{name} main moved during the landing; applying the validated files again on the new main")
            result.reapplied += 1
            try:
                base_id, audited = _reapply(catalog, name, branch, files, props)
            except CommitFailedException:
                pass
            else:
                added = _added_files(catalog.load_table(name.identifier), audited)
                if added != expected:
                    raise PublishError(
                        f"re-applying the landing on the new main of {name} produced a snapshot with other files than "
                        f"the validated ones; nothing was published (branch {branch} kept for inspection)"
                    )
                continue
        time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
    raise PublishError(
        f"could not publish to {name}: main kept moving ({PUBLISH_ATTEMPTS} attempts); nothing was published, land it again"
    )


def _reapply(catalog: Any, name: TableName, branch: str, files: list[DataFile], props: dict[str, str]) -> tuple[int, Any]:
    tbl = catalog.load_table(name.identifier)
    base = tbl.current_snapshot()
    assert base is not None
    with tbl.manage_snapshots() as ms:
        if branch in tbl.metadata.refs:
            ms.remove_branch(branch)
    tbl = catalog.load_table(name.identifier)
    with tbl.manage_snapshots() as ms:
        ms.create_branch(base.snapshot_id, branch)
    tbl = catalog.load_table(name.identifier)
    _append_files(tbl, branch, files, props)
    audited = catalog.load_table(name.identifier).snapshot_by_name(branch)
    if audited is None or audited.parent_snapshot_id != base.snapshot_id:
        raise PublishError(f"branch {branch} of {name} did not land on main's snapshot {base.snapshot_id}; land it again")
    return int(base.snapshot_id), audited


def _added_files(tbl: Table, snapshot: Any) -> set[str]:
    """Paths of the data files a snapshot added (from its own manifests' ADDED entries)."""
    return {f.file_path for f in _added_data_files(tbl, snapshot)}


def _drop_branch(catalog: Any, name: TableName, branch: str) -> None:
    def attempt() -> None:
        tbl = catalog.load_table(name.identifier)
        if branch in tbl.metadata.refs:
            with tbl.manage_snapshots() as ms:
                ms.remove_branch(branch)

    try:
        with_commit_retry(attempt, f"removing branch {branch} of {name}")
    except Exception:
        log.warning("could not remove branch %s of %s", branch, name)


def _rename_branch(catalog: Any, name: TableName, old: str, new: str) -> None:
    def attempt() -> None:
        tbl = catalog.load_table(name.identifier)
        snap = tbl.snapshot_by_name(old)
        assert snap is not None
        with tbl.manage_snapshots() as ms:
            ms.create_branch(snap.snapshot_id, new)
            ms.remove_branch(old)

    with_commit_retry(attempt, f"keeping branch {old} of {name} as {new}")


def _output_dataset(settings: Settings, table: Table, name: str, snapshot: Any, result: LandingResult) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if result.gate is not None:
        extra["dataQualityAssertions"] = ev.facet(
            settings.lineage.producer,
            f"{ev.FACETS}/1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet",
            assertions=[
                {"assertion": o.expectation, "success": o.success, **({"column": o.column} if o.column else {})}
                for o in result.gate.outcomes
            ],
        )
    dataset = ev.table_dataset(
        settings,
        name,
        table,
        snapshot.snapshot_id,
        "output",
        sequence_number=snapshot.sequence_number,
        operation=str(snapshot.summary.operation.value) if snapshot.summary else None,
        row_count=result.rows,
        extra_facets=extra,
    )
    stats = dataset.get("outputFacets", {}).get("outputStatistics")
    if stats is not None:
        stats["size"] = result.bytes_written
        stats["fileCount"] = result.data_files
    return dataset


def _gate_message(name: TableName, source: str, quarantine: str, result: gates.GateResult, docs: str | None) -> str:
    parts = []
    for o in result.failures():
        where = f" on {o.column}" if o.column else ""
        if o.unexpected_count is not None:
            of = f" of {o.element_count}" if o.element_count is not None else ""
            count = f" ({o.unexpected_count}{of} rows)"
        elif o.observed_value is not None:
            count = f" (observed {o.observed_value})"
        else:
            count = ""
        sample = f", e.g. {o.sample[:3]}" if o.sample else ""
        parts.append(f"{o.expectation}{where}{count}{sample}")
    where_docs = f"; report: {docs}" if docs else ""
    return (
        f"{source}: validation gate {result.suite} failed for {name}: {'; '.join(parts)}. "
        f"main is unchanged; the rows are kept on branch {quarantine} "
        f"(`tidemark ingest quarantine show {name} {quarantine}`){where_docs}"
    )
