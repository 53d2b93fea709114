"""Lineage throughput: N events of ~1.3 KB through producer -> broker -> consumer -> Iceberg.

Producer and consumers run as separate processes, at the same time, as in production, on a topic
of 4 partitions: once with one consumer on every partition, once with two consumers, each on its
own half (`tidemark lineage consume --partitions 0,2` and `1,3`: the documented way to put both
cores to work; both write the same tables, exactly once). Both with the producers' default batch
compression (zstd); a third run, one consumer with `kafka.compression: none`, shows side by side
what compression buys. Reported for each: sustained events/s from the first send to the last event
committed to Iceberg (checked in the table afterwards: every event, once), the producer's own
rate, the consumers' peak RSS, and the CPU seconds of producer, broker and consumers.
Target (issue 4): >= 25,000 events/s on this 2-core machine."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from benchmarks.common import cpu_s, env_var, local_broker, result, scratch_home


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


def consumer_main(n: int, partitions: list[int] | None) -> None:
    """One consumer: all partitions, or the given ones; it stops once it stored `n` events."""
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

    report = consume(load_settings(), once=False, partitions=partitions, batch_size=20_000, interval_s=2.0, stop=stop,
                     on_batch=on_batch, compact_every=10**9)
    print(json.dumps({"stored": report.stored_events, "done": last["t"], "commits": report.commits, "rss_mb": peak_rss_mb(), "cpu_s": cpu_s()}), flush=True)


def _share(n: int, partitions: int) -> list[int]:
    """Events per partition: the producer keys event i with run i // 2, and the producer's
    partitioner (lineage.partition: murmur2 of the key, as Java's) decides where each key goes."""
    from lineage.partition import key_hash

    counts = [0] * partitions
    for run_key in range((n + 1) // 2):
        counts[key_hash(str(run_key).encode()) % partitions] += 2 if 2 * run_key + 1 < n else 1
    return counts


def one_run(n: int, consumers: int, partitions: int, compression: str = "zstd") -> dict[str, float]:
    """Producer, broker and `consumers` consumer processes (each on its own share of the
    partitions, as `tidemark lineage consume --partitions` runs them); returns the run's numbers."""
    from lakehouse.config import load_settings

    with (
        scratch_home("throughput"),
        env_var("TIDEMARK__KAFKA__PARTITIONS", str(partitions)),
        env_var("TIDEMARK__KAFKA__COMPRESSION", compression),
    ):
        settings = load_settings()
        with local_broker(settings):
            from lineage import broker
            from lineage.kafka import ensure_topic

            ensure_topic(settings)
            state = broker.read_state(settings)
            broker_pid = state.pid if state else None
            broker_cpu = cpu_s(broker_pid) if broker_pid else float("nan")
            env_args = [sys.executable, "-m", "benchmarks.bench_lineage_throughput"]
            if consumers == 1:
                assignments, expected = [[]], [n]
            else:
                counts = _share(n, partitions)
                assignments = [list(range(partitions))[k::consumers] for k in range(consumers)]
                expected = [sum(counts[p] for p in a) for a in assignments]
            procs = [
                subprocess.Popen([*env_args, "consumer", str(want), ",".join(map(str, a))], stdout=subprocess.PIPE, text=True)
                for a, want in zip(assignments, expected)
            ]
            time.sleep(3)  # let the consumers load their tables and connect before events arrive
            producer = subprocess.Popen([*env_args, "producer", str(n)], stdout=subprocess.PIPE, text=True)
            assert producer.stdout is not None
            ready = json.loads(producer.stdout.readline())
            produced = json.loads(producer.stdout.readline())
            producer.wait()
            outs = []
            for proc in procs:
                assert proc.stdout is not None
                outs.append(json.loads(proc.stdout.readline()))
                proc.wait()
            broker_cpu = cpu_s(broker_pid) - broker_cpu if broker_pid else float("nan")
            # Every event once, in the tables (not only in the consumers' own counts).
            from lineage.query import connect

            stored = connect(settings).execute("SELECT count(*), count(DISTINCT event_id) FROM lineage.events").fetchone()
    total_s = max(o["done"] for o in outs) - ready["ready"]
    assert stored == (n, n), f"the events table holds {stored[0]} rows, {stored[1]} distinct, of {n}"
    return {
        "events_per_s": n / total_s,
        "end_to_end_s": total_s,
        "bytes": ready["bytes"],
        "produce_s": produced["produce_s"],
        "producer_cpu_s": produced["cpu_s"],
        "broker_cpu_s": broker_cpu,
        "consumer_cpu_s": sum(o["cpu_s"] for o in outs),
        "consumer_peak_rss_mb": max(o["rss_mb"] for o in outs),
        "commits": sum(o["commits"] for o in outs),
    }


def run(quick: bool, events: int | None = None) -> None:
    n = events or (50_000 if quick else 1_000_000)
    runs = {}
    for label, consumers, compression in (("one", 1, "zstd"), ("two", 2, "zstd"), ("uncompressed", 1, "none")):
        r = runs[label] = one_run(n, consumers, partitions=4, compression=compression)
        print(f"consumers={consumers} compression={compression}: events={n} avg_bytes={r['bytes']:.0f} produce_s={r['produce_s']:.1f} "
              f"end_to_end_s={r['end_to_end_s']:.1f} -> {r['events_per_s']:,.0f} events/s; commits={r['commits']:.0f} "
              f"consumer_peak_rss_mb={r['consumer_peak_rss_mb']:.0f}")
        # Where the 2 cores went: CPU seconds of each side over the run (the producer's includes
        # building its events before the clock starts).
        print(f"  cpu_s: producer={r['producer_cpu_s']:.1f} broker={r['broker_cpu_s']:.1f} consumers={r['consumer_cpu_s']:.1f} "
              f"(wall {r['end_to_end_s']:.1f} s x 2 cores = {2 * r['end_to_end_s']:.1f} core-s)")
    one, two, plain = runs["one"], runs["two"], runs["uncompressed"]
    # The headline is the default deployment, one consumer; the two-consumer run shows what
    # scale-out adds when producer, broker and consumers already share both cores.
    result("lineage_throughput", events=n, event_bytes=round(one["bytes"]), events_per_s=one["events_per_s"],
           producer_events_per_s=n / one["produce_s"], target_events_per_s=25000, ratio_to_target=one["events_per_s"] / 25000,
           two_consumers_events_per_s=two["events_per_s"], two_consumers_ratio_to_target=two["events_per_s"] / 25000,
           uncompressed_events_per_s=plain["events_per_s"], zstd_vs_uncompressed=one["events_per_s"] / plain["events_per_s"],
           consumer_peak_rss_mb=one["consumer_peak_rss_mb"], consumer_cpu_s=one["consumer_cpu_s"],
           broker_cpu_s=one["broker_cpu_s"], uncompressed_broker_cpu_s=plain["broker_cpu_s"], producer_cpu_s=one["producer_cpu_s"])


if __name__ == "__main__":
    role, count = sys.argv[1], int(sys.argv[2])
    if role == "producer":
        producer_main(count)
    else:
        consumer_main(count, [int(p) for p in sys.argv[3].split(",")] if len(sys.argv) > 3 and sys.argv[3] else None)
