"""A model version's input schema: the columns it was trained on, in the order it sees them, with
their types.

Two readings of it. `record` writes it into the model card at training time (`input_schema`: the
job's declared features, typed as the snapshot it read stored them), and `read` / `from_card` give it
back; `tidemark serve` checks every request against that record and refuses a version without one.
`input_schema` works it out afterwards from the registry: the job declares its features and target
(`TrainingJob.features`, `.target`), typed in the input table's schema *at the training snapshot* (a
later schema change of the table does not change what an old version was trained on); a job that
declares no features trained on every numeric column but `id` and its target (what `models.jobs`
does then), and that is its schema. The prediction log and drift on traffic use it.

Also the name of a model's prediction log table (`serving.<model>_predictions`), which the
serving package writes and drift on production traffic reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.exceptions import TableNotFoundError
from lakehouse.tables import TableName, load_table, schema_at
from models import artifacts
from models.exceptions import SchemaNotRecordedError, TrainingInputError, UnknownJobError
from models.jobs import JOBS, TrainingJob, load_entry_point
from models.registry import ModelVersion

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

PREDICTIONS_NAMESPACE = "serving"
PREDICTIONS_SUFFIX = "_predictions"
# The prediction log's own columns; the features sit between `time` and `prediction`.
LOG_COLUMNS = ("prediction_id", "model", "version", "time", "prediction")


def prediction_table(model: str) -> str:
    """The Iceberg table the prediction log of `model` goes to."""
    return f"{PREDICTIONS_NAMESPACE}.{model}{PREDICTIONS_SUFFIX}"


@dataclass(frozen=True)
class Signature:
    """What a version reads and answers: its features in the order it sees them, typed as trained on."""

    model: str
    version: int
    features: pa.Schema  # plain Arrow types, no field ids
    target: pa.DataType | None  # the type of the column it learned to predict; None: not declared

    @property
    def names(self) -> list[str]:
        return list(self.features.names)


def job_of(mv: ModelVersion) -> TrainingJob | None:
    """The training job that made `mv`: a reference job by its name, or a user's `TrainingJob`
    object at the recorded entry point; None for a plain training function (no declarations)."""
    name = mv.job_name.removeprefix("train.")
    if name in JOBS and JOBS[name].entry_point == mv.entry_point:
        return JOBS[name]
    try:
        found = load_entry_point(mv.entry_point, allow_job=True)
    except UnknownJobError:
        return None
    return found if isinstance(found, TrainingJob) else None


def input_schema(settings: Settings, mv: ModelVersion, catalog: Catalog | None = None) -> Signature:
    """The version's features and target, typed as in its input tables at the training snapshots."""
    import pyarrow as pa

    catalog = catalog or load_catalog(settings)
    job = job_of(mv)
    target_name = (job.target if job else None) or "target"
    fields: list[pa.Field] = []
    target: pa.DataType | None = None
    for inp in mv.inputs:
        try:
            table = load_table(catalog, TableName.parse(inp.table))
        except TableNotFoundError as exc:
            raise TrainingInputError(f"{mv.model}:{mv.version} was trained on {inp.table}, which no longer exists; its input schema is unknown") from exc
        snap = table.snapshot_by_id(inp.snapshot_id) if inp.snapshot_id is not None else None
        arrow = schema_at(table, snap).as_arrow()
        by_name = {f.name: pa.field(f.name, f.type) for f in arrow}  # without Iceberg's field-id metadata
        if target_name in by_name:
            target = target or by_name[target_name].type
        if job is not None and job.features:
            wanted = list(job.features.get(inp.table, ()))
            missing = [c for c in wanted if c not in by_name]
            if missing:
                raise TrainingInputError(
                    f"{mv.model}:{mv.version} declares feature(s) {', '.join(missing)} that {inp.table} did not have at snapshot {inp.snapshot_id}"
                )
            fields += [by_name[c] for c in wanted]
        else:
            fields += [f for c, f in by_name.items() if c not in ("id", target_name) and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_decimal(f.type))]
    clash = sorted({f.name for f in fields} & set(LOG_COLUMNS))
    if clash:
        raise TrainingInputError(f"{mv.model}:{mv.version} has feature(s) named {', '.join(clash)}, which the prediction log uses for its own columns; rename the feature")
    return Signature(mv.model, mv.version, pa.schema(fields), target)


# -- the schema recorded in the model card at training time --------------------------------------

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
        schema = schema_at(table, snap)
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
    return card


def from_card(mv: ModelVersion, card: Mapping[str, Any]) -> InputSchema:
    """The input schema in `mv`'s card; SchemaNotRecordedError when it has none."""
    recorded = card.get("input_schema")
    if not recorded:
        raise SchemaNotRecordedError(
            f"model {mv.model} version {mv.version} was trained before Tidemark recorded input schemas (or by a job "
            "that declares no features), so requests cannot be checked; retrain it with `tidemark train` and serve the new version"
        )
    return InputSchema.from_json(recorded)
