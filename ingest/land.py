"""Landing a source into Iceberg by write-audit-publish.

1. Write the rows to an audit branch of their own, made from main's current snapshot.
2. Validate exactly the rows that branch added (read back from the data files it wrote).
3. Publish: move main to the audited snapshot, but only if main is still the branch's parent.
   If another landing moved main first, redo the landing on the new main and validate again:
   never publish an unvalidated snapshot, never drop the other writer's rows.
On a failed gate, main is untouched and the audit branch stays as quarantine.
"""

from __future__ import annotations

import logging
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ingest import gate as gates
from ingest import sources
from ingest.exceptions import GateFailedError, SchemaMismatchError
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.tables import JOB_NAME, RUN_ID, SOURCE_PATH, SOURCE_SHA256, TableName, ancestors, ensure_table, summary_properties, with_commit_retry
from lineage import events as ev
from lineage.run import run as lineage_run
from lineage.transport import Transport

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table

log = logging.getLogger(__name__)

AUDIT_PREFIX = "audit-"
QUARANTINE_PREFIX = "quarantine-"


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
            else {"suite": self.gate.suite, "success": self.gate.success, "expectations": len(self.gate.outcomes)},
            "warnings": self.warnings,
        }


def landed_snapshot(table: Table, sha256: str) -> int | None:
    """The main-branch snapshot that already holds this source file, if any (from summary properties)."""
    snap = table.current_snapshot()
    for s in ancestors(table, snap.snapshot_id if snap else None):
        if summary_properties(s).get(SOURCE_SHA256) == sha256:
            return s.snapshot_id
    return None


def _prepare_table(settings: Settings, name: TableName, data: pa.Table) -> Table:
    """Load or create the table; give a new table an empty first snapshot so audit branches have a parent."""
    catalog = load_catalog(settings)
    table = ensure_table(catalog, name, data.schema)

    def init() -> None:
        t = catalog.load_table(name.identifier)
        if t.current_snapshot() is None:
            # Iceberg refuses branch writes to a table with no snapshot; main starts empty and valid.
            t.append(data.slice(0, 0), snapshot_properties={JOB_NAME: "tidemark.ingest.create"})

    with_commit_retry(init, f"creating {name}")
    table = catalog.load_table(name.identifier)
    _evolve_schema(table, name, data.schema)
    return catalog.load_table(name.identifier)


def _evolve_schema(table: Table, name: TableName, schema: pa.Schema) -> None:
    """New columns are added (nullable); a column whose type cannot be widened is refused."""
    current = table.schema().as_arrow()
    if set(schema.names) <= set(current.names) and all(
        current.field(n).type == schema.field(n).type for n in schema.names
    ):
        return
    try:
        with table.update_schema() as update:
            update.union_by_name(schema)
    except Exception as exc:
        changed = [n for n in schema.names if n in current.names and current.field(n).type != schema.field(n).type]
        detail = ", ".join(f"{n} ({current.field(n).type} -> {schema.field(n).type})" for n in changed) or str(exc)
        raise SchemaMismatchError(
            f"cannot land into {name}: column types differ and cannot be widened: {detail}; "
            "fix the source or land into a new table"
        ) from exc


def _rows_added(table: Table, snapshot_id: int, parent_id: int | None) -> pa.Table:
    """The rows a snapshot added on top of its parent, read back from the data files it wrote."""
    import pyarrow as pa

    before = {t.file.file_path for t in table.scan(snapshot_id=parent_id).plan_files()} if parent_id else set()
    added = [t for t in table.scan(snapshot_id=snapshot_id).plan_files() if t.file.file_path not in before]
    if not added:
        return table.schema().as_arrow().empty_table()
    from pyiceberg.io.pyarrow import ArrowScan

    scan = ArrowScan(table.metadata, table.io, table.schema(), row_filter=_always_true(), case_sensitive=True)
    return pa.concat_tables([scan.to_table([t]) for t in added])


