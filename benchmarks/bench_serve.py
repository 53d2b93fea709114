"""Serving throughput and latency: `tidemark serve` vs BentoML, the same wine model, the same client.

The wine reference model is trained in a scratch home (embedded stack: SQLite catalog, local broker)
and `wine@production` is served twice, both servers up for the whole run:
- Tidemark: `tidemark serve wine@production --workers W` with prediction logging on (its default:
  every answered record goes to the Iceberg table `serving.wine_predictions`);
- BentoML 1.4.40 (its own venv, `.bench/bentoml-venv`, made on first use from
  `benchmarks/bentoml-constraints.txt`, as the MLflow comparison does): a `@bentoml.service` with
  `workers=W` that loads the very artifact bytes the registry holds (exported, checked against the
  registry's sha256, unpickled) and predicts on the records in the job's feature order; logging off.
  Both run uvicorn with httptools and uvloop. W = 1 (BENCH_SERVE_WORKERS to change it).

The client (`benchmarks.loadgen`, a process of its own) is the same for both and sends the same
bytes, `{"records": [...]}` with 1 or 100 wine records. The two servers take turns in short slices
(ABBA order; quick: 2 turns each, full: 4), so a change in this shared machine's load lands on both
alike, and each side's figure pools its turns:
1. throughput at saturation (closed loop, 8 keep-alive connections, 2 s per turn in quick, 4 s in
   full): requests/s at 1 and 100 records;
2. p99 latency at a constant open-loop rate of 50% of BentoML's 1-record peak just measured (4 s per
   turn in quick, 8 s in full), each latency from the request's scheduled start (no coordinated
   omission).
Beside the pooled p99, the ratio of the two sides' median per-turn p99 (`p99_turn_median_ratio`):
one stall caused by another job on the machine moves the pooled p99 of whichever side it hit, the
median of the turns far less. The CPU per request of each server (its process tree) is reported beside: a figure far less at the
mercy of the machine's other load than the wall clock.

Honest caveats: this machine has 2 cores and the client and the server share them (the client's own
CPU is measured and reported, `client_cores_1`: the share of a core it took at saturation with 1
record, the larger of the two sides'), and other jobs run on it too (its load average was 15-35
during the runs quoted in docs/serving-benchmarks.md), so the wall-clock figures swing from run to run;
the CPU per request swings far less.
Targets (issue 21): throughput >= 1.0x BentoML at both sizes, p99 <= 1.0x.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks import loadgen
from benchmarks.common import local_broker, percentile, result, scratch_home
from benchmarks.serve_common import HOST, body, cpu_of_tree, free_port, log, serving, start_bentoml, start_tidemark, train_wine

CONCURRENCY = 8


def _post(port: int, data: str) -> dict[str, Any]:
    req = urllib.request.Request(f"http://{HOST}:{port}/predict", data=data.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return dict(json.loads(r.read()))


def _closed(port: int, pid: int, data: str, seconds: float) -> dict[str, Any]:
    cpu0 = cpu_of_tree(pid)
    got = loadgen.in_child(
        {"mode": "closed", "host": HOST, "port": port, "path": "/predict", "body": data, "seconds": seconds, "concurrency": CONCURRENCY, "warmup": 0.5}
    )
    # Both include the 0.5 s warm-up's requests: per request, a slight overestimate, for both sides alike.
    got["server_cpu_s"] = cpu_of_tree(pid) - cpu0
    got["cpu_requests"] = got["ok"] + got["failed"]
    if got["failed"]:
        log(f"port {port}: {got['failed']} failed requests: {got['errors']}")
    return got


def _open(port: int, data: str, rate: float, seconds: float) -> dict[str, Any]:
    got = loadgen.in_child({"mode": "open", "host": HOST, "port": port, "path": "/predict", "body": data, "seconds": seconds, "rate": rate})
    if got["failed"]:
        log(f"port {port}: {got['failed']} failed requests at {rate:.0f}/s: {got['errors']}")
    return got


def _logged_rows(settings: Any) -> int:
    """Rows in Tidemark's prediction log table (0 when it does not exist: nothing was logged)."""
    from lakehouse.catalog import load_catalog

    catalog = load_catalog(settings)
    if not catalog.table_exists(("serving", "wine_predictions")):
        return 0
    snap = catalog.load_table(("serving", "wine_predictions")).current_snapshot()
    return int(snap.summary["total-records"]) if snap is not None and snap.summary is not None else 0


def _slices(sides: list[str], k: int) -> list[str]:
    """k turns per side in ABBA order, so a trend in the machine's load weighs on both sides alike."""
    out: list[str] = []
    for i in range(k):
        out += sides if i % 2 == 0 else sides[::-1]
    return out


