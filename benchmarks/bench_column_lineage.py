"""Column walk latency: a 5-hop upstream column walk over a store of N column edges (issue 17).

The store: chains of runs, run j of a chain reading dataset d_j and writing d_(j+1); every dataset
has FIELDS columns and column f of d_(j+1) is computed from columns f and f+1 of d_j, so each run
states 2 x FIELDS edges in its `columnLineage` facet. The rows are what the consumer makes of
those events (`lineage.columns.rows_from_event`), appended to `lineage.column_lineage` in a few
commits. Tidemark answers with `lineage.column_graph.walk` (DuckDB over the Iceberg table's
Parquet); the baseline is DuckDB over the raw JSON Lines of the same events doing the same walk
(exact versions where both sides carry one). Cold = a new DuckDB connection per query (views made
from the catalog); warm = the same connection again. Target: cold p95 <= 300 ms. The store and
its JSON Lines are built once per size and kept under `.bench/column_lineage/<edges>/`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.common import kept_home, percentile, result

CHAIN = 10  # runs per chain
FIELDS = 10  # columns per dataset
EDGES_PER_RUN = 2 * FIELDS
HOPS = 5


def _events(n_runs: int):  # type: ignore[no-untyped-def]
    from lineage import columns
    from lineage import events as ev

    for r in range(n_runs):
        c, j = divmod(r, CHAIN)
        ver = {"version": {"_producer": "b", "_schemaURL": "u", "datasetVersion": f"v{j + 1}"}}
        inp = {"namespace": "s3://lake", "name": f"/w/chain{c}/d{j}", "facets": {"version": {"_producer": "b", "_schemaURL": "u", "datasetVersion": f"v{j}"}}}
        fields = {
            f"f{f}": [columns.InputField("s3://lake", inp["name"], f"f{g}", subtype="TRANSFORMATION") for g in (f, (f + 1) % FIELDS)]
            for f in range(FIELDS)
        }
        out = {"namespace": "s3://lake", "name": f"/w/chain{c}/d{j + 1}", "facets": {**ver, "columnLineage": columns.facet("bench", fields)}}
        yield ev.run_event(producer="bench", event_type="COMPLETE", run_id=f"{c:06d}-{j:02d}-0000-0000-000000000000", job_namespace="bench",
                           job_name=f"chain.step{j}", inputs=[inp], outputs=[out], event_time=f"2026-11-{1 + c % 28:02d}T10:{j:02d}:00.000000Z")


def build_store(settings: Any, n_edges: int, jsonl: Path) -> int:
    """Write the events as JSON Lines and their rows into the column table; returns the rows stored."""
    import pyarrow as pa

    from lakehouse.catalog import load_catalog
    from lineage import columns
    from lineage import events as ev

    table = columns.ensure(load_catalog(settings), settings)
    rows: list[dict[str, Any]] = []
    stored = 0
    with jsonl.open("wb") as fh:
        for e in _events(n_edges // EDGES_PER_RUN):
            fh.write(ev.serialize(e) + b"\n")
            rows += columns.rows_from_event(e)
            if len(rows) >= 250_000:
                table.append(pa.Table.from_pylist(rows, schema=columns.arrow_schema()))
                stored += len(rows)
                rows = []
    if rows:
        table.append(pa.Table.from_pylist(rows, schema=columns.arrow_schema()))
        stored += len(rows)
    return stored


NAIVE = """
WITH RECURSIVE raw AS (SELECT * FROM read_json(?, format='newline_delimited', columns={
        'eventTime': 'VARCHAR', 'run': 'JSON', 'job': 'JSON', 'inputs': 'JSON[]', 'outputs': 'JSON[]'})),
