"""Trace latency: a 5-hop upstream trace over a store of N events and N/10 runs.

Tidemark answers from the Iceberg lineage tables through DuckDB (`lineage.graph.walk`); the naive
baseline answers the same question with DuckDB scanning the raw JSON Lines of the same events, by
the same rules (docs/events.md: a read without a version sees the latest write done before its
run started; a versioned read, exactly that version). Cold = a new DuckDB connection (views made
from the catalog, edges read from their on-disk cache) per query; warm = the same connection again;
first walk after a commit = a new connection that must work the edges out (no cache yet).
The store is shaped like other producers' events (issue 17): 90% of dataset references carry no
version, and every dataset is rewritten each day, so the walk must pick the right write.
Targets (issue 17): cold p95 <= 300 ms, warm <= 50 ms, >= 10x faster than the naive walk.
The store and its JSON Lines are built once per size and code and kept under `.bench/lineage_trace/<events>-<code>/`.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import code_key, kept_home, percentile, result, timed, write_events

CHAIN = 10  # runs per lineage chain per day: run j of chain c reads c.j and writes c.(j+1)
DAYS = 4  # each chain runs once a day, rewriting the same datasets
EVENTS_PER_RUN = 10  # START, 8 RUNNING, COMPLETE
VERSIONED_EVERY = 10  # one chain in ten is Iceberg-style (versioned reads and writes): 90% carry none


def _events(n_runs: int):  # type: ignore[no-untyped-def]
    from lineage import events as ev

    chains = max(1, n_runs // (CHAIN * DAYS))
    for c in range(chains):
        versioned = c % VERSIONED_EVERY == 0
        for day in range(DAYS):
            for j in range(CHAIN):
                run_id = f"{c:06d}-{day:02d}{j:02d}-0000-0000-000000000000"

                def ds(k: int) -> dict:  # type: ignore[type-arg]
                    facets = {"version": {"_producer": "b", "_schemaURL": "u", "datasetVersion": f"v{day}.{k}"}} if versioned else {}
                    return {"namespace": "s3://lake", "name": f"/w/chain{c}/d{k}", "facets": facets}

                inp, out = ds(j), ds(j + 1)
                for k in range(EVENTS_PER_RUN):
                    kind = "START" if k == 0 else "COMPLETE" if k == EVENTS_PER_RUN - 1 else "RUNNING"
                    yield ev.run_event(producer="bench", event_type=kind, run_id=run_id, job_namespace="bench", job_name=f"chain.step{j}",
                                       inputs=[inp] if kind != "RUNNING" else [], outputs=[out] if kind == "COMPLETE" else [],
                                       event_time=f"2026-11-{1 + day:02d}T{10 + j:02d}:{c % 60:02d}:{k:02d}.000000Z")


def build_store(settings, n_events: int, jsonl: Path) -> None:  # type: ignore[no-untyped-def]
    write_events(settings, _events(n_events // EVENTS_PER_RUN), jsonl)


NAIVE = """
WITH RECURSIVE raw AS (SELECT * FROM read_json(?, format='newline_delimited', columns={
        'eventType': 'VARCHAR', 'eventTime': 'TIMESTAMPTZ', 'run': 'JSON', 'job': 'JSON', 'inputs': 'JSON[]', 'outputs': 'JSON[]'})),
