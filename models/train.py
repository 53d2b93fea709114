"""Run a training job on its input tables at pinned snapshots, store the model, register a version."""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.exceptions import TableNotFoundError
from lakehouse.tables import TableName, load_table
from lineage import events as ev
from lineage.run import run as lineage_run
from lineage.transport import Transport
from models import artifacts
from models.exceptions import TrainingInputError
from models.jobs import TrainingJob
from models.registry import InputSnapshot, ModelVersion, Registry


@dataclass
class TrainResult:
    version: ModelVersion
    card_uri: str

    def to_json(self) -> dict[str, Any]:
        return {**self.version.to_json(), "card_uri": self.card_uri}


def _coerce(value: str, like: Any) -> Any:
    """A --param value as the type of the job's default."""
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
            raise TrainingInputError(f"--param {pair!r} must look like key=value")
        try:
            params[key] = _coerce(value, job.params.get(key, value))
        except ValueError as exc:
            raise TrainingInputError(f"--param {key}={value}: expected a {type(job.params[key]).__name__}") from exc
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
    """Train `job` on its inputs at `snapshots` (default: each table's current main snapshot)."""
    catalog = load_catalog(settings)
    params = dict(job.params if params is None else params)
    pinned: dict[str, int] = {}
    datasets = []
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
        datasets.append(
            ev.iceberg_dataset(
                producer=settings.lineage.producer,
                catalog_name=settings.catalog.name,
                catalog_type=settings.catalog.properties.get("type", "sql"),
                table=name,
                location=table.location(),
                snapshot_id=snap.snapshot_id,
                direction="input",
                schema_id=snap.schema_id,
            )
        )
    registry = Registry(settings, catalog)
    fn = job.function()
    with lineage_run(f"train.{job.name}", inputs=datasets, parameters=params, settings=settings, transport=transport, code=fn) as run:
        frames = {}
        for name, sid in pinned.items():
            progress(f"reading {name} at snapshot {sid}")
            frames[name] = tables[name].scan(snapshot_id=sid).to_arrow()
        progress(f"training {job.name} ({job.entry_point}) with {json.dumps(params, sort_keys=True)}")
        trained = fn(frames, params)
        blob = pickle.dumps(trained.estimator, protocol=5)
        uri, digest = artifacts.put(settings, blob)
        progress(f"stored artifact {uri}")
        mv = registry.register(
            model=job.model,
            run_id=run.run_id,
            job_name=run.job_name,
            entry_point=job.entry_point,
            artifact_uri=uri,
            sha256=digest,
            metrics=trained.metrics,
            inputs=[InputSnapshot(n, sid, frames[n].num_rows) for n, sid in pinned.items()],
            parameters=params,
        )
        card_uri = f"{settings.warehouse.rstrip('/')}/models/{job.model}/{mv.version}/card.json"
        card = {**mv.to_json(), "environment": _environment()}
        artifacts.put_text(settings, card_uri, json.dumps(card, indent=2, sort_keys=True))
        run.add_output(registry.model_dataset(mv))
        progress(f"registered {job.model} version {mv.version}: {json.dumps(trained.metrics, sort_keys=True)}")
    return TrainResult(version=mv, card_uri=card_uri)


def _environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    pkgs = {}
    for name in ("scikit-learn", "numpy", "pandas", "pyarrow", "pyiceberg", "scipy"):
        try:
            pkgs[name] = version(name)
        except PackageNotFoundError:
            pkgs[name] = None
    return {"python": sys.version.split()[0], "packages": pkgs}
