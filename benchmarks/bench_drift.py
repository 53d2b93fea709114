"""Drift check of a 10-million-row snapshot against its baseline (quick: 500,000), 20 columns.

The table `bench.features` has two snapshots of the same shape: the baseline, and a current one
drawn again from the same distributions except for a few planted changes (a numeric shift, a
rescaled column, a category mix change, more missing values). 1 key column, 15 numeric (float64
at full precision, float64 rounded to cents, int32 counts, float32) and 4 categorical (5 to 200
categories). It is built once and cached under `.bench/drift/<mode>/` (the RESULT line says
`table=cached` or `table=built`).

Side by side, each in a child process of its own so its peak RSS (the child's VmHWM) is its own,
the clock starting after the imports:
- tidemark: `models.drift.compute_drift` (DuckDB over the two snapshots by time travel);
- pandas: both snapshots loaded into pandas (`scan(snapshot_id=...).to_pandas()`), then numpy for
  PSI (the same 10 bins at the baseline's deciles), `scipy.stats.ks_2samp` (exact statistic,
  asymptotic p-value) and pandas `value_counts` for the category shift.
Agreement is checked and shown: scipy's exact KS statistic must lie inside tidemark's reported
[ks_statistic, ks_statistic_upper]; PSI within 0.01 (tidemark cuts at deciles of a 100,000-row
sample, the baseline at exact deciles); category shift and missing rates equal; the same features
flagged. Targets: >= 5x faster, <= 1/4 of the memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench" / "drift"
TABLE = "bench.features"
BUILD_MARK = "tidemark.bench.build"
CHUNK = 1_000_000

TIDEMARK_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import duckdb, numpy, pyiceberg.catalog.sql
from lakehouse.config import load_settings
from models.drift import compute_drift
imports = time.perf_counter() - t0
started = time.perf_counter()
td = compute_drift(load_settings(), sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
wall = time.perf_counter() - started
hwm = [int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"wall": wall, "imports": imports, "peak_rss_mb": hwm, "drift": td.to_json()}))
"""

PANDAS_CHILD = """
import json, math, sys, time
t0 = time.perf_counter()
import numpy as np, pandas as pd, pyiceberg.catalog.sql
from scipy import stats
from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
imports = time.perf_counter() - t0
started = time.perf_counter()
table = load_catalog(load_settings()).load_table(tuple(sys.argv[1].split(".")))
base = table.scan(snapshot_id=int(sys.argv[2])).to_pandas()
cur = table.scan(snapshot_id=int(sys.argv[3])).to_pandas()
loaded = time.perf_counter() - started
out = {}
for col in base.columns:
    if col == "id":
        continue
    b, c = base[col], cur[col]
    f = {"missing_rate_baseline": float(b.isna().mean()), "missing_rate_current": float(c.isna().mean())}
    if pd.api.types.is_numeric_dtype(b):
        bv, cv = b.dropna().to_numpy("float64"), c.dropna().to_numpy("float64")
        edges = np.unique(np.quantile(bv, [i / 10 for i in range(1, 10)]))
        # bins (-inf, e1], ..., (e9, inf), as tidemark cuts them
        nb = np.diff(np.concatenate([[0], np.searchsorted(np.sort(bv), edges, side="right"), [len(bv)]]))
        nc = np.diff(np.concatenate([[0], np.searchsorted(np.sort(cv), edges, side="right"), [len(cv)]]))
        pb, pc = np.maximum(nb / len(bv), 1e-4), np.maximum(nc / len(cv), 1e-4)
        ks = stats.ks_2samp(bv, cv, method="asymp")
        f.update(kind="numeric", psi=float(np.sum((pc - pb) * np.log(pc / pb))), ks_statistic=float(ks.statistic), ks_pvalue=float(ks.pvalue))
    else:
        pb, pc = b.value_counts(normalize=True), c.value_counts(normalize=True)
        both = pd.concat([pb, pc], axis=1).fillna(0)
        f.update(kind="categorical", category_shift=float(0.5 * (both.iloc[:, 0] - both.iloc[:, 1]).abs().sum()))
    out[col] = f
wall = time.perf_counter() - started
hwm = [int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"wall": wall, "load": loaded, "imports": imports, "peak_rss_mb": hwm, "features": out}))
"""


def _log(msg: str) -> None:
    print(f"  {msg}", flush=True)


def _settings(home: Path) -> Any:
    from lakehouse.config import load_settings

    return load_settings(environ={"TIDEMARK_HOME": str(home)})