def _always_true() -> Any:
    from pyiceberg.expressions import AlwaysTrue

    return AlwaysTrue()


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
    progress: Callable[[str], None] = lambda _msg: None,
) -> LandingResult:
    """Land one source file into `namespace.table` through the table's gate. See the module docstring."""
    name = TableName.parse(table)
    src = sources.open_source(location, fmt)
    suite_path = Path(suite_file) if suite_file else gates.suite_path(settings, name)
    suite = gates.load_suite(suite_path) if suite_path else None
    warnings: list[str] = []
    if suite is None:
        msg = f"no validation suite for {name} (looked for {name}.yaml in the suites folder); landing ungated"
        if strict:
            from ingest.exceptions import SuiteError

            raise SuiteError(f"{msg.split(';')[0]}; add one or pass --suite FILE (refused because of --strict)")
        warnings.append(msg)
        log.warning(msg)
    progress(f"reading {src.path} ({src.fmt}, {src.size:,} bytes, sha256 {src.sha256[:12]}…)")
    data = sources.read(src)
    result = LandingResult(table=str(name), source=str(src.path), sha256=src.sha256, run_id=None, snapshot_id=None, rows=data.num_rows, warnings=warnings)

    catalog = load_catalog(settings)
    if not force and catalog.table_exists(name.identifier):
        already = landed_snapshot(catalog.load_table(name.identifier), src.sha256)
        if already is not None:
            progress(f"{src.path} (sha256 {src.sha256[:12]}…) is already in {name} at snapshot {already}; nothing to do (--force lands it again)")
            result.skipped = True
            result.snapshot_id = already
            return result

    producer = settings.lineage.producer
    source_ds = ev.file_dataset(producer=producer, path=str(src.path), sha256=src.sha256, size=src.size, fmt=src.fmt)
    with lineage_run(
        f"ingest.{name}",
        inputs=[source_ds],
        parameters={"table": str(name), "source": str(src.path), "suite": suite.name if suite else None, "force": force},
        settings=settings,
        transport=transport,
        code=land,
    ) as run:
        result.run_id = run.run_id
        tbl = _prepare_table(settings, name, data)
        props = {RUN_ID: run.run_id, JOB_NAME: run.job_name, SOURCE_SHA256: src.sha256, SOURCE_PATH: str(src.path)}
        try:
            audited, output = _write_audit_publish(settings, catalog, name, data, suite, run, props, result, progress)
        except GateFailedError:
            raise
        except BaseException:
            # Leave no stray audit branch behind: the landing failed before its gate could judge it.
            _drop_branch(catalog, name, f"{AUDIT_PREFIX}{run.run_id}")
            raise
        result.snapshot_id = audited.snapshot_id
        run.add_output(output)
        progress(f"published snapshot {audited.snapshot_id} to {name} main")
    return result


def _write_audit_publish(
    settings: Settings,
    catalog: Any,
    name: TableName,
    data: pa.Table,
    suite: gates.Suite | None,
    run: Any,
    props: dict[str, str],
    result: LandingResult,
    progress: Callable[[str], None],
) -> tuple[Any, dict[str, Any]]:
    """Write to the audit branch, validate, publish; again from the top whenever main moved meanwhile."""
    branch = f"{AUDIT_PREFIX}{run.run_id}"
    while True:
        tbl = catalog.load_table(name.identifier)
        base = tbl.current_snapshot()
        assert base is not None  # _prepare_table made one
        with tbl.manage_snapshots() as ms:
            ms.create_branch(base.snapshot_id, branch)
        tbl = catalog.load_table(name.identifier)
        progress(f"writing {data.num_rows:,} rows to {name} branch {branch}")
        tbl.append(_conform(data, tbl), branch=branch, snapshot_properties=props)
        tbl = catalog.load_table(name.identifier)
        audited = tbl.snapshot_by_name(branch)
        assert audited is not None
        gate_result = None
        if suite is not None:
            progress(f"validating the rows written with suite {suite.name} ({len(suite.expectations)} expectations)")
            gate_result = gates.validate(suite, _rows_added(tbl, audited.snapshot_id, base.snapshot_id))
            result.gate = gate_result
        output = _output_dataset(settings, tbl, str(name), audited, data.num_rows, gate_result)
        if gate_result is not None and not gate_result.success:
            quarantine = f"{QUARANTINE_PREFIX}{run.run_id}"
            with tbl.manage_snapshots() as ms:
                ms.create_branch(audited.snapshot_id, quarantine)
                ms.remove_branch(branch)
            run.add_output(output)
            raise GateFailedError(_gate_message(name, quarantine, gate_result))
        if _publish(catalog, name, branch, base.snapshot_id, audited.snapshot_id):
            return audited, output
        # main moved under us: drop this attempt and land again on the new main.
        progress(f"{name} main moved during the landing; landing again on the new main")
        _drop_branch(catalog, name, branch)


