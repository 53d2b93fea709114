"""End-to-end acknowledgement: the outbox keeps an event until the lineage store holds it.

The local broker keeps its log in memory, so `tidemark down` (or a crash) loses what it held; the
outbox sends it again to the next broker, and the consumer stores each event id once.
"""

from __future__ import annotations

import json
from dataclasses import replace
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.faults.report import FaultReport


@pytest.fixture
def local_stack(isolated_env: Path) -> Iterator[Any]:
    """This test's own local broker (`tidemark up`), stopped at the end by `tidemark down`."""
    from lakehouse.config import load_settings

    run_cli("up")
    try:
        yield load_settings()
    finally:
        run_cli("down")


def stored(settings: Any) -> list[tuple[str, str]]:
    from lineage.query import connect

    return connect(settings).execute("SELECT job_name, event_type FROM lineage.events ORDER BY event_time").fetchall()


def test_events_survive_down_and_up_of_the_local_broker(local_stack: Any, wine_csv: Path, fault_report: FaultReport) -> None:
    from lineage.outbox import Outbox

    settings = local_stack
    run_cli("ingest", str(wine_csv), "--table", "raw.wine")
    box = Outbox(settings)
    assert (box.pending(), box.unacknowledged()) == (0, 2)  # the broker has them; the store not yet

    down = run_cli("down", "--output", "json")
    assert json.loads(down.stdout) == {"stopped": True, "kept_events": 2}
    assert "2 lineage events are not in the lineage store yet" in down.stderr
    run_cli("up")  # a new, empty log: the outbox queues them again
    assert (box.pending(), box.unacknowledged()) == (2, 0)

    out = json.loads(run_cli("lineage", "consume", "--once", "--output", "json").stdout)
    after = {"events": len(stored(settings)), "outbox": box.pending() + box.unacknowledged()}
    held = out["stored_events"] == 2 and stored(settings) == [("ingest.raw.wine", "START"), ("ingest.raw.wine", "COMPLETE")] and after["outbox"] == 0
    fault_report.record(
        "broker", "`tidemark down` with a landing's events not yet consumed (the in-memory log lost), then `up`", trials=1, held=held,
        before={"events": 0, "outbox": 2}, after=after, note="`down` warned and kept them; resent and stored once, then acknowledged",
    )
    assert held, (out, stored(settings), after)


def test_resent_events_are_stored_once_and_reconcile_acknowledges_what_another_consumer_stored(
    local_stack: Any, wine_csv: Path, tmp_path: Path, fault_report: FaultReport
) -> None:
    from lineage.broker import bootstrap_servers
    from lineage.consumer import consume
    from lineage.outbox import Outbox, flush
    from lineage.recovery import reconcile

    settings = local_stack
    run_cli("ingest", str(wine_csv), "--table", "raw.wine")
    box = Outbox(settings)
    assert box.requeue_sent() == 2 and flush(settings).delivered == 2  # each event twice on the topic now

    # A consumer elsewhere (another home: no access to this outbox) stores them into the same
    # catalog: nothing acknowledges them here...
    elsewhere = replace(
        settings, home=tmp_path / "elsewhere", kafka=replace(settings.kafka, bootstrap_servers=bootstrap_servers(settings))
    )
    report = consume(elsewhere, once=True)
    assert (report.stored_events, report.duplicates) == (2, 2)
    assert Outbox(settings).unacknowledged() == 2
    # ...until reconcile finds their ids in the lineage tables.
    reconciled = reconcile(settings)
    after = {"events": len(stored(settings)), "outbox": Outbox(settings).unacknowledged()}
    held = reconciled == (2, 0) and after == {"events": 2, "outbox": 0}
    fault_report.record(
        "broker", "every event on the topic twice, stored by a consumer elsewhere", trials=1, held=held,
        before={"events": 0, "outbox": 2, "on_topic": 4}, after=after, note="stored once, duplicates counted; `lineage recover` acknowledges them",
    )
    assert held, (reconciled, after)


def test_reconcile_sends_again_what_the_store_lacks(settings: Any) -> None:
    from lineage.outbox import Outbox, OutboxTransport
    from lineage.recovery import reconcile

    tr = OutboxTransport(settings, background=False)
    tr.emit({"eventType": "OTHER", "run": {"runId": "r1"}, "job": {"name": "x"}, "eventTime": "2026-11-30T00:00:00Z"})
    tr.close()
    box = Outbox(settings)
    assert (box.pending(), box.unacknowledged()) == (0, 1)
    assert reconcile(settings, resend_after_s=3600) == (0, 0)  # sent just now: the consumer may not have run yet
    assert reconcile(settings, resend_after_s=0) == (0, 1)  # long enough: sent again
    assert (box.pending(), box.unacknowledged()) == (1, 0)


def test_an_outbox_from_before_keeps_its_waiting_events_and_gets_their_ids(isolated_env: Path) -> None:
    import sqlite3

    from lakehouse.config import load_settings
    from lineage.events import event_id
    from lineage.outbox import Outbox

    isolated_env.mkdir(parents=True)
    db = sqlite3.connect(isolated_env / "outbox.db")
    db.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL, "
        "created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, claimed_by TEXT, claimed_at REAL, last_error TEXT)"
    )
    db.execute("INSERT INTO outbox (topic, key, value, created) VALUES ('t', x'00', ?, 1)", (b'{"eventType":"START"}',))
    db.commit()
    db.close()
    box = Outbox(load_settings())
    assert box.pending() == 1
    assert box.acknowledge([event_id(b'{"eventType":"START"}')]) == 1  # the id the store gives it
