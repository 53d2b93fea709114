"""Drift check by DuckDB vs by Spark local[2], on the same tables at 5M, 10M and 20M rows (quick: 0.2M, 0.5M).

Where does DuckDB in one process stop being the right engine for `models drift --check`? Each size
is a table `bench.drift_<rows>` with two snapshots of `rows` rows: 7 of `bench_drift`'s columns
(`COLUMNS`: the key, five numeric of each kind and one categorical, with all four planted changes;
fewer than its 20 so that three sizes up to 20M rows fit in ~10 minutes), built once and cached under
`.bench/drift_engines/<mode>/` (the RESULT line says `tables=cached` or `tables=built` and how long
building took).

Each engine runs in a child process of its own (its peak memory its own), the clock starting
after imports:
- duckdb: `compute_drift(..., engine="duckdb")`, one child per size (peak RSS: the child's VmHWM);
- spark: one child holding one local[2] session (its start timed apart: a service keeps its
  session), one untimed check of a 100,000-row table to warm the JVM up (timed apart too: without
  it the first size carries ~10 s of JIT compilation and the fitted line slopes down), then
  `compute_drift(..., engine="spark")` per size in turn. Peak RSS: the JVM's VmHWM plus the Python
  driver's.
Both engines must give the same statistics (the counts are equal by construction; the scores
within 1e-9) and the same verdicts, checked at every size.

The crossover: a straight line `wall = fixed + per_row * rows` fitted to each engine's three sizes;
where the lines cross is the size at which Spark local[2] would start to win. Beyond the sizes
measured it is an extrapolation and the output says so; if Spark's per-row cost is not lower,
the lines never cross on this machine and the output says that instead, with how many cores Spark
would need to match DuckDB's per-row time (an extrapolation too: linear scaling with cores assumed).
A line that falls as the rows grow (quick sizes, where Spark's fixed cost per check dominates)
measures no per-row cost, and the crossover is then `unknown`, not a number.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import bench_drift

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench" / "drift_engines"
SPARK_CONF = {"spark.master": "local[2]", "spark.sql.shuffle.partitions": "4", "spark.driver.memory": "3g"}
TOLERANCE = 1e-9
COLUMNS = ("id", "n0", "n3", "a1", "c2", "f0", "k0")
WARMUP_ROWS = 100_000
LOCAL_CORES = 2  # Spark's master here: local[2]

DUCKDB_CHILD = """
import json, sys, time
import duckdb, numpy, pyiceberg.catalog.sql
from lakehouse.config import load_settings
from models.drift import compute_drift
started = time.perf_counter()
td = compute_drift(load_settings(), sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), engine="duckdb")
wall = time.perf_counter() - started
hwm = [int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"wall": wall, "peak_rss_mb": hwm, "drift": td.to_json()}))
"""

SPARK_CHILD = """
import json, sys, time
import numpy, pyiceberg.catalog.sql, pyspark
from lakehouse import spark as lspark
from lakehouse.config import load_settings
from models.drift import compute_drift

