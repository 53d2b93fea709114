"""Airflow on Celery workers (tidemark/airflow_stack.py): the real scheduler, API server, DAG processor,
triggerer and two Celery workers, Redis on loopback as the broker, a PostgreSQL database of the test's
own for the metadata and the results. The asset-driven chain ingest -> train runs on both workers, and
a worker SIGKILLed in the middle of a task is retried by Airflow with no duplicate landing or version.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def airflow_database() -> Iterator[str]:
    """Airflow's metadata (and Celery's results) in a PostgreSQL database of this test's own."""
    from contextlib import ExitStack

    from benchmarks.common import postgres_database

    with ExitStack() as stack:
        try:
            uri = stack.enter_context(postgres_database("tidemark_airflow"))
        except ConnectionError as exc:
            pytest.skip(f"{exc} to run the Celery test")
        yield uri


@pytest.fixture
def redis_url() -> str:
    import redis

    from tidemark.airflow_stack import DEFAULT_BROKER

    try:
        redis.Redis.from_url(DEFAULT_BROKER, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {DEFAULT_BROKER} does not answer ({exc.__class__.__name__}): start redis-server to run the Celery test")
    return DEFAULT_BROKER


def _rows(engine: Any, sql: str, **params: Any) -> list[dict[str, Any]]:
    import sqlalchemy

    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sqlalchemy.text(sql), params)]


def _wait(what: str, check: Any, timeout_s: float, stack: Any, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every_s)
    logs = {p.name: p.log.read_text(errors="replace")[-1500:] for p in stack.parts if p.log.exists()}
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; log tails: {json.dumps(logs, indent=1)}")


