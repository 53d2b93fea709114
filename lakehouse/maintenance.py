"""Table maintenance: orphan-file removal, small-file rewrite, the policy that runs them, and the
catalog-wide sweeps a scheduler runs (snapshot expiry and orphan removal in every table).

Every commit adds a snapshot, a manifest and a metadata file; pyiceberg copies the whole table
metadata several times per commit, so commit time grows with the snapshots kept. Expiring
snapshots and rewriting small files keeps commits flat. Expiry deletes no files and a commit that
lost a race leaves the files it wrote: `remove_orphan_files` is what finally reclaims them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from lakehouse.exceptions import BrokenTableError, TidemarkError
from lakehouse.tables import JOB_NAME, expire_snapshots, with_commit_retry

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table

    from lakehouse.tables import TableName

log = logging.getLogger(__name__)

MAINTENANCE_JOB = "lakehouse.maintenance"
# Iceberg's own default: a file younger than this may belong to a commit still in flight.
DEFAULT_GRACE = timedelta(days=3)
# Table properties for a table that takes many small commits. pyiceberg copies the whole metadata,
# metadata log included, many times per commit, and the log holds 100 entries by default. Its
# rebase-retry waits 100, 200, 400, 800 ms by default, several commits long: writers sharing a table
# sat idle rather than retrying.
FREQUENT_COMMITS = {"write.metadata.previous-versions-max": "10", "commit.retry.min-wait-ms": "10"}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_age(text: str, *, parameter: str = "older_than") -> timedelta:
    """`90s`, `30m`, `6h`, `3d` -> a timedelta (for `remove_orphan_files(older_than=...)`); an
    error names `parameter`."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise TidemarkError(
            f"{parameter} {text!r} is not a duration; use a number and a unit, e.g. 90s, 30m, 6h or 3d", parameter=parameter
        )
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


# -- orphan files -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrphanFile:
    location: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class OrphanReport:
    table: str
    location: str
    cutoff: datetime
    scanned: int
    referenced: int
    orphans: list[OrphanFile] = field(default_factory=list)
    # Files not referenced but younger than the cutoff: kept, a writer may be about to commit them.
    too_young: int = 0
    deleted: bool = False

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.orphans)

    def to_json(self) -> dict[str, object]:
        return {
            "table": self.table,
            "location": self.location,
            "cutoff": self.cutoff.isoformat(),
            "scanned": self.scanned,
            "referenced": self.referenced,
            "orphans": [f.location for f in self.orphans],
            "orphan_bytes": self.bytes,
            "too_young": self.too_young,
            "deleted": self.deleted,
        }


def _key(location: str) -> str:
    """A location without its scheme, as a file system listing names it (file:///a/b -> /a/b, s3://b/k -> b/k)."""
    parsed = urlparse(location)
    return f"{parsed.netloc}{parsed.path}" if parsed.scheme else location


def referenced_files(table: Table) -> set[str]:
    """Every file some part of the table's metadata still points to: the current and logged metadata
    files, statistics, and per snapshot (all branches and tags) its manifest list, manifests and
    data/delete files, including entries marked deleted, which older snapshots still read."""
    io = table.io
    meta = table.metadata
    refs = {table.metadata_location, *(entry.metadata_file for entry in meta.metadata_log)}
    refs.update(s.statistics_path for s in meta.statistics)
    refs.update(s.statistics_path for s in meta.partition_statistics)
    seen_manifests: set[str] = set()
    for snapshot in meta.snapshots:
        refs.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(io):
            # Snapshots share most manifests: read each once, or this is quadratic in snapshots.
            if manifest.manifest_path in seen_manifests:
                continue
            seen_manifests.add(manifest.manifest_path)
            refs.add(manifest.manifest_path)
            refs.update(e.data_file.file_path for e in manifest.fetch_manifest_entry(io, discard_deleted=False))
    return {_key(r) for r in refs}


