"""Reproduce a registered version: its recorded snapshots by time travel, its code, its parameters.

`retrain(settings, "wine@production")` reads each input exactly at the recorded snapshot (whatever
the table has received since: new rows, a new schema, compacted files), checks the rows against
the recorded row count and content fingerprint, runs the recorded entry point with the recorded
parameters, and reports what is identical and what is not: data, code, environment, every metric,
the artifact's sha256. `as_of` instead reads the snapshots that were main's at that time.

The retrain is a lineage run of its own (`retrain.<job>`), reading the same snapshots and naming
the run it reproduces in its `tidemark_reproduces` run facet.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lakehouse import times
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.exceptions import TableNotFoundError
from lakehouse.tables import TableName, load_table
from lineage import events as ev
from lineage.code import compare_code, compare_environment, environment
from lineage.run import run as lineage_run
from lineage.transport import Transport
from models import artifacts, pinning
from models import inputs as inputs_mod
from models.exceptions import ReproduceError, SnapshotExpiredError, TableDroppedError, UnknownJobError
from models.jobs import load_entry_point
from models.registry import ModelVersion, Registry
from models.train import recorded_identity

if TYPE_CHECKING:
    from pyiceberg.table import Table


@dataclass
class InputCheck:
    table: str
    recorded_snapshot_id: int | None
    snapshot_id: int
    recorded_rows: int | None
    rows: int
    recorded_fingerprint: str | None
    fingerprint: str

    @property
    def identical(self) -> bool:
        # No recorded fingerprint (a version registered before fingerprints existed) proves nothing.
        return (
            self.recorded_fingerprint is not None
            and self.rows == self.recorded_rows
            and self.fingerprint == self.recorded_fingerprint
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "identical": self.identical}


@dataclass
class RetrainReport:
    model: str
    version: int
    run_id: str
    reproduces_run_id: str
    entry_point: str
    as_of: str | None
    inputs: list[InputCheck]
    code_identical: bool
    code_differences: list[str]
    environment_identical: bool
    environment_differences: list[str]
    metrics: dict[str, dict[str, float | None]]
    old_sha256: str
    new_sha256: str
    artifact_uri: str
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def data_identical(self) -> bool:
        return all(i.identical for i in self.inputs)

    @property
    def metrics_identical(self) -> bool:
        return all(m["old"] == m["new"] for m in self.metrics.values())

    @property
    def artifact_identical(self) -> bool:
        return self.old_sha256 == self.new_sha256

    @property
    def identical(self) -> bool:
        return (
            self.data_identical
            and self.code_identical
            and self.environment_identical
            and self.metrics_identical
            and self.artifact_identical
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "model": self.model,
            "version": self.version,
            "run_id": self.run_id,
            "reproduces_run_id": self.reproduces_run_id,
            "entry_point": self.entry_point,
            "as_of": self.as_of,
            "parameters": self.parameters,
            "data": {"identical": self.data_identical, "inputs": [i.to_json() for i in self.inputs]},
            "code": {"identical": self.code_identical, "differences": self.code_differences},
            "environment": {"identical": self.environment_identical, "differences": self.environment_differences},
            "metrics": {"identical": self.metrics_identical, "values": self.metrics},
            "artifact": {
                "identical": self.artifact_identical,
                "old_sha256": self.old_sha256,
                "new_sha256": self.new_sha256,
                "uri": self.artifact_uri,
            },
        }


def snapshot_at(table: Table, name: str, when: datetime) -> int:
    """The snapshot that was main's current at `when`, from the table's snapshot log."""
    ms = int(when.timestamp() * 1000)
    log = sorted(table.metadata.snapshot_log, key=lambda e: e.timestamp_ms)
    before = [e for e in log if e.timestamp_ms <= ms]
    if not before:
        first = datetime.fromtimestamp(log[0].timestamp_ms / 1000, tz=timezone.utc).isoformat() if log else None
        raise ReproduceError(
            f"{name} had no snapshot at {when.isoformat()}"
            + (f"; its oldest known main state is from {first}" if first else "; it has no snapshot log")
        )
    chosen = before[-1].snapshot_id
    after = [e for e in log if e.timestamp_ms > ms]
    # Expiry removes log entries of the snapshots it removes: if the next main state does not
    # descend from the chosen one, the state that was current at `when` may have been expired.
    if after:
        nxt = table.snapshot_by_id(after[0].snapshot_id)
        if nxt is not None and nxt.parent_snapshot_id not in (None, chosen) and table.snapshot_by_id(nxt.parent_snapshot_id) is None:
            raise SnapshotExpiredError(
                f"the snapshot of {name} that was current at {when.isoformat()} was expired (snapshot "
                f"{nxt.parent_snapshot_id}); pin the snapshots you need by registering a model trained on them"
            )
    return int(chosen)


def _load_input_table(catalog: Any, name: str, mv: ModelVersion) -> Table:
    try:
        return load_table(catalog, TableName.parse(name))
    except TableNotFoundError as exc:
        raise TableDroppedError(
            f"table {name}, an input of {mv.model}:{mv.version}, no longer exists (dropped); "
            "its recorded snapshots cannot be read back: restore the table to retrain"
        ) from exc


def _expired_message(name: str, sid: int, mv: ModelVersion, table: Table) -> str:
    tag = pinning.tag_name(mv.model, mv.version)
    if mv.archived:
        why = f"{mv.model}:{mv.version} was archived at {mv.archived.get('at')}, which released its pin {tag}"
    elif tag in table.metadata.refs:
        why = f"its pin {tag} now points at snapshot {table.metadata.refs[tag].snapshot_id}"
    else:
        why = f"the table holds no pin {tag} for it"
    return (
        f"snapshot {sid} of {name}, an input of {mv.model}:{mv.version}, no longer exists: it was expired "
        f"({why}). Pinning would have kept it: a tag on a snapshot protects it from expiry"
    )


def retrain(
    settings: Settings,
    ref: str,
    *,
    as_of: str | datetime | None = None,
    transport: Transport | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> RetrainReport:
    """Retrain `ref` (NAME, NAME@ALIAS, NAME:VERSION) from its recorded snapshots, or from the
    snapshots that were main's at `as_of` (ISO 8601 with a time zone, or an aware datetime; see
    `lakehouse.times.parse_time`)."""
    when = None if as_of is None else times.parse_time(as_of, parameter="as_of")
    catalog = load_catalog(settings)
    registry = Registry(settings, catalog)
    mv = registry.resolve(ref)
    if not mv.inputs:
        raise ReproduceError(f"{mv.model}:{mv.version} records no inputs; there is nothing to read back")
    chosen: dict[str, tuple[Table, int]] = {}
    for inp in mv.inputs:
        table = _load_input_table(catalog, inp.table, mv)
        if when is not None:
            sid = snapshot_at(table, inp.table, when)
        elif inp.snapshot_id is None:
            raise ReproduceError(
                f"{mv.model}:{mv.version} recorded no snapshot id for its input {inp.table}: its data cannot be identified"
            )
        else:
            sid = inp.snapshot_id
        if table.snapshot_by_id(sid) is None:
            raise SnapshotExpiredError(_expired_message(inp.table, sid, mv, table))
        chosen[inp.table] = (table, sid)
    try:
        fn = load_entry_point(mv.entry_point)
    except UnknownJobError as exc:
        commit = (mv.code or {}).get("git_commit")
        at = f" (it was trained from git commit {commit})" if commit else ""
        raise ReproduceError(f"cannot retrain {mv.model}:{mv.version}: {exc}{at}") from exc
    env_same, env_diffs = compare_environment(mv.environment, environment())
    recorded = {i.table: i for i in mv.inputs}
    datasets = [inputs_mod.dataset(settings, n, t, sid) for n, (t, sid) in chosen.items()]
    job_name = f"retrain.{mv.job_name.removeprefix('train.') if mv.job_name else mv.model}"
    params = dict(mv.parameters)
    with lineage_run(job_name, inputs=datasets, parameters=params, settings=settings, transport=transport, code=fn) as run:
        code_now, _ = recorded_identity(run, mv.entry_point)
        code_same, code_diffs = compare_code(mv.code, code_now)
        run.add_run_facet(
            "tidemark_reproduces",
            ev.facet(
                run.producer,
                f"{ev.TIDEMARK_FACETS}/ReproducesRunFacet.json",
                runId=mv.run_id,
                model=mv.model,
                version=mv.version,
                asOf=when.isoformat() if when else None,
            ),
        )
        frames = {}
        checks = []
        for name, (table, sid) in chosen.items():
            progress(f"reading {name} at snapshot {sid}")
            got = inputs_mod.assemble(name, table, sid)
            frames[name] = got.data
            rec = recorded[name]
            checks.append(
                InputCheck(name, rec.snapshot_id, sid, rec.rows, got.rows, rec.fingerprint, got.fingerprint)
            )
        progress(f"running {mv.entry_point} with the recorded parameters")
        trained = fn(frames, params)
        uri, digest = artifacts.put(settings, pickle.dumps(trained.estimator, protocol=5))
        names = sorted(set(mv.metrics) | set(trained.metrics))
        metrics: dict[str, dict[str, float | None]] = {}
        for n in names:
            old, new = mv.metrics.get(n), trained.metrics.get(n)
            metrics[n] = {
                "old": old,
                "new": None if new is None else float(new),
                "delta": None if old is None or new is None else float(new) - float(old),
            }
        report = RetrainReport(
            model=mv.model,
            version=mv.version,
            run_id=run.run_id,
            reproduces_run_id=mv.run_id,
            entry_point=mv.entry_point,
            as_of=when.isoformat() if when else None,
            inputs=checks,
            code_identical=code_same,
            code_differences=code_diffs,
            environment_identical=env_same,
            environment_differences=env_diffs,
            metrics=metrics,
            old_sha256=mv.sha256,
            new_sha256=digest,
            artifact_uri=uri,
            parameters=params,
        )
        run.add_run_facet(
            "tidemark_retrainResult",
            ev.facet(
                run.producer,
                f"{ev.TIDEMARK_FACETS}/RetrainResultRunFacet.json",
                identical=report.identical,
                dataIdentical=report.data_identical,
                codeIdentical=code_same,
                environmentIdentical=env_same,
                metricsIdentical=report.metrics_identical,
                artifactSha256=digest,
                artifactUri=uri,
            ),
        )
        progress(f"retrained {mv.model}:{mv.version}: {'identical' if report.identical else 'NOT identical'}")
    return report