def _chunk(seed: int, start: int, n: int, drifted: bool) -> Any:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {"id": pa.array(np.arange(start, start + n, dtype=np.int64))}
    for i in range(5):  # full-precision measurements; n0 moves by 0.3 sd in the drifted snapshot
        cols[f"n{i}"] = pa.array(rng.normal(10 * i, 1 + i, n) + (0.3 * (1 + i) if drifted and i == 0 else 0))
    for i in range(4):  # money, rounded to cents; a1 grows by 20% in the drifted snapshot
        cols[f"a{i}"] = pa.array(np.round(rng.gamma(2 + i, 25, n) * (1.2 if drifted and i == 1 else 1), 2))
    for i in range(4):  # counts; c2 gets 10% missing values in the drifted snapshot
        values = pa.array(rng.poisson(3 + 5 * i, n).astype(np.int32))
        if drifted and i == 2:
            values = pa.array(values.to_numpy(), mask=rng.random(n) < 0.10)
        cols[f"c{i}"] = values
    for i in range(2):  # single-precision sensor readings
        cols[f"f{i}"] = pa.array(rng.uniform(0, 100, n).astype(np.float32))
    for i, k in enumerate((5, 12, 50, 200)):  # categories; k0's mix changes in the drifted snapshot
        names = pa.array([f"k{i}_{j:03d}" for j in range(k)])
        p = np.arange(1, k + 1, dtype=float)[::-1] if not (drifted and i == 0) else np.arange(1, k + 1, dtype=float)
        cols[f"k{i}"] = names.take(pa.array(rng.choice(k, n, p=p / p.sum())))
    return pa.table(cols)


def _build(home: Path, rows: int, name: str = TABLE, columns: Sequence[str] | None = None) -> tuple[int, int, str]:
    """The table's baseline and current snapshot ids, building the table unless cached (`columns`:
    only those of `_chunk`'s columns; `bench_drift_engines` builds narrower tables)."""
    from lakehouse.catalog import load_catalog
    from lakehouse.tables import TableName, ensure_table

    spec = f"{rows}:v1"
    ident = TableName.parse(name).identifier
    catalog = load_catalog(_settings(home))
    if catalog.table_exists(ident):
        table = catalog.load_table(ident)
        if table.properties.get(BUILD_MARK, "").startswith(spec + ":"):
            _, _, base, cur = table.properties[BUILD_MARK].split(":")
            return int(base), int(cur), "cached"
        catalog.drop_table(ident)
    started = time.perf_counter()

    def chunk(seed: int, start: int, n: int, drifted: bool) -> Any:
        data = _chunk(seed, start, n, drifted)
        return data.select(list(columns)) if columns else data

    table = ensure_table(catalog, TableName.parse(name), chunk(0, 0, 1, False).schema)
    ids = []
    for drifted in (False, True):
        # One transaction per snapshot: the chunks keep memory to one chunk, the commit makes one state.
        with table.transaction() as tx:
            for off in range(0, rows, CHUNK):
                data = chunk(off + (7 if drifted else 1), off, min(CHUNK, rows - off), drifted)
                (tx.overwrite if drifted and off == 0 else tx.append)(data)
        table = table.refresh()
        ids.append(table.current_snapshot().snapshot_id)
    with table.transaction() as tx:
        tx.set_properties({BUILD_MARK: f"{spec}:{ids[0]}:{ids[1]}"})
    _log(f"built {name}: 2 snapshots of {rows:,} rows in {time.perf_counter() - started:.0f} s")
    return ids[0], ids[1], "built"


