"""Commit and event are one unit: a run killed at any step ends with exactly one terminal event.

Real processes killed by the failpoint mechanism (`TIDEMARK_FAILPOINT`, SIGKILL at a named step),
a real broker, real Iceberg tables; recovery reads the tables, as `tidemark lineage recover` does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import run_cli, shifted_wine


def killed(*args: str, at: str) -> subprocess.CompletedProcess[str]:
    proc = run_cli(*args, check=False, env={"TIDEMARK_FAILPOINT": at})
    assert proc.returncode == -signal.SIGKILL, f"expected a SIGKILL at {at}, got exit {proc.returncode}:\n{proc.stderr}"
    return proc


def events_by_run(settings: Any) -> dict[str, list[str]]:
    from lineage.query import connect

    con = connect(settings)
    rows = con.execute("SELECT run_id, event_type FROM lineage.events ORDER BY event_time").fetchall()
    out: dict[str, list[str]] = {}
    for run_id, kind in rows:
        out.setdefault(run_id, []).append(kind)
    return out


def main_state(settings: Any, table: str) -> tuple[int | None, int, set[str]]:
    from lakehouse.catalog import load_catalog
    from lakehouse.tables import load_table

    t = load_table(load_catalog(settings), table)
    snap = t.current_snapshot()
    rows = t.scan().to_arrow().num_rows if snap else 0
    return (snap.snapshot_id if snap else None), rows, set(t.metadata.refs)


def test_kill_after_publish_is_completed_with_the_real_snapshot_and_passes_the_promotion_gate(settings: Any, wine_csv: Path) -> None:
    from lineage.outbox import Outbox
    from models.promotion import lineage_problems
    from models.registry import InputSnapshot, ModelVersion

    killed("ingest", str(wine_csv), "--table", "raw.wine", at="published")
    snapshot, rows, _ = main_state(settings, "raw.wine")
    assert rows == 178 and snapshot is not None
    assert len(Outbox(settings).runs_in_flight()) == 1  # START written, COMPLETE not

    # The rerun is a no-op (the file is on main): it must not land twice.
    again = run_cli("ingest", str(wine_csv), "--table", "raw.wine")
    assert "already in" in again.stdout + again.stderr

    out = json.loads(run_cli("lineage", "recover", "--output", "json").stdout)
    assert [c["event"] for c in out["completed"]] == ["COMPLETE"] and out["failed"] == []
    assert out["completed"][0]["outputs"][0].endswith(f"@{snapshot}")
    assert Outbox(settings).runs_in_flight() == []

    run_cli("lineage", "consume", "--once")
    runs = events_by_run(settings)
    assert sorted(runs.values()) == [["START", "COMPLETE"]]
    # What the user was stuck on: a model trained on that snapshot passes the lineage gate.
    mv = ModelVersion("wine", 1, "r", "j", "e", "a", "s", {}, [InputSnapshot("raw.wine", snapshot, rows)], {}, created_at=None)  # type: ignore[arg-type]
    assert lineage_problems(settings, mv) == []

    # A second recover finds nothing to do: exactly one terminal event per run.
    out = json.loads(run_cli("lineage", "recover", "--output", "json").stdout)
    assert out["completed"] == [] and out["failed"] == []


def test_kill_before_publish_fails_the_run_and_leaves_main_and_no_branch(settings: Any, wine_csv: Path) -> None:
    run_cli("ingest", str(wine_csv), "--table", "raw.wine")
    before = main_state(settings, "raw.wine")
    other = shifted_wine(wine_csv, 0.0)
    killed("ingest", str(other), "--table", "raw.wine", at="audited")
    assert main_state(settings, "raw.wine")[:2] == before[:2]
    assert any(r.startswith("audit-") for r in main_state(settings, "raw.wine")[2])

    # The next command that opens the outbox recovers by itself (here: consume).
    run_cli("lineage", "consume", "--once")
    runs = events_by_run(settings)
    assert Counter(tuple(v) for v in runs.values()) == Counter({("START", "COMPLETE"): 1, ("START", "FAIL"): 1})
    from lineage.query import connect

    message = connect(settings).execute(
        "SELECT json_extract_string(payload, '$.run.facets.errorMessage.message') FROM lineage.events WHERE event_type = 'FAIL'"
    ).fetchone()[0]
    assert message == "interrupted"
    assert main_state(settings, "raw.wine") == (before[0], before[1], {"main"})  # the audit branch is gone
    run_cli("ingest", str(other), "--table", "raw.wine")  # and the file lands on a second try
    assert main_state(settings, "raw.wine")[1] == 2 * before[1]


def test_a_live_run_is_left_alone_and_a_dead_run_without_resolver_fails(settings: Any) -> None:
    from lineage import run as lineage_run
    from lineage.outbox import Outbox
    from lineage.recovery import recover

    with lineage_run("custom.live", settings=settings) as live:
        report = recover(settings)
        assert report.running == [live.run_id] and report.completed == report.failed == []
    assert Outbox(settings).runs_in_flight() == []

    # A process of the SDK's own, killed inside its run: no resolver, so FAIL "interrupted".
    code = (
        "import os, signal\n"
        "from lineage import run\n"
        "with run('custom.killed') as r:\n"
        "    print(r.run_id, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    dead = proc.stdout.split()[0]
    report = recover(settings)
    assert [f["run_id"] for f in report.failed] == [dead] and report.failed[0]["reason"] == "interrupted"
    assert recover(settings).failed == []


def test_a_run_is_recoverable_from_its_start_with_the_note_written_with_it(settings: Any) -> None:
    from lineage import run as lineage_run
    from lineage.outbox import Outbox, OutboxTransport
    from lineage.transport import InMemoryTransport

    tr = OutboxTransport(settings, background=False)
    try:
        with lineage_run("custom.noted", settings=settings, transport=tr, recoverable=("json:loads", {"a": 1})) as run:
            (row,) = Outbox(settings).runs_in_flight()
            assert (row.run_id, row.resolver, row.context) == (run.run_id, "json:loads", {"a": 1})
            assert row.start_event is not None and row.start_event["eventType"] == "START"
            run.recoverable("json:dumps", b=2)  # a later note merges as before
            (row,) = Outbox(settings).runs_in_flight()
            assert (row.resolver, row.context) == ("json:dumps", {"a": 1, "b": 2})
    finally:
        tr.close()
    assert Outbox(settings).runs_in_flight() == []
    # A transport without an outbox takes the same run: its START, then COMPLETE.
    memory = InMemoryTransport()
    with lineage_run("custom.noted", settings=settings, transport=memory, recoverable=("json:loads", {"a": 1})):
        pass
    assert [e["eventType"] for e in memory.events] == ["START", "COMPLETE"]


def test_a_resolver_that_fails_keeps_the_run_in_flight(settings: Any) -> None:
    from lineage.outbox import Outbox, OutboxTransport
    from lineage.recovery import recover

    tr = OutboxTransport(settings, background=False)
    tr.expect("run-x", "custom.job", "json:no_such_function", {})
    tr.close()  # the process "died": its lock is released
    report = recover(settings)
    assert report.errors and "run-x" in report.errors[0]
    assert [r.run_id for r in Outbox(settings).runs_in_flight()] == ["run-x"]


def test_killed_training_and_promotion_are_finished_with_card_pins_and_one_event(settings: Any, wine_csv: Path) -> None:
    from lakehouse.catalog import load_catalog
    from lineage.outbox import Outbox
    from models import artifacts, pinning
    from models.registry import Registry

    run_cli("ingest", str(wine_csv), "--table", "raw.wine")
    run_cli("lineage", "consume", "--once")  # the promotion gate needs the landing's validation
    killed("train", "wine_classifier", at="registered")
    registry = Registry(settings)
    (mv,) = registry.versions("wine")
    assert mv.card_uri and json.loads(artifacts.get(settings, mv.card_uri))["version"] == 1  # the card came first
    assert pinning.pins(load_catalog(settings), "raw.wine") == {}  # died before pinning

    # The next command that opens the outbox (this promotion) finishes the training first, and dies
    # right after its own commit.
    killed("models", "promote", "wine", "1", "--alias", "production", "--reason", "first", at="registered")
    assert pinning.pins(load_catalog(settings), "raw.wine") == {"model/wine/1": mv.inputs[0].snapshot_id}
    assert registry.current_aliases() == {("wine", "production"): 1}
    assert [r.job_name for r in Outbox(settings).runs_in_flight()] == ["models.promote"]

    out = json.loads(run_cli("lineage", "recover", "--output", "json").stdout)
    assert [c["job"] for c in out["completed"]] == ["models.promote"] and out["failed"] == []

    run_cli("lineage", "consume", "--once")
    runs = events_by_run(settings)
    assert sorted(runs.values()) == [["COMPLETE"], ["START", "COMPLETE"], ["START", "COMPLETE"]]
    assert len(Registry(settings).versions("wine")) == 1 and Registry(settings).current_aliases() == {("wine", "production"): 1}

    # A promotion killed before its commit: no move, FAIL "interrupted" carrying no model dataset.
    killed("models", "promote", "wine", "1", "--alias", "staging", "--reason", "second", at="start")
    out = json.loads(run_cli("lineage", "recover", "--output", "json").stdout)
    assert [f["job"] for f in out["failed"]] == ["models.promote"] and out["failed"][0]["outputs"] == []
    assert ("wine", "staging") not in Registry(settings).current_aliases()


def test_a_landing_killed_between_a_failed_gate_and_its_quarantine_is_quarantined(settings: Any, wine_csv: Path) -> None:
    from lineage.recovery import recover

    run_cli("ingest", str(wine_csv), "--table", "raw.wine")
    before = main_state(settings, "raw.wine")
    bad = shifted_wine(wine_csv, 50.0, first_id=5000, name="bad.csv")  # alcohol beyond the suite's 8-20
    killed("ingest", str(bad), "--table", "raw.wine", at="audited")
    report = recover(settings)
    assert [f["reason"] for f in report.failed] == ["the validation gate of raw.wine failed"]
    snapshot, rows, refs = main_state(settings, "raw.wine")
    assert (snapshot, rows) == before[:2]
    assert [r for r in refs if r != "main"] == [f"quarantine-{report.failed[0]['run_id']}"]
