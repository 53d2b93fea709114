"""A model version's recorded input schema: the columns it was trained on, with their types.

The registry records which job trained a version and the snapshot of each input it read; the job
declares its features and target (`TrainingJob.features`, `.target`). So the schema a version
expects is those columns as typed in the input table's schema *at the training snapshot*: a later
schema change of the table does not change what an old version was trained on. A job that declares
no features trained on every numeric column but `id` and its target (what `models.jobs` does
then), and that is its schema.

Also the name of a model's prediction log table (`serving.<model>_predictions`), which the
serving package writes and drift on production traffic reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.exceptions import TableNotFoundError
from lakehouse.tables import TableName, load_table
from models.exceptions import TrainingInputError, UnknownJobError
from models.jobs import JOBS, TrainingJob, load_entry_point
from models.registry import ModelVersion

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog

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
        schema = table.schemas()[snap.schema_id] if snap is not None and snap.schema_id is not None else table.schema()
        arrow = schema.as_arrow()
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
