"""Airflow and the lineage consumer, supervised: `make airflow` (`python -m tidemark.airflow_stack --executor local`)
and `make airflow EXECUTOR=celery`.

The lineage consumer (`tidemark lineage consume`) is one of the supervised parts: the promotion gate of
every renewal the DAGs run reads the landings' validation from the lineage store, so a stack that runs
the DAGs runs the consumer too (the compose deployment has its own `lineage-consumer` service).

`airflow standalone` runs only the Local and Sequential executors, so with the CeleryExecutor the parts
run as processes of their own, started and watched here: the scheduler, the API server, the DAG
processor, the triggerer and N Celery workers (2 by default), each with a `--celery-hostname` of its
own. Tasks then record which worker ran them (`[core] hostname_callable` reads TIDEMARK_AIRFLOW_WORKER,
which each worker passes to its tasks).

Celery needs a broker and a result backend that every worker reaches: Redis for the queue
(`AIRFLOW__CELERY__BROKER_URL`, default redis://127.0.0.1:6379/0) and a database server for Airflow's
metadata and the results (`AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`; SQLite cannot serve processes
on several machines, so it is refused). A worker lost mid-task is Airflow's to retry: tasks get
`default_task_retries` (2) unless they set their own, and a task whose heartbeat stops is failed
(and so retried) after `task_instance_heartbeat_timeout`. Tidemark's idempotency (a file already
landed is a no-op; a training run registers once) makes the retry safe.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lakehouse.config import Settings
from lakehouse.exceptions import TidemarkError
from tidemark import airflow_env

class AirflowStackError(TidemarkError):
    """Airflow's parts on the CeleryExecutor cannot start or keep running (broker, database, a part exiting)."""


WORKER_ENV = "TIDEMARK_AIRFLOW_WORKER"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
PARTS = ("scheduler", "api-server", "dag-processor", "triggerer")


def hostname() -> str:
    """`[core] hostname_callable` of the Celery stack: the worker's own name (`worker1@host`), so each
    task instance says which worker ran it; the machine's name outside a worker."""
    return os.environ.get(WORKER_ENV) or socket.getfqdn()


def celery_environ(settings: Settings, base: Mapping[str, str] | None = None, api_port: int = 8080) -> dict[str, str]:
    """Tidemark's Airflow environment for the CeleryExecutor (values already set win, as in airflow_env)."""
    env = airflow_env.environ(settings, base)
    conn = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if not conn or conn.startswith("sqlite"):
        raise AirflowStackError(
            "the CeleryExecutor needs Airflow's metadata in a database server, not SQLite: set "
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://USER@HOST:5432/DB"
        )
    defaults = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": DEFAULT_BROKER,
        # Celery's database result backend takes SQLAlchemy URLs with a `db+` prefix.
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{conn}",
        # Spelled out: run as `python -m tidemark.airflow_stack`, __name__ is "__main__".
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tidemark.airflow_stack.hostname",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        # Tokens the API server issues to tasks must verify on every part: one secret for the stack.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        # A lost worker's task comes back through Airflow's retries.
        "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "2",
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "10",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
        # Without it the provider warns and uses 24 h: a task's message comes back to the queue only
        # after this long if its worker vanished; Airflow's own retry is the faster path.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "21600",
    }
    for key, value in defaults.items():
        env.setdefault(key, value)
    return env


def check_services(env: Mapping[str, str]) -> None:
    """Redis and the metadata database answer, or one line saying which does not."""
    import redis
    import sqlalchemy

    broker = env["AIRFLOW__CELERY__BROKER_URL"]
    try:
        redis.Redis.from_url(broker, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise AirflowStackError(f"Celery's broker {broker} does not answer ({exc.__class__.__name__}): start Redis or set AIRFLOW__CELERY__BROKER_URL") from exc
    from lakehouse.redact import redact

    conn = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    engine = sqlalchemy.create_engine(conn, connect_args={"connect_timeout": 3} if conn.startswith("postgresql") else {})
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise AirflowStackError(f"Airflow's database {redact(conn)} does not answer ({exc.__class__.__name__}): start it or fix AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") from exc
    finally:
        engine.dispose()


@dataclass
class Part:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log, "ab")  # noqa: SIM115 - kept open for the process's life
        # A session of its own: stopping the part (or killing it in a test) reaches its task processes too.
        self.process = subprocess.Popen(self.argv, env=self.env, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.running():
            assert self.process is not None
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace_s: float) -> None:
        self.signal(signal.SIGTERM)
        if self.process is not None:
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


