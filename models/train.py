"""Run a training job on its input tables at pinned snapshots, store the model, register a version."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from lakehouse import spark as lspark
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.exceptions import TableNotFoundError
from lakehouse.failpoints import step
from lakehouse.tables import TableName, load_table
from lineage import actors, columns
from lineage import events as ev
from lineage.code import CodeIdentity, environment, module_source
from lineage.run import RunContext
from lineage.run import run as lineage_run
from lineage.transport import Transport
from models import artifacts, pinning, signature, spark_jobs
from models import inputs as inputs_mod
from models.execution import Execution, run_job
from models.exceptions import TrainingInputError
from models.jobs import TrainingJob, get_job
from models.registry import InputSnapshot, ModelVersion, Registry, check_name


# How recovery finishes a training whose process died (lineage.recovery).
RESOLVER = "models.recovery:resolve_training"


@dataclass
class TrainResult:
    version: ModelVersion
    card_uri: str

    def to_json(self) -> dict[str, Any]:
        return {**self.version.to_json(), "card_uri": self.card_uri}


def _coerce(value: str, like: Any) -> Any:
    """A parameter's text value as the type of the job's default."""
    if isinstance(like, bool):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    return value


def parse_params(job: TrainingJob, pairs: list[str]) -> dict[str, Any]:
    params = dict(job.params)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise TrainingInputError(f"pairs {pair!r} must look like key=value", parameter="pairs")
        if key not in job.params:
            # A parameter the job does not declare (a user's function job): a JSON value if it parses.
            try:
                params[key] = json.loads(value)
            except ValueError:
                params[key] = value
            continue
        try:
            params[key] = _coerce(value, job.params[key])
        except ValueError as exc:
            raise TrainingInputError(f"pairs {key}={value}: expected a {type(job.params[key]).__name__}", parameter="pairs") from exc
    return params


def train(
    settings: Settings,
    job: TrainingJob,
    *,
    params: Mapping[str, Any] | None = None,
    snapshots: Mapping[str, int] | None = None,
    transport: Transport | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> TrainResult:
    """Train `job` on its inputs at `snapshots` (default: each table's current main snapshot).

    Records the code identity, the environment, and each input's snapshot, row count and content
    fingerprint; stores the artifact content-addressed, registers a version, pins (tags) every
    input snapshot so expiry keeps it, writes the model card, and emits the registration as the
    MODEL output of the run's COMPLETE event.
    """
    check_name("model", job.model, "model")
    for name in job.inputs:
        TableName.parse(name, parameter="inputs")
    catalog = load_catalog(settings)
    params = dict(job.params if params is None else params)
    unknown = set(snapshots or {}) - set(job.inputs)
    if unknown:
        raise TrainingInputError(
            f"snapshots {', '.join(sorted(unknown))}: job {job.name} reads only {', '.join(job.inputs)}", parameter="snapshots"
        )
    fn = job.function()
    pinned: dict[str, int] = {}
    tables = {}
    for name in job.inputs:
        try:
            table = load_table(catalog, TableName.parse(name))
        except TableNotFoundError as exc:
            raise TrainingInputError(f"job {job.name} reads {name}, which does not exist; land data into it first") from exc
        snap = table.snapshot_by_id(snapshots[name]) if snapshots and name in snapshots else table.current_snapshot()
        if snap is None:
            wanted = snapshots.get(name) if snapshots else None
            raise TrainingInputError(
                f"{name} has no snapshot {wanted}" if wanted else f"{name} has no data yet; land data into it first"
            )
        pinned[name] = snap.snapshot_id
        tables[name] = table
    if job.engine == spark_jobs.ENGINE:
        lspark.session(settings)  # no Spark or no Java: one line saying what to install, before the run starts
    datasets = [inputs_mod.dataset(settings, n, tables[n], sid) for n, sid in pinned.items()]
    registry = Registry(settings, catalog)
    # Recoverable from the START on (written with it: one durable outbox write, not two).
    with lineage_run(
        f"train.{job.name}", inputs=datasets, parameters=params, settings=settings, transport=transport, code=fn, steps="train",
        recoverable=(RESOLVER, {"model": job.model}),
    ) as run:
        code, env = recorded_identity(run, job.entry_point)
        recorded = []
        if job.engine == spark_jobs.ENGINE:
            progress(f"training {job.name} ({job.entry_point}) on Spark with {json.dumps(params, sort_keys=True)}")
            ran = spark_jobs.run(settings, fn, pinned, params, progress=progress)
            recorded = [InputSnapshot(n, sid, ran.inputs[n].rows, ran.inputs[n].fingerprint) for n, sid in pinned.items()]
            execution, blob = ran.execution, ran.blob
        else:
            frames = {}
            for name, sid in pinned.items():
                progress(f"reading {name} at snapshot {sid}")
                inp = inputs_mod.assemble(name, tables[name], sid)
                frames[name] = inp.data
                recorded.append(InputSnapshot(name, sid, inp.rows, inp.fingerprint))
            progress(f"training {job.name} ({job.entry_point}) with {json.dumps(params, sort_keys=True)}")
            execution = run_job(fn, frames, params)
            blob = pickle.dumps(execution.trained.estimator, protocol=5)
        trained = execution.trained
        env = {**env, **execution_record(execution)}
        add_platform_facet(run, execution.platform, execution.determinism, execution.imported)
        if job.primary_metric and job.primary_metric not in trained.metrics:
            raise TrainingInputError(
                f"job {job.name} declares primary metric {job.primary_metric!r} but returned only {', '.join(sorted(trained.metrics))}"
            )
        # What the model takes, as the snapshots it read stored it: `tidemark serve` checks requests against it.
        input_schema = signature.record(job, tables, pinned)
        uri, digest = artifacts.put(settings, blob)
        progress(f"stored artifact {uri}")
        step("train.written")
        mv = registry.register(
            model=job.model,
            run_id=run.run_id,
            job_name=run.job_name,
            entry_point=job.entry_point,
            artifact_uri=uri,
            sha256=digest,
            metrics=trained.metrics,
            inputs=recorded,
            parameters=params,
            # The holdout scorer rides along with the code identity, so `models renew` can score a
            # user's job's versions without the job object (extra keys are ignored by compare_code).
            # So does the engine: retrain runs a Spark job on Spark again (absent: a Python job).
            code={
                **code_record(settings, code),
                **({"holdout_entry_point": job.holdout_entry_point} if job.holdout_entry_point else {}),
                **({"engine": job.engine} if job.engine != "python" else {}),
            },
            environment=env,
            primary_metric=job.primary_metric,
            metric_goal=job.metric_goal if job.primary_metric else None,
            before_commit=lambda mv: write_card(settings, mv, input_schema),
            owner=job.owner,
            # The actor of the run's own facet: the registry row and the run name the same person.
            actor=actors.from_facet(run.run_facets.get(actors.FACET)),
        )
        step("train.registered")
        tags = pinning.pin(catalog, mv, loaded=tables)
        progress(f"pinned {', '.join(tags)} as {pinning.tag_name(mv.model, mv.version)}")
        step("train.pinned")
        assert mv.card_uri is not None
        model_ds = registry.model_dataset(mv, registration=True)
        if job.features:
            model_ds["facets"]["columnLineage"] = feature_lineage(settings, job, dict(zip(pinned, datasets)))
        run.add_output(model_ds)
        if mv.owner:
            # The training job answers to the model's owner.
            run.job_facets["ownership"] = ev.ownership_facet(run.producer, mv.owner, "job")
        progress(f"registered {job.model} version {mv.version}: {json.dumps(trained.metrics, sort_keys=True)}")
    return TrainResult(version=mv, card_uri=mv.card_uri)


def feature_lineage(settings: Settings, job: TrainingJob, inputs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The model's `columnLineage` facet: each declared feature from its input table's column (at
    the snapshot the run read), and the target as a dependency of the whole model (INDIRECT)."""
    fields = {
        feature: [columns.InputField.of(inputs[table], feature, description=f"feature {i} of the model, read as stored")]
        for table, names in job.features.items()
        if table in inputs  # a job run on other tables than it declares features for reports none of them
        for i, feature in enumerate(names)
    }
    target = [
        columns.InputField.of(inputs[t], job.target, type="INDIRECT", subtype="TARGET", description="the column the model learns to predict")
        for t in job.features
        if job.target and t in inputs
    ]
    return columns.facet(settings.lineage.producer, fields, target)


def recorded_identity(run: RunContext, entry_point: str) -> tuple[CodeIdentity, dict[str, Any]]:
    """The code identity and environment the SDK recorded in `run`'s facets, for the registry.

    The same objects as the `tidemark_code` and `tidemark_environment` facets (git runs once per
    run); the entry point is the one the registry loads the job by, in case the function was
    re-exported from another module than the one defining it.
    """
    code = replace(CodeIdentity.read(run.run_facets["tidemark_code"]), entry_point=entry_point)
    return code, environment()


def execution_record(execution: Execution) -> dict[str, Any]:
    """What the registry's environment column and the model card add to the package list: the
    distributions the job imported, the platform it ran on, and the determinism settings applied."""
    return {"imported": list(execution.imported), "host": dict(execution.platform), "determinism": dict(execution.determinism)}


def add_platform_facet(run: RunContext, platform: Mapping[str, Any], determinism: Mapping[str, Any], imported: list[str]) -> None:
    """The `tidemark_platform` run facet: platform, determinism settings and imported distributions."""
    run.add_run_facet(
        "tidemark_platform",
        ev.facet(
            run.producer,
            f"{ev.TIDEMARK_FACETS}/PlatformRunFacet.json",
            **platform,
            determinism=dict(determinism),
            importedDistributions=list(imported),
        ),
    )


def code_record(settings: Settings, code: CodeIdentity) -> dict[str, Any]:
    """The registry's code column: the identity, plus what `retrain --code recorded` needs to get the
    code back: the repository root and the module's path in it, and the module's source itself,
    stored content-addressed beside the artifacts (a dirty tree's commit does not hold it)."""
    out = code.record()
    found = module_source(code.entry_point) if code.entry_point else None
    if found is not None:
        _path, data, root, rel = found
        uri, digest = artifacts.put(settings, data)
        out.update(repository=root, path=rel, source_uri=uri, source_file_sha256=digest)
    return out


def train_on_snapshots(
    settings: Settings, job_name: str, snapshots: Mapping[str, int], *, progress: Callable[[str], None] = lambda _msg: None
) -> dict[str, Any]:
    """Train the reference job `job_name` on exactly these snapshots (what a data-aware schedule
    hands over, never "whatever main holds by now"); the new version in brief, JSON-ready."""
    mv = train(settings, get_job(job_name), snapshots=dict(snapshots), progress=progress).version
    return {"model": mv.model, "version": mv.version, "run_id": mv.run_id, "snapshots": dict(snapshots), "metrics": mv.metrics}


def write_card(settings: Settings, mv: ModelVersion, input_schema: signature.InputSchema | None = None) -> None:
    """Store the model card at `mv.card_uri` (before the registry row: a version is never seen without it)."""
    assert mv.card_uri is not None
    artifacts.put_text(settings, mv.card_uri, json.dumps(card(mv, input_schema), indent=2, sort_keys=True, default=str))


def card(mv: ModelVersion, input_schema: signature.InputSchema | None = None) -> dict[str, Any]:
    """The model card: parameters, metrics, input snapshots, code identity, environment, and the input
    schema (the features and their types, None for a job that declares none)."""
    out = mv.to_json()
    out["input_schema"] = input_schema.to_json() if input_schema is not None else None
    out.pop("aliases", None)
    out.pop("archived", None)
    out["pins"] = {i.table: pinning.tag_name(mv.model, mv.version) for i in mv.inputs}
    env = mv.environment or {}
    # Read at a glance in the card: where it ran and what was pinned to make it repeatable.
    out["platform"] = env.get("host")
    out["determinism"] = env.get("determinism")
    out["imported_distributions"] = env.get("imported")
    return out
