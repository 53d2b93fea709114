"""Column-level up- and downstream walks: one recursive DuckDB query over `lineage.column_lineage`.

A column node is one of:
- `NS.TABLE.COLUMN` or `NS.TABLE.COLUMN@SNAPSHOT` (a column of an Iceberg table, by its catalog name),
- `dataset:NAMESPACE:NAME#FIELD[@VERSION]` (a field of any dataset, e.g. a source file's column),
- `model:NAME[:VERSION]` (every feature of a model version) or `model:NAME:VERSION#FEATURE`.

A step goes along one stored edge (output field <- input field of one run). Upstream: from a
field to the input fields its writer computed it from; downstream: from a field to the output
fields computed from it. `depth` counts edges. Where two runs meet (the input field of one is the
output field of the other), the versions must agree when both are known (exact snapshot
matching); when either side has no version, the writing run must have happened no later than
the reading run (a run cannot read what was written after it). A dependency of a whole dataset
(the facet's `dataset` list: filters, joins) is an edge into every field the facet names (the
consumer stores it so). `as_of`: the store as it stood then (Iceberg time travel). Every value is
a bound parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lakehouse.sql import query
from lineage.exceptions import NotFoundError

if TYPE_CHECKING:
    from datetime import datetime

    import duckdb

    from lakehouse.config import Settings

Direction = Literal["upstream", "downstream"]
_COLUMN = re.compile(r"^(?P<table>[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*)\.(?P<field>[^@\s]+)(?:@(?P<version>\S+))?$")
_HELP = "write NS.TABLE.COLUMN[@SNAPSHOT], dataset:NAMESPACE:NAME#FIELD[@VERSION] or model:NAME[:VERSION[#FEATURE]]"


@dataclass(frozen=True)
class ColumnNode:
    kind: Literal["table", "dataset", "model"]
    name: str
    field: str | None = None  # None: every field (a model's features)
    namespace: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> ColumnNode:
        kind, sep, rest = text.partition(":")
        if sep and kind == "model" and rest:
            body, _, feature = rest.partition("#")
            name, _, version = body.partition(":")
            if name and (version or not feature):
                return cls("model", name, field=feature or None, version=version or None)
        if sep and kind == "dataset" and "#" in rest:
            body, _, tail = rest.rpartition("#")
            field, _, version = tail.partition("@")
            ns, sep2, name = body.rpartition(":")
            if sep2 and ns and name and field:
                return cls("dataset", name, field=field, namespace=ns, version=version or None)
        m = _COLUMN.match(text)
        if m and kind not in ("model", "dataset"):
            return cls("table", m["table"], field=m["field"], version=m["version"])
        raise NotFoundError(f"{text!r} is not a column; {_HELP}", parameter="node")

    def describe(self) -> str:
        where = f"{self.namespace}:{self.name}" if self.namespace else self.name
        what = f"{where}.{self.field}" if self.field else f"every feature of {where}"
        return f"{self.kind} {what}{' at ' + self.version if self.version else ''}"


# What a step carries: an edge's ends and how (dataset-level dependencies are stored once per
# field they apply to, so every edge is one row and each step is one hash join built on the walk's
# few rows and probed by a scan of these columns).
_COLS = (
    "run_id", "job_name", "event_time", "o_ns", "o_name", "o_label", "o_type", "o_ver", "o_field",
    "i_ns", "i_name", "i_label", "i_ver", "i_field", "t_type", "t_subtype", "t_desc",
)
_EDGES = """
    SELECT run_id, job_name, event_time, output_namespace AS o_ns, output_name AS o_name, coalesce(output_table, output_name) AS o_label,
           output_type AS o_type, output_version AS o_ver, output_field AS o_field, input_namespace AS i_ns, input_name AS i_name,
           coalesce(input_table, input_name) AS i_label, input_version AS i_ver, input_field AS i_field,
           transformation_type AS t_type, transformation_subtype AS t_subtype, transformation_description AS t_desc
    FROM {t} WHERE output_field IS NOT NULL
