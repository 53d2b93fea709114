"""Killing a process that logs predictions: nothing acknowledged is lost, nothing committed twice,
and every flush run gets exactly one terminal event.

A real driver process (`predlog_driver.py`) appends to the wine prediction log of a home where the
model was trained (shared by the module); the test kills it (SIGTERM, SIGKILL, or a failpoint at
each step of a flush: `lakehouse.failpoints.STEPS["predlog"]`), then restarts the log as a new
service would, lets recovery finish the dead run, and counts the table's rows in DuckDB.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from lakehouse.failpoints import STEPS
from tests.faults import predlog_driver
from tests.faults.report import FaultReport
from tests.serving.trained import Trained, log_rows, served, trained, wine_rows  # noqa: F401  (fixtures)


def start_driver(tmp_path: Path, trained: Trained, mode: str, limit: int, env: dict[str, str] | None = None) -> tuple[Any, Path]:
    rows = tmp_path / "features.json"
    rows.write_text(json.dumps([r["features"] for r in wine_rows(trained, 178)]))
    acks = tmp_path / f"acks-{mode}-{time.monotonic_ns()}.txt"
    acks.touch()
    child_env = {**{k: v for k, v in os.environ.items() if k.startswith("TIDEMARK")}, **(env or {})}
    proc = _CTX.Process(target=predlog_driver.main, args=(child_env, str(rows), str(acks), mode, limit))
    proc.start()
    return proc, acks


# A child forked from a warm forkserver starts in well under a second (a new interpreter: ~5 s here).
_CTX = mp.get_context("forkserver")
_CTX.set_forkserver_preload(["tests.faults.predlog_driver"])


def acked(acks: Path) -> int:
    numbers = [int(line) for line in acks.read_text().split() if line.isdigit()]
    return max(numbers, default=0)


def wait_for(cond: Any, what: str, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def restart_and_flush(settings: Any) -> Any:
    """What a new service process does: recovery (first use of the outbox), then its log's close()."""
    from lineage.recovery import recover
    from serving.predlog import PredictionLog

    recover(settings)
    return PredictionLog(settings, "wine", start=False).close()


def ids_in_table(settings: Any) -> Counter[str]:
    return Counter(log_rows(settings)["prediction_id"].to_pylist())


def test_sigterm_loses_nothing(served: Any, trained: Trained, tmp_path: Path, fault_report: FaultReport, monkeypatch: pytest.MonkeyPatch) -> None:
    # A long interval: nothing is committed before the SIGTERM, so close() has everything to do.
    monkeypatch.setenv("TIDEMARK__SERVING__LOG_INTERVAL_S", "3600")
    monkeypatch.setenv("TIDEMARK__SERVING__LOG_BATCH_ROWS", "100000")
    proc, acks = start_driver(tmp_path, trained, "stream", 300)
    wait_for(lambda: acked(acks) == 300 or not proc.is_alive(), "300 rows appended")
    os.kill(proc.pid, signal.SIGTERM)
    proc.join(60)
    assert proc.exitcode == 0
    assert "closed" in acks.read_text()
    ids = ids_in_table(served)
    held = sorted(ids) == sorted(f"k-{i}" for i in range(300)) and set(ids.values()) == {1}
    fault_report.record("kill", "prediction log: SIGTERM after 300 appends (close() on the way out)", trials=1, held=held,
                        before={"acked": 300}, after={"rows": sum(ids.values())}, note="every acknowledged row committed by close()")
    assert held, ids.most_common(3)


def test_sigkill_loses_no_acknowledged_row_and_commits_none_twice(served: Any, trained: Trained, tmp_path: Path, fault_report: FaultReport, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small batches and a short interval: the flusher commits while the appends go on.
    monkeypatch.setenv("TIDEMARK__SERVING__LOG_INTERVAL_S", "0.1")
    monkeypatch.setenv("TIDEMARK__SERVING__LOG_BATCH_ROWS", "40")
    proc, acks = start_driver(tmp_path, trained, "stream", 10**9)
    wait_for(lambda: acked(acks) >= 600 or not proc.is_alive(), "600 rows appended")
    proc.kill()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    n = acked(acks)  # read after the death: every number in the file was written after its append returned
    restart_and_flush(served)
    ids = ids_in_table(served)
    missing = [f"k-{i}" for i in range(n) if f"k-{i}" not in ids]
    twice = [i for i, c in ids.items() if c > 1]
    # Rows of an append that had not returned may be there or not (at most one chunk of ten).
    extra = sorted(set(ids) - {f"k-{i}" for i in range(n)})
    held = not missing and not twice and len(extra) <= 10
    fault_report.record("kill", "prediction log: SIGKILL while appending and flushing", trials=1, held=held,
                        before={"acked": n}, after={"rows": sum(ids.values())},
                        note=f"missing {len(missing)}, duplicated {len(twice)}, unacknowledged but kept {len(extra)}")
    assert held, (missing[:5], twice[:5], extra[:5])


@pytest.mark.parametrize("step", STEPS["predlog"])
def test_killed_at_each_step_of_a_flush(step: str, served: Any, trained: Trained, tmp_path: Path, fault_report: FaultReport) -> None:
    from lineage.outbox import Outbox
    from lineage.recovery import recover
    from lineage.transport import InMemoryTransport
    from serving.predlog import JOB_PREFIX, PredictionLog, buffer_path

    proc, acks = start_driver(tmp_path, trained, "flush", 100, env={"TIDEMARK_FAILPOINT": f"{JOB_PREFIX}.{step}"})
    proc.join(120)
    assert proc.exitcode == -signal.SIGKILL
    assert acked(acks) == 100
    box = Outbox(served)
    dead = [r.run_id for r in box.runs_in_flight() if r.job_name == "predlog.wine"]
    report = recover(served)
    outcome = {e["run_id"]: e["event"] for e in report.completed + report.failed}
    # Killed before the commit: recovery sends FAIL (the rows are still buffered); after the commit,
    # COMPLETE from the snapshot; after the COMPLETE (`emitted`) the run is not in flight at all.
    expected = {"start": "FAIL", "committed": "COMPLETE"}.get(step)
    assert [outcome.get(r) for r in dead] == ([expected] if expected else [])
    assert not [r for r in box.runs_in_flight() if r.job_name == "predlog.wine"]
    outcome_text = expected or "nothing in flight"
    tr = InMemoryTransport()
    flushed = PredictionLog(served, "wine", start=False, transport=tr).close()
    ids = ids_in_table(served)
    held = sorted(ids) == sorted(f"k-{i}" for i in range(100)) and set(ids.values()) == {1}
    # The restarted log commits only what the dead one had not: all of it after a death at start, none after.
    assert (flushed.committed, flushed.already) == ((100, 0) if step == "start" else (0, 100))
    assert len([e for e in tr.events if e["eventType"] == "COMPLETE"]) == (1 if step == "start" else 0)
    assert not buffer_path(served, "wine").exists() or PredictionLog(served, "wine", start=False).pending() == 0
    fault_report.record("kill", f"prediction log flush SIGKILLed at step `predlog.{step}`", trials=1, held=held,
                        before={"acked": 100}, after={"rows": sum(ids.values())}, note=f"recovery: {outcome_text}; restart committed {flushed.committed}")
    assert held, ids.most_common(3)