def test_chain_runs_on_two_celery_workers_and_survives_a_killed_worker(
    settings: Any, airflow_database: str, redis_url: str, tmp_path: Path
) -> None:
    import signal

    import sqlalchemy

    from lakehouse.catalog import load_catalog
    from lineage.broker import free_port
    from tidemark.airflow_stack import CeleryStack, celery_environ
    from tidemark.demo import write_wine_csv

    started = time.monotonic()
    run_cli("up")
    write_wine_csv(settings.home / "landing" / "wine" / "wine.csv")
    # Only the two DAGs of the chain, and the wine source run by hand: no hourly runs of other sources.
    dags = tmp_path / "dags"
    dags.mkdir()
    for name in ("tidemark_ingest.py", "tidemark_train.py", "dag_support.py", ".airflowignore"):
        (dags / name).symlink_to(ROOT / "dags" / name)
    sources = tmp_path / "sources.yaml"
    sources.write_text('sources:\n  wine: {table: raw.wine, location: "{home}/landing/wine/*.csv", schedule: null}\n')
    queue = f"tidemark-test-{uuid.uuid4().hex[:8]}"  # the shared Redis: no other stack takes our tasks
    base = {
        **os.environ,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_database,
        "AIRFLOW__CELERY__BROKER_URL": redis_url,
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "TIDEMARK_AIRFLOW_SOURCES": str(sources),
        # A lost worker's task is failed after 20 s without a heartbeat (60 s in the stack's
        # defaults), and retried 1 s later.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    }
    env = celery_environ(settings, base=base, api_port=free_port())
    stack = CeleryStack(env, workers=2, concurrency=1)
    engine = sqlalchemy.create_engine(airflow_database)
    timings: dict[str, float] = {}
    try:
        stack.migrate()
        timings["migrate"] = time.monotonic() - started
        stack.start()
        timings["started"] = time.monotonic() - started
        _wait(
            "the DAG processor to parse both DAGs",
            lambda: len(_rows(engine, "SELECT dag_id FROM dag WHERE dag_id IN ('ingest_wine', 'train_wine_classifier') AND NOT is_paused")) == 2,
            120,
            stack,
        )
        trigger = run_cli("airflow", "dags", "trigger", "ingest_wine", check=False, env=env)
        assert trigger.returncode == 0, trigger.stderr

        # The landing task as it runs: its worker is SIGKILLed (the worker and the task processes in its session).
        running = _wait(
            "ingest_wine.land to run",
            lambda: _rows(engine, "SELECT hostname, try_number FROM task_instance WHERE dag_id = 'ingest_wine' AND task_id = 'land' AND state = 'running' AND hostname <> ''"),
            180,
            stack,
            every_s=0.2,
        )[0]
        time.sleep(1.0)  # into the task's own work (it has started the landing), not its start-up
        killed = next(p for p in stack.workers if p.env["TIDEMARK_AIRFLOW_WORKER"] == running["hostname"])
        killed.signal(signal.SIGKILL)
        killed.process.wait(timeout=10)
        timings["killed"] = time.monotonic() - started
        land_done = _rows(engine, "SELECT state FROM task_instance WHERE dag_id = 'ingest_wine' AND task_id = 'land'")
        assert land_done == [{"state": "running"}], "the landing finished before its worker was killed: nothing was shown"
        # A supervisor starts the lost worker again; Airflow retries the task on whichever worker is free.
        assert stack.restart_dead() == [killed.name]

        _wait(
            "train_wine_classifier to succeed after the asset event",
            lambda: _rows(engine, "SELECT state FROM dag_run WHERE dag_id = 'train_wine_classifier' AND state = 'success'"),
            240,
            stack,
        )
        timings["chain_done"] = time.monotonic() - started
        runs = _rows(engine, "SELECT dag_id, state FROM dag_run ORDER BY id")
        assert runs == [{"dag_id": "ingest_wine", "state": "success"}, {"dag_id": "train_wine_classifier", "state": "success"}]
        tries = _rows(
            engine,
            "SELECT dag_id, task_id, try_number, state, hostname, queue FROM task_instance_history "
            "UNION ALL SELECT dag_id, task_id, try_number, state, hostname, queue FROM task_instance ORDER BY 1, 2, 3",
        )
    finally:
        stopping = time.monotonic()
        stack.stop(grace_s=15)
        timings["stop"] = time.monotonic() - stopping
        engine.dispose()

    land = [t for t in tries if t["task_id"] == "land"]
    assert [t["try_number"] for t in land] == [running["try_number"], running["try_number"] + 1], land
    assert land[0]["hostname"] == running["hostname"] and land[0]["state"] == "failed"
    assert land[-1]["state"] == "success"
    assert all(t["queue"] == queue for t in tries)
    assert all(t["state"] in ("success", "skipped") for t in tries if t not in land[:-1])
    assert {t["hostname"] for t in tries} == {w.env["TIDEMARK_AIRFLOW_WORKER"] for w in stack.workers}, tries

    # Idempotent under the retry: the file landed once, one model version.
    table = load_catalog(settings).load_table(("raw", "wine"))
    ids = table.scan().to_arrow().column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 178
    versions = json.loads(run_cli("models", "list", "--output", "json").stdout)
    assert [(v["model"], v["version"]) for v in versions] == [("wine", 1)], versions
    print(f"celery stack timings (s from start): {json.dumps({k: round(v, 1) for k, v in timings.items()})}")


def test_celery_refuses_a_sqlite_metadata_database(settings: Any) -> None:
    from tidemark.airflow_stack import celery_environ
    from tidemark.airflow_stack import AirflowStackError

    for conn in ("", "sqlite:////tmp/airflow.db"):
        with pytest.raises(AirflowStackError, match="needs Airflow's metadata in a database server, not SQLite: set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="):
            celery_environ(settings, base={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn} if conn else {})


def test_celery_environment_defaults_and_what_the_deployment_sets_wins(settings: Any) -> None:
    from tidemark.airflow_stack import DEFAULT_BROKER, celery_environ

    conn = "postgresql+psycopg2://postgres@127.0.0.1:5432/airflow"
    env = celery_environ(settings, base={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn, "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "5"}, api_port=8123)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert (env["AIRFLOW__CELERY__BROKER_URL"], env["AIRFLOW__CELERY__RESULT_BACKEND"]) == (DEFAULT_BROKER, f"db+{conn}")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8123/execution/"
    assert env["AIRFLOW__CORE__DEFAULT_TASK_RETRIES"] == "5"
    assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "tidemark.airflow_stack.hostname"


def test_unreachable_broker_or_database_is_one_line_naming_it(settings: Any) -> None:
    from lineage.broker import free_port
    from tidemark.airflow_stack import celery_environ, check_services
    from tidemark.airflow_stack import AirflowStackError

    dead = free_port()
    env = celery_environ(
        settings,
        base={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres:pw@127.0.0.1:{dead}/airflow", "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{dead}/0"},
    )
    with pytest.raises(AirflowStackError, match=rf"Celery's broker redis://127.0.0.1:{dead}/0 does not answer \(ConnectionError\): start Redis"):
        check_services(env)
    env["AIRFLOW__CELERY__BROKER_URL"] = "redis://127.0.0.1:6379/0"
    try:
        import redis

        redis.Redis.from_url(env["AIRFLOW__CELERY__BROKER_URL"], socket_connect_timeout=3).ping()
    except Exception as exc:  # no Redis here: the database half cannot be reached past the broker check
        pytest.skip(f"Redis at 127.0.0.1:6379 does not answer ({exc.__class__.__name__}): start redis-server")
    with pytest.raises(AirflowStackError, match=rf"Airflow's database postgresql\+psycopg2://postgres:\*\*\*@127.0.0.1:{dead}/airflow does not answer"):
        check_services(env)


def test_a_part_that_exits_is_restarted_then_reported(settings: Any) -> None:
    from tidemark.airflow_stack import CeleryStack, Part, celery_environ
    from tidemark.airflow_stack import AirflowStackError

    with pytest.raises(AirflowStackError, match="needs at least one worker, got 0"):
        CeleryStack(celery_environ(settings, base={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://x@h/db"}), workers=0)
    stack = CeleryStack(celery_environ(settings, base={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://x@h/db"}), workers=1)
    log = settings.home / "exits.log"
    stack.parts = [Part("worker1", [sys.executable, "-c", "print('crashed'); raise SystemExit(3)"], dict(stack.env), log)]
    stack.parts[0].start()
    stack.parts[0].process.wait(timeout=10)
    for _ in range(2):
        assert stack.restart_dead(max_restarts=2) == ["worker1"]
        stack.parts[0].process.wait(timeout=10)
    with pytest.raises(AirflowStackError, match=f"Airflow's worker1 keeps exiting \\(2 restarts\\); see {log}"):
        stack.restart_dead(max_restarts=2)
    assert log.read_text().count("crashed") == 3
    # At start, a part that exits stops the stack with the log to read.
    stack.parts = [Part("scheduler", [sys.executable, "-c", "raise SystemExit(1)"], dict(stack.env), log)]
    with pytest.raises(AirflowStackError, match=f"Airflow's scheduler exited at start; see {log}"):
        stack.start(timeout_s=10)


def test_make_airflow_executor_celery_says_what_is_missing_in_one_line(settings: Any) -> None:
    """`python -m tidemark.airflow_stack`, the command `make airflow EXECUTOR=celery` runs: bad set-ups exit 1 with one line."""
    import subprocess

    from lineage.broker import free_port

    def run(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tidemark.airflow_stack"], capture_output=True, text=True, timeout=120, env={**os.environ, **env})

    no_db = run(AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:////tmp/airflow.db")
    assert no_db.returncode == 1
    assert no_db.stderr.strip().splitlines() == [
        "tidemark: error: the CeleryExecutor needs Airflow's metadata in a database server, not SQLite: set "
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://USER@HOST:5432/DB"
    ]
    dead = free_port()
    no_broker = run(AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://postgres@127.0.0.1:5432/test", AIRFLOW__CELERY__BROKER_URL=f"redis://127.0.0.1:{dead}/0")
    assert no_broker.returncode == 1
    assert no_broker.stderr.strip().splitlines() == [
        f"tidemark: error: Celery's broker redis://127.0.0.1:{dead}/0 does not answer (ConnectionError): start Redis or set AIRFLOW__CELERY__BROKER_URL"
    ]


def test_the_local_stack_runs_the_lineage_consumer_beside_airflow_and_stops_it_quickly(settings: Any) -> None:
    import signal
    import time as _time

    from tidemark.airflow_stack import CONSUMER, AirflowStack, CeleryStack, Part, celery_environ, local_environ

    env = local_environ(settings, api_port=8123)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor" and env["AIRFLOW__API_AUTH__JWT_SECRET"]
    stack = AirflowStack(env)
    assert [p.name for p in stack.parts] == ["scheduler", "api-server", "dag-processor", "triggerer", CONSUMER]
    assert stack.part(CONSUMER).argv[-3:] == ["tidemark", "lineage", "consume"]  # a service: no --once
    assert CONSUMER not in [p.name for p in AirflowStack(env, consumer=False).parts]
    celery = CeleryStack(celery_environ(settings, base={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://x@h/db"}), workers=1, consumer=True)
    assert celery.parts[-1].name == CONSUMER
    # Stopping is bounded for the whole stack, not per part: parts that ignore SIGTERM are killed.
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(600)"
    log = settings.home / "stubborn.log"
    stack.parts = [Part(f"p{i}", [sys.executable, "-c", stubborn], dict(env), log) for i in range(3)]
    for p in stack.parts:
        p.start()
    while log.read_text().count("up") < 3 if log.exists() else True:
        _time.sleep(0.2)
    began = _time.monotonic()
    stack.stop(grace_s=2)
    assert _time.monotonic() - began < 10
    assert all(p.process is not None and p.process.returncode == -signal.SIGKILL for p in stack.parts)
