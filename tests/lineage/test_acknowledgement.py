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


def test_events_survive_down_and_up_of_the_local_broker(local_stack: Any, wine_csv: Path) -> None:
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
    assert out["stored_events"] == 2
    assert stored(settings) == [("ingest.raw.wine", "START"), ("ingest.raw.wine", "COMPLETE")]
    assert (box.pending(), box.unacknowledged()) == (0, 0)  # the consumer's commit acknowledged them


def test_resent_events_are_stored_once_and_reconcile_acknowledges_what_another_consumer_stored(
    local_stack: Any, wine_csv: Path, tmp_path: Path
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
    assert reconcile(settings) == (2, 0)
    assert Outbox(settings).unacknowledged() == 0
    assert len(stored(settings)) == 2


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
