"""One real registry for the serving tests (wine landed once, three versions trained), and real
`tidemark serve` processes on free loopback ports against the session's broker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest


@dataclass
class World:
    """A Tidemark home with wine versions 1-3 (C=1, 0.5, 0.25); `production` and `canary` hold 1."""

    home: Path
    env: dict[str, str]  # the TIDEMARK_ variables of this home (with the session broker and a topic of its own)
    settings: Any
    versions: list[Any]
    rows: list[dict[str, Any]]  # wine records as a client sends them

    def load(self, **overrides: str) -> Any:
        from lakehouse.config import load_settings

        return load_settings(environ={**self.env, **overrides})


@pytest.fixture(scope="module")
def world(broker: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    from ingest.land import land
    from lakehouse.config import load_settings
    from lineage.transport import InMemoryTransport
    from models.jobs import get_job
    from models.registry import Registry
    from models.train import train
    from tidemark.demo import write_wine_csv

    root = tmp_path_factory.mktemp("serving")
    env = {
        "TIDEMARK_HOME": str(root / "home"),
        "TIDEMARK__KAFKA__BOOTSTRAP_SERVERS": broker,
        "TIDEMARK__KAFKA__TOPIC": f"lineage-{uuid.uuid4().hex[:12]}",
    }
    settings = load_settings(environ=env)
    tr = InMemoryTransport()
    csv = write_wine_csv(root / "wine.csv")
    land(settings, str(csv), "raw.wine", transport=tr)
    job = get_job("wine_classifier")
    versions = [train(settings, job, params={**job.params, "C": c}, transport=tr).version for c in (1.0, 0.5, 0.25)]
    registry = Registry(settings)
    for alias in ("production", "canary"):
        registry.promote("wine", versions[0].version, alias, transport=tr)
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.drop(columns="target")
    frame.columns = [c.replace("/", "_") for c in frame.columns]
    rows = [{k: (int(v) if k in ("magnesium", "proline") else float(v)) for k, v in r.items()} for r in frame.to_dict("records")]
    return World(root / "home", env, settings, versions, rows)


def clean_environ(**env: str) -> dict[str, str]:
    """This process's environment without any TIDEMARK variable, plus `env`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("TIDEMARK")}, **env}


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[str]
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def stderr(self) -> str:
        return self.log.read_text()


@contextlib.contextmanager
def serving(
    ref: str, env: dict[str, str], log: Path, *, ready_timeout: float = 60, events: bool = False, args: tuple[str, ...] = ()
) -> Iterator[Server]:
    """`tidemark serve REF` as a user runs it, on a free loopback port; yields once /readyz says
    ready (and, with `events`, once it reads the lineage topic); stopped by SIGTERM afterwards."""
    from lineage.broker import free_port

    port = free_port()
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tidemark", "serve", ref, "--port", str(port), *args],
            env=clean_environ(**env), stdout=subprocess.DEVNULL, stderr=err, text=True,
        )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"tidemark serve exited {proc.returncode}:\n{server.stderr()}")
            try:
                ready = httpx.get(f"{server.url}/readyz", timeout=1)
                if ready.status_code == 200 and (not events or ready.json()["events"]):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"tidemark serve was not ready within {ready_timeout} s:\n{server.stderr()}")
            time.sleep(0.2)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class InProcess:
    """A service run by uvicorn in a thread of the test process (the app at hand, no interpreter to
    start); `logs()` is what its `serving` loggers said."""

    url: str
    app: Any
    follower: Any
    captured: Any

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def logs(self) -> str:
        return str(self.captured.getvalue())


@contextlib.contextmanager
def in_process(settings: Any, ref: str, *, follow: bool = True) -> Iterator[InProcess]:
    """`create_app` on real uvicorn in a thread, on a free loopback port, started as `tidemark serve`
    starts it (the holder loaded first); stopped, and its follower and prediction log closed, after."""
    import asyncio
    import io
    import logging
    import threading

    import uvicorn

    from lineage.broker import free_port
    from serving.app import create_app
    from serving.follow import Follower
    from serving.server import parse_ref

    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("serving")
    logger.addHandler(handler)
    follower = Follower(settings, parse_ref(ref))
    follower.start_serving()
    app = create_app(settings, follower, follow=follow)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        yield InProcess(f"http://127.0.0.1:{port}", app, follower, captured)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        logger.removeHandler(handler)
