"""The lineage tables in Iceberg (namespace `lineage` by default), their schemas and rows."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import orjson

from lakehouse.config import Settings
from lakehouse.tables import NO_REBASE, TableName, ensure_table
from lakehouse.times import parse_time
from lineage import actors
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
            # RunEvent, JobEvent or DatasetEvent (OpenLineage 2.x static lineage; see docs/events.md)
            s(12, "event_kind"),
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
            # The dataset's symlink identity (Spark's TABLE `default.x` for `file:/.../x`): walks
            # and node names resolve it (lineage.graph).
            s(14, "symlink_namespace"),
            s(15, "symlink_name"),
            # inputFacets / outputFacets, apart from the dataset facets in `facets`.
            s(16, "input_facets"),
            s(17, "output_facets"),
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
            s(12, "parent_job_namespace"),
            s(13, "root_job_namespace"),
            s(14, "root_job_name"),
            # Who ran it (the `tidemark_actor` run facet, `lineage.actors`): "everything alice
            # promoted" is a filter on these, not a JSON walk of run_facets. Airflow runs are
            # named after the DAG owner (`airflow:<owner>`); `triggered_by` is the user who started the DAG run.
            s(15, "actor"),
            s(16, "actor_kind"),
            s(17, "triggered_by"),
        ),
        JOBS: Schema(
            s(1, "job_namespace", required=True),
            s(2, "job_name", required=True),
            s(3, "first_seen", TimestamptzType(), required=True),
            s(4, "first_run_id"),
            s(5, "job_facets"),
            # A row per job facet whose value changed (facet_name set; see `job_facet_changes`);
            # the job's first row has none.
            s(6, "facet_name"),
            s(7, "facet_value"),
            s(8, "facet_time", TimestamptzType()),
        ),
        DEAD_LETTERS: Schema(
            s(1, "received_time", TimestamptzType(), required=True),
            s(2, "topic"),
            s(3, "kafka_partition", IntegerType()),
            s(4, "kafka_offset", LongType()),
            s(5, "reason", required=True),
            s(6, "raw", BinaryType()),
            # sha256 of `raw`: the same bytes are one dead letter, however often they are sent.
            s(7, "dead_letter_id"),
        ),
    }


def _partition_by_day(schema: Any, column: str) -> Any:
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import DayTransform

    source = schema.find_field(column).field_id
    return PartitionSpec(PartitionField(source_id=source, field_id=1000, transform=DayTransform(), name=f"{column}_day"))


def ensure_tables(catalog: Catalog, settings: Settings, missing_only: bool = False) -> dict[str, Table]:
    """Create the lineage tables if missing (partitioned by event day) and return them by short name.

    `missing_only`: return just the tables it created, after one listing of the namespace (the
    query path: a question must not pay for loading five tables it will load again anyway).
    """
    from pyiceberg.exceptions import NoSuchNamespaceError

    out: dict[str, Table] = {}
    existing: set[str] = set()
    if missing_only:
        try:
            existing = {ident[-1] for ident in catalog.list_tables(settings.lineage.namespace)}
        except NoSuchNamespaceError:
            pass
    for short, schema in _schemas().items():
        if short in existing:
            continue
        time_col = {DEAD_LETTERS: "received_time", JOBS: "first_seen"}.get(short, "event_time")
        out[short] = ensure_table(
            catalog,
            TableName(settings.lineage.namespace, short),
            schema,
            partition_spec=_partition_by_day(schema, time_col),
            properties={"format-version": "2", "write.parquet.compression-codec": "zstd", **NO_REBASE, **_no_metrics(schema)},
        )
    if not missing_only:
        for short, table in out.items():
            out[short] = add_new_columns(table, _schemas()[short])
    return out


def add_new_columns(table: Table, schema: Any) -> Table:
    """Add the columns this version of Tidemark writes to a table an older one created (new
    columns are optional and appended with the next field ids, so old files read them as null)."""
    have = {f.name for f in table.schema().fields}
    if all(f.name in have for f in schema.fields):
        return table
    from lakehouse.tables import with_commit_retry

    def attempt() -> Table:
        table.refresh()  # a racing consumer may have added them already: then this is a no-op
        with table.update_schema() as update:
            update.union_by_name(schema)
        return table

    return with_commit_retry(attempt, f"adding the new columns of {'.'.join(table.name())}")


def _no_metrics(schema: Any) -> dict[str, str]:
    """The JSON text columns are read whole, never filtered on: no min/max statistics for them,
    in the Parquet files or the manifests (computing them cost ~1 µs per 1.4 KB payload)."""
    return {f"write.metadata.metrics.column.{f.name}": "none" for f in schema.fields if f.name in JSON_COLUMNS}


@functools.cache
def arrow_schema(short: str) -> pa.Schema:
    return _schemas()[short].as_arrow()


@functools.cache
def _field_types() -> dict[str, pa.DataType]:
    """Arrow type of each column name the row tables use (a name has one type in all of them)."""
    return {f.name: f.type for short in ROW_TABLES for f in arrow_schema(short)}


# Columns holding JSON text, kept as the bytes orjson writes until they become one Arrow array.
JSON_COLUMNS = frozenset(("payload", "run_facets", "job_facets", "facets", "input_facets", "output_facets", "facet_value"))
ROW_TABLES = (EVENTS, RUNS, JOBS, RUN_DATASETS)
# Columns whose values repeat across a batch: dictionary-encoded in Parquet. Elsewhere (ids, times,
# JSON) pyarrow's attempt at a dictionary is wasted work before it falls back to plain.
DICTIONARY_COLUMNS = frozenset((
    "event_type", "job_namespace", "job_name", "producer", "kafka_partition", "parent_job_name",
    "direction", "dataset_namespace", "dataset_name", "table_name", "dataset_type",
    "event_kind", "parent_job_namespace", "root_job_namespace", "root_job_name", "symlink_namespace",
    "actor", "actor_kind", "triggered_by",
))


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def epoch_us(when: datetime) -> int:
    """Microseconds since 1970 (UTC): how a timestamp column is built fast (see `Columns`)."""
    return (when - _EPOCH) // _MICROSECOND


# A DatasetEvent's dataset is stored with direction "dataset": described, neither read nor written.
_RUN_DIRECTIONS = (("input", "inputs"), ("output", "outputs"))
_DIRECTIONS = (*_RUN_DIRECTIONS, ("dataset", "datasets"))
# The key `decode` marks a normalised static event with (JobEvent, DatasetEvent).
KIND_KEY = "__tidemark_kind"
# Dataset facets the model registry and drift tables are built from (model_store.VERSION_FACET,
# ALIAS_FACET, drift_store.DRIFT_FACET): events carrying one also go to those syncs.
# (`tidemark_aliasRequest`: a request, approval or rejection of a protected alias's move, `lineage.alias_requests`.)
REGISTRY_FACETS = frozenset(("tidemark_modelVersion", "tidemark_modelAlias", "tidemark_drift", "tidemark_aliasRequest"))


def _dumps(value: Any) -> bytes:
    # Most facet groups are empty: skip the call.
    return orjson.dumps(value) if value else b"{}"


def _obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else empty: a malformed facet (a string, a list where an
    object belongs) is kept as sent in the JSON columns, but never breaks the rest of the event."""
    return value if type(value) is dict else {}