def hwm(pid):
    return [int(l.split()[1]) / 1024 for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM:")][0]

settings = load_settings()
t0 = time.perf_counter()
session = lspark.session(settings, conf=json.loads(sys.argv[1]))
session.sparkContext.setLogLevel("ERROR")
start = time.perf_counter() - t0
jvm = session.sparkContext._gateway.proc.pid
out = {"start": start, "runs": []}
table, base, cur = sys.argv[2].split(":")
t0 = time.perf_counter()
compute_drift(settings, table, int(base), int(cur), engine="spark")
out["warmup"] = time.perf_counter() - t0
for spec in sys.argv[3:]:
    table, base, cur = spec.split(":")
    started = time.perf_counter()
    td = compute_drift(settings, table, int(base), int(cur), engine="spark")
    out["runs"].append({"table": table, "wall": time.perf_counter() - started, "drift": td.to_json()})
out["peak_rss_mb"] = hwm(jvm) + hwm("self")
print(json.dumps(out))
"""


def _log(msg: str) -> None:
    print(f"  {msg}", flush=True)


def _build(home: Path, rows: int) -> tuple[str, int, int, str, float]:
    """(table, baseline id, current id, cached|built, seconds spent building) for one size."""
    name = f"bench.drift_{rows}"
    started = time.perf_counter()
    base, cur, state = bench_drift._build(home, rows, name=name, columns=COLUMNS)
    return name, base, cur, state, time.perf_counter() - started if state == "built" else 0.0


def _child(code: str, home: Path, *args: str) -> dict[str, Any]:
    # One Spark child runs every size (~13 minutes at full size on a loaded machine).
    return bench_drift._child(code, home, *args, timeout=3600)


def agreement(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, bool]:
    """The largest difference between two engines' scores of one table, and whether rows, counts
    and verdicts are the same."""
    same = (a["rows_baseline"], a["rows_current"], a["drifted_features"]) == (b["rows_baseline"], b["rows_current"], b["drifted_features"])
    worst = 0.0
    for fa, fb in zip(a["features"], b["features"]):
        same = same and fa["column"] == fb["column"] and fa["drifted"] == fb["drifted"]
        for key in ("psi", "ks_statistic", "ks_statistic_upper", "ks_pvalue", "category_shift", "missing_rate_baseline", "missing_rate_current"):
            if (fa[key] is None) != (fb[key] is None):
                same = False
            elif fa[key] is not None:
                worst = max(worst, abs(fa[key] - fb[key]))
    return worst, same


def fit(sizes: list[int], walls: list[float]) -> tuple[float, float]:
    """Least-squares line wall = fixed + per_row * rows."""
    n = len(sizes)
    mx, my = sum(sizes) / n, sum(walls) / n
    sxx = sum((x - mx) ** 2 for x in sizes)
    slope = sum((x - mx) * (y - my) for x, y in zip(sizes, walls)) / sxx if sxx else 0.0
    return my - slope * mx, slope


def crossover(duck: tuple[float, float], spark: tuple[float, float], sizes: list[int]) -> tuple[str, str]:
    """(rows at which the fitted lines cross, how that was found: measured | extrapolated | none | unknown)."""
    (a_d, b_d), (a_s, b_s) = duck, spark
    if b_d <= 0 or b_s <= 0:
        return "unknown", "unknown"  # a line that falls with size: fixed cost and noise hide the per-row cost
    if b_s >= b_d:
        return "none", "none"  # Spark costs as much or more per row: no size makes it faster here
    rows = (a_s - a_d) / (b_d - b_s)
    if rows <= 0:
        return "0", "measured"
    return f"{rows:.3g}", "measured" if min(sizes) <= rows <= max(sizes) else "extrapolated"


def run(quick: bool, sizes: list[int] | None = None) -> None:
    """`sizes`: other sizes than the named ones (`python -m benchmarks.bench_drift_engines --sizes
    1000000,2000000`), kept under `.bench/drift_engines/other/`, to see how the time grows."""
    home = WORK / ("other" if sizes else "quick" if quick else "full")
    sizes = sizes or ([200_000, 500_000] if quick else [5_000_000, 10_000_000, 20_000_000])
    home.mkdir(parents=True, exist_ok=True)
    warm = _build(home, WARMUP_ROWS)
    built = [_build(home, n) for n in sizes]
    state = "built" if any(b[3] == "built" for b in built) else "cached"
    build_s = sum(b[4] for b in [warm, *built])
    duck = [_child(DUCKDB_CHILD, home, name, str(base), str(cur)) for name, base, cur, _, _ in built]
    for n, d in zip(sizes, duck):
        _log(f"duckdb {n:>11,} rows: {d['wall']:7.2f} s, peak RSS {d['peak_rss_mb']:.0f} MB")
    spark = _child(SPARK_CHILD, home, json.dumps(SPARK_CONF), *(f"{name}:{base}:{cur}" for name, base, cur, _, _ in [warm, *built]))
    _log(f"spark local[2] session start: {spark['start']:.1f} s, warm-up check of {WARMUP_ROWS:,} rows: {spark['warmup']:.1f} s (neither counted below)")
    worst, same = 0.0, True
    for n, d, s in zip(sizes, duck, spark["runs"]):
        w, ok = agreement(d["drift"], s["drift"])
        worst, same = max(worst, w), same and ok
        _log(f"spark  {n:>11,} rows: {s['wall']:7.2f} s ({s['wall'] / d['wall']:.1f}x duckdb); scores differ by <= {w:.2g}, same verdicts: {ok}")
    _log(f"spark peak RSS (JVM + Python driver, all sizes): {spark['peak_rss_mb']:.0f} MB")
    line_d = fit(sizes, [d["wall"] for d in duck])
    line_s = fit(sizes, [s["wall"] for s in spark["runs"]])
    rows, how = crossover(line_d, line_s, sizes)
    _log(f"fitted: duckdb {line_d[0]:.2f} s + {line_d[1] * 1e6:.3f} s/M rows; spark {line_s[0]:.2f} s + {line_s[1] * 1e6:.3f} s/M rows")
    # Spark's answer to size is more executors, DuckDB's is one machine: how many cores Spark would need
    # to match DuckDB's per-row time here, if its per-row time fell in proportion to its cores.
    cores = LOCAL_CORES * line_s[1] / line_d[1] if line_d[1] > 0 and line_s[1] > 0 else float("nan")
    if how == "unknown":
        _log("crossover: unknown: a fitted line falls as the rows grow, so at these sizes fixed cost and the machine's load hide the per-row cost")
    elif how == "none":
        _log("crossover: none on this machine: Spark local[2] costs more per row than DuckDB, so no size makes it faster here")
        _log(f"Spark would need ~{cores:.0f} cores to match DuckDB's per-row time on {LOCAL_CORES} (EXTRAPOLATED: assumes it scales linearly with cores)")
    elif how == "extrapolated":
        _log(f"crossover: ~{float(rows):,.0f} rows, EXTRAPOLATED from the fitted lines (beyond the sizes measured)")
    else:
        _log(f"crossover: ~{float(rows):,.0f} rows, within the sizes measured")
    walls = " ".join(f"duckdb_{n // 1000}k_s={d['wall']:.2f} spark_{n // 1000}k_s={s['wall']:.2f}" for n, d, s in zip(sizes, duck, spark["runs"]))
    print(
        f"RESULT drift_engines sizes={','.join(str(n) for n in sizes)} columns={len(COLUMNS)} tables={state} build_s={build_s:.0f} {walls} "
        f"spark_start_s={spark['start']:.1f} spark_warmup_s={spark['warmup']:.1f} duckdb_rss_mb={max(d['peak_rss_mb'] for d in duck):.0f} spark_rss_mb={spark['peak_rss_mb']:.0f} "
        f"duckdb_s_per_mrow={line_d[1] * 1e6:.3f} spark_s_per_mrow={line_s[1] * 1e6:.3f} crossover_rows={rows} crossover={how} "
        f"spark_cores_to_match={cores:.0f} same_verdicts={same} max_score_diff={worst:.2g} agree={same and worst <= TOLERANCE}",
        flush=True,
    )


if __name__ == "__main__":
    chosen = [int(n) for n in sys.argv[sys.argv.index("--sizes") + 1].split(",")] if "--sizes" in sys.argv else None
    run(quick="--quick" in sys.argv, sizes=chosen)
