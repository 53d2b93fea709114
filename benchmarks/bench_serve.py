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
bytes, `{"records": [...]}` with 1 or 100 wine records. Measured, in rounds that alternate the two
servers (quick: 1 round, full: 2), so a change in this shared machine's load lands on both alike:
1. throughput at saturation (closed loop, 8 keep-alive connections): requests/s at 1 and 100 records;
2. p99 latency at a constant open-loop rate of 50% of BentoML's 1-record peak of the same round,
   measured from each request's scheduled start (no coordinated omission).
Each side's figure is its best round (the one least disturbed by other work on the machine).
CPU per request of each server (its process tree) is reported beside, a figure less at the mercy of
the machine's other load than the wall clock.

Honest caveats: this machine has 2 cores and the client and the server share them (the client costs
roughly a third of a core at these rates; both servers pay it alike), and other jobs run on it too.
Targets (issue 21): throughput >= 1.0x BentoML at both sizes, p99 <= 1.0x.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks import loadgen
from benchmarks.common import local_broker, percentile, result, scratch_home
from benchmarks.serve_common import HOST, bentoml_server, body, cpu_of_tree, free_port, log, tidemark_server, train_wine

CONCURRENCY = 8


def _post(port: int, data: str) -> dict[str, Any]:
    req = urllib.request.Request(f"http://{HOST}:{port}/predict", data=data.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return dict(json.loads(r.read()))


def _closed(port: int, pid: int, data: str, seconds: float) -> dict[str, float]:
    cpu0 = cpu_of_tree(pid)
    got = loadgen.in_child(
        {"mode": "closed", "host": HOST, "port": port, "path": "/predict", "body": data, "seconds": seconds, "concurrency": CONCURRENCY, "warmup": 1.0}
    )
    cpu = cpu_of_tree(pid) - cpu0
    if got["failed"]:
        log(f"port {port}: {got['failed']} failed requests: {got['errors']}")
    total = got["ok"] + got["failed"]
    return {"rps": got["rps"], "failed": got["failed"], "cpu_ms": 1000 * cpu / max(1, total), "p50_ms": 1000 * percentile(got["latencies"], 50)}


def _open(port: int, data: str, rate: float, seconds: float) -> dict[str, float]:
    got = loadgen.in_child({"mode": "open", "host": HOST, "port": port, "path": "/predict", "body": data, "seconds": seconds, "rate": rate})
    if got["failed"]:
        log(f"port {port}: {got['failed']} failed requests at {rate:.0f}/s: {got['errors']}")
    lat = got["latencies"]
    return {"p50_ms": 1000 * percentile(lat, 50), "p99_ms": 1000 * percentile(lat, 99), "failed": got["failed"], "ok": got["ok"]}


def run(quick: bool) -> None:
    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings
    from lineage.kafka import ensure_topic
    from lineage.store import ensure_tables

    workers = int(os.environ.get("BENCH_SERVE_WORKERS", "1"))
    rounds, seconds, p99_seconds = (1, 4.0, 8.0) if quick else (2, 10.0, 20.0)
    with scratch_home("serve") as home, local_broker(load_settings()):
        settings = load_settings()
        ensure_topic(settings)
        ensure_tables(load_catalog(settings), settings)
        train_wine(settings, home)
        bodies = {1: body(home, 1), 100: body(home, 100)}
        tm_port, bm_port = free_port(), free_port()
        with tidemark_server(home, tm_port, workers) as tm, bentoml_server(settings, home, bm_port, workers) as bm:
            # Same model, same answers: the 100-record body must get the same predictions from both.
            tm_pred, bm_pred = _post(tm_port, bodies[100])["predictions"], _post(bm_port, bodies[100])["predictions"]
            if [int(p) for p in tm_pred] != [int(p) for p in bm_pred]:
                raise RuntimeError("Tidemark and BentoML answer the same records differently; they do not serve the same model")
            sides = {"tidemark": (tm_port, tm.pid), "bentoml": (bm_port, bm.pid)}
            best: dict[str, dict[str, float]] = {s: {} for s in sides}
            for r in range(rounds):
                order = ["bentoml", "tidemark"] if r % 2 == 0 else ["tidemark", "bentoml"]
                peak_1 = 0.0
                for n in (1, 100):
                    for side in order:
                        port, pid = sides[side]
                        m = _closed(port, pid, bodies[n], seconds)
                        log(f"round {r + 1} {side:8s} {n:3d} record(s): {m['rps']:7.1f} req/s, {m['cpu_ms']:.2f} ms server CPU/request, p50 {m['p50_ms']:.1f} ms")
                        if n == 1 and side == "bentoml":
                            peak_1 = m["rps"]
                        b = best[side]
                        if m["rps"] > b.get(f"rps_{n}", 0.0):
                            b[f"rps_{n}"], b[f"cpu_ms_{n}"] = m["rps"], m["cpu_ms"]
                        b["failed"] = b.get("failed", 0) + m["failed"]
                rate = max(1.0, 0.5 * peak_1)
                for side in order:
                    port, _ = sides[side]
                    m = _open(port, bodies[1], rate, p99_seconds)
                    log(f"round {r + 1} {side:8s} at {rate:.0f} req/s (50% of BentoML's peak): p50 {m['p50_ms']:.1f} ms, p99 {m['p99_ms']:.1f} ms, {m['ok']} answered")
                    b = best[side]
                    if m["p99_ms"] < b.get("p99_ms", float("inf")):
                        b["p99_ms"], b["p50_ms"], b["p99_rate"] = m["p99_ms"], m["p50_ms"], rate
                    b["failed"] = b.get("failed", 0) + m["failed"]
    tm_b, bm_b = best["tidemark"], best["bentoml"]
    result(
        "serve",
        tidemark_rps_1=tm_b["rps_1"], bentoml_rps_1=bm_b["rps_1"],
        tidemark_rps_100=tm_b["rps_100"], bentoml_rps_100=bm_b["rps_100"],
        ratio_rps_1=tm_b["rps_1"] / bm_b["rps_1"], ratio_rps_100=tm_b["rps_100"] / bm_b["rps_100"],
        tidemark_p99_ms=tm_b["p99_ms"], bentoml_p99_ms=bm_b["p99_ms"], p99_ratio=tm_b["p99_ms"] / bm_b["p99_ms"],
        p99_rate=bm_b["p99_rate"],
        tidemark_cpu_ms_1=tm_b["cpu_ms_1"], bentoml_cpu_ms_1=bm_b["cpu_ms_1"],
        tidemark_cpu_ms_100=tm_b["cpu_ms_100"], bentoml_cpu_ms_100=bm_b["cpu_ms_100"],
        failed=int(tm_b["failed"] + bm_b["failed"]), workers=workers, rounds=rounds, cores=os.cpu_count(),
        logging="tidemark_on_bentoml_off", target_ratio_rps_ge=1.0, target_p99_ratio_le=1.0, mode="quick" if quick else "full",
    )


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
