"""The model registry's Iceberg tables, and how lineage events become their rows.

`lineage.model_versions` (one row per registered version) and `lineage.model_alias_events` (one
row per alias move or archive: the history, never updated in place). The `models` package writes
them directly (version allocation needs read-your-writes), and the lineage consumer upserts the
same rows from the events, so a registry fed only through Kafka, by any producer, is complete too.

This module is generic on purpose: it knows the two Tidemark facets (`tidemark_modelVersion` on a
MODEL output of a COMPLETE event, `tidemark_modelAlias` on a MODEL dataset of an alias move), never
the `models` package (imports point models -> lineage -> lakehouse).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lakehouse.config import Settings
from lakehouse.tables import NO_REBASE, TableName, append_missing, ensure_table, with_commit_retry
from lakehouse.times import parse_time
from lineage import events as ev

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

VERSIONS = "model_versions"
ALIAS_EVENTS = "model_alias_events"
VERSION_FACET = "tidemark_modelVersion"
ALIAS_FACET = "tidemark_modelAlias"
SYNC_JOB = "tidemark.lineage.registry-sync"
# The alias-events action that archives a version (its alias column is empty).
ARCHIVE = "archive"


def schemas() -> dict[str, Any]:
    from pyiceberg.schema import Schema
    from pyiceberg.types import BooleanType, IntegerType, TimestamptzType

    from lineage.store import column as s

    return {
        VERSIONS: Schema(
            s(1, "model", required=True),
            s(2, "version", IntegerType(), required=True),
            s(3, "run_id", required=True),
            s(4, "job_name"),
            s(5, "entry_point"),
            s(6, "artifact_uri"),
            s(7, "sha256"),
            s(8, "metrics"),  # JSON {name: value}
            s(9, "inputs"),  # JSON [{table, snapshot_id, rows, fingerprint}]
            s(10, "parameters"),  # JSON
            s(11, "created_at", TimestamptzType(), required=True),
            s(12, "code"),  # JSON {entry_point, module, source_sha256, git_commit, git_dirty, repo}
            s(13, "environment"),  # JSON {python, platform, packages}
            s(14, "primary_metric"),
            s(15, "metric_goal"),  # "max" or "min"
            s(16, "card_uri"),
        ),
        ALIAS_EVENTS: Schema(
            s(1, "event_time", TimestamptzType(), required=True),
            s(2, "model", required=True),
            s(3, "alias", required=True),
            s(4, "version", IntegerType()),
            s(5, "previous_version", IntegerType()),
            s(6, "action", required=True),  # set | archive
            s(7, "reason"),
            s(8, "run_id"),
            s(9, "forced", BooleanType()),
            s(10, "overridden"),  # why promotion was refused, when --force overrode it
        ),
    }


@functools.cache
def arrow_schema(short: str) -> pa.Schema:
    # Built once per process: every registration writes a row with it (Arrow schemas are immutable).
    return schemas()[short].as_arrow()


def ensure_tables(catalog: Catalog, settings: Settings, only: Iterable[str] | None = None) -> dict[str, Table]:
    """Create the registry tables if missing; add columns a registry made by an older Tidemark lacks.

    `only`: just these tables (a training run needs `model_versions`, not the alias history).
    """
    from pyiceberg.exceptions import NoSuchTableError

    out = {}
    for short, schema in schemas().items():
        if only is not None and short not in only:
            continue
        name = TableName(settings.lineage.namespace, short)
        try:
            # One catalog round trip in the common case (every training run opens the registry).
            table = catalog.load_table(name.identifier)
        except NoSuchTableError:
            table = ensure_table(catalog, name, schema, properties={"format-version": "2", **NO_REBASE})
        missing = [f.name for f in schema.fields if f.name not in {x.name for x in table.schema().fields}]
        if missing:

            def evolve() -> None:
                t = catalog.load_table(name.identifier)
                if all(n in {x.name for x in t.schema().fields} for n in missing):
                    return
                with t.update_schema() as update:
                    update.union_by_name(schema)

            with_commit_retry(evolve, f"adding columns {', '.join(missing)} to {name}")
            table = catalog.load_table(name.identifier)
        out[short] = table
    return out


# -- facets ---------------------------------------------------------------------------------------


def version_facet(producer: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """Everything a `model_versions` row holds, as a facet of the MODEL output dataset."""
    return ev.facet(
        producer,
        f"{ev.TIDEMARK_FACETS}/ModelVersionDatasetFacet.json",
        model=row["model"],
        version=int(row["version"]),
        jobName=row.get("job_name"),
        entryPoint=row.get("entry_point"),
        artifactUri=row.get("artifact_uri"),
        sha256=row.get("sha256"),
        metrics=json.loads(row.get("metrics") or "{}"),
        inputs=json.loads(row.get("inputs") or "[]"),
        parameters=json.loads(row.get("parameters") or "{}"),
        createdAt=_iso(row["created_at"]),
        code=json.loads(row.get("code") or "null"),
        environment=json.loads(row.get("environment") or "null"),
        primaryMetric=row.get("primary_metric"),
        metricGoal=row.get("metric_goal"),
        cardUri=row.get("card_uri"),
    )


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def version_row_from_event(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`model_versions` rows carried by a COMPLETE event's MODEL outputs (none for other events)."""
    if event.get("eventType") != "COMPLETE":
        return []
    rows = []
    for ds in event.get("outputs") or []:
        facet = (ds.get("facets") or {}).get(VERSION_FACET)
        if ev.dataset_type(ds) != "MODEL" or not isinstance(facet, dict):
            continue
        try:
            rows.append(
                {
                    "model": str(facet["model"]),
                    "version": int(facet["version"]),
                    "run_id": str(event["run"]["runId"]),
                    "job_name": facet.get("jobName") or (event.get("job") or {}).get("name"),
                    "entry_point": facet.get("entryPoint"),
                    "artifact_uri": facet.get("artifactUri"),
                    "sha256": facet.get("sha256"),
                    "metrics": _dumps(facet.get("metrics") or {}),
                    "inputs": _dumps(facet.get("inputs") or []),
                    "parameters": _dumps(facet.get("parameters") or {}),
                    "created_at": parse_time(str(facet.get("createdAt") or event["eventTime"]), parameter="createdAt"),
                    "code": _dumps(facet.get("code")),
                    "environment": _dumps(facet.get("environment")),
                    "primary_metric": facet.get("primaryMetric"),
                    "metric_goal": facet.get("metricGoal"),
                    "card_uri": facet.get("cardUri"),
                }
            )
        except (KeyError, TypeError, ValueError):
            continue  # a malformed facet from some producer: the event itself is still stored
    return rows


