"""A landing left on its audit branch by `land(publish=False)`, finished in separate steps.

A scheduler (the ingest DAGs, through `ingest.feeds`) lands each file onto `audit-<run>` first,
reads the gate's verdict there (`audit_verdict`), then either publishes the branch
(`publish_audited`: main moves to the audited snapshot, or its validated files are applied again
on a main that moved meanwhile) or keeps a failed landing's rows on `quarantine-<run>`
(`quarantine_audited`); main never sees a refused row. The publish is a lineage run of its own.
"""

from __future__ import annotations

from ingest import columns, datasets, verdict
from ingest.exceptions import PublishError
from ingest.land import RESOLVER, publish_branch
from ingest.result import LandingResult
from ingest.verdict import AUDIT_PREFIX, QUARANTINE_PREFIX, AuditVerdict
from ingest.write import Progress
from lakehouse import branches
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.tables import RUN_ID, SOURCE_PATH, SOURCE_SHA256, TableName, load_table, schema_at, summary_properties
from lineage import events as ev
from lineage.run import run as lineage_run
from lineage.transport import Transport

__all__ = ["audit_verdict", "publish_audited", "quarantine_audited"]


def audit_verdict(settings: Settings, table: str, branch: str) -> AuditVerdict:
    """The gate's verdict on the snapshot at the head of `branch` (left there by land(publish=False))."""
    name = TableName.parse(table)
    return verdict.read(load_table(load_catalog(settings), name), name, branch)


def publish_audited(settings: Settings, table: str, branch: str, *, transport: Transport | None = None, progress: Progress = lambda _msg: None) -> LandingResult:
    """Publish an audited snapshot that passed its gate: main moves to it (or its files are re-applied).

    Refuses a snapshot whose gate failed. The publish is its own lineage run (`publish.NS.TABLE`),
    reading the audited snapshot and writing the published one, which differ only if main moved.
    """
    name = TableName.parse(table)
    catalog = load_catalog(settings)
    tbl = load_table(catalog, name)
    found = verdict.read(tbl, name, branch)
    if found.success is False:
        raise PublishError(f"{found.table} branch {branch}: the gate failed ({found.failures}); quarantine it instead of publishing", parameter="branch")
    audited = branches.head(tbl, branch)
    props = summary_properties(audited)
    files = branches.added_data_files(tbl, audited)
    result = LandingResult(table=str(name), source=props.get(SOURCE_PATH, ""), sha256=props.get(SOURCE_SHA256, ""), run_id=props.get(RUN_ID), snapshot_id=None, rows=found.rows)
    result.data_files, result.bytes_written = len(files), sum(f.file_size_in_bytes for f in files)
    audited_ds = ev.table_dataset(settings, str(name), tbl, audited.snapshot_id, "input")
    with lineage_run(
        f"publish.{name}",
        inputs=[audited_ds],
        parameters={"table": str(name), "branch": branch, "landing_run": result.run_id},
        settings=settings,
        transport=transport,
        code=publish_audited,
        steps="publish",
    ) as run:
        # The published snapshot carries the landing's run id, not this one's; no assertions, as below.
        run.recoverable(
            RESOLVER, table=str(name), publish=True, landing_run=result.run_id,
            rows=result.rows, size=result.bytes_written, files=result.data_files, checks=None,
        )
        published = publish_branch(catalog, name, branch, progress, files=files)
        result.reapplied = published.reapplied
        result.snapshot_id = published.snapshot.snapshot_id
        copied = columns.identity_facet(settings, audited_ds, schema_at(tbl, audited))
        run.add_output(datasets.output_dataset(settings, tbl, str(name), published.snapshot, result, copied))
    progress(f"published snapshot {result.snapshot_id} to {name} main ({result.rows:,} rows)")
    return result


def quarantine_audited(settings: Settings, table: str, branch: str) -> str:
    """Keep a failed landing's rows on `quarantine-<run>` (main untouched); returns the new branch name."""
    name = TableName.parse(table)
    quarantine = QUARANTINE_PREFIX + branch.removeprefix(AUDIT_PREFIX)
    branches.rename(load_catalog(settings), name, branch, quarantine)
    return quarantine