ins AS (
    SELECT run->>'runId' AS run_id, d->>'namespace' AS ns, d->>'name' AS name, d->'facets'->'version'->>'datasetVersion' AS ver
    FROM raw, unnest(inputs) AS t(d)
),
outs AS (
    SELECT run->>'runId' AS run_id, job->>'name' AS job_name, eventTime AS event_time, d->>'namespace' AS o_ns, d->>'name' AS o_name,
           d->'facets'->'version'->>'datasetVersion' AS o_ver, d->'facets'->'columnLineage'->'fields' AS fields
    FROM raw, unnest(outputs) AS t(d)
),
f AS (
    SELECT run_id, job_name, event_time, o_ns, o_name, o_ver, k AS o_field,
           CAST(json_extract(fields, '$."' || k || '".inputFields') AS JSON[]) AS inputs
    FROM outs, unnest(json_keys(fields)) AS u(k)
),
fi AS (
    SELECT run_id, job_name, event_time, o_ns, o_name, o_ver, o_field, i->>'namespace' AS i_ns, i->>'name' AS i_name, i->>'field' AS i_field
    FROM f, unnest(f.inputs) AS v(i)
),
e AS MATERIALIZED (
    SELECT fi.*, ins.ver AS i_ver FROM fi LEFT JOIN ins ON ins.run_id = fi.run_id AND ins.ns = fi.i_ns AND ins.name = fi.i_name
),
walk(depth, run_id, o_ns, o_name, o_ver, o_field, i_ns, i_name, i_ver, i_field, event_time) AS (
    SELECT 1, run_id, o_ns, o_name, o_ver, o_field, i_ns, i_name, i_ver, i_field, event_time FROM e
    WHERE o_ns = ? AND o_name = ? AND o_field = ? AND o_ver = ?
    UNION
    SELECT w.depth + 1, n.run_id, n.o_ns, n.o_name, n.o_ver, n.o_field, n.i_ns, n.i_name, n.i_ver, n.i_field, n.event_time
    FROM walk w JOIN e n ON n.o_ns = w.i_ns AND n.o_name = w.i_name AND n.o_field = w.i_field
    WHERE w.depth < ? AND CASE WHEN w.i_ver IS NOT NULL AND n.o_ver IS NOT NULL THEN w.i_ver = n.o_ver ELSE n.event_time <= w.event_time END
)
SELECT min(depth), run_id, o_name, o_field, i_name, i_field FROM walk GROUP BY ALL
"""


def run(quick: bool, edges: int | None = None) -> None:
    n_edges = edges or (50_000 if quick else 1_000_000)
    repeats = 10 if quick else 20
    from lakehouse import sql
    from lakehouse.config import load_settings
    from lineage.column_graph import ColumnNode, connect_for_walk, walk

    def build(home: Path) -> int:
        return build_store(load_settings(environ={"TIDEMARK_HOME": str(home)}), n_edges, home / "events.jsonl")

    with kept_home("column_lineage", {"edges": n_edges}, build) as (home, build_s, stored):
        settings = load_settings()
        jsonl = home / "events.jsonl"
        chains = n_edges // EDGES_PER_RUN // CHAIN
        chain = chains // 2  # a chain in the middle of the store
        node = ColumnNode("dataset", f"/w/chain{chain}/d{CHAIN}", field="f0", namespace="s3://lake", version=f"v{CHAIN}")

        def tidemark_once(con: Any = None) -> tuple[float, list[dict[str, Any]]]:
            start = time.perf_counter()
            c = con or connect_for_walk(settings)
            rows = walk(c, node, "upstream", HOPS, settings.lineage.namespace)
            return time.perf_counter() - start, rows

        cold, rows = [], []
        for _ in range(repeats):
            t, rows = tidemark_once()
            cold.append(t)
        con = connect_for_walk(settings)
        warm = [tidemark_once(con)[0] for _ in range(repeats)]

        def naive_once(c: Any) -> tuple[float, list[Any]]:
            start = time.perf_counter()
            out = c.execute(NAIVE, [str(jsonl), node.namespace, node.name, node.field, node.version, HOPS]).fetchall()
            return time.perf_counter() - start, out

        naive_cold, naive_rows = [], []
        for _ in range(max(3, repeats // 4)):
            t, naive_rows = naive_once(sql.connect())
            naive_cold.append(t)
    depth = max(r["depth"] for r in rows)
    ours = {(r["depth"], r["run_id"], r["output_name"], r["output_field"], r["input_name"], r["input_field"]) for r in rows}
    assert depth == HOPS and ours == set(naive_rows), (depth, len(ours), len(naive_rows))
    assert stored == n_edges, stored
    c95, w95, nc95 = (percentile(x, 95) * 1000 for x in (cold, warm, naive_cold))
    print(f"edges={stored} hops={depth} edges_found={len(rows)} store={'built in ' + format(build_s, '.0f') + ' s' if build_s else 'kept'} tidemark_cold_p95_ms={c95:.0f} "
          f"tidemark_warm_p95_ms={w95:.0f} naive_jsonl_cold_p95_ms={nc95:.0f}")
    result("column_lineage", edges=stored, hops=depth, edges_found=len(rows), cold_p95_ms=c95, warm_p95_ms=w95,
           naive_cold_p95_ms=nc95, speedup_cold=nc95 / c95, target_cold_p95_ms=300)
