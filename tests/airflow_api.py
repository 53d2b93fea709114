"""A real `airflow api-server` for the browser tests: started in its own process group, waited for
until its metadata database answers healthy, and stopped (the whole group) afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def api_server(env: dict[str, str], log: Path, wait: bool = True) -> Iterator[str]:
    """Yields the server's base URL (healthy first, unless `wait=False`: then call `wait_healthy`)."""
    from lineage.broker import free_port

    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(["airflow", "api-server", "--port", str(port), "--workers", "1"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=env.get("TIDEMARK_HOME"))
        try:
            url = f"http://127.0.0.1:{port}"
            if wait:
                wait_healthy(url, log, proc)
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def wait_healthy(url: str, log: Path, proc: subprocess.Popen[bytes] | None = None, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as r:
                if json.load(r)["metadatabase"]["status"] == "healthy":
                    return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(1)
    raise AssertionError(f"airflow api-server did not come up: {log.read_text()[-3000:]}")