def run(quick: bool) -> None:
    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings
    from lineage.kafka import ensure_topic
    from lineage.store import ensure_tables

    workers = int(os.environ.get("BENCH_SERVE_WORKERS", "1"))
    turns, seconds, p99_seconds = (2, 2.0, 4.0) if quick else (4, 4.0, 8.0)
    with scratch_home("serve") as home, local_broker(load_settings()):
        settings = load_settings()
        ensure_topic(settings)
        ensure_tables(load_catalog(settings), settings)
        started = time.monotonic()
        train_wine(settings, home)
        log(f"wine model trained and promoted in {time.monotonic() - started:.1f} s")
        bodies = {1: body(home, 1), 100: body(home, 100)}
        tm_port, bm_port = free_port(), free_port()
        started = time.monotonic()
        tm, bm = start_tidemark(home, tm_port, workers), start_bentoml(settings, home, bm_port, workers)
        with serving((tm, tm_port, "tidemark serve"), (bm, bm_port, "bentoml serve")):
            log(f"both servers ready in {time.monotonic() - started:.1f} s")
            # Same model, same answers: the 100-record body must get the same predictions from both.
            tm_pred, bm_pred = _post(tm_port, bodies[100])["predictions"], _post(bm_port, bodies[100])["predictions"]
            if [int(p) for p in tm_pred] != [int(p) for p in bm_pred]:
                raise RuntimeError("Tidemark and BentoML answer the same records differently; they do not serve the same model")
            sides = {"bentoml": (bm_port, bm.pid), "tidemark": (tm_port, tm.pid)}
            m: dict[str, dict[str, float]] = {side: {"failed": 0} for side in sides}
            for n in (1, 100):
                acc = {side: {"ok": 0, "s": 0.0, "cpu_s": 0.0, "cpu_requests": 0, "client_cpu_s": 0.0} for side in sides}
                for side in _slices(list(sides), turns):
                    port, pid = sides[side]
                    got = _closed(port, pid, bodies[n], seconds)
                    a = acc[side]
                    a["ok"] += got["ok"]
                    a["s"] += seconds
                    a["cpu_s"] += got["server_cpu_s"]
                    a["cpu_requests"] += got["cpu_requests"]
                    a["client_cpu_s"] += got["cpu_s"]
                    m[side]["failed"] += got["failed"]
                    log(f"{side:8s} {n:3d} record(s): {got['rps']:7.1f} req/s")
                for side, a in acc.items():
                    m[side][f"rps_{n}"] = a["ok"] / a["s"]
                    m[side][f"cpu_ms_{n}"] = 1000 * a["cpu_s"] / max(1, a["cpu_requests"])
                    m[side][f"client_cpu_ms_{n}"] = 1000 * a["client_cpu_s"] / max(1, a["cpu_requests"])
                    m[side][f"client_cores_{n}"] = a["client_cpu_s"] / a["s"]
                    log(f"{side:8s} {n:3d} record(s): {m[side][f'rps_{n}']:7.1f} req/s over {turns} turns, {m[side][f'cpu_ms_{n}']:.2f} ms server CPU/request; "
                        f"the client {m[side][f'client_cpu_ms_{n}']:.2f} ms/request, {m[side][f'client_cores_{n}']:.2f} cores")
            rate = max(1.0, 0.5 * m["bentoml"]["rps_1"])
            latencies: dict[str, list[float]] = {side: [] for side in sides}
            turn_p99: dict[str, list[float]] = {side: [] for side in sides}
            for side in _slices(list(sides), turns):
                port, _ = sides[side]
                got = _open(port, bodies[1], rate, p99_seconds)
                latencies[side] += got["latencies"]
                turn_p99[side].append(1000 * percentile(got["latencies"], 99))
                m[side]["failed"] += got["failed"]
                log(f"{side:8s} at {rate:.0f} req/s: p99 {1000 * percentile(got['latencies'], 99):.1f} ms")
            for side, lat in latencies.items():
                m[side]["p50_ms"], m[side]["p99_ms"] = 1000 * percentile(lat, 50), 1000 * percentile(lat, 99)
                m[side]["p99_turn_median_ms"] = statistics.median(turn_p99[side])
                log(f"{side:8s} at {rate:.0f} req/s (50% of BentoML's 1-record peak): p50 {m[side]['p50_ms']:.1f} ms, p99 {m[side]['p99_ms']:.1f} ms, {len(lat)} answered")
        # The servers are stopped (SIGTERM: the prediction log commits what it buffered). What Tidemark
        # logged shows that logging was on while it was measured.
        logged = _logged_rows(settings)
        log(f"tidemark's prediction log holds {logged} rows")
    tm_b, bm_b = m["tidemark"], m["bentoml"]
    result(
        "serve",
        tidemark_rps_1=tm_b["rps_1"], bentoml_rps_1=bm_b["rps_1"],
        tidemark_rps_100=tm_b["rps_100"], bentoml_rps_100=bm_b["rps_100"],
        ratio_rps_1=tm_b["rps_1"] / bm_b["rps_1"], ratio_rps_100=tm_b["rps_100"] / bm_b["rps_100"],
        tidemark_p99_ms=tm_b["p99_ms"], bentoml_p99_ms=bm_b["p99_ms"], p99_ratio=tm_b["p99_ms"] / bm_b["p99_ms"],
        p99_rate=rate,
        p99_turn_median_ratio=tm_b["p99_turn_median_ms"] / bm_b["p99_turn_median_ms"],
        tidemark_cpu_ms_1=tm_b["cpu_ms_1"], bentoml_cpu_ms_1=bm_b["cpu_ms_1"],
        tidemark_cpu_ms_100=tm_b["cpu_ms_100"], bentoml_cpu_ms_100=bm_b["cpu_ms_100"],
        client_cores_1=max(tm_b["client_cores_1"], bm_b["client_cores_1"]),
        failed=int(tm_b["failed"] + bm_b["failed"]), workers=workers, turns=turns, cores=os.cpu_count(),
        tidemark_logged_rows=logged, target_ratio_rps_ge=1.0, target_p99_ratio_le=1.0, mode="quick" if quick else "full",
    )


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
