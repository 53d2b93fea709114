"""Landing a source into Iceberg by write-audit-publish, streaming: the orchestration.

1. Checksum the file (streamed; `ingest.sources`). A sha256 already in a main-ancestor snapshot
   summary: a no-op.
2. Read the first batch and reconcile its columns with the table's schema, refusing before
   anything is written (`ingest.target`, `ingest.schema`).
3. Stream the file in batches of about BATCH_ROWS rows (`ingest.batches`): each batch is written as
   Parquet data files while the table's GX suite validates the very same batch (`ingest.write`,
   `ingest.gate`).
4. Commit all the data files as one snapshot on an audit branch of this run, made from main, with
   the gate's verdict in its summary (`lakehouse.branches.write`, `ingest.verdict`).
5. Gate passed: publish (`lakehouse.branches.publish`): main moves to the audited snapshot only if
   main is still its parent; if another landing moved main first, the same validated data files are
   appended again on the new main and that is published: never an unvalidated row, never the other
   writer's rows lost. Gate failed: main is untouched and the branch becomes `quarantine-<run>`.
A failure before the commit deletes the data files written and leaves no branch and no commit.
The run's lineage (`ingest.datasets`) names the source file and the snapshot written.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ingest import columns, datasets, sources, target, verdict
from ingest import gate as gates
from ingest import schema as schemas
from ingest import write as writes
from ingest.batches import BATCH_ROWS, Rebatcher
from ingest.exceptions import GateFailedError, LandingOutOfMemoryError, PublishError, SourceError
from ingest.result import FAILED, LANDED, NOT_TRIED, SKIPPED, FileOutcome, LandingResult
from ingest.verdict import AUDIT_PREFIX, GATE_DOCS, QUARANTINE_PREFIX
from ingest.write import Advance, Progress
from lakehouse import branches, names
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.exceptions import BranchError
from lakehouse.failpoints import step
from lakehouse.maintenance import remove_uncommitted
from lakehouse.tables import (
    JOB_NAME,
    OWNER,
    RUN_ID,
    SOURCE_PATH,
    SOURCE_SHA256,
    TableName,
    ancestors,
    load_table,
    set_owner,
    summary_properties,
)
from lineage import events as ev
from lineage.run import RunContext
from lineage.run import run as lineage_run
from lineage.transport import Transport

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

    from ingest.gate import Suite
    from ingest.sources import Source

__all__ = [
    "FAILED",
    "LANDED",
    "NOT_TRIED",
    "SKIPPED",
    "FileOutcome",
    "LandingResult",
    "checked",
    "land",
    "landed_snapshot",
    "landing_run",
    "own",
    "already_landed",
    "new_result",
    "publish_branch",
    "quarantine_or_publish",
]

log = logging.getLogger(__name__)

# How recovery finishes a landing or publish whose process died (lineage.recovery).
RESOLVER = "ingest.recovery:resolve"

# Called with the audit branch and its snapshot id once a landing's gate passed, right before it
# is published: a caller may record it, or (tests) move main in between to force the re-apply.
Audited = Callable[[str, int], None]


def landed_snapshot(table: Table, sha256: str) -> int | None:
    """The main-branch snapshot that already holds this source file, if any (from summary properties)."""
    snap = table.current_snapshot()
    for s in ancestors(table, snap.snapshot_id if snap else None):
        if summary_properties(s).get(SOURCE_SHA256) == sha256:
            return s.snapshot_id
    return None


def own(catalog: Catalog, name: TableName, tbl: Table, owner: str | None, run: RunContext) -> Table:
    """Record `owner` (when given) as the table's owner; the landing run's job then answers to the
    table's owner too (the OpenLineage `ownership` job facet). Both engines land through this."""
    if owner is not None:
        tbl = set_owner(catalog, name, owner)
    if tbl.properties.get(OWNER):
        run.job_facets["ownership"] = ev.ownership_facet(run.producer, tbl.properties[OWNER], "job")
    return tbl


