"""Trace latency: a 5-hop upstream trace over a store of N events and N/10 runs.

Tidemark answers from the Iceberg lineage tables through DuckDB (`lineage.graph.walk`); the naive
baseline answers the same question with DuckDB scanning the raw JSON Lines of the same events.
Cold = a new DuckDB connection (extensions loaded, views made from the catalog) per query; warm =
the same connection again. Target (issue 4): cold p95 <= 300 ms.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.common import percentile, result, scratch_home

CHAIN = 10  # runs per lineage chain: run j of chain c reads c.j and writes c.(j+1)
EVENTS_PER_RUN = 10  # START, 8 RUNNING, COMPLETE


def _events(n_runs: int):  # type: ignore[no-untyped-def]
    from lineage import events as ev

    for r in range(n_runs):
        c, j = divmod(r, CHAIN)
        run_id = f"{c:06d}-{j:02d}-0000-0000-000000000000"
        inp = {"namespace": "s3://lake", "name": f"/w/chain{c}/d{j}", "facets": {"version": {"_producer": "b", "_schemaURL": "u", "datasetVersion": f"v{j}"}}}
        out = {"namespace": "s3://lake", "name": f"/w/chain{c}/d{j + 1}", "facets": {"version": {"_producer": "b", "_schemaURL": "u", "datasetVersion": f"v{j + 1}"}}}
        for k in range(EVENTS_PER_RUN):
            kind = "START" if k == 0 else "COMPLETE" if k == EVENTS_PER_RUN - 1 else "RUNNING"
            yield ev.run_event(producer="bench", event_type=kind, run_id=run_id, job_namespace="bench", job_name=f"chain.step{j}",
                               inputs=[inp] if kind != "RUNNING" else [], outputs=[out] if kind == "COMPLETE" else [],
                               event_time=f"2026-11-{1 + c % 28:02d}T10:{j:02d}:{k:02d}.000000Z")


def build_store(settings, n_events: int, jsonl: Path) -> None:  # type: ignore[no-untyped-def]
    from lakehouse.catalog import load_catalog
    from lineage import events as ev
    from lineage.consumer import ConsumeReport, LineageWriter

    writer = LineageWriter(settings, load_catalog(settings))
    report = ConsumeReport()
    offsets: list[int] = []
    values: list[bytes] = []

    def write() -> None:  # one partition, as the consumer hands a batch over: parallel lists
        writer.write_columns([0] * len(values), offsets, values, report)
        offsets.clear()
        values.clear()

    with jsonl.open("wb") as fh:
        for i, e in enumerate(_events(n_events // EVENTS_PER_RUN)):
            raw = ev.serialize(e)
            fh.write(raw + b"\n")
            offsets.append(i)
            values.append(raw)
            if len(values) == 100_000:
                write()
        if values:
            write()
    writer.compact(min_files=2, keep_snapshots_s=0)


NAIVE = """
WITH RECURSIVE raw AS (SELECT * FROM read_json(?, format='newline_delimited', columns={
        'eventType': 'VARCHAR', 'run': 'JSON', 'job': 'JSON', 'inputs': 'JSON[]', 'outputs': 'JSON[]'})),
e AS (
    SELECT DISTINCT run->>'runId' AS run_id, job->>'name' AS job_name, 'input' AS direction, d->>'namespace' AS ns, d->>'name' AS name,
           d->'facets'->'version'->>'datasetVersion' AS version
    FROM raw, unnest(inputs) AS t(d) WHERE eventType IN ('START', 'RUNNING', 'COMPLETE')
    UNION
    SELECT DISTINCT run->>'runId', job->>'name', 'output', d->>'namespace', d->>'name', d->'facets'->'version'->>'datasetVersion'
    FROM raw, unnest(outputs) AS t(d) WHERE eventType IN ('START', 'RUNNING', 'COMPLETE')
),
walk(depth, run_id) AS (
    SELECT 1, run_id FROM e WHERE direction = 'output' AND ns = ? AND name = ? AND version = ?
    UNION
    SELECT w.depth + 1, nxt.run_id FROM walk w
    JOIN e cur ON cur.run_id = w.run_id AND cur.direction = 'input'
    JOIN e nxt ON nxt.direction = 'output' AND nxt.ns = cur.ns AND nxt.name = cur.name AND (cur.version IS NULL OR nxt.version = cur.version)
    WHERE w.depth < ?
)
SELECT DISTINCT w.depth, e.run_id, e.direction, e.name, e.version FROM walk w JOIN e USING (run_id)
"""


def run(quick: bool) -> None:
    n_events = 50_000 if quick else 1_000_000
    repeats = 10 if quick else 20
    from lakehouse import sql
    from lakehouse.config import load_settings
    from lineage.graph import Node, connect_for_walk, walk

    with scratch_home("trace") as home:
        settings = load_settings()
        jsonl = home / "events.jsonl"
        t0 = time.perf_counter()
        build_store(settings, n_events, jsonl)
        build_s = time.perf_counter() - t0
        n_runs = n_events // EVENTS_PER_RUN
        chain = (n_runs // CHAIN) // 2  # a chain in the middle of the store
        node = Node("dataset", f"/w/chain{chain}/d{CHAIN}", namespace="s3://lake", version=f"v{CHAIN}")

        def tidemark_once(con=None):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            c = con or connect_for_walk(settings)
            rows = walk(c, node, "upstream", 5)
            return time.perf_counter() - start, rows

        cold, rows = [], []
        for _ in range(repeats):
            t, rows = tidemark_once()
            cold.append(t)
        con = connect_for_walk(settings)
        warm = [tidemark_once(con)[0] for _ in range(repeats)]
        depth = max(r["depth"] for r in rows)
        runs_found = len({r["run_id"] for r in rows})

        def naive_once(c):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            out = c.execute(NAIVE, [str(jsonl), node.namespace, node.name, node.version, 5]).fetchall()
            return time.perf_counter() - start, out

        naive_cold, naive_rows = [], []
        for _ in range(max(3, repeats // 4)):
            t, naive_rows = naive_once(sql.connect())
            naive_cold.append(t)
        ncon = sql.connect()
        naive_warm = [naive_once(ncon)[0] for _ in range(max(3, repeats // 4))]
        naive_runs = len({r[1] for r in naive_rows})
    assert depth == 5 and runs_found == 5 == naive_runs, (depth, runs_found, naive_runs)
    c95, w95, nc95, nw95 = (percentile(x, 95) * 1000 for x in (cold, warm, naive_cold, naive_warm))
    print(f"events={n_events} runs={n_runs} build_s={build_s:.0f} hops={depth} tidemark_cold_p95_ms={c95:.0f} "
          f"tidemark_warm_p95_ms={w95:.0f} naive_jsonl_cold_p95_ms={nc95:.0f} naive_jsonl_warm_p95_ms={nw95:.0f}")
    result("lineage_trace", events=n_events, runs=n_runs, hops=depth, cold_p95_ms=c95, warm_p95_ms=w95,
           naive_cold_p95_ms=nc95, naive_warm_p95_ms=nw95, speedup_cold=nc95 / c95, speedup_warm=nw95 / w95, target_cold_p95_ms=300)
