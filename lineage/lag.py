"""Consumer lag: how many lineage events wait to be stored, and how long the oldest has waited.

The consumer is a service, not a job that reports failure; this is how a scheduler notices that it
stopped storing. Waiting means records in the topic past the offsets the lineage tables hold (read
back from their snapshot summaries, exactly as the consumer resumes), plus events in the local
outbox not yet delivered to the topic.
"""

from __future__ import annotations

import time
from typing import Any

from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lineage.broker import log_id
from lineage.consumer import stored_offsets
from lineage.exceptions import LineageStalledError
from lineage.outbox import Outbox
from lineage.store import EVENTS, ensure_tables

# How long to wait for every partition's high watermark before calling the broker unresponsive.
ANSWER_TIMEOUT_S = 5.0


def consumer_lag(settings: Settings, max_age_s: float) -> dict[str, Any]:
    """Events waiting for the consumer, and how long the oldest has waited; raises
    `LineageStalledError` if one waited longer than `max_age_s`, or the broker did not answer."""
    from kafka import TopicPartition

    from lineage import kafka

    catalog = load_catalog(settings)
    ensure_tables(catalog, settings)
    events = catalog.load_table((settings.lineage.namespace, EVENTS))
    topic = settings.kafka.topic
    stored = stored_offsets(events, topic, log_id(settings))
    kc = kafka.consumer(settings, None)
    oldest_ms: dict[int, int] = {}
    try:
        tps = [TopicPartition(topic, p) for p in sorted(kc.partitions_for_topic(topic) or [])]
        kc.assign(tps)
        for tp in tps:
            kc.seek(tp, stored.get(tp.partition, 0))
        # The high watermark from a fetch, not end_offsets(): the local broker answers the latter wrongly.
        # The first record fetched past the stored offset is the oldest one waiting in its partition.
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while time.monotonic() < deadline and any(kc.highwater(tp) is None for tp in tps):
            for tp, recs in kc.poll(timeout_ms=200, max_records=100).items():
                if recs:
                    oldest_ms.setdefault(tp.partition, recs[0].timestamp)
                kc.pause(tp)  # one record per partition is enough
        ends = {tp: kc.highwater(tp) for tp in tps}
    finally:
        kc.close()
    unknown = [tp.partition for tp, end in ends.items() if end is None]
    if unknown:
        raise LineageStalledError(
            f"topic {topic}: no answer for partition(s) {unknown} in {ANSWER_TIMEOUT_S:g} s; is the broker up (`tidemark status`)?"
        )
    lag = {tp.partition: max(0, int(ends[tp] or 0) - stored.get(tp.partition, 0)) for tp in tps}
    outbox = Outbox(settings)
    waiting_since = [t / 1000 for p, t in oldest_ms.items() if lag.get(p)]
    if (created := outbox.oldest_created()) is not None:
        waiting_since.append(created)
    age = time.time() - min(waiting_since) if waiting_since else 0.0
    report = {
        "topic": topic,
        "lag": sum(lag.values()),
        "lag_by_partition": lag,
        "outbox_pending": outbox.pending(),
        # Sent, not yet acknowledged by the lineage store; runs whose terminal event is not written yet.
        "outbox_unacknowledged": outbox.unacknowledged(),
        "runs_in_flight": len(outbox.runs_in_flight()),
        "oldest_waiting_s": round(age, 1),
    }
    if waiting_since and age > max_age_s:
        raise LineageStalledError(
            f"lineage consumer stalled: {report['lag']} record(s) in topic {topic} and {report['outbox_pending']} "
            f"in the outbox wait, the oldest for {age:.0f} s (limit {max_age_s:.0f} s); check `tidemark lineage consume` and the broker"
        )
    return report