def checked(settings: Settings, location: str, table: str, suite_file: str | None, strict: bool, owner: str | None) -> tuple[TableName, Suite | None]:
    """What both engines refuse before reading a byte of the file: a bad table or owner name, a
    pattern (several files: `land_all`), a missing suite under `strict`. Returns the table's name
    and the suite that gates it (None: ungated)."""
    name = TableName.parse(table)
    if owner is not None:
        names.check("owner", owner, "owner")
    if sources.GLOB_CHARS & set(location):
        raise SourceError(f"{location}: a pattern names several files; use land_all (the CLI does) to land each")
    return name, gates.suite_for(settings, name, suite_file, strict)


def new_result(name: TableName, src: Source, suite: Suite | None) -> LandingResult:
    """The result of a landing about to read `src`; landing ungated is a warning in it."""
    result = LandingResult(table=str(name), source=src.uri, sha256=src.sha256, run_id=None, snapshot_id=None, rows=0)
    if suite is None:
        msg = f"no validation suite for {name} (looked for {name}.yaml in the suites folder); landing ungated"
        result.warnings.append(msg)
        log.info(msg)  # callers show result.warnings (the CLI prints them); no second copy on stderr
    return result


def already_landed(catalog: Catalog, name: TableName, result: LandingResult, *, force: bool, owner: str | None, progress: Progress) -> bool:
    """Whether the file is already in main (same sha256, and not `force`): then `result` says so and
    names that snapshot, and only the owner given is recorded."""
    if force or not catalog.table_exists(name.identifier):
        return False
    already = landed_snapshot(load_table(catalog, name), result.sha256)
    if already is None:
        return False
    progress(f"{result.source} (sha256 {result.sha256[:12]}…) is already in {name} at snapshot {already}; nothing to do (force lands it again)")
    result.skipped, result.snapshot_id = True, already
    if owner is not None:
        set_owner(catalog, name, owner)  # nothing to land, but the owner given is still the owner
    return True


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
    on_audited: Audited | None = None,
    rename: Mapping[str, str] | None = None,
    owner: str | None = None,
) -> LandingResult:
    """Land one source file into `namespace.table` through the table's gate. See the module docstring.

    `publish=False` stops after step 4: the audited snapshot stays on branch `result.audit_branch`
    with the gate's verdict in its summary, for a scheduler to decide in separate, visible steps
    (`ingest.staged.publish_audited` or `quarantine_audited`), as the Airflow ingest DAGs do. `on_audited`: see
    `Audited`. `progress` gets one line per step, `advance` rows and the share of the file done.
    `rename`: source column -> table column, for a file whose header names a column otherwise
    (reported as a transformation in the run's column-level lineage, as every cast is).
    `owner`: record this person or team as the table's owner (a table property, emitted as the
    OpenLineage `ownership` facet); None keeps the owner the table has.
    """
    try:
        return _land(
            settings, location, table, suite_file=suite_file, fmt=fmt, force=force, strict=strict, transport=transport,
            progress=progress, advance=advance, batch_rows=batch_rows, data_docs=data_docs, publish=publish,
            on_audited=on_audited, rename=rename, owner=owner,
        )
    except (MemoryError, RuntimeError) as exc:
        # numpy's, pyarrow's and Python's own out-of-memory errors, and a thread that cannot get its
        # stack under a memory limit ("can't start new thread"); the steps below already deleted
        # what they wrote and dropped a table they made, so this is said in one line.
        if isinstance(exc, RuntimeError) and "can't start new thread" not in str(exc):
            raise
        raise LandingOutOfMemoryError(
            f"{location}: ran out of memory landing it into {table} ({str(exc).splitlines()[0] if str(exc) else 'MemoryError'}); "
            "nothing was published: land it with --engine spark (Spark spills to disk) or give the process more memory"
        ) from exc


