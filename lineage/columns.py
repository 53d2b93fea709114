"""Column-level lineage: the `lineage.column_lineage` table, the `columnLineage` facet, and its rows.

One row per (output field, input field, transformation) of a run, from the OpenLineage
`ColumnLineageDatasetFacet` on an output dataset of any producer (Spark, dbt, Airflow's SQL
operators, Tidemark's own ingest and training runs). Both forms of the facet are read:

- 1.0: `fields.F.inputFields[] + fields.F.transformationType/transformationDescription`; the
  deprecated type (IDENTITY or MASKED) becomes type DIRECT with that subtype (the 1.1 spec's own
  mapping), MASKED also sets `masking`, and an empty string is no value;
- 1.1+: `fields.F.inputFields[].transformations[]` (type DIRECT|INDIRECT, subtype, description,
  masking), one row per transformation; and `dataset[]`, dependencies of the whole dataset
  (filters, joins, sorts): stored once for every field the facet names, with `whole_dataset`
  set (so a walk needs no second pass to apply them), or with no output field when it names none.

Versions: the output dataset's own `version` facet; an input field's version is that of the
event's input dataset with the same namespace and name (the facet names inputs without versions).
`output_table` / `input_table` hold the catalog identity from the `symlinks` facet (`NS.TABLE`), so
`NS.TABLE.COLUMN` finds a column whoever named the dataset.

The consumer upserts the rows keyed by run and edge (`upsert_from_events`), so a replayed batch,
or START and COMPLETE events carrying the same facet, add nothing twice. A malformed facet is
skipped (the event itself is stored by the consumer as usual), never a stopped consumer.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.config import Settings
from lakehouse.tables import NO_REBASE, TableName, append_missing, ensure_table, transaction, with_commit_retry
from lakehouse.times import parse_time
from lineage import events as ev

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

COLUMN_LINEAGE = "column_lineage"
FACET = "columnLineage"
# The facet's name as it appears in an event's bytes: the consumer looks at events containing it only.
FACET_BYTES = b'"columnLineage"'
FACET_SCHEMA = f"{ev.FACETS}/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet"
SYNC_JOB = "tidemark.lineage.column-sync"
# What makes a row one edge of one run (the upsert key).
KEY = (
    "run_id", "output_namespace", "output_name", "output_version", "output_field",
    "input_namespace", "input_name", "input_version", "input_field",
    "transformation_type", "transformation_subtype", "transformation_description", "whole_dataset",
)
# How the rows are laid out in each file: by output column, in row groups of ROW_GROUP rows. An
# upstream walk's every step looks up output columns, and DuckDB skips the row groups whose
# min/max of these columns cannot hold them (bench_column_lineage, 1M edges: cold walk CPU p95
# ~140 -> ~80-97 ms; one unsorted row group per file could not be skipped at all).
ORDER = ("output_namespace", "output_name", "output_field")
ROW_GROUP = 32_768
_ROW_GROUP_PROPERTY = "write.parquet.row-group-limit"


def schema() -> Any:
    from pyiceberg.schema import Schema
    from pyiceberg.types import BooleanType, TimestamptzType

    from lineage.store import column as s

    return Schema(
        s(1, "event_time", TimestamptzType(), required=True),
        s(2, "run_id", required=True),
        s(3, "job_namespace"),
        s(4, "job_name"),
        s(5, "output_namespace", required=True),
        s(6, "output_name", required=True),
        s(7, "output_table"),  # NS.TABLE from the symlinks facet
        s(8, "output_type"),  # datasetType: TABLE, MODEL, ...
        s(9, "output_version"),
        s(10, "output_field"),  # empty: a dependency of the whole dataset, which names no fields
        s(11, "input_namespace", required=True),
        s(12, "input_name", required=True),
        s(13, "input_table"),
        s(14, "input_version"),
        s(15, "input_field", required=True),
        s(16, "transformation_type"),  # DIRECT | INDIRECT
        s(17, "transformation_subtype"),  # IDENTITY, TRANSFORMATION, AGGREGATION, JOIN, FILTER, ...
        s(18, "transformation_description"),
        s(19, "masking", BooleanType()),
        s(20, "whole_dataset", BooleanType()),  # from the facet's `dataset`: every field depends on it
    )


@functools.cache
def arrow_schema() -> pa.Schema:
    return schema().as_arrow()


def ensure(catalog: Catalog, settings: Settings) -> Table:
    """The table, made if missing; one made before its layout (ROW_GROUP) gets the row-group
    property here, once, so every write after (a batch's append, compaction) uses it."""
    name = TableName(settings.lineage.namespace, COLUMN_LINEAGE)
    table = ensure_table(catalog, name, schema(), properties={"format-version": "2", "write.parquet.compression-codec": "zstd",
                                                              _ROW_GROUP_PROPERTY: str(ROW_GROUP), **NO_REBASE})
    if table.properties.get(_ROW_GROUP_PROPERTY) == str(ROW_GROUP):
        return table

    def attempt() -> Table:
        t = catalog.load_table(name.identifier)
        with transaction(t) as tx:
            tx.set_properties({_ROW_GROUP_PROPERTY: str(ROW_GROUP)})
        return catalog.load_table(name.identifier)

    return with_commit_retry(attempt, f"setting {_ROW_GROUP_PROPERTY} on {name}")


# -- the facet, for emitters -----------------------------------------------------------------------


@dataclass(frozen=True)
class InputField:
    """One input column an output column is computed from, and how."""

    namespace: str
    name: str
    field: str
    type: str = "DIRECT"  # DIRECT | INDIRECT
    subtype: str = "IDENTITY"  # IDENTITY | TRANSFORMATION | AGGREGATION | JOIN | FILTER | ...
    description: str | None = None
    masking: bool = False

    @classmethod
    def of(cls, dataset: Mapping[str, Any], field: str, **how: Any) -> InputField:
        """A field of an OpenLineage dataset (as `lineage.events` builds them)."""
        return cls(str(dataset["namespace"]), str(dataset["name"]), field, **how)

    def to_json(self) -> dict[str, Any]:
        how: dict[str, Any] = {"type": self.type, "subtype": self.subtype, "masking": self.masking}
        if self.description:
            how["description"] = self.description
        return {"namespace": self.namespace, "name": self.name, "field": self.field, "transformations": [how]}


def facet(producer: str, fields: Mapping[str, Sequence[InputField]], dataset: Sequence[InputField] = ()) -> dict[str, Any]:
    """A `columnLineage` dataset facet (1.2 form): each output field with the input fields it comes from."""
    out = ev.facet(
        producer,
        FACET_SCHEMA,
        fields={name: {"inputFields": [f.to_json() for f in inputs]} for name, inputs in fields.items()},
    )
    if dataset:
        out["dataset"] = [f.to_json() for f in dataset]
    return out


# -- rows from events ------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A value as text, or None for missing and empty (the 1.0 form sends "" for no value)."""
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _transformations(entry: Mapping[str, Any], legacy: Mapping[str, Any]) -> list[tuple[str | None, str | None, str | None, bool | None]]:
    """(type, subtype, description, masking) of one input field, in either form of the facet."""
    found = entry.get("transformations")
    if isinstance(found, list) and found:
        return [
            (_text(t.get("type")), _text(t.get("subtype")), _text(t.get("description")),
             bool(t["masking"]) if t.get("masking") is not None else None)
            for t in found
            if isinstance(t, dict)
        ]
    old_type = _text(legacy.get("transformationType"))
    description = _text(legacy.get("transformationDescription"))
    if old_type is None:
        return [(None, None, description, None)]
    return [("DIRECT", old_type.upper(), description, old_type.upper() == "MASKED")]


def rows_from_event(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`lineage.column_lineage` rows carried by the `columnLineage` facets of an event's outputs.

    A malformed facet (not an object, input fields without a name or field) gives no rows for
    what is malformed; the rest of the event still gives its rows.
    """
    try:
        when = parse_time(str(event["eventTime"]), parameter="eventTime")
        run_id = str(event["run"]["runId"])
    except (KeyError, TypeError, ValueError):
        return []
    job = event.get("job")
    job = job if isinstance(job, dict) else {}
    inputs = {}
    for ds in event.get("inputs") or ():
        if isinstance(ds, dict):
            own = ds.get("facets")
            own = own if isinstance(own, dict) else {}
            inputs[(ds.get("namespace"), ds.get("name"))] = (ev.version_in(own), ev.table_in(own))
    rows: list[dict[str, Any]] = []
    for ds in event.get("outputs") or ():
        if not isinstance(ds, dict) or not isinstance(ds.get("facets"), dict):
            continue
        own = ds["facets"]
        cl = own.get(FACET)
        if not isinstance(cl, dict):
            continue
        try:
            base = {
                "event_time": when,
                "run_id": run_id,
                "job_namespace": _text(job.get("namespace")),
                "job_name": _text(job.get("name")),
                "output_namespace": str(ds.get("namespace") or ""),
                "output_name": str(ds["name"]),
                "output_table": ev.table_in(own),
                "output_type": ev.type_in(own),
                "output_version": ev.version_in(own),
            }
        except (KeyError, TypeError, AttributeError):
            continue
        fields = cl.get("fields")
        fields = fields if isinstance(fields, dict) else {}
        targets: list[tuple[str | None, Mapping[str, Any], Any, bool]] = [
            (str(name), spec, spec.get("inputFields"), False) for name, spec in fields.items() if isinstance(spec, dict)
        ]
        if isinstance(cl.get("dataset"), list):
            targets += [(str(name), {}, cl["dataset"], True) for name in fields] or [(None, {}, cl["dataset"], True)]
        for out_field, legacy, entries, whole in targets:
            for entry in entries if isinstance(entries, list) else ():
                if not isinstance(entry, dict) or entry.get("name") is None or entry.get("field") is None:
                    continue
                ns, name = str(entry.get("namespace") or ""), str(entry["name"])
                version, table = inputs.get((entry.get("namespace"), entry.get("name")), (None, None))
                for kind, subtype, description, masking in _transformations(entry, legacy):
                    rows.append({
                        **base,
                        "output_field": out_field,
                        "input_namespace": ns,
                        "input_name": name,
                        "input_table": table,
                        "input_version": version,
                        "input_field": str(entry["field"]),
                        "transformation_type": kind,
                        "transformation_subtype": subtype,
                        "transformation_description": description,
                        "masking": masking,
                        "whole_dataset": whole,
                    })
    return rows


def upsert_from_events(catalog: Catalog, settings: Settings, events: Iterable[Mapping[str, Any]]) -> int:
    """Add the column edges these events carry and the table lacks; returns how many were added.

    Idempotent: keyed by run and edge (`KEY`), so a replayed batch adds nothing.
    """
    rows = [r for e in events for r in rows_from_event(e)]
    if not rows:
        return 0
    from pyiceberg.expressions import In

    ensure(catalog, settings)
    return append_missing(
        catalog,
        (settings.lineage.namespace, COLUMN_LINEAGE),
        rows,
        KEY,
        arrow_schema(),
        job_name=SYNC_JOB,
        row_filter=In(term="run_id", literals=sorted({r["run_id"] for r in rows})),
        # Only what is written is put in ORDER, by Arrow: a batch's rows can span several row groups.
        sort_by=ORDER,
    )
