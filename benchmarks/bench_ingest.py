"""Landing through the gate vs. plain Parquet: 10 million generated rows (about 1 GB in Arrow).

Both sides start from the same generated Parquet source file and end with Parquet on disk:
- tidemark: `ingest.land.land` into a fresh SQLite catalog with a 5-expectation suite (checksum,
  streamed batches, data files, GX gate, audit branch, publish, Data Docs), in a subprocess of its
  own so its peak RSS is measured alone (the child's VmHWM). The clock starts after the
  process has imported its libraries (GX's import alone takes seconds; printed apart);
- plain: `pyarrow.parquet.read_table` + `pyarrow.parquet.write_table` in this process.
The machine is shared, so the two sides alternate twice and each keeps its best run.
The ratio is tidemark rows/s over plain rows/s (target >= 0.5); gate_share is the time spent in
the gate (GX runs plus the merge) over the landing's wall time; peak RSS target is <= 1.5 GB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import kept_home

SUITE = """\
- expect_column_values_to_not_be_null: {column: id}
- expect_column_values_to_be_unique: {column: id}
- expect_column_values_to_be_between: {column: amount, min_value: 0, max_value: 100000}
- expect_column_values_to_be_in_set: {column: category, value_set: [books, games, garden, music, tools]}
- expect_table_row_count_to_be_between: {min_value: 1}
"""

CHILD = """
import json, sys, time
t0 = time.perf_counter()
# Library imports happen once per process (GX alone takes seconds): timed apart, like the plain
# baseline, whose process has pyarrow imported already.
import great_expectations, pyiceberg.catalog.sql, pyiceberg.io.pyarrow, pandas
from lakehouse.config import load_settings
from lineage.transport import InMemoryTransport
from ingest.land import land
imports = time.perf_counter() - t0
started = time.perf_counter()
r = land(load_settings(), sys.argv[1], "bench.events", suite_file=sys.argv[2], transport=InMemoryTransport())
total = time.perf_counter() - started
assert r.gate is not None and r.gate.success, r.to_json()
try:  # this process's own high-water mark (a new address space at exec, unlike ru_maxrss after fork)
    hwm = [int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
except OSError:
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": r.rows, "wall": total, "imports": imports, "seconds": r.seconds, "files": r.data_files, "peak_rss_mb": hwm}))
"""


def generate(path: Path, rows: int, chunk: int = 1_000_000) -> float:
    """A realistic-looking events file; returns its size in Arrow bytes. Memory: one chunk."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    pool = pa.array([" ".join(rng.choice(words, 6)) + f" #{i}" for i in range(5000)])
    categories = pa.array(["books", "games", "garden", "music", "tools"])
    codes = pa.array([f"{a}{b}{c}-{n:04d}" for n, (a, b, c) in enumerate(rng.choice(list("ABCDEFGH"), (4096, 3)))])
    nbytes = 0
    writer = None
    start = np.datetime64("2026-01-01T00:00:00", "us")
    for off in range(0, rows, chunk):
        n = min(chunk, rows - off)
        t = pa.table(
            {
                # Unique but shuffled: the gate's uniqueness merge takes its general (sorting)
                # path, not the shortcut for keys that arrive in increasing order.
                "id": pa.array(rng.permutation(np.arange(off, off + n, dtype=np.int64))),
                "ts": pa.array(start + rng.integers(0, 86_400_000_000 * 300, n).astype("timedelta64[us]")),
                "amount": pa.array(np.round(rng.gamma(2.0, 50.0, n), 2)),
                "quantity": pa.array(rng.integers(1, 20, n, dtype=np.int32)),
                "category": categories.take(pa.array(rng.integers(0, 5, n))),
                "code": codes.take(pa.array(rng.integers(0, len(codes), n))),
                "description": pool.take(pa.array(rng.integers(0, len(pool), n))),
            }
        )
        nbytes += t.nbytes
        writer = writer or pq.ParquetWriter(path, t.schema)
        writer.write_table(t, row_group_size=256_000)
    assert writer is not None
    writer.close()
    return nbytes


SEED = 42
SOURCE = "events.parquet"


def cached_source(rows: int) -> tuple[Path, float, str]:
    """The generated events file of `rows` rows, kept under `.bench/sources/<rows>-<seed>/` by
    `kept_home` (so an interrupted generation is made again, never reused): (path, its size in
    Arrow bytes, "cached" | "generated in N s"). bench_ingest and bench_spark_ingest both land from it."""
    with kept_home("sources", {"rows": rows, "seed": SEED}, lambda home: generate(home / SOURCE, rows)) as (home, built_s, arrow_bytes):
        pass
    return home / SOURCE, float(arrow_bytes), f"generated in {built_s:.1f} s" if built_s else "cached"


def run(quick: bool) -> None:
    import pyarrow.parquet as pq

    rows = 200_000 if quick else 10_000_000
    root = ROOT
    with tempfile.TemporaryDirectory(prefix="tidemark-bench-ingest-") as tmp:
        work = Path(tmp)
        source, arrow_bytes, state = cached_source(rows)
        print(f"source: {rows:,} rows ({arrow_bytes / 1e6:,.0f} MB in Arrow, {source.stat().st_size / 1e6:,.0f} MB Parquet), {state}", flush=True)
        suite = work / "bench.events.yaml"
        suite.write_text(SUITE)

        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEMARK")}
        env.update({"GX_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(root)})

        def landing_run(i: int) -> dict:
            # Alone in a child process, so its peak RSS is the child's (getrusage RUSAGE_CHILDREN).
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(source), str(suite)],
                capture_output=True, text=True, env={**env, "TIDEMARK_HOME": str(work / f"home-{i}")}, cwd=str(work), timeout=900,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"landing failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
            return json.loads(proc.stdout.strip().splitlines()[-1])

        def plain_run() -> tuple[float, float]:
            t0 = time.perf_counter()
            table = pq.read_table(source)
            t_read = time.perf_counter() - t0
            pq.write_table(table, work / "plain.parquet")
            return time.perf_counter() - t0, t_read

        # The machine is shared: alternate the two sides and keep each side's best of two runs.
        landings, plains = [], []
        for i in range(2):
            landings.append(landing_run(i))
            plains.append(plain_run())
        # Each landing's own peak: getrusage(RUSAGE_CHILDREN) would also count the pages a forked
        # child shares with this (by then large) process before it execs.
        peak_rss_mb = max(r["peak_rss_mb"] for r in landings)
        landing = min(landings, key=lambda r: r["wall"])
        tidemark_s = landing["wall"]
        plain_s, t_read = min(plains)

    secs = landing["seconds"]
    gate_share = secs.get("gate", 0.0) / tidemark_s
    tm_rps = rows / tidemark_s
    pq_rps = rows / plain_s
    print(
        f"tidemark landing: {tidemark_s:.1f} s best of {[round(r['wall'], 1) for r in landings]} ({landing['files']} data files); "
        f"gate {secs.get('gate', 0):.1f} s, commit+publish {secs.get('commit', 0):.2f} s; "
        f"library imports before it {landing['imports']:.1f} s (not counted)"
    )
    print(f"plain parquet:    {plain_s:.1f} s best of {[round(p[0], 1) for p in plains]} (read_table {t_read:.1f} s + write_table {plain_s - t_read:.1f} s)")
    print(
        f"RESULT ingest rows={rows} tidemark_rows_per_s={tm_rps:.0f} parquet_rows_per_s={pq_rps:.0f} "
        f"ratio={tm_rps / pq_rps:.2f} gate_share={gate_share:.2f} peak_rss_mb={peak_rss_mb:.0f}",
        flush=True,
    )


ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