def _land(
    settings: Settings,
    location: str,
    table: str,
    *,
    suite_file: str | None,
    fmt: str | None,
    force: bool,
    strict: bool,
    transport: Transport | None,
    progress: Progress,
    advance: Advance | None,
    batch_rows: int,
    data_docs: bool,
    publish: bool,
    on_audited: Audited | None,
    rename: Mapping[str, str] | None,
    owner: str | None,
) -> LandingResult:
    import pyarrow as pa

    began = time.perf_counter()
    name, suite = checked(settings, location, table, suite_file, strict, owner)
    src = sources.open_source(location, fmt, settings.catalog.properties)
    result = new_result(name, src, suite)
    how = f" ({src.content.describe()}, read as UTF-8 text)" if src.content.describe() else ""
    progress(f"{src.uri}: {src.fmt}{how}, {src.size:,} bytes, sha256 {src.sha256[:12]}…")

    catalog = load_catalog(settings)
    if already_landed(catalog, name, result, force=force, owner=owner, progress=progress):
        return result

    # Read up to the first rows before the run starts: an unreadable or empty file is refused
    # without a lineage run, a table, or a branch.
    rename = dict(rename or {})
    stream = Rebatcher(columns.renamed(sources.batches(src, batch_rows=min(batch_rows, 256_000), warnings=result.warnings), rename, src.uri), batch_rows)
    first = stream.peek()
    if first is None:
        raise SourceError(f"{src.uri}: no data rows (header only?); nothing to land")
    ignored = schemas.droppable_empty_columns(first.schema)

    source_ds = datasets.source_dataset(settings, src)
    with landing_run(settings, name, src, suite, source_ds, force=force, rename=rename, transport=transport, code=land, publish=publish) as run:
        result.run_id = run.run_id
        prepared = target.prepare(catalog, name, first.schema, src.uri, result.warnings)
        tbl, created = prepared.table, prepared.created
        tbl = own(catalog, name, tbl, owner, run)
        props = {RUN_ID: run.run_id, JOB_NAME: run.job_name, SOURCE_SHA256: src.sha256, SOURCE_PATH: src.uri}
        files: list[DataFile] = []  # filled as they are written, so a failure can delete them
        # Recorded before the first file: if the process dies natively (SIGSEGV under a memory limit,
        # SIGKILL) no `except` runs, and recovery deletes this write's uncommitted files by its uuid.
        write_uuid = uuid.uuid4()
        run.recoverable(RESOLVER, write=str(write_uuid), created=created)
        try:
            written = writes.write_and_validate(prepared, stream, src, suite, ignored, files, progress=progress, advance=advance, write_uuid=write_uuid)
            sources.check_unchanged(src)
            step("ingest.written")
        except BaseException:
            # Every file of this write goes, none being committed: those in `files` and any a write
            # cut short (out of memory, say) never returned. Once, here: the writer does not do it too.
            try:
                remove_uncommitted(tbl, str(write_uuid))
            except Exception:
                log.warning("could not look for this landing's half-written files in %s", tbl.location())
            if created:
                target.drop_if_pristine(catalog, name)
            raise
        result.rows, result.gate, result.data_files, result.bytes_written = written.rows, written.verdict, len(files), written.bytes_written
        # Before the first commit: what recovery needs to describe the snapshot if we die after it.
        run.recoverable(RESOLVER, rows=result.rows, size=result.bytes_written, files=result.data_files, checks=datasets.assertions(result))
        landed = pa.schema([f for f in first.schema if f.name not in ignored])
        column_lineage = columns.lineage_facet(settings, source_ds, landed, prepared.schema, rename)  # the schema the files are in
        result.seconds.update(written.seconds)
        if result.gate is not None:
            props.update(verdict.properties(result.gate))
            if data_docs and written.gate is not None:
                result.data_docs = verdict.write_data_docs(settings, name, run.run_id, written.gate, result.gate, result.warnings)
                if result.data_docs:
                    props[GATE_DOCS] = result.data_docs

        commit_started = time.perf_counter()
        branch = f"{AUDIT_PREFIX}{run.run_id}"
        try:
            audited = branches.write(catalog, name, branch, files, props, schema_id=prepared.schema.schema_id)
        except BaseException:
            writes.delete_files(tbl, files)
            if created:  # the table and its first landing are one unit (a full disk at the commit, too)
                target.drop_if_pristine(catalog, name)
            raise
        progress(f"audited snapshot {audited.snapshot_id} on branch {branch}")
        step("ingest.audited")
        if not publish:
            result.audit_branch = branch
            result.snapshot_id = audited.snapshot_id
            result.seconds["commit"] = time.perf_counter() - commit_started
            run.add_output(datasets.output_dataset(settings, tbl, str(name), audited, result, column_lineage))
            progress(f"gate {'passed' if result.gate is None or result.gate.success else 'FAILED'}; not published (publish=False)")
            result.seconds["total"] = time.perf_counter() - began
            return result
        quarantine_or_publish(
            settings, catalog, run, tbl, branch, audited, result, column_lineage, progress, files=files, properties=props,
            before=None if on_audited is None else lambda: on_audited(branch, audited.snapshot_id),
        )
        result.seconds["commit"] = time.perf_counter() - commit_started
    result.seconds["total"] = time.perf_counter() - began
    return result


