"""The input schema of a model version: the columns it was trained on, in the order it sees them, with
their types as the training snapshot stored them.

Recorded at training time in the model card (`input_schema`), from the job's declared `features` and
the Iceberg schema of the snapshot each was read from; `tidemark serve` checks every request against
it. A version trained before Tidemark recorded it, or by a job that declares no features, has none,
and serving it is refused with what to do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.config import Settings
from models import artifacts
from models.exceptions import SchemaNotRecordedError

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from models.jobs import TrainingJob
    from models.registry import ModelVersion

# Iceberg primitive type -> the JSON value a request must carry for it.
_NUMBER = ("double", "float")
_INTEGER = ("int", "long")


def json_kind(iceberg_type: str) -> str:
    """`number`, `integer`, `string`, `boolean` or `other` for an Iceberg type's text (`decimal(9, 2)` is a number)."""
    t = iceberg_type.lower()
    if t in _NUMBER or t.startswith("decimal"):
        return "number"
    if t in _INTEGER:
        return "integer"
    if t == "string":
        return "string"
    if t == "boolean":
        return "boolean"
    return "other"


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # the Iceberg type, as the training snapshot's schema has it
    table: str

    @property
    def kind(self) -> str:
        return json_kind(self.type)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "kind": self.kind, "table": self.table}


@dataclass(frozen=True)
class InputSchema:
    """The features in model order, and the target the model predicts (for the reader, not checked)."""

    fields: tuple[Field, ...]
    target: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"fields": [f.to_json() for f in self.fields], "target": self.target}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> InputSchema:
        return cls(tuple(Field(str(f["name"]), str(f["type"]), str(f.get("table", ""))) for f in d["fields"]), d.get("target"))


def record(job: TrainingJob, tables: Mapping[str, Table], snapshots: Mapping[str, int]) -> InputSchema | None:
    """The schema of `job`'s declared features as the pinned snapshots hold them; None when the job
    declares none (its function picks its own columns, which Tidemark cannot know)."""
    if not job.features:
        return None
    fields = []
    for table_name, names in job.features.items():
        if table_name not in tables:
            continue
        table = tables[table_name]
        snap = table.snapshot_by_id(snapshots[table_name])
        schema = table.schemas().get(snap.schema_id) if snap is not None and snap.schema_id is not None else None
        schema = schema or table.schema()
        for name in names:
            fields.append(Field(name, str(schema.find_field(name).field_type), table_name))
    return InputSchema(tuple(fields), job.target) if fields else None


def read(settings: Settings, mv: ModelVersion) -> InputSchema:
    """The input schema recorded in `mv`'s model card; SchemaNotRecordedError when it has none."""
    return from_card(mv, read_card(settings, mv))


def read_card(settings: Settings, mv: ModelVersion) -> dict[str, Any]:
    """`mv`'s model card; SchemaNotRecordedError when it has none or it cannot be read."""
    if not mv.card_uri:
        raise SchemaNotRecordedError(
            f"model {mv.model} version {mv.version} has no model card, so no recorded input schema; "
            f"retrain it (`tidemark train` with a job that declares its features) and serve the new version"
        )
    try:
        card = json.loads(artifacts.get(settings, mv.card_uri))
    except (OSError, ValueError) as exc:
        raise SchemaNotRecordedError(
            f"the model card of {mv.model} version {mv.version} at {mv.card_uri} cannot be read ({exc}); "
            "restore it or serve another version"
        ) from exc
    return card  # type: ignore[no-any-return]


def from_card(mv: ModelVersion, card: Mapping[str, Any]) -> InputSchema:
    """The input schema in `mv`'s card; SchemaNotRecordedError when it has none."""
    recorded = card.get("input_schema")
    if not recorded:
        raise SchemaNotRecordedError(
            f"model {mv.model} version {mv.version} was trained before Tidemark recorded input schemas (or by a job "
            "that declares no features), so requests cannot be checked; retrain it with `tidemark train` and serve the new version"
        )
    return InputSchema.from_json(recorded)
