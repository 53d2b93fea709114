"""Column walk latency: a 5-hop upstream column walk over a store of N column edges (issue 17).

The store: chains of runs, run j of a chain reading dataset d_j and writing d_(j+1); every dataset
has FIELDS columns and column f of d_(j+1) is computed from columns f and f+1 of d_j, so each run
states 2 x FIELDS edges in its `columnLineage` facet. The events are stored by the consumer's own
writer (`LineageWriter`, 10,000 events a batch, then its compaction), so `lineage.column_lineage`
is laid out as a running consumer leaves it. Tidemark answers with `lineage.column_graph.walk` (DuckDB over the Iceberg table's
Parquet); the baseline is DuckDB over the raw JSON Lines of the same events doing the same walk
(exact versions where both sides carry one). Cold = a new DuckDB connection per query (views made
from the catalog); warm = the same connection again. Target: cold p95 <= 300 ms. The store and
its JSON Lines are built once per size and code and kept under `.bench/column_lineage/<edges>-<code>/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import code_key, kept_home, percentile, result, timed, write_events

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


def build_store(settings: Any, n_edges: int, jsonl: Path) -> None:
    write_events(settings, _events(n_edges // EDGES_PER_RUN), jsonl, batch=10_000)


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


NAIVE_REPEATS = 3  # each naive walk reads all the JSON Lines (seconds), the p95 of a few is their slowest


def run(quick: bool, edges: int | None = None) -> None:
    n_edges = edges or (50_000 if quick else 1_000_000)
    repeats = 10 if quick else 20
    from lakehouse import sql
    from lakehouse.config import load_settings
    from lineage import columns, consumer, decode, store
    from lineage import events as ev
    from lineage.column_graph import ColumnNode, connect_for_walk, walk

    def build(home: Path) -> None:
        build_store(load_settings(environ={"TIDEMARK_HOME": str(home)}), n_edges, home / "events.jsonl")

    # The store is kept between runs (a change to the code that shapes it builds it again): only the walks are timed.
    code = code_key(_events, build_store, write_events, ev, columns, decode, consumer, store)
    with kept_home("column_lineage", {"edges": n_edges, "code": code}, build) as (home, build_s, _):
        settings = load_settings()
        jsonl = home / "events.jsonl"
        chains = n_edges // EDGES_PER_RUN // CHAIN
        chain = chains // 2  # a chain in the middle of the store
        node = ColumnNode("dataset", f"/w/chain{chain}/d{CHAIN}", field="f0", namespace="s3://lake", version=f"v{CHAIN}")

        def tidemark_once(con: Any = None) -> tuple[float, float, list[dict[str, Any]]]:
            return timed(lambda: walk(con or connect_for_walk(settings), node, "upstream", HOPS, settings.lineage.namespace))

        # The process's first walk also pays for imports and the catalog's first load, which a new
        # connection does not: not timed (as the trace bench's first walks are not its cold ones).
        tidemark_once()
        cold = [tidemark_once() for _ in range(repeats)]
        con = connect_for_walk(settings)
        warm = [tidemark_once(con) for _ in range(repeats)]
        stored = con.execute(f'SELECT count(*) FROM "{settings.lineage.namespace}".column_lineage').fetchone()[0]

        def naive_once(c: Any) -> tuple[float, float, list[Any]]:
            return timed(lambda: c.execute(NAIVE, [str(jsonl), node.namespace, node.name, node.field, node.version, HOPS]).fetchall())

        naive_cold = [naive_once(sql.connect()) for _ in range(NAIVE_REPEATS)]
    rows, naive_rows = cold[-1][2], naive_cold[-1][2]
    depth = max(r["depth"] for r in rows)
    ours = {(r["depth"], r["run_id"], r["output_name"], r["output_field"], r["input_name"], r["input_field"]) for r in rows}
    assert depth == HOPS and ours == set(naive_rows), (depth, len(ours), len(naive_rows))
    assert stored == n_edges, stored
    c95, w95, nc95 = (percentile([t[0] for t in x], 95) * 1000 for x in (cold, warm, naive_cold))
    cc95, wc95, ncc95 = (percentile([t[1] for t in x], 95) * 1000 for x in (cold, warm, naive_cold))
    print(f"edges={stored} hops={depth} edges_found={len(rows)} store={'built in ' + format(build_s, '.0f') + ' s' if build_s else 'kept'} tidemark_cold_p95_ms={c95:.0f} (cpu {cc95:.0f}) "
          f"tidemark_warm_p95_ms={w95:.0f} (cpu {wc95:.0f}) naive_jsonl_cold_p95_ms={nc95:.0f} (cpu {ncc95:.0f})")
    result("column_lineage", edges=stored, hops=depth, edges_found=len(rows), cold_p95_ms=c95, warm_p95_ms=w95,
           naive_cold_p95_ms=nc95, speedup_cold=nc95 / c95, cold_cpu_p95_ms=cc95, warm_cpu_p95_ms=wc95, naive_cold_cpu_p95_ms=ncc95,
           target_cold_p95_ms=300)