@contextmanager
def landing_run(
    settings: Settings,
    name: TableName,
    src: sources.Source,
    suite: gates.Suite | None,
    source_ds: dict[str, Any],
    *,
    force: bool,
    rename: Mapping[str, str],
    transport: Transport | None,
    code: Callable[..., Any],
    publish: bool = True,
    engine: str | None = None,
) -> Iterator[Any]:
    """The lineage run `ingest.NS.TABLE` of one landing on either engine (`engine`: named in its
    parameters when not the default), recoverable by `RESOLVER` from its first step on."""
    parameters: dict[str, Any] = {"table": str(name), "source": src.uri, "suite": suite.name if suite else None, "force": force}
    if engine is not None:
        parameters["engine"] = engine
    if rename:
        parameters["rename"] = dict(rename)
    with lineage_run(f"ingest.{name}", inputs=[source_ds], parameters=parameters, settings=settings, transport=transport, code=code, steps="ingest") as run:
        run.recoverable(RESOLVER, table=str(name), publish=publish)
        yield run


def quarantine_or_publish(
    settings: Settings,
    catalog: Catalog,
    run: RunContext,
    table: Table,
    branch: str,
    audited: Snapshot,
    result: LandingResult,
    column_lineage: dict[str, Any] | None,
    progress: Progress,
    *,
    files: list[DataFile] | None = None,
    properties: dict[str, str] | None = None,
    before: Callable[[], None] | None = None,
) -> None:
    """The last step of a landing on either engine, inside its lineage `run`: the audited snapshot on
    `branch` becomes `quarantine-<run>` when its gate failed (GateFailedError, main untouched), else
    it is published (`publish_branch`); `result` gets the snapshot and the run its output."""
    name = TableName.parse(result.table)
    if result.gate is not None and not result.gate.success:
        quarantine = f"{QUARANTINE_PREFIX}{run.run_id}"
        branches.rename(catalog, name, branch, quarantine)
        run.add_output(datasets.output_dataset(settings, table, str(name), audited, result, column_lineage))
        raise GateFailedError(verdict.failed_message(name, result.source, quarantine, result.gate, result.data_docs), result=result.gate)
    published = publish_branch(catalog, name, branch, progress, files=files, properties=properties, before=before)
    step("ingest.published")
    result.reapplied = published.reapplied
    result.snapshot_id = published.snapshot.snapshot_id
    run.add_output(datasets.output_dataset(settings, table, str(name), published.snapshot, result, column_lineage))
    progress(f"published snapshot {result.snapshot_id} to {name} main ({result.rows:,} rows)")


def publish_branch(
    catalog: Catalog,
    name: TableName,
    branch: str,
    progress: Progress,
    *,
    files: list[DataFile] | None = None,
    properties: dict[str, str] | None = None,
    before: Callable[[], None] | None = None,
) -> branches.Published:
    """`branches.publish`, telling of a moved main; on any failure the audit branch goes (main never saw it).
    `files`: the audited snapshot's data files when the caller has them (else read from it)."""
    try:
        if before is not None:
            before()
        return branches.publish(
            catalog, name, branch, files=files, properties=properties,
            on_reapply=lambda: progress(f"{name} main moved during the landing; applying the validated files again on the new main"),
        )
    except BranchError as exc:
        branches.drop_quietly(catalog, name, branch)
        raise PublishError(f"{exc}; land the file again") from exc
    except BaseException:
        branches.drop_quietly(catalog, name, branch)
        raise
