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
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse import spark as lspark
from lakehouse import times
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.exceptions import TableNotFoundError
from lakehouse.tables import TableName, load_table
from lineage import events as ev
from lineage import code as code_info
from lineage.code import canonicalize_name, compare_code, compare_environment, compare_platform
from lineage.run import run as lineage_run
from lineage.transport import Transport
from models import artifacts, environments, pinning, reproducibility, runner, sourcecode, spark_jobs
from models import inputs as inputs_mod
from models.exceptions import ReproduceError, SnapshotExpiredError, TableDroppedError, UnknownJobError
from models.execution import Outcome, run_job
from models.jobs import load_entry_point
from models.registry import ModelVersion, Registry
from models.train import add_platform_facet, recorded_identity

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
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


VERDICTS = ("reproduced", "within_tolerance", "different")
# The order causes are named in: what most often explains a different result first.
CAUSE_ORDER = ("data", "code", "packages", "platform")


@dataclass
class PackageChange:
    """A distribution whose version differs from the recorded one; only those the job imports count."""

    name: str
    recorded: str | None
    current: str | None
    imported: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.name} {self.recorded or '(absent)'} -> {self.current or '(absent)'}"


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
    metrics: dict[str, dict[str, Any]]
    old_sha256: str
    new_sha256: str
    artifact_uri: str
    parameters: dict[str, Any] = field(default_factory=dict)
    package_changes: list[PackageChange] = field(default_factory=list)
    python_difference: str | None = None
    platform_differences: list[str] = field(default_factory=list)
    platform: dict[str, Any] = field(default_factory=dict)
    determinism: dict[str, Any] = field(default_factory=dict)
    imported: list[str] = field(default_factory=list)
    # Which environment and which code ran the job: {"kind": "current"} or what was rebuilt.
    environment_ran: dict[str, Any] = field(default_factory=lambda: {"kind": "current"})
    code_ran: dict[str, Any] = field(default_factory=lambda: {"kind": "current"})

    @property
    def data_identical(self) -> bool:
        return all(i.identical for i in self.inputs)

    @property
    def metrics_identical(self) -> bool:
        return all(m["old"] == m["new"] for m in self.metrics.values())

    @property
    def metrics_within_tolerance(self) -> bool:
        return all(m["within_tolerance"] for m in self.metrics.values())

    @property
    def artifact_identical(self) -> bool:
        return self.old_sha256 == self.new_sha256

    @property
    def imported_packages_identical(self) -> bool:
        """Python and every distribution the job imports at their recorded versions."""
        return self.python_difference is None and not any(c.imported for c in self.package_changes)

    @property
    def verdict(self) -> str:
        """`reproduced`: the artifact is bit-identical; `within_tolerance`: every metric is within its
        relative tolerance (models.retrain_tolerance, models.tolerances); else `different`."""
        if self.artifact_identical:
            return "reproduced"
        if self.metrics and self.metrics_within_tolerance:
            return "within_tolerance"
        return "different"

    @property
    def causes(self) -> list[dict[str, Any]]:
        """What differs between the recorded run and this one, ranked (data, code, packages the
        job imports, platform). A package the job never imports is no cause."""
        found: list[dict[str, Any]] = []
        if not self.data_identical:
            found.append({"cause": "data", "details": [
                f"{i.table}: snapshot {i.snapshot_id} (recorded {i.recorded_snapshot_id}), {i.rows} rows (recorded {i.recorded_rows}), "
                f"fingerprint {'same' if i.fingerprint == i.recorded_fingerprint else 'differs'}"
                for i in self.inputs if not i.identical
            ]})
        if not self.code_identical:
            found.append({"cause": "code", "details": list(self.code_differences)})
        if not self.imported_packages_identical:
            details = [f"python {self.python_difference}"] if self.python_difference else []
            found.append({"cause": "packages", "details": details + [str(c) for c in self.package_changes if c.imported],
                          "packages": [c.to_json() for c in self.package_changes if c.imported]})
        if self.platform_differences:
            found.append({"cause": "platform", "details": list(self.platform_differences)})
        return found

    @property
    def identical(self) -> bool:
        """Data, code, the job's packages, metrics and artifact all as recorded. Packages the job
        never imports and the platform are reported, not counted."""
        return (
            self.data_identical
            and self.code_identical
            and self.imported_packages_identical
            and self.metrics_identical
            and self.artifact_identical
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "verdict": self.verdict,
            "causes": self.causes,
            "model": self.model,
            "version": self.version,
            "run_id": self.run_id,
            "reproduces_run_id": self.reproduces_run_id,
            "entry_point": self.entry_point,
            "as_of": self.as_of,
            "parameters": self.parameters,
            "data": {"identical": self.data_identical, "inputs": [i.to_json() for i in self.inputs]},
            "code": {"identical": self.code_identical, "differences": self.code_differences, "ran": self.code_ran},
            "environment": {
                "identical": self.environment_identical,
                "imported_identical": self.imported_packages_identical,
                "differences": self.environment_differences,
                "python": self.python_difference,
                "packages": [c.to_json() for c in self.package_changes],
                "imported": self.imported,
                "ran": self.environment_ran,
            },
            "platform": {
                "identical": not self.platform_differences,
                "differences": self.platform_differences,
                "current": self.platform,
                "determinism": self.determinism,
            },
            "metrics": {"identical": self.metrics_identical, "within_tolerance": self.metrics_within_tolerance, "values": self.metrics},
            "artifact": {
                "identical": self.artifact_identical,
                "old_sha256": self.old_sha256,
                "new_sha256": self.new_sha256,
                "uri": self.artifact_uri,
            },
        }