def _child(code: str, home: Path, *args: str, timeout: float = 1200) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEMARK")}
    env.update({"TIDEMARK_HOME": str(home), "PYTHONPATH": str(ROOT)})
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=str(home), timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _flagged(f: dict[str, Any]) -> bool:
    """The baseline's verdict under the default thresholds (the same rule as `DriftThresholds`)."""
    if f["kind"] == "numeric" and (f["psi"] > 0.2 or (f["ks_pvalue"] < 0.01 and f["ks_statistic"] > 0.1)):
        return True
    if f["kind"] == "categorical" and f["category_shift"] > 0.1:
        return True
    return bool(abs(f["missing_rate_current"] - f["missing_rate_baseline"]) > 0.05)


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """How far the two sides' statistics are apart, and whether they agree within the stated tolerances."""
    psi_diff = ks_outside = cat_diff = miss_diff = 0.0
    p_diff_material = 0.0
    for f in ours["features"]:
        t = theirs[f["column"]]
        miss_diff = max(miss_diff, abs(f["missing_rate_current"] - t["missing_rate_current"]), abs(f["missing_rate_baseline"] - t["missing_rate_baseline"]))
        if f["kind"] == "numeric":
            psi_diff = max(psi_diff, abs(f["psi"] - t["psi"]))
            # scipy's exact statistic must lie in tidemark's [statistic, upper bound]
            ks_outside = max(ks_outside, f["ks_statistic"] - t["ks_statistic"], t["ks_statistic"] - f["ks_statistic_upper"])
            if t["ks_statistic"] > 0.01:  # a material shift: both p-values must say so
                p_diff_material = max(p_diff_material, abs(f["ks_pvalue"] - t["ks_pvalue"]))
        else:
            cat_diff = max(cat_diff, abs(f["category_shift"] - t["category_shift"]))
    agree = psi_diff <= 0.01 and ks_outside <= 1e-9 and cat_diff <= 1e-9 and miss_diff <= 1e-12 and p_diff_material <= 1e-6
    return {
        "psi_max_diff": psi_diff,
        "ks_outside_bounds": max(ks_outside, 0.0),
        "category_shift_max_diff": cat_diff,
        "missing_rate_max_diff": miss_diff,
        "pvalue_max_diff_material": p_diff_material,
        "agree": agree,
    }


def run(quick: bool) -> None:
    rows = 500_000 if quick else 10_000_000
    home = WORK / ("quick" if quick else "full")
    home.mkdir(parents=True, exist_ok=True)
    base, cur, state = _build(home, rows)
    ours = _child(TIDEMARK_CHILD, home, TABLE, str(base), str(cur))
    theirs = _child(PANDAS_CHILD, home, TABLE, str(base), str(cur))
    drift = ours["drift"]
    flagged_pandas = sorted(c for c, f in theirs["features"].items() if _flagged(f))
    agreement = compare(drift, theirs["features"])
    same_flags = flagged_pandas == sorted(drift["drifted_features"])
    _log(f"{'column':8} {'psi tm':>9} {'psi pd':>9} {'ks tm [lo, hi]':>22} {'ks scipy':>9} {'p tm':>9} {'p scipy':>9} {'cat tm':>7} {'cat pd':>7}")
    for f in drift["features"]:
        t = theirs["features"][f["column"]]
        if f["kind"] == "numeric":
            _log(
                f"{f['column']:8} {f['psi']:9.5f} {t['psi']:9.5f} [{f['ks_statistic']:.5f}, {f['ks_statistic_upper']:.5f}] "
                f"{t['ks_statistic']:9.5f} {f['ks_pvalue']:9.2g} {t['ks_pvalue']:9.2g} {'':>7} {'':>7}{' DRIFTED' if f['drifted'] else ''}"
            )
        else:
            _log(f"{f['column']:8} {'':>9} {'':>9} {'':>22} {'':>9} {'':>9} {'':>9} {f['category_shift']:7.4f} {t['category_shift']:7.4f}{' DRIFTED' if f['drifted'] else ''}")
    _log(f"drifted (tidemark): {', '.join(drift['drifted_features'])}; (pandas): {', '.join(flagged_pandas)}")
    _log(f"agreement: {json.dumps(agreement)}")
    _log(f"tidemark: {ours['wall']:.1f} s, peak RSS {ours['peak_rss_mb']:.0f} MB (imports {ours['imports']:.1f} s, not counted)")
    _log(f"pandas:   {theirs['wall']:.1f} s (loading both snapshots {theirs['load']:.1f} s), peak RSS {theirs['peak_rss_mb']:.0f} MB")
    print(
        f"RESULT drift rows={rows} columns=20 table={state} tidemark_s={ours['wall']:.2f} pandas_s={theirs['wall']:.2f} "
        f"speedup={theirs['wall'] / ours['wall']:.1f} tidemark_rss_mb={ours['peak_rss_mb']:.0f} pandas_rss_mb={theirs['peak_rss_mb']:.0f} "
        f"rss_ratio={ours['peak_rss_mb'] / theirs['peak_rss_mb']:.3f} agree={agreement['agree'] and same_flags} "
        f"psi_max_diff={agreement['psi_max_diff']:.2g} ks_outside_bounds={agreement['ks_outside_bounds']:.2g}",
        flush=True,
    )


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
