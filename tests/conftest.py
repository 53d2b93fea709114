"""Test isolation and the real services the integration tests share.

Every test gets its own TIDEMARK_HOME (catalog, warehouse) and working directory, with no
TIDEMARK__ variables leaking in from the environment. One real Kafka-protocol broker (Tansu) serves
the session; each test gets its own lineage topic on it, so tests never see each other's events.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# Apache Kafka (Confluent's community build) for TIDEMARK_TEST_BROKER=testcontainers; pulled once by Docker.
TESTCONTAINERS_KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
# Read at import: the autouse isolation fixture clears TIDEMARK* variables for each test.
TEST_BROKER = os.environ.get("TIDEMARK_TEST_BROKER", "local")


def docker_engine() -> str | None:
    """None when a Docker engine answers; else why not (the reason a skipped test gives)."""
    try:
        import docker
    except ImportError:
        return "the docker package is missing (pip install -e '.[dev]')"
    try:
        docker.from_env(timeout=3).ping()
    except Exception as exc:  # no socket, refused, permission: all mean "no engine to use"
        return f"no Docker engine answers ({exc.__class__.__name__})"
    return None


@contextlib.contextmanager
def kafka_in_docker() -> Iterator[str]:
    """Apache Kafka in a container (KRaft) for the block; yields its bootstrap address."""
    from testcontainers.community.kafka import KafkaContainer

    with KafkaContainer(TESTCONTAINERS_KAFKA_IMAGE).with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real broker for the whole session; yields its bootstrap address.

    The local Kafka-protocol broker by default. TIDEMARK_TEST_BROKER=testcontainers runs the suite
    against Apache Kafka in Docker instead (the tests skip, saying why, when no engine answers).
    """
    if TEST_BROKER == "testcontainers":
        reason = docker_engine()
        if reason:
            pytest.skip(f"TIDEMARK_TEST_BROKER=testcontainers: {reason}")
        with kafka_in_docker() as bootstrap:
            yield bootstrap
        return
    from lakehouse.config import load_settings
    from lineage import broker as local_broker

    home = tmp_path_factory.mktemp("broker-home")
    settings = load_settings(environ={"TIDEMARK_HOME": str(home)})
    state = local_broker.start(settings)
    yield state.bootstrap_servers
    local_broker.stop(settings)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """One real S3 API (moto's server, in a thread) on a free loopback port for the session; yields
    its endpoint URL. Tests make buckets of their own (see `s3_bucket`), so they never meet."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        pytest.skip("moto[server] is not installed (pip install -e '.[dev]'); the S3 tests need it")
    import logging

    from lineage.broker import free_port

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per S3 request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()  # returns once the server accepts connections
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """A new, empty bucket on the session's S3 server (keys: any; moto accepts them all)."""
    import boto3

    name = f"tm-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3", endpoint_url=s3_server, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    ).create_bucket(Bucket=name)
    return name


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


def shifted_wine(wine_csv: Path, shift: float, first_id: int = 1000, name: str | None = None) -> Path:
    """The same wines with new ids and `alcohol` shifted by `shift`: new data a model never saw
    (+1.5 to +1.6 is about two standard deviations, still inside the gate's range)."""
    from tidemark.demo import write_drifted_wine_csv

    return write_drifted_wine_csv(wine_csv, wine_csv.with_name(name or f"wine-shift-{shift}.csv"), shift, first_id)


@pytest.fixture(scope="session")
def spark_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real local[2] Spark (a JVM: ~10 s to start) per test worker, shared by its tests; skips,
    naming `make spark`, only where pyspark, Java or a jar is missing."""
    from lakehouse import spark
    from lakehouse.config import load_settings
    from lakehouse.exceptions import SparkUnavailableError

    settings = load_settings(environ={"TIDEMARK_HOME": str(tmp_path_factory.mktemp("spark-home"))})
    try:
        # Small tables: 2 shuffle partitions, not 200, keep each query's tasks few.
        session = spark.session(settings, conf={"spark.sql.shuffle.partitions": "2", "spark.driver.memory": "1g"})
    except SparkUnavailableError as exc:
        pytest.skip(str(exc))
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def spark(spark_session: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The worker's Spark, with a catalog name of this test's own in TIDEMARK__CATALOG__NAME (Spark keeps
    a catalog once it has built it, so each test's catalog database needs its own name). Register it
    with `lakehouse.spark.use_catalog(spark, load_settings())` once the test's settings are final."""
    monkeypatch.setenv("TIDEMARK__CATALOG__NAME", f"tm_{uuid.uuid4().hex[:10]}")
    return spark_session


@pytest.fixture(params=["sqlite", "postgres"])
def shared(request: pytest.FixtureRequest, spark: Any, kafka_env: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """Spark and Tidemark on one catalog of this test's own (SQLite file, or a PostgreSQL database):
    (the SparkSession, the Settings).

    Each test runs on both, unless it narrows the choice with
    `@pytest.mark.parametrize("shared", ["postgres"], indirect=True)` (a test costs 1-2 minutes).
    """
    from lakehouse import spark as lspark
    from lakehouse.config import load_settings

    if request.param == "postgres":
        monkeypatch.setenv("TIDEMARK__CATALOG__URI", request.getfixturevalue("postgres_catalog_uri"))
    settings = load_settings()
    lspark.use_catalog(spark, settings)
    return spark, settings


# -- the fault-injection table (tests/faults/report.py) -------------------------------------------


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> Any:
    """Record rows of the fault table (see tests/faults/report.py); assert the invariants as well.
    Here, not in tests/faults/, because the broker faults are recorded by tests/lineage/ tests."""
    from tests.faults.report import FaultReport

    return FaultReport(request.node.nodeid)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controlling process, before any worker writes
        from tests.faults import report

        report.reset()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.faults import report

    table = report.render()
    if table is None:
        return
    report.TABLE.write_text(table)
    terminalreporter.write_sep("=", f"fault injection (also in {report.TABLE.relative_to(report.ROOT)})")
    terminalreporter.write(table)
