"""Trace queries over the lineage tables: what a run read, and which run made a snapshot.

All values are bound as parameters, never pasted into SQL text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse.sql import query

if TYPE_CHECKING:
    import duckdb


@dataclass
class SourceFile:
    path: str
    sha256: str | None


@dataclass
class Producer:
    """The run that wrote a snapshot, as the lineage store records it."""

    run_id: str
    job_name: str
    event_time: str
    sources: list[SourceFile] = field(default_factory=list)
    assertions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunInput:
    table: str
    snapshot_id: str | None
    dataset_namespace: str
    dataset_name: str
    producer: Producer | None = None


def _rows(con: duckdb.DuckDBPyConnection, text: str, params: list[Any], ns: str) -> list[dict[str, Any]]:
    return query(con, text.replace("{ns}", f'"{ns}"'), params).to_pylist()


def run_inputs(con: duckdb.DuckDBPyConnection, run_id: str, ns: str = "lineage") -> list[RunInput]:
    """Table inputs of a run, each with the snapshot it read (from its most complete event)."""
    rows = _rows(
        con,
        """
        SELECT table_name, version, dataset_namespace, dataset_name
        FROM {ns}.run_datasets
        WHERE run_id = ? AND direction = 'input' AND coalesce(dataset_type, 'TABLE') = 'TABLE'
        QUALIFY row_number() OVER (
            PARTITION BY dataset_namespace, dataset_name
            ORDER BY (event_type = 'COMPLETE') DESC, event_time DESC) = 1
        ORDER BY table_name, dataset_name
        """,
        [run_id],
        ns,
    )
    return [
        RunInput(
            table=r["table_name"] or r["dataset_name"],
            snapshot_id=r["version"],
            dataset_namespace=r["dataset_namespace"],
            dataset_name=r["dataset_name"],
        )
        for r in rows
    ]


def snapshot_producer(
    con: duckdb.DuckDBPyConnection, dataset_namespace: str, dataset_name: str, snapshot_id: str, ns: str = "lineage"
) -> Producer | None:
    """The completed run whose output was this dataset at this snapshot, with its source files."""
    rows = _rows(
        con,
        """
        SELECT run_id, job_name, CAST(event_time AS VARCHAR) AS event_time, facets
        FROM {ns}.run_datasets
        WHERE direction = 'output' AND event_type = 'COMPLETE'
          AND dataset_namespace = ? AND dataset_name = ? AND version = ?
        ORDER BY event_time
        LIMIT 1
        """,
        [dataset_namespace, dataset_name, snapshot_id],
        ns,
    )
    if not rows:
        return None
    r = rows[0]
    facets = json.loads(r["facets"] or "{}")
    sources = _rows(
        con,
        """
        SELECT DISTINCT dataset_name, version
        FROM {ns}.run_datasets
        WHERE run_id = ? AND direction = 'input' AND dataset_type = 'FILE'
        ORDER BY dataset_name
        """,
        [r["run_id"]],
        ns,
    )
    return Producer(
        run_id=r["run_id"],
        job_name=r["job_name"],
        event_time=r["event_time"],
        sources=[SourceFile(path=s["dataset_name"], sha256=s["version"]) for s in sources],
        assertions=list((facets.get("dataQualityAssertions") or {}).get("assertions") or []),
    )


def snapshot_validations(
    con: duckdb.DuckDBPyConnection, dataset_namespace: str, dataset_name: str, snapshot_id: str, run_id: str | None, ns: str = "lineage"
) -> list[list[dict[str, Any]]]:
    """The `dataQualityAssertions` of every COMPLETE event whose output was this snapshot, from the
    run `run_id` (the landing run the snapshot's own summary names; any run when None): one list
    per event, empty for an event that carries none. More than one means someone else sent an
    event claiming this landing too; the promotion gate then requires all of them to pass."""
    rows = _rows(
        con,
        """
        SELECT facets
        FROM {ns}.run_datasets
        WHERE direction = 'output' AND event_type = 'COMPLETE'
          AND dataset_namespace = ? AND dataset_name = ? AND version = ? AND (? IS NULL OR run_id = ?)
        """,
        [dataset_namespace, dataset_name, snapshot_id, run_id, run_id],
        ns,
    )
    return [list((json.loads(r["facets"] or "{}").get("dataQualityAssertions") or {}).get("assertions") or []) for r in rows]


def run_parent(con: duckdb.DuckDBPyConnection, run_id: str, ns: str = "lineage") -> dict[str, Any] | None:
    """Who started a run: the parent job and run, and the Airflow DAG run and task when there was one."""
    rows = _rows(
        con,
        """
        SELECT parent_job_name, parent_run_id, root_run_id, run_facets
        FROM {ns}.runs
        WHERE run_id = ? AND parent_run_id IS NOT NULL
        ORDER BY event_time DESC
        LIMIT 1
        """,
        [run_id],
        ns,
    )
    if not rows:
        return None
    r = rows[0]
    airflow = (json.loads(r["run_facets"] or "{}").get("tidemark_airflow")) or {}
    out: dict[str, Any] = {"job": r["parent_job_name"], "run_id": r["parent_run_id"], "root_run_id": r["root_run_id"]}
    if airflow:
        out["airflow"] = {"dag_id": airflow.get("dagId"), "dag_run_id": airflow.get("dagRunId"), "task_id": airflow.get("taskId"), "try_number": airflow.get("tryNumber")}
    # The parent and root runs themselves, when their own events are stored (Airflow's OpenLineage
    # provider emits one for every task and DAG run): followed by id, whoever emitted them.
    task_run = stored_run(con, r["parent_run_id"], ns)
    if task_run:
        out["task_run"] = task_run
    root = stored_run(con, r["root_run_id"], ns) if r["root_run_id"] and r["root_run_id"] != r["parent_run_id"] else None
    if root:
        out["dag_run"] = root
    return out


def stored_run(con: duckdb.DuckDBPyConnection, run_id: str | None, ns: str = "lineage") -> dict[str, Any] | None:
    """A run as its own events recorded it: job, producer, when it started and ended, its last state."""
    if not run_id:
        return None
    rows = _rows(
        con,
        """
        SELECT job_namespace, job_name, arg_max(event_type, event_time) AS state,
               CAST(min(event_time) FILTER (WHERE event_type = 'START') AS VARCHAR) AS started,
               CAST(max(event_time) FILTER (WHERE event_type IN ('COMPLETE', 'FAIL', 'ABORT')) AS VARCHAR) AS ended
        FROM {ns}.runs WHERE run_id = ?
        GROUP BY job_namespace, job_name
        """,
        [run_id],
        ns,
    )
    if not rows:
        return None
    return {"run_id": run_id, **rows[0]}


def run_actor(con: duckdb.DuckDBPyConnection, run_id: str | None, ns: str = "lineage") -> dict[str, Any] | None:
    """Who ran `run_id` (its `tidemark_actor` facet, `lineage.actors`), as the actor's JSON; None
    when the store lacks the run or the run did not say. Read from the facets, not the `actor`
    column, so a store written before that column existed answers too."""
    from lineage import actors

    if not run_id:
        return None
    rows = _rows(con, "SELECT run_facets FROM {ns}.runs WHERE run_id = ? ORDER BY event_time DESC LIMIT 1", [run_id], ns)
    if not rows:
        return None
    actor = actors.from_facet(json.loads(rows[0]["run_facets"] or "{}").get(actors.FACET))
    return actor.to_json() if actor else None
