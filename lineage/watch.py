"""`tidemark lineage watch`: follow the topic live and print each event as one readable line."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

from lakehouse.config import Settings
from lineage import actors
from lineage import events as ev


def describe(event: dict[str, Any]) -> str:
    """job, run, state, datasets with versions: one line, like kcat for lineage."""
    def ds(d: dict[str, Any]) -> str:
        name = ev.dataset_table(d) or d.get("name", "?")
        version = ev.dataset_version(d)
        if version and len(version) > 20:
            version = version[:12] + "…"
        return f"{name}@{version}" if version else str(name)

    inputs = ", ".join(ds(d) for d in event.get("inputs") or [])
    outputs = ", ".join(ds(d) for d in event.get("outputs") or [])
    flow = f" [{inputs or '-'} -> {outputs or '-'}]" if inputs or outputs else ""
    err = ((event.get("run") or {}).get("facets") or {}).get("errorMessage", {}).get("message")
    tail = f" error: {err}" if err else ""
    run_id = str((event.get("run") or {}).get("runId", ""))
    actor = actors.from_facet(((event.get("run") or {}).get("facets") or {}).get(actors.FACET))
    by = f" by {actor.describe()}" if actor else ""
    return f"{event.get('eventTime', '?')} {event.get('eventType', '?'):8} {(event.get('job') or {}).get('name', '?')} run {run_id[:13]}{by}{flow}{tail}"


def watch(
    settings: Settings,
    out: Callable[[str], None] = print,
    from_beginning: bool = False,
    limit: int | None = None,
    stop: threading.Event | None = None,
    as_json: bool = False,
) -> int:
    """Print events as they arrive; returns how many were printed. Uses a consumer group of its own,
    so watching never moves the lineage store's offsets."""
    from kafka import TopicPartition

    from lineage.kafka import consumer, ensure_topic

    ensure_topic(settings)
    kc = consumer(settings, f"tidemark-watch-{os.getpid()}")
    stop = stop or threading.Event()
    shown = 0
    try:
        tps = [TopicPartition(settings.kafka.topic, p) for p in sorted(kc.partitions_for_topic(settings.kafka.topic) or [])]
        kc.assign(tps)
        (kc.seek_to_beginning if from_beginning else kc.seek_to_end)(*tps)
        while not stop.is_set() and (limit is None or shown < limit):
            for _tp, recs in kc.poll(timeout_ms=200).items():
                for r in recs:
                    try:
                        event = json.loads(r.value)
                        line = json.dumps(event) if as_json else describe(event)
                    except (ValueError, AttributeError, TypeError):
                        line = f"(unreadable record at partition {r.partition} offset {r.offset}: {len(r.value or b'')} bytes)"
                    out(line)
                    shown += 1
                    if limit is not None and shown >= limit:
                        return shown
    finally:
        kc.close()
    return shown
