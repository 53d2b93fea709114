"""The lineage tables in Iceberg (namespace `lineage` by default), their schemas and rows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lakehouse.config import Settings
from lakehouse.tables import NO_REBASE, TableName, ensure_table
from lineage import events as ev

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

EVENTS = "events"
RUNS = "runs"
RUN_DATASETS = "run_datasets"
JOBS = "jobs"
DEAD_LETTERS = "dead_letters"


def column(i: int, name: str, typ: Any = None, required: bool = False) -> Any:
    """An Iceberg column; strings unless a type is given (the lineage tables are mostly strings)."""
    from pyiceberg.types import NestedField, StringType

    return NestedField(i, name, typ or StringType(), required=required)


def _schemas() -> dict[str, Any]:
    from pyiceberg.schema import Schema
    from pyiceberg.types import BinaryType, IntegerType, LongType, TimestamptzType

    s = column

    return {
        EVENTS: Schema(
            s(1, "event_id", required=True),
            s(2, "event_time", TimestamptzType(), required=True),
            s(3, "event_type"),
            s(4, "run_id", required=True),
            s(5, "job_namespace"),
            s(6, "job_name"),
            s(7, "parent_run_id"),
            s(8, "producer"),
            s(9, "payload", required=True),
            s(10, "kafka_partition", IntegerType()),
            s(11, "kafka_offset", LongType()),
        ),
        RUN_DATASETS: Schema(
            s(1, "event_id", required=True),
            s(2, "event_time", TimestamptzType(), required=True),
            s(3, "event_type"),
            s(4, "run_id", required=True),
            s(5, "job_namespace"),
            s(6, "job_name"),
            s(7, "direction", required=True),
            s(8, "dataset_namespace"),
            s(9, "dataset_name"),
            s(10, "table_name"),
            s(11, "dataset_type"),
            s(12, "version"),
            s(13, "facets"),
        ),
        RUNS: Schema(
            s(1, "event_id", required=True),
            s(2, "event_time", TimestamptzType(), required=True),
            s(3, "event_type"),
            s(4, "run_id", required=True),
            s(5, "job_namespace"),
            s(6, "job_name"),
            s(7, "parent_run_id"),
            s(8, "parent_job_name"),
            s(9, "root_run_id"),
            s(10, "error_message"),
            s(11, "run_facets"),
        ),
        JOBS: Schema(
            s(1, "job_namespace", required=True),
            s(2, "job_name", required=True),
            s(3, "first_seen", TimestamptzType(), required=True),
            s(4, "first_run_id"),
            s(5, "job_facets"),
        ),
        DEAD_LETTERS: Schema(
            s(1, "received_time", TimestamptzType(), required=True),
            s(2, "topic"),
            s(3, "kafka_partition", IntegerType()),
            s(4, "kafka_offset", LongType()),
            s(5, "reason", required=True),
            s(6, "raw", BinaryType()),
        ),
    }


def _partition_by_day(schema: Any, column: str) -> Any:
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import DayTransform

    source = schema.find_field(column).field_id
    return PartitionSpec(PartitionField(source_id=source, field_id=1000, transform=DayTransform(), name=f"{column}_day"))


def ensure_tables(catalog: Catalog, settings: Settings) -> dict[str, Table]:
    """Create the lineage tables if missing (partitioned by event day) and return them by short name."""
    out: dict[str, Table] = {}
    for short, schema in _schemas().items():
        time_col = {DEAD_LETTERS: "received_time", JOBS: "first_seen"}.get(short, "event_time")
        out[short] = ensure_table(
            catalog,
            TableName(settings.lineage.namespace, short),
            schema,
            partition_spec=_partition_by_day(schema, time_col),
            properties={"format-version": "2", "write.parquet.compression-codec": "zstd", **NO_REBASE},
        )
    return out


def arrow_schema(short: str) -> pa.Schema:
    return _schemas()[short].as_arrow()


def parse_time(value: str) -> datetime:
    text = value.replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _dumps(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode("utf-8")


def _event_base(event: Mapping[str, Any], eid: str) -> dict[str, Any]:
    """The columns every per-event row starts with (events, runs, run_datasets)."""
    job = event.get("job") or {}
    return {
        "event_id": eid,
        "event_time": parse_time(str(event["eventTime"])),
        "event_type": event.get("eventType"),
        "run_id": str(event["run"]["runId"]),
        "job_namespace": job.get("namespace"),
        "job_name": job.get("name"),
    }


def event_row(
    event: Mapping[str, Any], eid: str, partition: int | None, offset: int | None, payload: str | None = None
) -> dict[str, Any]:
    """A row of `events`; `payload` is the event's text as received (re-serialized if not given)."""
    parent = ((event.get("run") or {}).get("facets") or {}).get("parent") or {}
    return {
        **_event_base(event, eid),
        "parent_run_id": (parent.get("run") or {}).get("runId"),
        "producer": event.get("producer"),
        "payload": payload if payload is not None else _dumps(event),
        "kafka_partition": partition,
        "kafka_offset": offset,
    }


def run_row(event: Mapping[str, Any], eid: str) -> dict[str, Any]:
    facets = (event.get("run") or {}).get("facets") or {}
    parent = facets.get("parent") or {}
    error = facets.get("errorMessage") or {}
    return {
        **_event_base(event, eid),
        "parent_run_id": (parent.get("run") or {}).get("runId"),
        "parent_job_name": (parent.get("job") or {}).get("name"),
        "root_run_id": ((parent.get("root") or {}).get("run") or {}).get("runId"),
        "error_message": error.get("message"),
        "run_facets": _dumps(facets),
    }


def job_row(event: Mapping[str, Any]) -> dict[str, Any]:
    job = event.get("job") or {}
    return {
        "job_namespace": job.get("namespace") or "",
        "job_name": job.get("name") or "",
        "first_seen": parse_time(str(event["eventTime"])),
        "first_run_id": str(event["run"]["runId"]),
        "job_facets": _dumps(job.get("facets") or {}),
    }


def run_dataset_rows(event: Mapping[str, Any], eid: str) -> list[dict[str, Any]]:
    rows = []
    base = _event_base(event, eid)
    for direction, key in (("input", "inputs"), ("output", "outputs")):
        for ds in event.get(key) or []:
            facets = dict(ds.get("facets") or {})
            facets.update(ds.get("inputFacets") or {})
            facets.update(ds.get("outputFacets") or {})
            rows.append(
                {
                    **base,
                    "direction": direction,
                    "dataset_namespace": ds.get("namespace"),
                    "dataset_name": ds.get("name"),
                    "table_name": ev.dataset_table(ds),
                    "dataset_type": ev.dataset_type(ds),
                    "version": ev.dataset_version(ds),
                    "facets": _dumps(facets),
                }
            )
    return rows