def _list_files(table: Table) -> Iterator[tuple[str, int, datetime]]:
    """(key, size, modified) of every file under the table location."""
    from pyarrow.fs import FileSelector, FileType
    from pyiceberg.io.pyarrow import PyArrowFileIO

    io = table.io if isinstance(table.io, PyArrowFileIO) else PyArrowFileIO(table.io.properties)
    scheme, netloc, path = PyArrowFileIO.parse_location(table.location())
    fs = io.fs_by_scheme(scheme, netloc)
    for info in fs.get_file_info(FileSelector(path.rstrip("/"), recursive=True, allow_not_found=True)):
        if info.type == FileType.File and info.mtime is not None:
            mtime = info.mtime if info.mtime.tzinfo else info.mtime.replace(tzinfo=timezone.utc)
            yield info.path, int(info.size or 0), mtime


def remove_uncommitted(table: Table, marker: str, *, keep: Collection[str] = ()) -> int:
    """Delete the files under the table's location whose name holds `marker` (a write's uuid), for a
    writer that failed before committing any of them: those its own failure left half-written too,
    which it cannot name. `keep`: keys (`referenced_files`) never deleted, for a writer that may
    have committed some. Returns how many went; a file that cannot be deleted is left (an orphan)."""
    from pyiceberg.io.pyarrow import PyArrowFileIO

    if not marker:
        return 0
    io = table.io if isinstance(table.io, PyArrowFileIO) else PyArrowFileIO(table.io.properties)
    scheme, netloc, _ = PyArrowFileIO.parse_location(table.location())
    fs = io.fs_by_scheme(scheme, netloc)
    removed = 0
    for path, _size, _mtime in _list_files(table):
        if marker in path.rpartition("/")[2] and path not in keep:
            try:
                fs.delete_file(path)
                removed += 1
            except OSError:
                log.warning("could not delete uncommitted file %s", path)
    return removed


def remove_orphan_files(table: Table, older_than: timedelta = DEFAULT_GRACE, dry_run: bool = False) -> OrphanReport:
    """Delete the files under the table's location that no snapshot, manifest or metadata file
    references and that were last modified more than `older_than` ago.

    The grace period protects commits in flight: a writer writes its files before it commits them.
    The listing is taken before the metadata is re-read, so a file committed meanwhile counts as
    referenced. `dry_run` reports what would be deleted and deletes nothing. Refused
    (CatalogIdentityError) when the table's catalog and its warehouse do not belong together.
    """
    from lakehouse.identity import verify

    # Never against a catalog that lost or never had this warehouse: its "orphans" are another's tables.
    verify(table.catalog)
    cutoff = datetime.now(timezone.utc) - older_than
    listed = list(_list_files(table))
    table = table.refresh()
    referenced = referenced_files(table)
    scheme = urlparse(table.location()).scheme
    orphans: list[OrphanFile] = []
    young = 0
    for key, size, modified in listed:
        if key in referenced:
            continue
        if modified >= cutoff:
            young += 1
            continue
        orphans.append(OrphanFile(f"{scheme}://{key}" if scheme else key, size, modified))
    if not dry_run:
        for orphan in orphans:
            table.io.delete(orphan.location)
    return OrphanReport(
        table=".".join(table.name()), location=table.location(), cutoff=cutoff, scanned=len(listed),
        referenced=len(listed) - len(orphans) - young, orphans=orphans, too_young=young, deleted=not dry_run,
    )


# -- catalog-wide sweeps ----------------------------------------------------------------------------


def _every_table(catalog: Catalog, broken: list[str]) -> Iterator[Table]:
    """Every table of the catalog, loaded; a broken one is logged, its name added to `broken`, and skipped."""
    for ns in catalog.list_namespaces():
        for ident in catalog.list_tables(ns):
            try:
                yield catalog.load_table(ident)
            except BrokenTableError as exc:
                log.warning("%s", exc)
                broken.append(exc.table)


def expire_all_snapshots(catalog: Catalog, older_than: timedelta) -> dict[str, int]:
    """Expire the snapshots older than `older_than` in every table (tagged snapshots and branch
    heads stay); per table, how many were expired. A broken table is skipped and, once the others
    are done, the sweep fails naming it."""
    cutoff = int((time.time() - older_than.total_seconds()) * 1000)
    report: dict[str, int] = {}
    broken: list[str] = []
    for table in _every_table(catalog, broken):
        name, ident = ".".join(table.name()), table.name()
        report[name] = with_commit_retry(lambda: expire_snapshots(catalog.load_table(ident), cutoff), f"expiring snapshots of {name}")
    _fail_if_broken(broken, f"expired snapshots in {len(report)} table(s)")
    return report


