"""Commit latency with and without table maintenance, on a PostgreSQL catalog; commits/s with 3 writers.

Two tables in one fresh PostgreSQL database (dropped afterwards), both with lean metadata
(`FREQUENT_COMMITS`), take appends of 100 rows in alternation, so both sides see the same machine:
- maintained: `MaintainedWriter` with the policy below: every 10 commits, rewrite small files and
  expire all but the newest 3 snapshots (the lineage consumer's compaction and expiry, at a rate
  that suits a table taking commits back to back);
- baseline: the same appends, no maintenance.
Latency is one append's write + commit, retries included; maintenance rounds are timed apart.
The CPU time of the same span is printed beside it: on a shared machine, the part not spent
waiting for a core.
p50/p99 over the first and the last 100 commits; target: flat, p99 <= 50 ms at the end.
Then 3 writer processes append to one maintained table at once (writer 0 owns maintenance), first
racing (optimistic commits, pyiceberg's rebase and our retries), then taking turns on a PostgreSQL
advisory lock (`commit_turn`): commits/s over the wall time from their common start to the last
finish, beside one maintained writer's rate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import env_var, percentile, postgres_database, result, scratch_home

ROWS = 100
TARGET_P99_MS = 50.0
POLICY = {"every_commits": 10, "keep_snapshots_s": 0.0, "keep_last": 3}

WRITER = """
import json, sys, time
import pyarrow as pa
from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
from lakehouse.maintenance import MaintainedWriter, MaintenancePolicy
from lakehouse.tables import TableName
w, appends, start, policy, table = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
writer = MaintainedWriter(
    load_catalog(load_settings()), TableName("bench", table), MaintenancePolicy(**policy) if w == 0 else None, take_turns=table == "in_turn"
)
time.sleep(max(0.0, start - time.time()))
latencies = []
for i in range(appends):
    base = (w * appends + i) * %d
    writer.append(pa.table({"id": pa.array(range(base, base + %d), pa.int64()), "v": pa.array([float(w)] * %d)}))
    latencies.append(writer.last_commit_s)
