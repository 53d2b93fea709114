"""Test isolation and the real services the integration tests share.

Every test gets its own TIDEMARK_HOME (catalog, warehouse) and working directory, with no
TIDEMARK__ variables leaking in from the environment. One real Kafka-protocol broker (Tansu) serves
the session; each test gets its own lineage topic on it, so tests never see each other's events.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = ROOT.parent / "shared" / "openlineage-spec"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith("TIDEMARK"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    monkeypatch.setenv("TIDEMARK_HOME", str(home))
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "false")
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real local broker for the whole session; yields its bootstrap address."""
    from lakehouse.config import load_settings
    from lineage import broker as local_broker

    home = tmp_path_factory.mktemp("broker-home")
    settings = load_settings(environ={"TIDEMARK_HOME": str(home)})
    state = local_broker.start(settings)
    yield state.bootstrap_servers
    local_broker.stop(settings)


@pytest.fixture
def kafka_env(broker: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point Tidemark at the session broker with a topic of this test's own; returns the topic."""
    topic = f"lineage-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("TIDEMARK__KAFKA__BOOTSTRAP_SERVERS", broker)
    monkeypatch.setenv("TIDEMARK__KAFKA__TOPIC", topic)
    return topic


@pytest.fixture
def settings(kafka_env: str):  # type: ignore[no-untyped-def]
    from lakehouse.config import load_settings

    return load_settings()


def run_cli(*args: str, check: bool = True, timeout: float = 180, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `tidemark` command in a subprocess, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "tidemark", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"tidemark {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def wine_csv(tmp_path: Path) -> Path:
    from tidemark.demo import write_wine_csv

    return write_wine_csv(tmp_path / "data" / "wine.csv")


@pytest.fixture
def postgres_catalog_uri() -> Iterator[str]:
    """A fresh PostgreSQL database of this test's own for the Iceberg SQL catalog, dropped afterwards,
    so runs (and engineers sharing the server) never see each other's tables. Skips, saying why,
    only when the server does not answer."""
    from contextlib import ExitStack

    from benchmarks.common import postgres_database

    with ExitStack() as stack:
        try:
            uri = stack.enter_context(postgres_database("tidemark_test"))
        except ConnectionError as exc:
            pytest.skip(f"{exc} to run this test")
        yield uri