def remove_all_orphan_files(catalog: Catalog, older_than: timedelta = DEFAULT_GRACE) -> dict[str, Any]:
    """`remove_orphan_files` under every table's location: files removed, their bytes, and per table
    (only those that had any) how many. A broken table is skipped (never cleaned: its files are not
    known) and, once the others are done, the sweep fails naming it."""
    removed, size, by_table = 0, 0, {}
    broken: list[str] = []
    for table in _every_table(catalog, broken):
        report = remove_orphan_files(table, older_than=older_than)
        removed, size = removed + len(report.orphans), size + report.bytes
        if report.orphans:
            by_table[report.table] = len(report.orphans)
            log.info("%s: removed %d orphan file(s), %d bytes", report.table, len(report.orphans), report.bytes)
    _fail_if_broken(broken, f"removed {removed} orphan file(s) ({size} bytes) in the healthy tables")
    return {"removed": removed, "bytes": size, "by_table": by_table}


def _fail_if_broken(broken: list[str], done: str) -> None:
    """After a sweep did every healthy table: fail it, naming the broken ones, so a scheduler shows
    the fault instead of a green run (each one's file and fix were logged as it was skipped)."""
    if broken:
        raise BrokenTableError(
            f"{done}; skipped {len(broken)} broken table(s): {', '.join(broken)} (their files and fixes are logged above)",
            table=broken[0], location="",
        )


# -- small files ------------------------------------------------------------------------------------


def _small_file_groups(table: Table, small_bytes: int, min_files: int) -> Iterable[list[DataFile]]:
    """The current snapshot's small data files, grouped by partition, where a group has enough to merge."""
    groups: dict[tuple[int, str], list[DataFile]] = {}
    for task in table.scan().plan_files():
        if task.delete_files or task.file.file_size_in_bytes >= small_bytes:
            continue  # files with row deletes are left to a rewrite that applies them
        groups.setdefault((task.file.spec_id, repr(task.file.partition)), []).append(task.file)
    return [files for files in groups.values() if len(files) >= min_files]


def rewrite_small_files(table: Table, min_files: int = 8, small_bytes: int = 32 << 20) -> int:
    """Merge each partition's small data files into as few files as the write settings make.

    The commit deletes exactly the files it read and adds the merged ones, with no row filter, so
    the rows appended meanwhile stay; a commit that lost a race is tried again on a fresh table, a
    few times, and otherwise left for the next round. Returns how many groups were rewritten.
    """
    done = 0
    for files in _small_file_groups(table, small_bytes, min_files):
        paths = {f.file_path for f in files}

        def attempt(paths: set[str] = paths) -> None:
            from pyiceberg.exceptions import CommitFailedException

            from lakehouse.pyiceberg_compat import read_data_files, write_data_files

            t = table.refresh()
            current = [task.file for task in t.scan().plan_files() if task.file.file_path in paths]
            if len(current) != len(paths):
                raise CommitFailedException("another rewrite replaced some of these files")
            merged = read_data_files(t, current)
            # pyiceberg's serializable check fails a rebase over any append that landed meanwhile
            # (ValidationException): with_commit_retry then starts over from the new main.
            with t.transaction() as tx:
                with tx.update_snapshot(snapshot_properties={JOB_NAME: MAINTENANCE_JOB}).overwrite() as rewrite:
                    for f in current:
                        rewrite.delete_data_file(f)
                    for f in write_data_files(tx.table_metadata, merged, t.io, rewrite.commit_uuid):
                        rewrite.append_data_file(f)

        try:
            with_commit_retry(attempt, f"rewriting small files of {'.'.join(table.name())}", attempts=4)
            done += 1
        except TidemarkError:
            pass  # another rewrite got these files first; what is left waits for the next round
    return done


# -- the policy -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaintenancePolicy:
    """When a writer maintains the table it commits to, and how much history it keeps."""

    every_commits: int = 10
    # Expire snapshots older than this, but keep the newest `keep_last` whatever their age.
    keep_snapshots_s: float = 3600.0
    keep_last: int = 3
    min_files: int = 8
    small_bytes: int = 32 << 20


@dataclass
class MaintenanceReport:
    rewritten_groups: int = 0
    expired_snapshots: int = 0
    rounds: int = 0
    seconds: float = 0.0


