"""The processes of `tidemark serve`: the prediction log's flusher (killed, restarted, said by
/readyz; SIGTERM and SIGKILL of the service), the broker's health in /readyz, and /metrics summed over
`--workers 2`. A module of its own: its world (a home of its own) has no other service whose flusher
would hold the wine log's flusher lock (one flusher per buffer, whichever service started it).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving.conftest import Server, World, serving

pytestmark = pytest.mark.integration

def _flusher(c: httpx.Client) -> Any:
    return c.get("/readyz").json()["prediction_log"]


def _wait(cond: Any, what: str, within_s: float, server: Server) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{server.stderr()}"
        time.sleep(0.05)


def _logged(world: World, ids: list[str]) -> dict[str, int]:
    """How many times each of `ids` is in the prediction log table (none before it is made)."""
    from lakehouse.exceptions import TableNotFoundError
    from tests.serving.trained import log_rows

    counts: dict[str, int] = {}
    try:
        logged = log_rows(world.settings)["prediction_id"].to_pylist()
    except TableNotFoundError:
        return counts
    for pid in logged:
        if pid in ids:
            counts[pid] = counts.get(pid, 0) + 1
    return counts


def test_a_dead_flusher_is_said_by_readyz_and_the_log_then_restarted_and_no_answered_row_is_lost(world: World, tmp_path: Path) -> None:
    import os
    import signal

    env = {**world.env, "TIDEMARK__SERVING__REGISTRY_POLL_S": "60", "TIDEMARK__SERVING__LOG_INTERVAL_S": "0.5"}
    with serving("wine@production", env, tmp_path / "serve.log") as server, server.client() as c:
        first = _wait(lambda: _flusher(c)["flusher_pid"], "the flusher process", 60, server)
        os.kill(first, signal.SIGKILL)
        # Down until restarted (a pause of a second, then a new interpreter): readyz says so, and
        # predictions are still answered, their rows buffered.
        _wait(lambda: _flusher(c)["flusher"] is False, "readyz to say the flusher is down", 10, server)
        ids = [c.post("/predict", json=row).json()["prediction_id"] for row in world.rows[:5]]
        assert c.get("/readyz").status_code == 200
        second = _wait(lambda: _flusher(c)["flusher_pid"] not in (None, 0, first) and _flusher(c)["flusher_pid"], "a new flusher", 60, server)
        assert second != first
        log = server.stderr()
        assert f"the prediction log flusher of wine (pid {first}) was killed by signal 9" in log, log
        assert "restarting it in 1 s" in log
        # The new flusher commits what was answered while none ran.
        _wait(lambda: _logged(world, ids) == dict.fromkeys(ids, 1), "the rows answered meanwhile in the table", 60, server)


def test_with_two_workers_metrics_sum_both_and_sigterm_commits_every_answered_row(world: World, tmp_path: Path) -> None:
    import signal

    env = {
        **world.env, "TIDEMARK__SERVING__REGISTRY_POLL_S": "60",
        # Nothing committed before the SIGTERM: the shutdown must commit it all.
        "TIDEMARK__SERVING__LOG_INTERVAL_S": "3600", "TIDEMARK__SERVING__LOG_BATCH_ROWS": "100000",
        "TMPDIR": str(tmp_path),  # where the service makes its metrics directory
    }
    with serving("wine@production", env, tmp_path / "serve.log", args=("--workers", "2")) as server:
        ids = []
        for row in world.rows[:40]:
            # A connection per request: the kernel hands them to either worker.
            r = httpx.post(f"{server.url}/predict", json=row, timeout=10)
            assert r.status_code == 200, r.text
            ids.append(r.json()["prediction_id"])
        metrics_dirs = list(tmp_path.glob("tidemark-serve-wine-metrics-*"))
        assert len(metrics_dirs) == 1
        writers = {p.stem.rsplit("_", 1)[1] for p in metrics_dirs[0].glob("counter_*.db")}
        assert len(writers) == 2, f"both workers answered: {writers}"
        # Whichever worker answers the scrape, it counts the requests of both.
        for _ in range(6):
            text = httpx.get(f"{server.url}/metrics", timeout=10).text
            assert 'tidemark_serve_requests_total{path="/predict",status="200"} 40.0' in text, text
            assert 'tidemark_serve_predicted_records_total{model="wine",version="%d"} 40.0' % world.versions[0].version in text
        assert _logged(world, ids) == {}
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=120) == 0, server.stderr()
        assert not metrics_dirs[0].exists()
    assert _logged(world, ids) == dict.fromkeys(ids, 1)
    from serving.flusher import flusher_pid

    assert flusher_pid(world.settings, "wine") is None


def test_a_sigkilled_service_leaves_no_flusher_behind_and_loses_no_answered_row(world: World, tmp_path: Path) -> None:
    import signal

    from serving.flusher import flusher_pid

    env = {**world.env, "TIDEMARK__SERVING__REGISTRY_POLL_S": "60", "TIDEMARK__SERVING__LOG_INTERVAL_S": "3600",
           "TIDEMARK__SERVING__LOG_BATCH_ROWS": "100000"}
    with serving("wine@production", env, tmp_path / "serve.log") as server, server.client() as c:
        child = _wait(lambda: _flusher(c)["flusher_pid"], "the flusher process", 60, server)
        ids = [c.post("/predict", json=row).json()["prediction_id"] for row in world.rows[:10]]
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=30)
        # The orphaned flusher sees its parent gone, commits what the buffer holds, and exits.
        _wait(lambda: flusher_pid(world.settings, "wine") is None, f"flusher {child} to exit", 60, server)
    assert _logged(world, ids) == dict.fromkeys(ids, 1)


def test_readyz_events_turns_false_while_a_configured_broker_is_away_and_true_when_it_returns(world: World, tmp_path: Path) -> None:
    from lineage.broker import free_port, spawn

    port = free_port()
    broker = spawn(port, tmp_path / "broker.log")
    env = {**world.env, "TIDEMARK__KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}", "TIDEMARK__KAFKA__CONNECT_TIMEOUT_S": "2",
           "TIDEMARK__SERVING__REGISTRY_POLL_S": "60"}
    try:
        with serving("wine@production", env, tmp_path / "serve.log", events=True) as server, server.client() as c:
            broker.kill()
            broker.wait()
            _wait(lambda: c.get("/readyz").json()["events"] is False, "readyz events false", 30, server)
            assert c.post("/predict", json=world.rows[0]).status_code == 200
            assert "cannot read the lineage topic" in server.stderr()
            broker = spawn(port, tmp_path / "broker.log")
            _wait(lambda: c.get("/readyz").json()["events"] is True, "readyz events true again", 60, server)
            assert "the lineage topic answers again" in server.stderr()
    finally:
        broker.kill()
        broker.wait()