def _symlink(facets: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The dataset's first TABLE symlink (else its first symlink): namespace and name."""
    idents = _obj(facets.get("symlinks")).get("identifiers")
    if type(idents) is not list:
        return None, None
    first = None
    for ident in idents:
        if type(ident) is dict and ident.get("name"):
            if ident.get("type") == "TABLE":
                first = ident
                break
            first = first or ident
    if first is None:
        return None, None
    ns = first.get("namespace")
    return (str(ns) if ns is not None else None), str(first["name"])


class Columns:
    """The rows events give `events`, `runs`, `jobs` and `run_datasets`, as Arrow columns.

    Each event adds one tuple (and one per dataset); at the end the tuples are transposed once
    (`zip`, in C) and each column becomes one Arrow array. The columns every table shares (event
    id, time, type, run, job) are converted once and reused: `runs` and `jobs` have one row per
    event as `events` does, and `run_datasets` takes them by event index. Profiled on 1.4 KB
    events, transposing row tuples and converting the same values four times (timezone-aware
    datetimes at ~0.5 us each) cost more than parsing the JSON.
    `jobs` gets every event's job (the consumer keeps the rows of jobs it has not stored yet);
    each `run_datasets` row names its event (0, 1, ... in the order added) in `dataset_event`;
    `job_facets` holds (event index, job, event time in microseconds, facets) of each event that
    carries job facets, from which the consumer writes the facet changes to `jobs`.
    """

    _BASE = ("event_id", "event_time", "event_type", "run_id", "job_namespace", "job_name")
    _EVENT = ("parent_run_id", "producer", "payload", "kafka_partition", "kafka_offset", "event_kind")
    _RUN = ("parent_job_name", "root_run_id", "error_message", "run_facets", "job_facets",
            "parent_job_namespace", "root_job_namespace", "root_job_name", "actor", "actor_kind", "triggered_by")
    _DATASET = ("direction", "dataset_namespace", "dataset_name", "table_name", "dataset_type", "version", "facets",
                "symlink_namespace", "symlink_name", "input_facets", "output_facets")
    _PER_EVENT = _BASE + _EVENT + _RUN  # the order of an event's tuple
    _JOB_FACET = ("facet_name", "facet_value", "facet_time")  # null on the per-event job rows

    def __init__(self) -> None:
        # One tuple per event (in the order of _PER_EVENT) and one per dataset (of _DATASET).
        self.events: list[tuple[Any, ...]] = []
        self.datasets: list[tuple[Any, ...]] = []
        self.dataset_event: list[int] = []
        self.job_facets: list[tuple[int, tuple[str, str], int, dict[str, Any]]] = []
        self.count = 0

    def add(
        self,
        event: Mapping[str, Any],
        eid: str,
        partition: int | None,
        offset: int | None,
        payload: bytes | None = None,
        event_time: datetime | None = None,
    ) -> tuple[tuple[str, str], bool]:
        """Add one checked event (`payload`: its bytes as received; `event_time`: its eventTime,
        if the caller parsed it already). Returns its job's identity, and whether a dataset of it
        carries a model registry or drift facet (`REGISTRY_FACETS`).

        Every value is worked out before anything is appended, so an event that fails half way
        leaves the columns aligned. Facets that are not objects are stored as sent and ignored
        for identity, version and type.
        """
        run = event["run"]
        job = _obj(event.get("job"))
        run_facets = _obj(run.get("facets"))
        parent = _obj(run_facets.get("parent"))
        parent_job, root = _obj(parent.get("job")), _obj(parent.get("root"))
        root_job = _obj(root.get("job"))
        actor = _obj(run_facets.get(actors.FACET))
        job_namespace, job_name = job.get("namespace"), job.get("name")
        when = epoch_us(event_time or parse_time(str(event["eventTime"]), parameter="eventTime"))
        job_facets = job.get("facets")
        values = (
            eid,
            when,
            event.get("eventType"),
            str(run["runId"]),
            job_namespace,
            job_name,
            _obj(parent.get("run")).get("runId"),
            event.get("producer"),
            payload if payload is not None else _dumps(event),
            partition,
            offset,
            event.get(KIND_KEY, "RunEvent"),
            parent_job.get("name"),
            _obj(root.get("run")).get("runId"),
            _obj(run_facets.get("errorMessage")).get("message"),
            _dumps(run.get("facets")),
            _dumps(job_facets),
            parent_job.get("namespace"),
            root_job.get("namespace"),
            root_job.get("name"),
            actor.get("name"),
            actor.get("kind"),
            actor.get("triggeredBy"),
        )
        datasets = []
        registry = False
        for direction, key in _DIRECTIONS if KIND_KEY in event else _RUN_DIRECTIONS:
            for ds in event.get(key) or ():
                raw = ds.get("facets")
                own = _obj(raw)
                more_in, more_out = ds.get("inputFacets"), ds.get("outputFacets")
                registry = registry or not REGISTRY_FACETS.isdisjoint(own) or (
                    type(more_in) is dict and not REGISTRY_FACETS.isdisjoint(more_in))
                sym_ns, sym_name = _symlink(own) if "symlinks" in own else (None, None)
                datasets.append((direction, ds.get("namespace"), ds.get("name"), _table_in(own),
                                 _type_in(own), _version_in(own), _dumps(raw), sym_ns, sym_name,
                                 _dumps(more_in) if more_in else None, _dumps(more_out) if more_out else None))
        self.events.append(values)
        if datasets:
            self.datasets += datasets
            self.dataset_event += [self.count] * len(datasets)
        job_key = (job_namespace or "", job_name or "")
        if job_facets and type(job_facets) is dict:
            self.job_facets.append((self.count, job_key, when, job_facets))
        self.count += 1
        return job_key, registry

    def tables(self) -> dict[str, pa.Table]:
        """Each table's rows as Arrow, in the table's schema."""
        import pyarrow as pa
        import pyarrow.compute as pc

        types = _field_types()
        cols = {**_transpose(self._PER_EVENT, self.events), **_transpose(self._DATASET, self.datasets)}
        base = {name: _array(name, cols[name], types[name]) for name in self._BASE}
        arrays = {**base, **{name: _array(name, cols[name], types[name]) for name in self._EVENT + self._RUN}}
        # jobs: the job identity is required there (an event without one names the job "").
        arrays["first_seen"], arrays["first_run_id"] = base["event_time"], base["run_id"]
        jobs = {"job_namespace": pc.fill_null(base["job_namespace"], ""), "job_name": pc.fill_null(base["job_name"], "")}
        jobs.update({name: pa.nulls(self.count, types[name]) for name in self._JOB_FACET})
        at = pa.array(self.dataset_event, pa.int32())
        datasets = {name: base[name].take(at) for name in self._BASE}
        datasets.update({name: _array(name, cols[name], types[name]) for name in self._DATASET})
        out = {}
        for short, source in ((EVENTS, arrays), (RUNS, arrays), (JOBS, {**arrays, **jobs}), (RUN_DATASETS, datasets)):
            schema = arrow_schema(short)
            out[short] = pa.Table.from_arrays([source[f.name] for f in schema], schema=schema)
        return out


def job_facet_rows(changes: Sequence[tuple[tuple[str, str], int, str, bytes, str]]) -> pa.Table:
    """`jobs` rows for job facet changes: (job, event time in microseconds, facet name, its JSON, run id)."""
    import pyarrow as pa

    types = _field_types()
    schema = arrow_schema(JOBS)
    times = pa.array([c[1] for c in changes], pa.int64()).cast(types["first_seen"])
    cols = {
        "job_namespace": pa.array([c[0][0] for c in changes], pa.string()),
        "job_name": pa.array([c[0][1] for c in changes], pa.string()),
        "first_seen": times,
        "first_run_id": pa.array([c[4] for c in changes], pa.string()),
        "job_facets": pa.nulls(len(changes), pa.string()),
        "facet_name": pa.array([c[2] for c in changes], pa.string()),
        "facet_value": _utf8_array([c[3] for c in changes]),
        "facet_time": times,
    }
    return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)


