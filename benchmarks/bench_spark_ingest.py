"""Landing with Spark local[2] vs the pyarrow path: 20M generated rows (QUICK: 1M), the same file, the same gate.

Both sides are the real `tidemark ingest` command (`--engine spark` and the default), each in a
process of its own on a fresh SQLite catalog, with bench_ingest's 5-expectation suite and events
file (Parquet; 20M rows are about 1.9 GB in Arrow). Measured for each: the command's wall time (its
start-up included: Python imports, and for Spark the JVM), the landing's own time as the command
reports it, and the peak RSS of the whole process tree (the Python process and, for Spark, its JVM),
sampled every 0.1 s with psutil.

Then the memory limit: the pyarrow path runs again under an address-space limit (RLIMIT_AS, what
`ulimit -v` sets) of LIMIT_MB, smaller than the file in Arrow; it must fail with one line and leave
no table and no data file, while Spark (driver heap `spark.driver.memory` = the same LIMIT_MB) has
landed that file. Both pyarrow runs use glibc's MALLOC_ARENA_MAX=2 and Arrow's system allocator:
per-thread malloc arenas and jemalloc reserve gigabytes of address space they never touch, which
RLIMIT_AS counts but memory does not, so without them the limit would measure reservations.

Cost (docs/benchmarks.md): the largest part of `make bench`'s 45 minutes. One full run took 34
minutes at a load average of 20-30; at 15-21 the 1M and 5M runs carry to ~20 minutes at 20M, nearly
all of it the Spark landing (its JVM got 20-30% of one core). The file is generated once per size
and kept under `.bench/sources/`; `--rows N` runs another size.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.bench_ingest import SUITE, cached_source
from benchmarks.common import measure

ROOT = Path(__file__).resolve().parent.parent
LIMIT_MB = 1024


def _landed(home: Path) -> tuple[int, int]:
    """(rows on main of bench.events, data files under its warehouse folder) in a home: what a failed landing left."""
    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings

    settings = load_settings(environ={"TIDEMARK_HOME": str(home)})
    files = sum(1 for _ in (home / "warehouse").rglob("*.parquet")) if (home / "warehouse").exists() else 0
    catalog = load_catalog(settings)
    if not catalog.table_exists("bench.events"):
        return 0, files
    return catalog.load_table("bench.events").scan().to_arrow().num_rows, files


def run(quick: bool, rows: int | None = None) -> None:
    """`rows`: another size than the named ones (`python -m benchmarks.bench_spark_ingest --rows N`),
    to see how the time grows with the file when the full size cannot run."""
    rows = rows or (1_000_000 if quick else 20_000_000)
    with tempfile.TemporaryDirectory(prefix="tidemark-bench-spark-ingest-") as tmp:
        work = Path(tmp)
        source, arrow_bytes, state = cached_source(rows)
        arrow_mb = arrow_bytes / 2**20
        print(f"source: {rows:,} rows ({arrow_mb:,.0f} MiB in Arrow, {source.stat().st_size / 2**20:,.0f} MiB Parquet), {state}", flush=True)
        suite = work / "bench.events.yaml"
        suite.write_text(SUITE)
        base = {k: v for k, v in os.environ.items() if not k.startswith("TIDEMARK")}
        base.update({"GX_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "2", "ARROW_DEFAULT_MEMORY_POOL": "system"})
        ingest = [sys.executable, "-m", "tidemark", "ingest", str(source), "--table", "bench.events", "--suite", str(suite), "--output", "json"]

        def landing(name: str, extra: list[str], env: dict[str, str], limit_mb: int | None = None) -> dict[str, Any]:
            home = work / f"home-{name}"
            r = measure([*ingest, *extra], {**env, "TIDEMARK_HOME": str(home)}, work, limit_mb)
            r["home"] = home
            if r["rc"] == 0:
                r["result"] = json.loads(r["stdout"])
            return r

        arrow = landing("pyarrow", [], base)
        if arrow["rc"] != 0:
            raise RuntimeError(f"the pyarrow landing failed: {arrow['stderr'].strip().splitlines()[-1:]}")
        a = arrow["result"]
        print(f"pyarrow path: {arrow['wall']:.1f} s wall (landing {a['seconds']['total']:.1f} s), peak tree RSS {arrow['peak_rss_mb']:.0f} MiB", flush=True)
        spark_env = {**base, "TIDEMARK__SPARK__CONF__SPARK__DRIVER__MEMORY": f"{LIMIT_MB}m"}
        spark = landing("spark", ["--engine", "spark"], spark_env)
        if spark["rc"] != 0:
            raise RuntimeError(f"the Spark landing failed: {spark['stderr'].strip().splitlines()[-1:]}")
        s = spark["result"]
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in s["seconds"].items() if k != "total")
        print(
            f"spark local[2]: {spark['wall']:.1f} s wall (landing {s['seconds']['total']:.1f} s, JVM start included: {steps}), "
            f"peak tree RSS {spark['peak_rss_mb']:.0f} MiB, driver heap {LIMIT_MB} MiB",
            flush=True,
        )
        limited = under_limit(source, suite, work, base)

    assert a["rows"] == s["rows"] == rows and a["gate"]["success"] and s["gate"]["success"], (a, s)
    print(
        f"RESULT spark_ingest rows={rows} arrow_mb={arrow_mb:.0f} spark_s={spark['wall']:.1f} pyarrow_s={arrow['wall']:.1f} "
        f"spark_landing_s={s['seconds']['total']:.1f} pyarrow_landing_s={a['seconds']['total']:.1f} "
        f"spark_peak_rss_mb={spark['peak_rss_mb']:.0f} pyarrow_peak_rss_mb={arrow['peak_rss_mb']:.0f} limit_mb={LIMIT_MB} "
        f"file_larger_than_limit={str(arrow_mb > LIMIT_MB).lower()} pyarrow_under_limit={'failed' if limited['rc'] else 'landed'} "
        f"failed_cleanly={limited['failed_cleanly']} died_by_signal={limited['died_by_signal']} leftover_files={limited['leftover_files']} "
        f"leftover_after_recover={limited['leftover_after_recover']} spark_landed_over_limit={str(arrow_mb > LIMIT_MB).lower()}",
        flush=True,
    )


def under_limit(source: Path, suite: Path, work: Path, env: dict[str, str], limit_mb: int = LIMIT_MB) -> dict[str, Any]:
    """The pyarrow landing of `source` under RLIMIT_AS=`limit_mb` MiB in a fresh home, then
    `tidemark lineage recover` there (what the next command runs first): exit code, the signal it
    died by ('none' when it exited), what it left (rows, data files) before and after the recovery,
    and whether it failed cleanly (one error line, nothing left, no recovery needed). The Spark part
    of the benchmark is not needed for it: `python -c 'from benchmarks.bench_spark_ingest import ...'`."""
    home = work / "home-pyarrow-limited"
    cmd = [sys.executable, "-m", "tidemark", "ingest", str(source), "--table", "bench.events", "--suite", str(suite), "--output", "json"]
    r = measure(cmd, {**env, "TIDEMARK_HOME": str(home)}, work, limit_mb)
    left_rows, left_files = _landed(home)
    recovered = measure([sys.executable, "-m", "tidemark", "lineage", "recover"], {**env, "TIDEMARK_HOME": str(home)}, work)
    after_rows, after_files = _landed(home)
    error = r["stderr"].strip().splitlines()[-1] if r["stderr"].strip() else ""
    one_line = r["rc"] == 1 and error.startswith("tidemark: error:") and "Traceback" not in r["stderr"]
    died = signal.Signals(-r["rc"]).name if r["rc"] < 0 else "none"
    print(
        f"pyarrow path under RLIMIT_AS={limit_mb} MiB: exit {r['rc']} ({'died by ' + died if r['rc'] < 0 else 'exited'}) after {r['wall']:.1f} s, "
        f"left {left_rows} rows and {left_files} data files; after `lineage recover` (exit {recovered['rc']}) {after_rows} rows and "
        f"{after_files} data files; {error or '(no error line)'}",
        flush=True,
    )
    if r["rc"] == 0:
        print("note: at this size the pyarrow path fits under the limit (it streams 1M-row batches); the full size is the test of the limit")
    return {
        **r,
        "died_by_signal": died,
        "leftover_files": left_files,
        "leftover_after_recover": after_files,
        "failed_cleanly": "n/a" if r["rc"] == 0 else str(one_line and left_rows == 0 and left_files == 0).lower(),
    }


if __name__ == "__main__":
    run(quick="--quick" in sys.argv, rows=int(sys.argv[sys.argv.index("--rows") + 1]) if "--rows" in sys.argv else None)