def alias_rows_from_event(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`model_alias_events` rows carried by an event's datasets with a `tidemark_modelAlias` facet."""
    if event.get("eventType") != "COMPLETE":
        return []
    rows = []
    for ds in list(event.get("inputs") or []) + list(event.get("outputs") or []):
        facet = (ds.get("facets") or {}).get(ALIAS_FACET)
        if not isinstance(facet, dict):
            continue
        try:
            prev = facet.get("previousVersion")
            rows.append(
                {
                    "event_time": parse_time(str(event["eventTime"]), parameter="eventTime"),
                    "model": str(ds["name"]),
                    "alias": str(facet.get("alias") or ""),
                    "version": int(ev.dataset_version(ds) or 0) or None,
                    "previous_version": int(prev) if prev is not None else None,
                    "action": str(facet.get("action") or "set"),
                    "reason": facet.get("reason"),
                    "run_id": str(event["run"]["runId"]),
                    "forced": bool(facet.get("forced", False)),
                    "overridden": facet.get("overridden"),
                }
            )
        except (KeyError, TypeError, ValueError):
            continue
    return rows


# -- the consumer's upsert ------------------------------------------------------------------------


def upsert_from_events(catalog: Catalog, settings: Settings, events: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Add the registry rows these events carry and the tables lack; returns rows added per table.

    Idempotent: versions are keyed by (model, version), alias moves by their run id, so a replay,
    or an event whose row the producer already wrote directly, adds nothing.
    """
    events = list(events)
    versions = [r for e in events for r in version_row_from_event(e)]
    aliases = [r for e in events for r in alias_rows_from_event(e)]
    added = {VERSIONS: 0, ALIAS_EVENTS: 0}
    if not versions and not aliases:
        return added
    ensure_tables(catalog, settings)
    for short, rows, key_columns in ((VERSIONS, versions, ("model", "version")), (ALIAS_EVENTS, aliases, ("run_id", "model", "alias"))):
        if rows:
            # NO_REBASE tables: a concurrent registration makes the commit re-read, never duplicate a version.
            added[short] = append_missing(
                catalog, (settings.lineage.namespace, short), rows, key_columns, arrow_schema(short), job_name=SYNC_JOB
            )
    return added