"""


def _seed(node: ColumnNode, side: str) -> tuple[str, list[Any]]:
    """The WHERE clause picking the edges a walk starts from (`side`: 'o' or 'i'), and its parameters."""
    params: list[Any]
    if node.kind == "model":
        where, params = f"{side}_type = 'MODEL' AND {side}_name = ?", [node.name]
    elif node.kind == "table":
        where, params = f"{side}_label = ?", [node.name]
    else:
        where, params = f"{side}_ns = ? AND {side}_name = ?", [node.namespace, node.name]
    if node.field is not None:
        where += f" AND {side}_field = ?"
        params.append(node.field)
    if node.version is not None:
        where += f" AND {side}_ver = ?"
        params.append(node.version)
    return where, params


def connect_for_walk(settings: Settings, as_of: str | datetime | None = None) -> duckdb.DuckDBPyConnection:
    """DuckDB with just `column_lineage` (created if missing), as the store stood at `as_of`.

    Lean on purpose (a cold walk's budget is a few hundred ms): one catalog, one namespace listed,
    no extensions (the view reads the snapshot's Parquet files).
    """
    from lakehouse import sql, times
    from lakehouse.catalog import load_catalog
    from lineage import columns

    when = None if as_of is None else times.parse_time(as_of, parameter="as_of")
    catalog = load_catalog(settings)
    columns.ensure(catalog, settings)
    con = sql.connect(settings.catalog.properties, iceberg=False)
    ns = settings.lineage.namespace
    sql.attach_tables(con, catalog, namespaces=[ns], as_of_ms=int(when.timestamp() * 1000) if when else None, only=[f"{ns}.{columns.COLUMN_LINEAGE}"])
    return con


def walk(
    con: duckdb.DuckDBPyConnection, node: ColumnNode, direction: Direction, depth: int, ns: str = "lineage"
) -> list[dict[str, Any]]:
    """Every column edge within `depth` edges of `node`, nearest first (each edge at its least depth)."""
    if depth < 1:
        raise NotFoundError(f"depth must be at least 1, got {depth}", parameter="depth")
    # Upstream: from an edge's input field to the edges that output it; downstream the other way.
    near, far = ("i", "o") if direction == "upstream" else ("o", "i")
    seed_where, params = _seed(node, "o" if direction == "upstream" else "i")
    cols = ", ".join(_COLS)
    nxt_cols = ", ".join(f"nxt.{c}" for c in _COLS)
    # Upstream, the next edge wrote what the current one read, so it must not be later; downstream
    # the next edge read what the current one wrote, so it must not be earlier.
    later, earlier = ("w", "nxt") if direction == "upstream" else ("nxt", "w")
    t = f'"{ns}"."column_lineage"'
    sql = f"""
    WITH RECURSIVE e AS NOT MATERIALIZED ({_EDGES.format(t=t)}),
    walk(depth, {cols}) AS (
        SELECT 1, {cols} FROM e WHERE {seed_where}
        UNION
        SELECT w.depth + 1, {nxt_cols}
        FROM walk w
        JOIN e nxt ON nxt.{far}_ns = w.{near}_ns AND nxt.{far}_name = w.{near}_name AND nxt.{far}_field = w.{near}_field
        WHERE w.depth < ?
          AND CASE WHEN w.{near}_ver IS NOT NULL AND nxt.{far}_ver IS NOT NULL THEN w.{near}_ver = nxt.{far}_ver
                   ELSE {earlier}.event_time <= {later}.event_time END
    )
    SELECT min(depth) AS depth, run_id, job_name, CAST(min(event_time) AS VARCHAR) AS event_time,
           o_ns AS output_namespace, o_name AS output_name, o_label AS output_dataset, o_type AS output_type,
           o_ver AS output_version, o_field AS output_field,
           i_ns AS input_namespace, i_name AS input_name, i_label AS input_dataset, i_ver AS input_version, i_field AS input_field,
           t_type AS transformation_type, t_subtype AS transformation_subtype, t_desc AS transformation_description
    FROM walk
    GROUP BY run_id, job_name, o_ns, o_name, o_label, o_type, o_ver, o_field, i_ns, i_name, i_label, i_ver, i_field, t_type, t_subtype, t_desc
    ORDER BY depth, output_dataset, output_field, input_dataset, input_field, run_id, transformation_type, transformation_subtype
    """
    rows = query(con, sql, [*params, depth]).to_pylist()
    if not rows:
        raise NotFoundError(
            f"no column lineage in the store for {node.describe()}; check the name (tidemark lineage columns takes {_HELP[6:]}), "
            "or run `tidemark lineage consume --once`"
        )
    return rows


def feature_sources(con: duckdb.DuckDBPyConnection, model: str, version: str, ns: str = "lineage") -> list[dict[str, Any]]:
    """Each feature of a model version with the table columns (at their snapshots) it was trained
    on (`columns`; `indirect`: those it depends on as a whole, such as the target), and the columns those were made from (the source file's, for a landed table): two steps
    of the upstream walk, as nested dicts. Empty when the store holds no column lineage for it."""
    try:
        rows = walk(con, ColumnNode("model", model, version=version), "upstream", 2, ns)
    except NotFoundError:
        return []

    def how(r: dict[str, Any]) -> dict[str, Any]:
        return {k: r[f"transformation_{k}"] for k in ("type", "subtype", "description")}

    def meets(up: dict[str, Any], down: dict[str, Any]) -> bool:
        same = (up["output_namespace"], up["output_name"], up["output_field"]) == (down["input_namespace"], down["input_name"], down["input_field"])
        return same and (up["output_version"] is None or down["input_version"] is None or up["output_version"] == down["input_version"])

    first = [r for r in rows if r["depth"] == 1 and r["output_type"] == "MODEL" and r["output_version"] == version]
    second = [r for r in rows if r["depth"] == 2]
    out: dict[str, dict[str, Any]] = {}
    for r in first:
        feature = out.setdefault(r["output_field"], {"feature": r["output_field"], "columns": [], "indirect": []})
        # DIRECT: the column the feature's values are; INDIRECT: columns the whole model depends on (its target).
        feature["indirect" if r["transformation_type"] == "INDIRECT" else "columns"].append({
            "dataset": r["input_dataset"], "column": r["input_field"], "version": r["input_version"], "transformation": how(r),
            "from": [
                {"dataset": s["input_dataset"], "column": s["input_field"], "version": s["input_version"], "transformation": how(s),
                 "run_id": s["run_id"], "job_name": s["job_name"]}
                for s in second if meets(s, r)
            ],
        })
    return list(out.values())