def _version_in(facets: Mapping[str, Any]) -> str | None:
    value = _obj(facets.get("version")).get("datasetVersion")
    return str(value) if value is not None else None


def _table_in(facets: Mapping[str, Any]) -> str | None:
    try:
        return ev.table_in(facets)
    except (AttributeError, TypeError):  # a symlinks facet of the wrong shape
        return None


def _type_in(facets: Mapping[str, Any]) -> str | None:
    value = _obj(facets.get("datasetType")).get("datasetType")
    return str(value) if value else None


def _transpose(names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> dict[str, Sequence[Any]]:
    """Rows of these columns -> each column's values, by name."""
    return dict(zip(names, zip(*rows))) if rows else {name: () for name in names}


def _array(name: str, values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    """One column's values as an Arrow array of the table's type."""
    import pyarrow as pa

    if name in JSON_COLUMNS:
        if None in values:  # the optional ones (input_facets, output_facets): nulls where absent
            import pyarrow.compute as pc

            absent = pa.array([v is None for v in values], pa.bool_())
            return pc.if_else(absent, pa.scalar(None, pa.string()), _utf8_array([v or b"" for v in values]))
        return _utf8_array(values)
    if pa.types.is_timestamp(typ):  # epoch microseconds
        return pa.array(values, pa.int64()).cast(typ)
    try:
        return pa.array(values, typ)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        # A producer sent a number or an object where text belongs: store its text.
        return pa.array([v if v is None or isinstance(v, str) else str(v) for v in values], typ)


def _utf8_array(values: Sequence[bytes]) -> pa.Array:
    """A string array over these bytes, which orjson wrote or accepted, so they are UTF-8.

    Joined into one buffer and wrapped: ~20x faster than converting value by value, which
    dominated the consumer's time for the ~1.3 KB payloads.
    """
    import numpy as np
    import pyarrow as pa

    data = b"".join(values)
    if len(data) >= 2**31:  # past 32-bit offsets: let Arrow split it into chunks
        return pa.array(values, pa.binary()).cast(pa.string())
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, values), dtype=np.int32, count=len(values)), out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def stored_event_ids(settings: Settings, event_ids: Iterable[str]) -> set[str]:
    """Which of `event_ids` the lineage store holds (`events` is written last of the row tables,
    so an id there means the event is stored everywhere); empty when there is no store yet."""
    from pyiceberg.exceptions import NoSuchTableError
    from pyiceberg.expressions import In

    from lakehouse.catalog import load_catalog

    wanted = list(event_ids)
    if not wanted:
        return set()
    try:
        table = load_catalog(settings).load_table((settings.lineage.namespace, EVENTS))
    except NoSuchTableError:
        return set()
    if table.current_snapshot() is None:
        return set()
    found: set[str] = set()
    for i in range(0, len(wanted), 1000):
        rows = table.scan(row_filter=In(term="event_id", literals=wanted[i : i + 1000]), selected_fields=("event_id",)).to_arrow()
        found.update(rows.column("event_id").to_pylist())
    return found