rows AS (
    SELECT run->>'runId' AS run_id, 'input' AS direction, d->>'namespace' AS ns, d->>'name' AS name,
           d->'facets'->'version'->>'datasetVersion' AS version, eventTime AS t
    FROM raw, unnest(inputs) AS u(d) WHERE eventType IN ('START', 'RUNNING', 'COMPLETE')
    UNION ALL
    SELECT run->>'runId', 'output', d->>'namespace', d->>'name', d->'facets'->'version'->>'datasetVersion', eventTime
    FROM raw, unnest(outputs) AS u(d) WHERE eventType IN ('START', 'RUNNING', 'COMPLETE')
),
g AS (SELECT run_id, direction, ns, name, version, max(t) AS done_at, min(t) AS first_at FROM rows GROUP BY ALL),
e AS (
    SELECT *, min(first_at) OVER (PARTITION BY run_id) AS started,
           CASE WHEN direction = 'output' THEN lead(done_at) OVER (PARTITION BY direction, ns, name ORDER BY done_at, run_id) END AS next_at
    FROM g
),
walk(depth, run_id) AS (
    SELECT 1, run_id FROM e WHERE direction = 'output' AND ns = ? AND name = ?
    UNION
    SELECT w.depth + 1, nxt.run_id FROM walk w
    JOIN e cur ON cur.run_id = w.run_id AND cur.direction = 'input'
    JOIN e nxt ON nxt.direction = 'output' AND nxt.ns = cur.ns AND nxt.name = cur.name
    WHERE w.depth < ? AND CASE WHEN cur.version IS NOT NULL THEN nxt.version = cur.version
                               ELSE nxt.done_at < cur.started AND (nxt.next_at IS NULL OR nxt.next_at >= cur.started) END
)
SELECT DISTINCT w.depth, e.run_id, e.direction, e.name, e.version FROM walk w JOIN e USING (run_id)
"""


NAIVE_REPEATS = 3  # per case: each naive walk reads all the JSON Lines (seconds), the p95 of a few is their slowest


def run(quick: bool, events: int | None = None) -> None:
    n_events = events or (50_000 if quick else 1_000_000)
    repeats = 10 if quick else 20
    import shutil

    from lakehouse import sql
    from lakehouse.config import load_settings
    from lineage import consumer, decode, store
    from lineage import events as ev
    from lineage.graph import Node, connect_for_walk, walk

    def build(home: Path) -> None:
        build_store(load_settings(environ={"TIDEMARK_HOME": str(home)}), n_events, home / "events.jsonl")

    # The store is kept between runs (a change to the code that shapes it builds it again): only
    # the walks are timed. The walk's edge cache is removed before the first-walk-after-a-commit
    # timings below, so a kept store is measured as a fresh one is.
    code = code_key(_events, build_store, write_events, ev, decode, consumer, store)
    with kept_home("lineage_trace", {"events": n_events, "code": code}, build) as (home, build_s, _):
        settings = load_settings()
        jsonl = home / "events.jsonl"
        n_runs = n_events // EVENTS_PER_RUN
        chain = (n_runs // (CHAIN * DAYS)) // 2 + 1  # an unversioned chain in the middle of the store
        # Upstream of the last dataset, every day's write of it: each day's 5 nearest runs.
        node = Node("dataset", f"/w/chain{chain}/d{CHAIN}", namespace="s3://lake")

        def tidemark_once(con=None):  # type: ignore[no-untyped-def]
            return timed(lambda: walk(con or connect_for_walk(settings), node, "upstream", 5))

        # The first walk after a commit works the edges out (window functions over the whole table)
        # and keeps them on disk; every other new connection to the same state reads them.
        rebuild = []
        for _ in range(3):
            shutil.rmtree(settings.home / "cache" / "walk", ignore_errors=True)
            rebuild.append(tidemark_once()[0])
        cold = [tidemark_once() for _ in range(repeats)]
        con = connect_for_walk(settings)
        tidemark_once(con)  # the first walk on a connection works out its edges: that is the cold case
        warm = [tidemark_once(con) for _ in range(repeats)]
        rows = cold[-1][2]
        depth = max(r["depth"] for r in rows)
        runs_found = len({r["run_id"] for r in rows})

        def naive_once(c):  # type: ignore[no-untyped-def]
            return timed(lambda: c.execute(NAIVE, [str(jsonl), node.namespace, node.name, 5]).fetchall())

        naive_cold = [naive_once(sql.connect()) for _ in range(NAIVE_REPEATS)]
        ncon = sql.connect()
        naive_warm = [naive_once(ncon) for _ in range(NAIVE_REPEATS)]
        naive_runs = len({r[1] for r in naive_cold[-1][2]})
    # Each day's chain, 5 runs deep, and no other day's runs: the right write was picked each hop.
    assert depth == 5 and runs_found == 5 * DAYS == naive_runs, (depth, runs_found, naive_runs)
    c95, w95, nc95, nw95 = (percentile([t[0] for t in x], 95) * 1000 for x in (cold, warm, naive_cold, naive_warm))
    cc95, wc95, ncc95, nwc95 = (percentile([t[1] for t in x], 95) * 1000 for x in (cold, warm, naive_cold, naive_warm))
    rebuild_ms = max(rebuild) * 1000
    print(f"events={n_events} runs={n_runs} store={'built in ' + format(build_s, '.0f') + ' s' if build_s else 'kept'} hops={depth} first_walk_after_commit_ms={rebuild_ms:.0f} "
          f"tidemark_cold_p95_ms={c95:.0f} (cpu {cc95:.0f}) tidemark_warm_p95_ms={w95:.0f} (cpu {wc95:.0f}) "
          f"naive_jsonl_cold_p95_ms={nc95:.0f} (cpu {ncc95:.0f}) naive_jsonl_warm_p95_ms={nw95:.0f} (cpu {nwc95:.0f})")
    result("lineage_trace", events=n_events, runs=n_runs, hops=depth, cold_p95_ms=c95, warm_p95_ms=w95, first_walk_after_commit_max_ms=rebuild_ms,
           naive_cold_p95_ms=nc95, naive_warm_p95_ms=nw95, speedup_cold=nc95 / c95, speedup_warm=nw95 / w95,
           cold_cpu_p95_ms=cc95, warm_cpu_p95_ms=wc95, naive_cold_cpu_p95_ms=ncc95, naive_warm_cpu_p95_ms=nwc95,
           unversioned_share=1 - 1 / VERSIONED_EVERY, target_cold_p95_ms=300, target_warm_p95_ms=50, target_speedup=10)
