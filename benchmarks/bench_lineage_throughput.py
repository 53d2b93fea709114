"""Lineage throughput: N events of ~1.3 KB through producer -> broker -> consumer -> Iceberg.

Producer and consumer run as separate processes, at the same time, as in production. Reported:
sustained events/s from the first send to the last event committed to Iceberg, the producer's own
rate, and the consumer's peak RSS. Target (issue 4): >= 25,000 events/s on this 2-core machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from benchmarks.common import cpu_s, local_broker, result, scratch_home


def make_events(n: int) -> list[bytes]:
    """Events shaped like a training run's COMPLETE: one Iceberg input, one output, ~1.3 KB each."""
    from lineage import events as ev

    out = []
    for i in range(n):
        inp = ev.iceberg_dataset(producer="bench", catalog_name="tidemark", catalog_type="sql", table=f"raw.t{i % 50}",
                                 location=f"file:///warehouse/raw/t{i % 50}", snapshot_id=10**15 + i, direction="input", schema_id=0)
        del inp["facets"]["catalog"]
        outp = {"namespace": "file", "name": f"/warehouse/curated/t{i % 50}", "facets": {
            "version": ev.facet("bench", f"{ev.FACETS}/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
                                datasetVersion=str(2 * 10**15 + i))}}
        e = ev.run_event(producer="bench", event_type="COMPLETE", run_id=f"{i // 2:08d}-bench-run", job_namespace="bench",
                         job_name=f"job.{i % 100}", inputs=[inp], outputs=[outp],
                         event_time=f"2026-11-26T{(i // 3600000) % 24:02d}:{(i // 60000) % 60:02d}:{(i // 1000) % 60:02d}.{i % 1000:03d}000Z")
        out.append(ev.serialize(e))
    return out


def producer_main(n: int) -> None:
    from benchmarks.common import cpu_s
    from lakehouse.config import load_settings
    from lineage.kafka import ensure_topic, producer

    settings = load_settings()
    values = make_events(n)
    ensure_topic(settings)
    p = producer(settings)
    print(json.dumps({"ready": time.time(), "bytes": sum(map(len, values)) / n}), flush=True)
    start = time.perf_counter()
    topic = settings.kafka.topic
    for i, v in enumerate(values):
        p.send(topic, key=str(i // 2).encode(), value=v)
    p.flush(600)
    elapsed = time.perf_counter() - start
    p.close()
    print(json.dumps({"produce_s": elapsed, "cpu_s": cpu_s()}), flush=True)


def consumer_main(n: int) -> None:
    import threading

    from benchmarks.common import cpu_s, peak_rss_mb
    from lakehouse.config import load_settings
    from lineage.consumer import consume

    stop = threading.Event()
    last = {"t": 0.0}

    def on_batch(r: object) -> None:
        last["t"] = time.time()
        if r.stored_events >= n:  # type: ignore[attr-defined]
            stop.set()

    report = consume(load_settings(), once=False, batch_size=20_000, interval_s=2.0, stop=stop, on_batch=on_batch, compact_every=10**9)
    print(json.dumps({"stored": report.stored_events, "done": last["t"], "commits": report.commits, "rss_mb": peak_rss_mb(), "cpu_s": cpu_s()}), flush=True)


def run(quick: bool, events: int | None = None) -> None:
    n = events or (50_000 if quick else 1_000_000)
    from lakehouse.config import load_settings

    with scratch_home("throughput"):
        settings = load_settings()
        with local_broker(settings):
            from lineage import broker
            from lineage.kafka import ensure_topic

            ensure_topic(settings)
            state = broker.read_state(settings)
            broker_pid = state.pid if state else None
            broker_cpu = cpu_s(broker_pid) if broker_pid else float("nan")
            env_args = [sys.executable, "-m", "benchmarks.bench_lineage_throughput"]
            consumer = subprocess.Popen([*env_args, "consumer", str(n)], stdout=subprocess.PIPE, text=True)
            time.sleep(3)  # let the consumer load its tables and connect before events arrive
            producer = subprocess.Popen([*env_args, "producer", str(n)], stdout=subprocess.PIPE, text=True)
            assert producer.stdout is not None and consumer.stdout is not None
            ready = json.loads(producer.stdout.readline())
            produced = json.loads(producer.stdout.readline())
            producer.wait()
            out = json.loads(consumer.stdout.readline())
            consumer.wait()
            broker_cpu = cpu_s(broker_pid) - broker_cpu if broker_pid else float("nan")
    total_s = out["done"] - ready["ready"]
    print(f"events={n} avg_bytes={ready['bytes']:.0f} produce_s={produced['produce_s']:.1f} end_to_end_s={total_s:.1f} "
          f"consumer_commits={out['commits']} consumer_peak_rss_mb={out['rss_mb']:.0f}")
    # Where the 2 cores went: CPU seconds of each process over the run (the producer's includes
    # building its events before the clock starts).
    print(f"cpu_s: producer={produced['cpu_s']:.1f} broker={broker_cpu:.1f} consumer={out['cpu_s']:.1f} "
          f"(wall {total_s:.1f} s x 2 cores = {2 * total_s:.1f} core-s)")
    assert out["stored"] == n, f"stored {out['stored']} of {n}"
    result("lineage_throughput", events=n, event_bytes=round(ready["bytes"]), events_per_s=n / total_s,
           producer_events_per_s=n / produced["produce_s"], target_events_per_s=25000, ratio_to_target=n / total_s / 25000,
           consumer_peak_rss_mb=out["rss_mb"], consumer_cpu_s=out["cpu_s"], broker_cpu_s=broker_cpu, producer_cpu_s=produced["cpu_s"])


if __name__ == "__main__":
    role, count = sys.argv[1], int(sys.argv[2])
    producer_main(count) if role == "producer" else consumer_main(count)