print(json.dumps({"finished": time.time(), "latencies": latencies}))
""" % (ROWS, ROWS, ROWS)


def _batch(i: int):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.table({"id": pa.array(range(i * ROWS, (i + 1) * ROWS), pa.int64()), "v": pa.array([0.5] * ROWS)})


def _stats(latencies: list[float], window: int) -> dict[str, float]:
    first, last = latencies[:window], latencies[-window:]
    return {
        "first_p50": percentile(first, 50) * 1000, "first_p99": percentile(first, 99) * 1000,
        "last_p50": percentile(last, 50) * 1000, "last_p99": percentile(last, 99) * 1000,
    }


def _concurrent(writers: int, appends: int, table: str) -> tuple[float, list[float]]:
    start = time.time() + 5  # after every child has imported pyiceberg
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(w), str(appends), str(start), json.dumps(POLICY), table],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
        )
        for w in range(writers)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise RuntimeError(f"a writer failed: {err.strip().splitlines()[-1] if err.strip() else p.returncode}")
        outs.append(json.loads(out.strip().splitlines()[-1]))
    wall = max(o["finished"] for o in outs) - start
    return writers * appends / wall, [x for o in outs for x in o["latencies"]]


def run(quick: bool) -> None:
    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings
    from lakehouse.maintenance import FREQUENT_COMMITS, MaintainedWriter, MaintenancePolicy
    from lakehouse.tables import TableName, ensure_table

    import pyarrow as pa

    appends = 200 if quick else 1000
    window = min(100, appends // 2)
    writers, per_writer = 3, (40 if quick else 100)
    schema = pa.schema([("id", pa.int64()), ("v", pa.float64())])
    with scratch_home("commits"), postgres_database("tidemark_bench") as uri, env_var("TIDEMARK__CATALOG__URI", uri):
        catalog = load_catalog(load_settings())
        sides = {}
        for side, policy in (("maintained", MaintenancePolicy(**POLICY)), ("baseline", None)):
            name = TableName("bench", side)
            ensure_table(catalog, name, schema, properties=FREQUENT_COMMITS)
            sides[side] = MaintainedWriter(catalog, name, policy)
        latencies: dict[str, list[float]] = {side: [] for side in sides}
        cpu: dict[str, list[float]] = {side: [] for side in sides}
        t0 = time.perf_counter()
        for i in range(appends):
            for side, writer in sides.items():
                writer.append(_batch(i))
                latencies[side].append(writer.last_commit_s)
                cpu[side].append(writer.last_commit_cpu_s)
        loop_s = time.perf_counter() - t0
        m, b = _stats(latencies["maintained"], window), _stats(latencies["baseline"], window)
        m_cpu, b_cpu = _stats(cpu["maintained"], window), _stats(cpu["baseline"], window)
        maint = sides["maintained"].maintenance
        single_rate = appends / (sum(latencies["maintained"]) + maint.seconds)
        for side, st, ct in (("maintained", m, m_cpu), ("baseline", b, b_cpu)):
            print(
                f"{side:10s} first {window}: p50 {st['first_p50']:6.1f} ms p99 {st['first_p99']:6.1f} ms | "
                f"last {window}: p50 {st['last_p50']:6.1f} ms p99 {st['last_p99']:6.1f} ms | "
                f"all commits {sum(latencies[side]):.1f} s | CPU first {window}: p50 {ct['first_p50']:.1f} ms p99 {ct['first_p99']:.1f} ms, "
                f"last {window}: p50 {ct['last_p50']:.1f} ms p99 {ct['last_p99']:.1f} ms",
                flush=True,
            )
        print(f"machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        print(
            f"maintenance: {maint.rounds} rounds, {maint.seconds:.1f} s ({maint.seconds / max(1, maint.rounds) * 1000:.0f} ms each), "
            f"{maint.rewritten_groups} rewrites, {maint.expired_snapshots} snapshots expired; both sides took {loop_s:.0f} s",
            flush=True,
        )
        rates = {}
        for mode in ("racing", "in_turn"):
            ensure_table(catalog, TableName("bench", mode), schema, properties=FREQUENT_COMMITS)
            rates[mode], shared_lat = _concurrent(writers, per_writer, mode)
            print(
                f"{writers} writers x {per_writer} appends, {mode.replace('_', ' ')}: {rates[mode]:.1f} commits/s "
                f"(one maintained writer alone: {single_rate:.1f}); their commit p50 {percentile(shared_lat, 50) * 1000:.0f} ms "
                f"p99 {percentile(shared_lat, 99) * 1000:.0f} ms (retries and waiting for the turn included)",
                flush=True,
            )
    result(
        "commits",
        appends=appends,
        window=window,
        maint_first_p50_ms=m["first_p50"], maint_first_p99_ms=m["first_p99"],
        maint_last_p50_ms=m["last_p50"], maint_last_p99_ms=m["last_p99"],
        base_first_p50_ms=b["first_p50"], base_first_p99_ms=b["first_p99"],
        base_last_p50_ms=b["last_p50"], base_last_p99_ms=b["last_p99"],
        last_p99_vs_base=m["last_p99"] / b["last_p99"],
        maint_first_cpu_p99_ms=m_cpu["first_p99"], maint_last_cpu_p50_ms=m_cpu["last_p50"], maint_last_cpu_p99_ms=m_cpu["last_p99"], base_last_cpu_p99_ms=b_cpu["last_p99"],
        target_p99_ms=TARGET_P99_MS, target_met="yes" if m["last_p99"] <= TARGET_P99_MS else "no",
        writers=writers, racing_commits_per_s=rates["racing"], in_turn_commits_per_s=rates["in_turn"], single_commits_per_s=single_rate,
    )


ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