CONSUMER = "lineage-consumer"


def local_environ(settings: Settings, base: Mapping[str, str] | None = None, api_port: int = 8080) -> dict[str, str]:
    """Tidemark's Airflow environment for the LocalExecutor stack (`make airflow`): Airflow's parts
    as separate supervised processes beside the lineage consumer. Values already set win."""
    env = airflow_env.environ(settings, base)
    defaults = {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        # Tokens the API server issues to tasks must verify on every part: one secret for the stack.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
    }
    for key, value in defaults.items():
        env.setdefault(key, value)
    return env


def consumer_argv() -> list[str]:
    """The lineage consumer as a service: `tidemark lineage consume` (no --once) from this venv."""
    return [sys.executable, "-m", "tidemark", "lineage", "consume"]


class AirflowStack:
    """Airflow's parts (scheduler, API server, DAG processor, triggerer), optionally Celery workers,
    and the lineage consumer, each a supervised process; logs under AIRFLOW_HOME/stack/.

    The consumer runs beside the DAGs because the promotion gate of their renewals reads the
    landings' validation from the lineage store: with no consumer, no renewal can pass.
    """

    def __init__(self, env: Mapping[str, str], workers: int = 0, concurrency: int = 1, consumer: bool = True) -> None:
        self.env = dict(env)
        self.port = int(self.env["AIRFLOW__API__PORT"])
        logs = Path(self.env["AIRFLOW_HOME"]) / "stack"
        host = socket.gethostname()
        queue = self.env.get("AIRFLOW__OPERATORS__DEFAULT_QUEUE", "default")
        self.parts = [Part(name, ["airflow", *self._argv(name)], self.env, logs / f"{name}.log") for name in PARTS]
        for i in range(1, workers + 1):
            name = f"worker{i}@{host}"
            argv = ["airflow", "celery", "worker", "--celery-hostname", name, "--concurrency", str(concurrency), "--queues", queue, "--without-mingle", "--without-gossip"]
            self.parts.append(Part(f"worker{i}", argv, {**self.env, WORKER_ENV: name}, logs / f"worker{i}.log"))
        if consumer:
            self.parts.append(Part(CONSUMER, consumer_argv(), self.env, logs / f"{CONSUMER}.log"))

    @staticmethod
    def _what(p: Part) -> str:
        return "the lineage consumer" if p.name == CONSUMER else f"Airflow's {p.name}"

    def _argv(self, name: str) -> list[str]:
        return ["api-server", "--port", str(self.port)] if name == "api-server" else [name]

    @property
    def workers(self) -> list[Part]:
        return [p for p in self.parts if p.name.startswith("worker")]

    def part(self, name: str) -> Part:
        return next(p for p in self.parts if p.name == name)

    def migrate(self) -> None:
        proc = subprocess.run(["airflow", "db", "migrate"], env=self.env, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
            raise AirflowStackError(f"`airflow db migrate` failed: {last}")

    def start(self, timeout_s: float = 180) -> None:
        """Start the API server, wait until it answers, then every other part. Tasks report to the
        API server's execution API from their first second: a task started before it answers is
        killed by its supervisor and its run fails (seen on a loaded 2-core machine)."""
        api = [p for p in self.parts if p.name == "api-server"]
        for p in api:
            p.start()
        deadline = time.monotonic() + timeout_s
        if api:
            self._wait_healthy(deadline, api)
        for p in self.parts:
            if p not in api:
                p.start()
        # Every part must have survived its start (a bad setting makes one exit at once).
        time.sleep(1)
        self._wait_healthy(deadline, self.parts)

    def _wait_healthy(self, deadline: float, started: list[Part]) -> None:
        timeout_s = max(0.0, deadline - time.monotonic())
        while time.monotonic() < deadline:
            dead = [p for p in started if not p.running()]
            if dead:
                self.stop()
                raise AirflowStackError(f"{self._what(dead[0])} exited at start; see {dead[0].log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/monitor/health", timeout=2):
                    return
            except OSError:
                time.sleep(1)
        self.stop()
        raise AirflowStackError(f"Airflow's API server did not answer on port {self.port} within {timeout_s:.0f} s; see {self.part('api-server').log}")

    def restart_dead(self, max_restarts: int = 5) -> list[str]:
        """Start again every part that has exited (a supervisor's job); returns their names."""
        restarted = []
        for p in self.parts:
            if p.process is not None and not p.running():
                if p.restarts >= max_restarts:
                    raise AirflowStackError(f"{self._what(p)} keeps exiting ({p.restarts} restarts); see {p.log}")
                p.stop(grace_s=0)
                p.restarts += 1
                p.start()
                restarted.append(p.name)
        return restarted

    def stop(self, grace_s: float = 20) -> None:
        """SIGTERM to every part at once (the consumer and workers first: the scheduler sees their
        tasks end), then wait for each, SIGKILL after `grace_s` in all (not per part: Ctrl-C must
        not take minutes)."""
        for p in reversed(self.parts):
            p.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for p in reversed(self.parts):
            p.stop(max(0.5, deadline - time.monotonic()))


class CeleryStack(AirflowStack):
    """The parts of Airflow with the CeleryExecutor and N workers (and, by default here, no consumer:
    `python -m tidemark.airflow_stack` asks for one)."""

    def __init__(self, env: Mapping[str, str], workers: int = 2, concurrency: int = 1, consumer: bool = False) -> None:
        if workers < 1:
            raise AirflowStackError(f"a Celery stack needs at least one worker, got {workers}")
        super().__init__(env, workers=workers, concurrency=concurrency, consumer=consumer)


def main(argv: list[str] | None = None) -> int:
    from lakehouse.config import load_settings

    parser = argparse.ArgumentParser(prog="python -m tidemark.airflow_stack", description=__doc__.splitlines()[0])
    parser.add_argument("--executor", choices=("local", "celery"), default="celery", help="local: LocalExecutor; celery: Celery workers (default)")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
    parser.add_argument("--concurrency", type=int, default=2, help="task slots per worker (default 2)")
    parser.add_argument("--no-consumer", action="store_true", help="do not run the lineage consumer beside Airflow")
    args = parser.parse_args(argv)
    port = int(os.environ.get("AIRFLOW__API__PORT", "8080"))
    try:
        settings = load_settings()
        if args.executor == "celery":
            env = celery_environ(settings, api_port=port)
            check_services(env)
            stack: AirflowStack = CeleryStack(env, workers=args.workers, concurrency=args.concurrency, consumer=not args.no_consumer)
        else:
            env = local_environ(settings, api_port=port)
            stack = AirflowStack(env, consumer=not args.no_consumer)
        stack.migrate()
        stack.start()
    except TidemarkError as exc:
        print(f"tidemark: error: {exc}", file=sys.stderr)
        return 1
    password = airflow_env.admin_password(env)
    print(f"Airflow UI: http://localhost:{stack.port}  login: {airflow_env.ADMIN} / {password}", file=sys.stderr)
    what = f"CeleryExecutor, {args.workers} workers" if args.executor == "celery" else "LocalExecutor"
    consumer = "" if args.no_consumer else " and the lineage consumer"
    print(f"{what}{consumer}; logs in {Path(env['AIRFLOW_HOME']) / 'stack'}; Ctrl-C stops all", file=sys.stderr)
    return supervise(stack)


def supervise(stack: AirflowStack) -> int:
    """Restart parts that exit until Ctrl-C or SIGTERM, then stop every part."""

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (a service manager stopping us) ends like Ctrl-C: every part stopped

    signal.signal(signal.SIGTERM, interrupted)
    try:
        while True:
            time.sleep(2)
            for name in stack.restart_dead():
                print(f"{name} exited; started it again", file=sys.stderr)
    except KeyboardInterrupt:
        print("stopping Airflow and the lineage consumer ...", file=sys.stderr)
    except TidemarkError as exc:
        print(f"tidemark: error: {exc}", file=sys.stderr)
        stack.stop(grace_s=10)
        return 1
    stack.stop(grace_s=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
