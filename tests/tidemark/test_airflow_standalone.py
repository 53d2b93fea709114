"""`tidemark airflow standalone` stops on Ctrl-C, quickly, with every process it started (issue 18:
`airflow standalone` alone took 35 s and more). A real standalone Airflow on a free port."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_api import wait_healthy
from tests.dags.test_dags import migrated_airflow_db  # noqa: F401  (session fixture)


def _session(sid: int) -> set[int]:
    """Live processes of session `sid` (field 6 of /proc/PID/stat)."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                out.add(int(d.name))
    return out


@pytest.mark.integration
def test_ctrl_c_stops_standalone_and_everything_it_started(settings: Any, migrated_airflow_db: Path) -> None:  # noqa: F811
    from lineage.broker import free_port

    home = settings.home / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(migrated_airflow_db, home / "airflow.db")
    port = free_port()
    log = settings.home / "standalone.log"
    env = {**os.environ, "AIRFLOW__API__PORT": str(port)}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tidemark", "airflow", "standalone"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", log, proc, timeout=300)
        children = [int(c) for c in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        (airflow,) = children
        started = _session(airflow)
        assert len(started) >= 3, started  # standalone, its scheduler, API server, ...
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends (the terminal's foreground group: tidemark)
        rc = proc.wait(timeout=60)
        took = time.monotonic() - began
        time.sleep(1)
        left = _session(airflow)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130 and took < 25, (rc, took, log.read_text()[-2000:])
    assert left == set(), left
    assert "stopping airflow standalone" in log.read_text()
