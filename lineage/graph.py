"""Up- and downstream lineage: a recursive DuckDB query over `run_datasets`.

A node is one of:
- `NS.TABLE` or `NS.TABLE@SNAPSHOT` (an Iceberg table, optionally at one snapshot),
- `dataset:NAMESPACE:NAME[@VERSION]` (any dataset, e.g. a source file),
- `model:NAME[:VERSION]` (a model, optionally one version),
- `job:NAME` (every run of a job), `run:RUN_ID` (one run).
The walk goes run by run: upstream, from a run to the runs that produced its inputs; downstream,
from a run to the runs that read its outputs. `depth` counts runs. Every value is a bound
parameter: names from events or the command line never become SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lakehouse import names
from lakehouse.sql import query
from lineage.exceptions import NotFoundError

if TYPE_CHECKING:
    from datetime import datetime

    import duckdb

    from lakehouse.config import Settings

Direction = Literal["upstream", "downstream"]


@dataclass(frozen=True)
class Node:
    kind: Literal["table", "dataset", "model", "job", "run"]
    name: str
    namespace: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> Node:
        kind, sep, rest = text.partition(":")
        if sep and kind == "run" and rest:
            return cls("run", rest)
        if sep and kind == "job" and rest:
            return cls("job", rest)
        if sep and kind == "model" and rest:
            name, _, version = rest.partition(":")
            return cls("model", name, version=version or None)
        if sep and kind == "dataset" and rest:
            body, _, version = rest.rpartition("@") if "@" in rest else (rest, "", "")
            ns, sep2, name = body.rpartition(":")
            if sep2 and ns and name:
                return cls("dataset", name, namespace=ns, version=version or None)
        table, at, version = text.partition("@")
        if names.is_table(table) and (not at or version) and not any(c.isspace() for c in version):
            return cls("table", table, version=version or None)
        raise NotFoundError(
            f"{text!r} is not a lineage node; write NS.TABLE[@SNAPSHOT], dataset:NAMESPACE:NAME[@VERSION], "
            "model:NAME[:VERSION], job:NAME or run:RUN_ID"
        )


_EDGES = """
    SELECT DISTINCT run_id, job_name, direction, dataset_namespace AS ns, dataset_name AS name,
           coalesce(table_name, dataset_name) AS label, dataset_type, version
    FROM {ns}.run_datasets
    WHERE event_type IN ('COMPLETE', 'START', 'RUNNING')
"""


def _seed(node: Node, direction: Direction) -> tuple[str, list[Any]]:
    """SQL selecting the run ids the walk starts from, and its parameters."""
    if node.kind == "run":
        return "SELECT ?::VARCHAR AS run_id", [node.name]
    if node.kind == "job":
        return "SELECT DISTINCT run_id FROM e WHERE job_name = ?", [node.name]
    # A dataset: upstream starts at the runs that wrote it, downstream at the runs that read it.
    side = "output" if direction == "upstream" else "input"
    if node.kind == "table":
        where, params = "label = ?", [node.name]
    elif node.kind == "model":
        where, params = "dataset_type = 'MODEL' AND name = ?", [node.name]
    else:
        where, params = "ns = ? AND name = ?", [node.namespace, node.name]
    if node.version is not None:
        where += " AND version = ?"
        params.append(node.version)
    return f"SELECT DISTINCT run_id FROM e WHERE direction = '{side}' AND {where}", params


def connect_for_walk(settings: Settings, as_of: str | datetime | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection holding just what a walk reads: `run_datasets`, without extensions;
    as the store stood at `as_of` (see `lineage.query.connect`)."""
    from lineage.query import connect

    ns = settings.lineage.namespace
    return connect(settings, as_of, only=[f"{ns}.run_datasets"], iceberg=False)


def walk(con: duckdb.DuckDBPyConnection, node: Node, direction: Direction, depth: int, ns: str = "lineage") -> list[dict[str, Any]]:
    """Every dataset edge of every run within `depth` runs of `node`, nearest first."""
    if depth < 1:
        raise NotFoundError(f"depth must be at least 1, got {depth}", parameter="depth")
    seed_sql, params = _seed(node, direction)
    # Upstream: from a run's inputs to the runs that output them. Downstream: outputs to readers.
    here, there = ("input", "output") if direction == "upstream" else ("output", "input")
    sql = f"""
    WITH RECURSIVE e AS MATERIALIZED ({_EDGES.format(ns=f'"{ns}"')}),
    walk(depth, run_id) AS (
        SELECT 1, run_id FROM ({seed_sql})
        UNION
        SELECT w.depth + 1, nxt.run_id
        FROM walk w
        JOIN e cur ON cur.run_id = w.run_id AND cur.direction = '{here}'
        JOIN e nxt ON nxt.direction = '{there}' AND nxt.ns = cur.ns AND nxt.name = cur.name
                  -- an input read without a version matches any version of it; an equality (not
                  -- an OR) keeps this a hash join
                  AND nxt.version = coalesce(cur.version, nxt.version)
        WHERE w.depth < ?
    ),
    runs AS (SELECT run_id, min(depth) AS depth FROM walk GROUP BY run_id)
    SELECT r.depth, e.run_id, e.job_name, e.direction, e.label AS dataset, e.ns AS dataset_namespace,
           e.name AS dataset_name, e.dataset_type, e.version
    FROM runs r JOIN e USING (run_id)
    ORDER BY r.depth, e.job_name, e.run_id, e.direction, e.label
    """
    rows = query(con, sql, [*params, depth]).to_pylist()
    if not rows:
        raise NotFoundError(f"nothing in the lineage store matches {_describe(node)}; check the name, or run `tidemark lineage consume --once`")
    return rows


def _describe(node: Node) -> str:
    version = f" at {node.version}" if node.version else ""
    return f"{node.kind} {node.namespace + ':' if node.namespace else ''}{node.name}{version}"
