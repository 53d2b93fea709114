"""The model registry: versions and alias history in Iceberg tables, every change also an event.

Tables (namespace `lineage`): `model_versions` (one row per registered version) and
`model_alias_events` (one row per alias move: the history, never updated in place). Version
numbers are allocated by an Iceberg commit that asserts the table did not change since it was
read, so two trainings at once cannot both get version N.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.tables import JOB_NAME, NO_REBASE, RUN_ID, TableName, ensure_table, with_commit_retry
from lineage import events as ev
from lineage.outbox import OutboxTransport
from lineage.transport import Transport
from models.exceptions import ModelNotFoundError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

VERSIONS = "model_versions"
ALIAS_EVENTS = "model_alias_events"
PROMOTE_JOB = "models.promote"
_REF = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+?)(?:@(?P<alias>[A-Za-z0-9_.-]+)|:(?P<version>\d+))?$")


@dataclass(frozen=True)
class InputSnapshot:
    table: str
    snapshot_id: int
    rows: int | None = None


@dataclass
class ModelVersion:
    model: str
    version: int
    run_id: str
    job_name: str
    entry_point: str
    artifact_uri: str
    sha256: str
    metrics: dict[str, float]
    inputs: list[InputSnapshot]
    parameters: dict[str, Any]
    created_at: datetime
    aliases: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "run_id": self.run_id,
            "job_name": self.job_name,
            "entry_point": self.entry_point,
            "artifact_uri": self.artifact_uri,
            "sha256": self.sha256,
            "metrics": self.metrics,
            "inputs": [{"table": i.table, "snapshot_id": i.snapshot_id, "rows": i.rows} for i in self.inputs],
            "parameters": self.parameters,
            "created_at": self.created_at.isoformat(),
            "aliases": self.aliases,
        }


@dataclass(frozen=True)
class ModelRef:
    name: str
    alias: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        m = _REF.match(text or "")
        if not m:
            raise ModelNotFoundError(f"{text!r} is not a model reference; write NAME, NAME@ALIAS or NAME:VERSION")
        return cls(m["name"], m["alias"], int(m["version"]) if m["version"] else None)

    def __str__(self) -> str:
        return self.name + (f"@{self.alias}" if self.alias else f":{self.version}" if self.version else "")


def _schemas() -> dict[str, Any]:
    from pyiceberg.schema import Schema
    from pyiceberg.types import IntegerType, NestedField, StringType, TimestamptzType

    def s(i: int, name: str, typ: Any = None, required: bool = False) -> NestedField:
        return NestedField(i, name, typ or StringType(), required=required)

    return {
        VERSIONS: Schema(
            s(1, "model", required=True),
            s(2, "version", IntegerType(), required=True),
            s(3, "run_id", required=True),
            s(4, "job_name"),
            s(5, "entry_point"),
            s(6, "artifact_uri"),
            s(7, "sha256"),
            s(8, "metrics"),
            s(9, "inputs"),
            s(10, "parameters"),
            s(11, "created_at", TimestamptzType(), required=True),
        ),
        ALIAS_EVENTS: Schema(
            s(1, "event_time", TimestamptzType(), required=True),
            s(2, "model", required=True),
            s(3, "alias", required=True),
            s(4, "version", IntegerType()),
            s(5, "previous_version", IntegerType()),
            s(6, "action", required=True),
            s(7, "reason"),
            s(8, "run_id"),
        ),
    }


class Registry:
    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or load_catalog(settings)
        self.ns = settings.lineage.namespace
        for short, schema in _schemas().items():
            ensure_table(self.catalog, TableName(self.ns, short), schema, properties={"format-version": "2", **NO_REBASE})

    def _table(self, short: str) -> Table:
        return self.catalog.load_table((self.ns, short))

    def _rows(self, short: str) -> list[dict[str, Any]]:
        table = self._table(short)
        if table.current_snapshot() is None:
            return []
        return table.scan().to_arrow().to_pylist()

    # -- versions ---------------------------------------------------------------------------------

    def register(
        self,
        *,
        model: str,
        run_id: str,
        job_name: str,
        entry_point: str,
        artifact_uri: str,
        sha256: str,
        metrics: Mapping[str, float],
        inputs: Sequence[InputSnapshot],
        parameters: Mapping[str, Any],
    ) -> ModelVersion:
        """Allocate the next version number of `model` and record it; safe with concurrent trainings."""
        import pyarrow as pa

        created: list[ModelVersion] = []

        def attempt() -> None:
            table = self._table(VERSIONS)
            existing = [r["version"] for r in (table.scan().to_arrow().to_pylist() if table.current_snapshot() else []) if r["model"] == model]
            mv = ModelVersion(
                model=model,
                version=max(existing, default=0) + 1,
                run_id=run_id,
                job_name=job_name,
                entry_point=entry_point,
                artifact_uri=artifact_uri,
                sha256=sha256,
                metrics=dict(metrics),
                inputs=list(inputs),
                parameters=dict(parameters),
                created_at=datetime.now(timezone.utc),
            )
            row = {
                "model": mv.model,
                "version": mv.version,
                "run_id": mv.run_id,
                "job_name": mv.job_name,
                "entry_point": mv.entry_point,
                "artifact_uri": mv.artifact_uri,
                "sha256": mv.sha256,
                "metrics": json.dumps(mv.metrics, sort_keys=True),
                "inputs": json.dumps([{"table": i.table, "snapshot_id": str(i.snapshot_id), "rows": i.rows} for i in mv.inputs]),
                "parameters": json.dumps(mv.parameters, sort_keys=True, default=str),
                "created_at": mv.created_at,
            }
            # The append asserts main is where we read it: a concurrent registration makes it fail and retry.
            table.append(
                pa.Table.from_pylist([row], schema=_schemas()[VERSIONS].as_arrow()),
                snapshot_properties={RUN_ID: run_id, JOB_NAME: job_name},
            )
            created.append(mv)

        with_commit_retry(attempt, f"registering a version of model {model}")
        return created[-1]

    def versions(self, model: str | None = None) -> list[ModelVersion]:
        aliases = self.current_aliases()
        out = []
        for r in self._rows(VERSIONS):
            if model is not None and r["model"] != model:
                continue
            mv = ModelVersion(
                model=r["model"],
                version=int(r["version"]),
                run_id=r["run_id"],
                job_name=r["job_name"],
                entry_point=r["entry_point"],
                artifact_uri=r["artifact_uri"],
                sha256=r["sha256"],
                metrics=json.loads(r["metrics"] or "{}"),
                inputs=[InputSnapshot(i["table"], int(i["snapshot_id"]), i.get("rows")) for i in json.loads(r["inputs"] or "[]")],
                parameters=json.loads(r["parameters"] or "{}"),
                created_at=r["created_at"],
            )
            mv.aliases = sorted(a for (m, a), v in aliases.items() if m == mv.model and v == mv.version)
            out.append(mv)
        return sorted(out, key=lambda m: (m.model, m.version))

    def get(self, model: str, version: int) -> ModelVersion:
        for mv in self.versions(model):
            if mv.version == version:
                return mv
        known = [str(m.version) for m in self.versions(model)]
        if not known:
            raise ModelNotFoundError(f"model {model!r} is not registered; see `tidemark models list`")
        raise ModelNotFoundError(f"model {model} has no version {version}; versions: {', '.join(known)}")

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """NAME@ALIAS, NAME:VERSION, or NAME (its latest version)."""
        r = ModelRef.parse(ref) if isinstance(ref, str) else ref
        if r.version is not None:
            return self.get(r.name, r.version)
        if r.alias is not None:
            holder = self.current_aliases().get((r.name, r.alias))
            if holder is None:
                if not self.versions(r.name):
                    raise ModelNotFoundError(f"model {r.name!r} is not registered; see `tidemark models list`")
                raise ModelNotFoundError(
                    f"model {r.name} has no alias {r.alias!r}; set it with `tidemark models promote {r.name} VERSION --alias {r.alias}`"
                )
            return self.get(r.name, holder)
        versions = self.versions(r.name)
        if not versions:
            raise ModelNotFoundError(f"model {r.name!r} is not registered; see `tidemark models list`")
        return versions[-1]

    # -- aliases ----------------------------------------------------------------------------------

    def alias_history(self, model: str | None = None) -> list[dict[str, Any]]:
        rows = [r for r in self._rows(ALIAS_EVENTS) if model is None or r["model"] == model]
        return sorted(rows, key=lambda r: r["event_time"])

    def current_aliases(self) -> dict[tuple[str, str], int]:
        current: dict[tuple[str, str], int] = {}
        for r in self.alias_history():
            key = (r["model"], r["alias"])
            if r["action"] == "set" and r["version"] is not None:
                current[key] = int(r["version"])
            else:
                current.pop(key, None)
        return current

    def promote(
        self, model: str, version: int, alias: str, *, reason: str | None = None, transport: Transport | None = None
    ) -> dict[str, Any]:
        """Point `alias` at `version`; recorded in the alias history and emitted as a lineage event."""
        import pyarrow as pa

        mv = self.get(model, version)
        run_id = ev.new_run_id()
        move: dict[str, Any] = {}

        def attempt() -> None:
            table = self._table(ALIAS_EVENTS)
            previous = self.current_aliases().get((model, alias))
            move.clear()
            move.update(
                {
                    "event_time": datetime.now(timezone.utc),
                    "model": model,
                    "alias": alias,
                    "version": mv.version,
                    "previous_version": previous,
                    "action": "set",
                    "reason": reason,
                    "run_id": run_id,
                }
            )
            table.append(
                pa.Table.from_pylist([move], schema=_schemas()[ALIAS_EVENTS].as_arrow()),
                snapshot_properties={RUN_ID: run_id, JOB_NAME: PROMOTE_JOB},
            )

        with_commit_retry(attempt, f"moving alias {alias} of model {model}")
        producer = self.settings.lineage.producer
        dataset = self.model_dataset(mv)
        dataset["facets"]["tidemark_modelAlias"] = ev.facet(
            producer,
            f"{ev.TIDEMARK_FACETS}/ModelAliasDatasetFacet.json",
            alias=alias,
            action="set",
            previousVersion=move["previous_version"],
            reason=reason,
        )
        event = ev.run_event(
            producer=producer,
            event_type="COMPLETE",
            run_id=run_id,
            job_namespace=self.settings.lineage.job_namespace,
            job_name=PROMOTE_JOB,
            inputs=[dataset],
            event_time=move["event_time"].isoformat().replace("+00:00", "Z"),
        )
        tr = transport or OutboxTransport(self.settings)
        try:
            tr.emit(event)
        finally:
            if transport is None:
                tr.close()
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in move.items()}

    def model_dataset(self, mv: ModelVersion) -> dict[str, Any]:
        return ev.model_dataset(
            producer=self.settings.lineage.producer,
            namespace=model_namespace(self.settings),
            name=mv.model,
            version=str(mv.version),
            artifact_uri=mv.artifact_uri,
            sha256=mv.sha256,
            metrics=mv.metrics,
        )


def model_namespace(settings: Settings) -> str:
    """Dataset namespace of every model in this registry."""
    return f"tidemark-registry://{settings.catalog.name}"