def maintain(table: Table, policy: MaintenancePolicy, now_ms: int | None = None) -> MaintenanceReport:
    """One round: rewrite small files, then expire snapshots (the rewrite's old files go with them)."""
    report = MaintenanceReport(rewritten_groups=rewrite_small_files(table, policy.min_files, policy.small_bytes))
    now = int(time.time() * 1000) if now_ms is None else now_ms
    cutoff_ms = now - int(policy.keep_snapshots_s * 1000)
    try:
        # An expiry lost to a concurrent commit is recomputed on the new metadata.
        report.expired_snapshots = with_commit_retry(
            lambda: expire_snapshots(table.refresh(), cutoff_ms, keep_last=policy.keep_last),
            f"expiring snapshots of {'.'.join(table.name())}", attempts=4,
        )
    except TidemarkError as exc:  # housekeeping: what is left waits for the next round
        log.info("%s", exc)
    return report


@contextmanager
def commit_turn(catalog: Catalog, name: TableName) -> Iterator[None]:
    """Wait for this table's turn to commit, on a PostgreSQL catalog; elsewhere, no wait.

    Writers that race for one table all do the work of a commit and all but one throw it away
    (and retry on a fresh table). A session advisory lock keyed by catalog and table makes them
    queue instead; PostgreSQL releases it if the holder's connection dies.
    """
    import hashlib

    engine = getattr(catalog, "engine", None)
    if engine is None or engine.dialect.name != "postgresql":
        yield
        return
    import sqlalchemy

    digest = hashlib.sha256(f"{catalog.name}.{name}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()


class MaintainedWriter:
    """Appends to one table and runs the maintenance policy every `policy.every_commits` commits.

    It keeps the table it committed last (pyiceberg updates it in place), so a commit costs no
    extra catalog round-trip and metadata read; only after a conflict does it load the table again.
    """

    def __init__(self, catalog: Catalog, name: TableName, policy: MaintenancePolicy | None, take_turns: bool = False) -> None:
        self.catalog = catalog
        self.name = name
        self.policy = policy
        # With other writers on the same table: queue for commits (`commit_turn`) instead of racing.
        self.take_turns = take_turns
        self.commits = 0
        self.maintenance = MaintenanceReport()
        self._table: Table | None = None
        # Seconds the last append took to write and commit, retries included, maintenance not.
        self.last_commit_s = 0.0
        # ...and of this process's CPU: on a shared machine, the part that is not waiting for a core.
        self.last_commit_cpu_s = 0.0

    def append(self, data: pa.Table, properties: dict[str, str] | None = None) -> None:
        """Append and commit (with retries); maintenance, when due, runs after the commit."""
        from lakehouse.tables import load_table, transaction

        def attempt() -> None:
            with commit_turn(self.catalog, self.name) if self.take_turns else nullcontext():
                # In turn, the kept table is stale whenever another writer committed in between.
                table = (self._table if not self.take_turns else None) or load_table(self.catalog, self.name)
                self._table = None  # if this attempt fails, the next one loads the table afresh
                # Our transaction copies the metadata once per staged change, not on every read.
                with transaction(table) as tx:
                    tx.append(data, snapshot_properties=properties or {})
                self._table = table

        started, cpu = time.perf_counter(), time.process_time()
        with_commit_retry(attempt, f"appending to {self.name}")
        self.last_commit_s = time.perf_counter() - started
        self.last_commit_cpu_s = time.process_time() - cpu
        self.commits += 1
        if self.policy and self.commits % self.policy.every_commits == 0:
            self.run_maintenance()

    def run_maintenance(self) -> MaintenanceReport:
        from lakehouse.tables import load_table

        if self.policy is None:
            raise TidemarkError(f"no maintenance policy set for the writer of {self.name}")
        started = time.perf_counter()
        with commit_turn(self.catalog, self.name) if self.take_turns else nullcontext():
            r = maintain(load_table(self.catalog, self.name), self.policy)
        self._table = None  # maintenance committed: the kept table is stale
        self.maintenance.rewritten_groups += r.rewritten_groups
        self.maintenance.expired_snapshots += r.expired_snapshots
        self.maintenance.seconds += time.perf_counter() - started
        self.maintenance.rounds += 1
        return r
