"""Writing a landing's rows as data files of its table while the gate validates the very same rows.

Each batch is conformed to the table's schema, written as Parquet data files in a worker thread
(pyiceberg's writer, through lakehouse.pyiceberg_compat: the files are committed later, on an
audit branch) and checked by the gate here. Writing Parquet releases the GIL, so on two cores the
write and GX's pandas work overlap. At most one write is in flight, which bounds memory to about
two batches. Nothing is committed here; on a failure the caller deletes every file of the write by
its uuid (`remove_uncommitted`), once the write in flight has ended (waited for below).
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ingest import batches as rebatch
from ingest import gate as gates
from ingest import schema as schemas
from ingest import sources
from ingest.exceptions import PublishError, SourceError
from lakehouse import pyiceberg_compat as compat

if TYPE_CHECKING:
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table

    from ingest.target import Target

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
Advance = Callable[[int, "float | None"], None]  # rows so far, fraction of the file done (None: unknown)


@dataclass
class Written:
    """What a landing wrote, and the gate's verdict over the same rows."""

    rows: int = 0
    bytes_written: int = 0
    gate: gates.StreamingGate | None = None  # for its Data Docs
    verdict: gates.GateResult | None = None  # None: no suite, ungated
    seconds: dict[str, float] = field(default_factory=dict)  # gate, read_write_validate


def write_and_validate(
    target: Target,
    stream: rebatch.Rebatcher,
    src: sources.Source,
    suite: gates.Suite | None,
    ignored: list[str],
    files: list[DataFile],
    *,
    progress: Progress,
    advance: Advance | None = None,
    write_uuid: uuid.UUID,
) -> Written:
    """Write every batch of `stream` as data files of the target table, in the target's schema
    (appended to `files` as they are written) while `suite` checks the same batch. `ignored`:
    all-empty columns left out. `write_uuid`: in every file's name; the caller records it first (so
    recovery finds the files if the process dies) and, on any failure, deletes every file holding it
    (`maintenance.remove_uncommitted`: those in `files` and any a write cut short never returned)."""
    started = time.perf_counter()
    out = Written(gate=gates.StreamingGate(suite) if suite is not None else None)
    if suite is not None:
        progress(f"gate: suite {suite.name} ({len(suite.expectations)} expectations) on every batch written")
    table, table_schema, metadata = target.table, target.schema, target.metadata
    counter = itertools.count(0)
    pending: Future[list[DataFile]] | None = None
    total = rebatch.total_rows(src)
    checked = False
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidemark-write") as pool:
        try:
            for chunk in stream:
                if ignored:
                    chunk = chunk.drop_columns([c for c in ignored if c in chunk.column_names])
                data = schemas.conform(chunk, table_schema, src.uri)
                if not checked:
                    compat.check_schema_compatible(table_schema, data.schema, metadata.format_version)
                    checked = True
                if pending is not None:
                    files.extend(pending.result())
                # A generator: its files are written in the pool thread, as list() drains it.
                pending = pool.submit(list, compat.write_data_files(metadata, data, table.io, write_uuid, counter))
                if out.gate is not None:
                    out.gate.check(data)
                out.rows += data.num_rows
                if advance is not None:
                    advance(out.rows, rebatch.fraction_done(stream, src, out.rows, total))
            if pending is not None:
                files.extend(pending.result())
                pending = None
            if advance is not None:
                advance(out.rows, 1.0)
        except BaseException:
            if pending is not None:
                # Wait for the write in flight, so the caller's removal by write uuid finds its file.
                try:
                    pending.result()
                except BaseException:
                    pass
            raise
    if out.rows == 0:
        raise SourceError(f"{src.uri}: no data rows; nothing to land")
    written = sum(f.record_count for f in files)
    if written != out.rows:
        raise PublishError(f"{src.uri}: wrote {written} rows but read {out.rows}; nothing was published, land it again")
    out.bytes_written = sum(f.file_size_in_bytes for f in files)
    if out.gate is not None:
        out.verdict = out.gate.finish()
        out.seconds["gate"] = out.gate.seconds
    out.seconds["read_write_validate"] = time.perf_counter() - started
    return out


def delete_files(table: Table, files: list[DataFile]) -> None:
    """Delete data files that were written but will not be committed (best effort)."""
    for f in files:
        try:
            table.io.delete(f.file_path)
        except Exception:  # an orphan file is harmless: orphan-file cleanup removes it
            log.warning("could not delete uncommitted data file %s", f.file_path)