def compare_metrics(settings: Settings, model: str, old: Mapping[str, float], new: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    """Each metric old and new, the difference, and whether it is within its relative tolerance
    (|new - old| <= tolerance * |old|; a metric missing on either side never is)."""
    out: dict[str, dict[str, Any]] = {}
    for n in sorted(set(old) | set(new)):
        o, nw = old.get(n), new.get(n)
        tol = settings.models.tolerance(model, n)
        delta = None if o is None or nw is None else float(nw) - float(o)
        within = delta is not None and (delta == 0 or abs(delta) <= tol * abs(float(o)))
        out[n] = {"old": o, "new": None if nw is None else float(nw), "delta": delta, "tolerance": tol, "within_tolerance": within}
    return out


def package_changes(recorded: Mapping[str, Any] | None, current: Mapping[str, Any], imported: set[str]) -> list[PackageChange]:
    """Every distribution whose version differs, each marked by whether the job imports it."""
    old = {canonicalize_name(k): v for k, v in ((recorded or {}).get("packages") or {}).items()}
    new = {canonicalize_name(k): v for k, v in (current.get("packages") or {}).items()}
    return [
        PackageChange(name, old.get(name), new.get(name), name in imported)
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]


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


def _load_input_table(catalog: Catalog, name: str, mv: ModelVersion) -> Table:
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
    environment: str = "current",
    code: str = "current",
    nearest: bool = False,
    find_links: Sequence[str] = (),
    no_index: bool = False,
) -> RetrainReport:
    """Retrain `ref` (NAME, NAME@ALIAS, NAME:VERSION) from its recorded snapshots, or from the
    snapshots that were main's at `as_of` (ISO 8601 with a time zone, or an aware datetime; see
    `lakehouse.times.parse_time`).

    `environment="recorded"` runs the job in a virtualenv with the recorded versions of the
    distributions it imports (built once under TIDEMARK_HOME/environments by pip; `find_links`
    and `no_index` for offline wheel directories, `nearest` to accept the nearest installable
    version of one that is gone); `code="recorded"` runs the job's module from the recorded git
    commit (or its stored source). Either runs the job in a child interpreter (`models.runner`).
    """
    for name, value in (("environment", environment), ("code", code)):
        if value not in ("current", "recorded"):
            raise ReproduceError(f"{name} must be current or recorded, got {value!r}", parameter=name)
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
        if code != "recorded":
            commit = (mv.code or {}).get("git_commit")
            at = f" (it was trained from git commit {commit}: retrain --code recorded runs it)" if commit else ""
            raise ReproduceError(f"cannot retrain {mv.model}:{mv.version}: {exc}{at}") from exc
        fn = None  # the recorded code has it; the child loads it from there
    engine = str((mv.code or {}).get("engine") or "python")
    if engine == spark_jobs.ENGINE and (environment, code) != ("current", "current"):
        raise ReproduceError(
            f"{mv.model}:{mv.version} is a Spark job, which retrains in the current environment and code only; "
            "drop --environment recorded and --code recorded",
            parameter="environment" if environment != "current" else "code",
        )
    if engine == spark_jobs.ENGINE:
        lspark.session(settings)  # no Spark or no Java: one line saying what to install, before the run starts
    built = None
    if environment == "recorded":
        # Before the run starts: a version that cannot be installed stops here, with no event emitted.
        built = environments.ensure(
            settings, mv.environment, what=f"{mv.model}:{mv.version}", find_links=find_links, no_index=no_index,
            nearest=nearest, progress=progress,
        )
    recorded = {i.table: i for i in mv.inputs}
    datasets = [inputs_mod.dataset(settings, n, t, sid) for n, (t, sid) in chosen.items()]
    job_name = f"retrain.{mv.job_name.removeprefix('train.') if mv.job_name else mv.model}"
    params = dict(mv.parameters)
    with ExitStack() as stack:
        code_request: dict[str, Any] = {}
        code_ran: dict[str, Any] = {"kind": "current"}
        if code == "recorded":
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tidemark-code-")))
            code_request, code_ran = stack.enter_context(sourcecode.checkout(settings, mv, tmp))
        run = stack.enter_context(
            lineage_run(job_name, inputs=datasets, parameters=params, settings=settings, transport=transport, code=fn)
        )
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
        spark_run = None
        if engine == spark_jobs.ENGINE:
            progress(f"running {mv.entry_point} on Spark with the recorded parameters")
            spark_run = spark_jobs.run(settings, fn, {n: sid for n, (_t, sid) in chosen.items()}, params, progress=progress)  # type: ignore[arg-type]
            for name, (_table, sid) in chosen.items():
                rec, got_spark = recorded[name], spark_run.inputs[name]
                checks.append(InputCheck(name, rec.snapshot_id, sid, rec.rows, got_spark.rows, rec.fingerprint, got_spark.fingerprint))
        else:
            for name, (table, sid) in chosen.items():
                progress(f"reading {name} at snapshot {sid}")
                got = inputs_mod.assemble(name, table, sid)
                frames[name] = got.data
                rec = recorded[name]
                checks.append(
                    InputCheck(name, rec.snapshot_id, sid, rec.rows, got.rows, rec.fingerprint, got.fingerprint)
                )
            progress(f"running {mv.entry_point} with the recorded parameters")
        if spark_run is not None or (built is None and code == "current"):
            code_now, _ = recorded_identity(run, mv.entry_point)
            if spark_run is not None:
                execution, blob = spark_run.execution, spark_run.blob
            else:
                execution = run_job(fn, frames, params)  # type: ignore[arg-type]
                blob = pickle.dumps(execution.trained.estimator, protocol=5)
            outcome = Outcome(
                blob=blob,
                metrics=dict(execution.trained.metrics),
                imported=execution.imported,
                platform=execution.platform,
                determinism=execution.determinism,
                environment=code_info.environment(),
                code=code_now,
            )
        else:
            outcome = runner.run_in(
                built.python if built else sys.executable, mv.entry_point, frames, params, code=code_request, progress=progress
            )
            outcome.environment_ran = built.to_json() if built else {"kind": "current", "python": sys.executable}
            outcome.code_ran = code_ran
        add_platform_facet(run, outcome.platform, outcome.determinism, outcome.imported)
        report = _report(settings, mv, run.run_id, when, checks, params, outcome)
        run.add_run_facet(
            "tidemark_retrainResult",
            ev.facet(
                run.producer,
                f"{ev.TIDEMARK_FACETS}/RetrainResultRunFacet.json",
                identical=report.identical,
                verdict=report.verdict,
                causes=[c["cause"] for c in report.causes],
                dataIdentical=report.data_identical,
                codeIdentical=report.code_identical,
                environmentIdentical=report.environment_identical,
                importedPackagesIdentical=report.imported_packages_identical,
                metricsIdentical=report.metrics_identical,
                artifactSha256=report.new_sha256,
                artifactUri=report.artifact_uri,
                environmentRan=report.environment_ran,
                codeRan=report.code_ran,
            ),
        )
        reproducibility.record_retrain(settings, report)
        progress(f"retrained {mv.model}:{mv.version}: {report.verdict}")
    return report


