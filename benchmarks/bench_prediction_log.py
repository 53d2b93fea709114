"""Prediction-log freshness: time from a request to its row visible in a DuckDB query of the Iceberg table.

`tidemark serve wine@production` (prediction logging on, the default micro-batch settings) answers
a constant open-loop rate of 1-record requests (`benchmarks.loadgen`; quick: 20/s for 15 s, full:
50/s for 60 s) while this process polls `serving.wine_predictions` through DuckDB (each poll loads
the table's current metadata and reads it with `iceberg_scan`, as `tidemark sql` does) and notes
when each prediction_id first shows. Freshness of a row = that time - the request's start; the part
up to the commit that holds it (`commit_*`: the timestamp of the newest snapshot at that poll, which
pyiceberg stamps as it prepares the commit; later than the row's own commit when two fall between
polls) is printed beside it. Every answered request must show up (`missing` counts those that never did within 60 s of the end).
Target (issue 21): p99 <= 10 s.
"""

from __future__ import annotations

import json
import os
import sys
import time

from benchmarks.common import local_broker, percentile, result, scratch_home
from benchmarks.serve_common import HOST, MODEL, body, client_report, free_port, log, start_client, tidemark_server, train_wine


def _ids(answer: str) -> list[str]:
    """The ids the log stores for an answer: one per record (`prediction_ids` of a batch), else the request's."""
    a = json.loads(answer)
    return list(a.get("prediction_ids") or [a["prediction_id"]])


def run(quick: bool) -> None:
    from lakehouse import sql
    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings
    from lineage.kafka import ensure_topic
    from lineage.store import ensure_tables

    rate, seconds = (20.0, 15.0) if quick else (50.0, 60.0)
    workers = int(os.environ.get("BENCH_SERVE_WORKERS", "1"))
    table_id = ("serving", f"{MODEL}_predictions")
    with scratch_home("prediction-log") as home, local_broker(load_settings()):
        settings = load_settings()
        ensure_topic(settings)
        catalog = load_catalog(settings)
        ensure_tables(catalog, settings)
        train_wine(settings, home)
        port = free_port()
        with tidemark_server(home, port, workers):
            spec = {"mode": "open", "host": HOST, "port": port, "path": "/predict", "body": body(home, 1),
                    "seconds": seconds, "rate": rate, "keep_bodies": True}
            report = home / "client.json"
            client = start_client(spec, report)
            con = sql.connect()
            seen: dict[str, float] = {}  # prediction_id -> wall time it was first visible
            committed: dict[str, float] = {}  # prediction_id -> the commit time of the newest snapshot when it showed
            last_metadata = None
            deadline = time.monotonic() + seconds + 60
            out = None
            answered: set[str] | None = None
            try:
                while time.monotonic() < deadline:
                    if out is None and client.poll() is not None:
                        out = client_report(client, report)
                        answered = {i for b in out["bodies"] if 200 <= b[2] < 300 for i in _ids(b[3])}
                    if answered is not None and answered <= seen.keys():
                        break
                    if catalog.table_exists(table_id):
                        table = catalog.load_table(table_id)
                        if table.current_snapshot() is not None and table.metadata_location != last_metadata:
                            last_metadata = table.metadata_location
                            rows = con.execute("SELECT CAST(prediction_id AS VARCHAR) FROM iceberg_scan(?)", [last_metadata]).fetchall()
                            now = time.time()
                            commit_time = table.current_snapshot().timestamp_ms / 1000
                            for (pid,) in rows:
                                if pid not in seen:
                                    seen[pid], committed[pid] = now, commit_time
                    time.sleep(0.1)
            finally:
                if client.poll() is None:
                    client.kill()
                    client.wait()
            if out is None:
                raise RuntimeError("the load generator did not finish")
    fresh = []
    to_commit = []  # request -> the commit that holds its row (the service's part)
    missing = 0
    for scheduled, _answered, status, text in out["bodies"]:
        if 200 <= status < 300:
            for pid in _ids(text):
                if pid in seen:
                    fresh.append(seen[pid] - scheduled)
                    to_commit.append(committed[pid] - scheduled)
                else:
                    missing += 1
    if out["failed"]:
        log(f"failed requests: {out['failed']} ({out['errors']})")
    p50, p99 = percentile(fresh, 50), percentile(fresh, 99)
    third = max(1, len(fresh) // 3)  # in request order: does freshness drift as the table's history grows?
    log(f"freshness p50 of the first third of the requests {percentile(fresh[:third], 50):.2f} s, of the last third "
        f"{percentile(fresh[-third:], 50):.2f} s")
    log(f"of which request -> commit: p50 {percentile(to_commit, 50):.2f} s, p99 {percentile(to_commit, 99):.2f} s (the rest is this "
        f"reader's poll: load the table, scan it)")
    log(f"{len(fresh)} rows visible in DuckDB; freshness p50 {p50:.2f} s, p99 {p99:.2f} s, max {max(fresh or [float('nan')]):.2f} s; {missing} missing")
    result(
        "prediction_log", rows=len(fresh), missing=missing, failed=out["failed"], rate_per_s=rate, seconds=seconds,
        p50_s=p50, p99_s=p99, max_s=max(fresh or [float("nan")]), commit_p50_s=percentile(to_commit, 50),
        commit_p99_s=percentile(to_commit, 99), target_p99_s=10.0, mode="quick" if quick else "full",
    )


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
