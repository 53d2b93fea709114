"""Lineage freshness: at a steady 1,000 events/s, time from send to visible in a DuckDB query.

A producer process sends at the rate; the consumer runs as a service (commit interval 1 s); this
process polls the events table through DuckDB (each poll reads the table's current metadata, as
`tidemark sql` does) and records, per event, when it first became visible. Target (issue 4):
p99 <= 5 s. The reference point is the Iceberg Kafka Connect sink, which commits every 300 s by default.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from benchmarks.common import local_broker, percentile, result, scratch_home


def producer_main(rate: int, seconds: int) -> None:
    from lakehouse.config import load_settings
    from lineage import events as ev
    from lineage.kafka import producer

    settings = load_settings()
    p = producer(settings)
    start = time.monotonic()
    n = rate * seconds
    for i in range(n):
        # Pace to the rate; the event's own time is its send time, so latency needs no side channel.
        target = start + i / rate
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        e = ev.run_event(producer="bench", event_type="COMPLETE", run_id=ev.new_run_id(), job_namespace="bench", job_name=f"job.{i % 20}")
        p.send(settings.kafka.topic, key=e["run"]["runId"].encode(), value=ev.serialize(e))
    p.flush(60)
    p.close()
    print(json.dumps({"sent": n, "elapsed": time.monotonic() - start}), flush=True)


def run(quick: bool) -> None:
    rate, seconds = 1000, (15 if quick else 60)
    from lakehouse import sql
    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings
    from lineage.kafka import ensure_topic
    from lineage.store import ensure_tables

    with scratch_home("freshness"):
        settings = load_settings()
        with local_broker(settings):
            ensure_topic(settings)
            catalog = load_catalog(settings)
            ensure_tables(catalog, settings)
            consumer = subprocess.Popen(
                [sys.executable, "-m", "tidemark", "lineage", "consume", "--interval", "1", "--batch-size", "5000"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            time.sleep(4)  # the consumer's start-up (imports, catalog, broker) is not freshness
            producer = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_lineage_freshness", str(rate), str(seconds)], stdout=subprocess.PIPE, text=True)
            con = sql.connect()
            seen: dict[str, float] = {}
            latencies: list[float] = []
            expected = rate * seconds
            deadline = time.monotonic() + seconds + 60
            last_count = 0
            while len(seen) < expected and time.monotonic() < deadline:
                table = catalog.load_table((settings.lineage.namespace, "events"))
                if table.current_snapshot() is not None and len(table.snapshots()) != last_count:
                    last_count = len(table.snapshots())
                    rows = con.execute(
                        "SELECT event_id, epoch_ms(event_time) FROM iceberg_scan(?)", [table.metadata_location]
                    ).fetchall()
                    now = time.time()
                    for eid, sent_ms in rows:
                        if eid not in seen:
                            seen[eid] = now
                            latencies.append(now - sent_ms / 1000)
                time.sleep(0.05)
            producer.wait()
            consumer.terminate()
            consumer.wait(30)
    p50, p99, worst = percentile(latencies, 50), percentile(latencies, 99), max(latencies or [float("nan")])
    print(f"events={len(seen)}/{expected} rate={rate}/s p50_s={p50:.2f} p99_s={p99:.2f} max_s={worst:.2f}")
    result("lineage_freshness", events=len(seen), rate_per_s=rate, p50_s=p50, p99_s=p99, max_s=worst,
           target_p99_s=5.0, kafka_connect_default_commit_s=300, ratio_p99_to_target=p99 / 5.0)


if __name__ == "__main__":
    producer_main(int(sys.argv[1]), int(sys.argv[2]))