def _report(
    settings: Settings,
    mv: ModelVersion,
    run_id: str,
    when: datetime | None,
    checks: list[InputCheck],
    params: dict[str, Any],
    outcome: Outcome,
) -> RetrainReport:
    uri, digest = artifacts.put(settings, outcome.blob)
    recorded_env = mv.environment or {}
    # Imported by the job then or now: an old version recorded no list, and a changed job may import more.
    imported = set(recorded_env.get("imported") or []) | set(outcome.imported)
    env_same, env_diffs = compare_environment(mv.environment, outcome.environment)
    code_same, code_diffs = compare_code(mv.code, outcome.code)
    python_then, python_now = recorded_env.get("python"), outcome.environment.get("python")
    return RetrainReport(
        model=mv.model,
        version=mv.version,
        run_id=run_id,
        reproduces_run_id=mv.run_id,
        entry_point=mv.entry_point,
        as_of=when.isoformat() if when else None,
        inputs=checks,
        code_identical=code_same,
        code_differences=code_diffs,
        environment_identical=env_same,
        environment_differences=env_diffs,
        metrics=compare_metrics(settings, mv.model, mv.metrics, outcome.metrics),
        old_sha256=mv.sha256,
        new_sha256=digest,
        artifact_uri=uri,
        parameters=params,
        package_changes=package_changes(mv.environment, outcome.environment, imported),
        python_difference=None if not python_then or python_then == python_now else f"{python_then} -> {python_now}",
        platform_differences=compare_platform(recorded_env.get("host"), outcome.platform),
        platform=outcome.platform,
        determinism=outcome.determinism,
        imported=sorted(imported),
        environment_ran=outcome.environment_ran,
        code_ran=outcome.code_ran,
    )
