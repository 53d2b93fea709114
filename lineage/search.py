"""Find lineage nodes by a piece of their name: datasets (tables, files), jobs, runs and models.

Each hit carries the node text `lineage.graph.Node.parse` understands, so a search leads straight
to an up- or downstream walk. The text is a bound parameter matched with DuckDB's `contains`, so
neither SQL nor LIKE wildcards in it mean anything. What a walk leaves out (the datasets of alias
moves the consumer refused, `lineage.graph.refused_filter`) is no hit and counts for no run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakehouse.sql import query
from lineage.graph import refused_filter

if TYPE_CHECKING:
    import duckdb

_SQL = """
WITH d AS (
    SELECT DISTINCT run_id, job_name, dataset_namespace AS ns, dataset_name AS name,
           coalesce(table_name, dataset_name) AS label, coalesce(dataset_type, 'TABLE') AS dataset_type
    FROM {ns}.run_datasets WHERE TRUE{refused}
),
hits AS (
    SELECT 'model' AS kind, 'model:' || name AS node, name AS label, count(DISTINCT run_id) AS runs
    FROM d WHERE dataset_type = 'MODEL' AND contains(lower(name), ?) GROUP BY name
    UNION ALL
    SELECT 'table', label, label, count(DISTINCT run_id)
    FROM d WHERE dataset_type = 'TABLE' AND label <> name AND contains(lower(label), ?) GROUP BY label
    UNION ALL
    SELECT 'dataset', 'dataset:' || ns || ':' || name, label, count(DISTINCT run_id)
    FROM d WHERE (dataset_type <> 'TABLE' OR label = name) AND dataset_type <> 'MODEL'
      AND (contains(lower(name), ?) OR contains(lower(label), ?)) GROUP BY ns, name, label
    UNION ALL
    SELECT 'job', 'job:' || job_name, job_name, count(DISTINCT run_id)
    FROM d WHERE contains(lower(job_name), ?) GROUP BY job_name
    UNION ALL
    SELECT 'run', 'run:' || run_id, any_value(job_name) || ' ' || run_id, 1
    FROM d WHERE starts_with(lower(run_id), ?) OR lower(run_id) = ? GROUP BY run_id
)
SELECT kind, node, label, runs FROM hits
ORDER BY CASE kind WHEN 'model' THEN 0 WHEN 'table' THEN 1 WHEN 'dataset' THEN 2 WHEN 'job' THEN 3 ELSE 4 END, label
LIMIT ?
"""


def find(con: duckdb.DuckDBPyConnection, text: str, limit: int = 50, ns: str = "lineage") -> list[dict[str, Any]]:
    """Nodes whose name contains `text` (case-insensitive; runs: whose id starts with it), at most `limit`."""
    needle = (text or "").strip().lower()
    if not needle:
        return []
    sql = _SQL.replace("{ns}", f'"{ns}"').replace("{refused}", refused_filter(con, ns))
    return query(con, sql, [needle, needle, needle, needle, needle, needle, needle, limit]).to_pylist()