def _conform(data: pa.Table, table: Table) -> pa.Table:
    target = table.schema().as_arrow()
    import pyarrow as pa

    columns = []
    for f in target:
        if f.name in data.column_names:
            columns.append(data.column(f.name).cast(f.type))
        else:
            columns.append(pa.nulls(data.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=target)


def _publish(catalog: Any, name: TableName, branch: str, base_id: int, audited_id: int) -> bool:
    """Move main to the audited snapshot if main is still its parent; False if main moved."""
    from pyiceberg.exceptions import CommitFailedException

    for _ in range(20):
        tbl = catalog.load_table(name.identifier)
        current = tbl.current_snapshot()
        if current is None or current.snapshot_id != base_id:
            return False
        try:
            # The commit asserts main is still `base_id`, so a concurrent publish makes this fail, not overwrite.
            with tbl.manage_snapshots() as ms:
                ms.set_current_snapshot(snapshot_id=audited_id)
                ms.remove_branch(branch)
            return True
        except CommitFailedException:
            continue
    return False


def _drop_branch(catalog: Any, name: TableName, branch: str) -> None:
    def attempt() -> None:
        tbl = catalog.load_table(name.identifier)
        if branch in tbl.metadata.refs:
            with tbl.manage_snapshots() as ms:
                ms.remove_branch(branch)

    with_commit_retry(attempt, f"removing branch {branch} of {name}")


def _output_dataset(
    settings: Settings, table: Table, name: str, snapshot: Any, rows: int, gate_result: gates.GateResult | None
) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if gate_result is not None:
        extra["dataQualityAssertions"] = ev.facet(
            settings.lineage.producer,
            f"{ev.FACETS}/1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet",
            assertions=[
                {"assertion": o.expectation, "success": o.success, **({"column": o.column} if o.column else {})}
                for o in gate_result.outcomes
            ],
        )
    return ev.iceberg_dataset(
        producer=settings.lineage.producer,
        catalog_name=settings.catalog.name,
        catalog_type=settings.catalog.properties.get("type", "sql"),
        table=name,
        location=table.location(),
        snapshot_id=snapshot.snapshot_id,
        direction="output",
        sequence_number=snapshot.sequence_number,
        operation=str(snapshot.summary.operation.value) if snapshot.summary else None,
        row_count=rows,
        extra_facets=extra,
    )


def _gate_message(name: TableName, quarantine: str, result: gates.GateResult) -> str:
    parts = []
    for o in result.failures():
        where = f" on {o.column}" if o.column else ""
        count = f" ({o.unexpected_count} of {o.element_count} rows)" if o.unexpected_count is not None else ""
        sample = f", e.g. {o.sample[:3]}" if o.sample else ""
        parts.append(f"{o.expectation}{where}{count}{sample}")
    return (
        f"validation gate {result.suite} failed for {name}: {'; '.join(parts)}. "
        f"main is unchanged; the rows are kept on branch {quarantine}"
    )
