"""The environment Airflow runs Tidemark's DAGs in: one place, for `tidemark airflow ...`, `make airflow` and tests.

AIRFLOW_HOME lives under TIDEMARK_HOME so a demo's catalog, broker state and Airflow metadata sit
together and `rm -rf .tidemark` resets all of it. Values already set in the environment win, so a
deployment (docker-compose) configures Airflow its own way.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

from lakehouse.config import Settings

ADMIN = "admin"
OPENLINEAGE_TRANSPORT = "lineage.openlineage_transport.OutboxTransport"
OPENLINEAGE_NAMESPACE = "airflow"
PASSWORDS_FILE = "simple_auth_manager_passwords.json"


def dags_folder() -> Path:
    """`dags/` of this checkout (TIDEMARK_AIRFLOW_DAGS overrides, e.g. in an image)."""
    override = os.environ.get("TIDEMARK_AIRFLOW_DAGS")
    return Path(override) if override else Path(__file__).resolve().parents[1] / "dags"


def airflow_home(settings: Settings) -> Path:
    return settings.home / "airflow"


def environ(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    home = airflow_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    # Airflow starts its parts as `airflow ...` subprocesses found on PATH: this venv's first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    defaults = {
        "TIDEMARK_HOME": str(settings.home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Training follows ingest by itself only if its DAG is not paused.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # The LocalExecutor forks this many workers up front (default 32, ~140 MB each): a laptop's
        # demo needs a few. A deployment sets its own.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "GX_ANALYTICS_ENABLED": "false",
        # Airflow's OpenLineage provider: an event for every DAG run and task, into the lineage
        # topic through Tidemark's outbox (lineage/openlineage_transport.py says why not its Kafka
        # transport), under the namespace Tidemark's own runs name as their Airflow parent.
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": OPENLINEAGE_TRANSPORT}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": OPENLINEAGE_NAMESPACE,
    }
    for k, v in defaults.items():
        env.setdefault(k, v)
    # Tasks report to the API server's execution API: on another port, tell them where it is.
    if "AIRFLOW__API__PORT" in env:
        env.setdefault("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"http://localhost:{env['AIRFLOW__API__PORT']}/execution/")
    return env


def admin_password(env: Mapping[str, str]) -> str:
    """The local admin's password: made once (random) and kept in the simple auth manager's file."""
    path = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    data: dict[str, str] = {}
    if path.exists():
        data = json.loads(path.read_text() or "{}")
    if ADMIN not in data:
        data[ADMIN] = secrets.token_urlsafe(12)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
        path.chmod(0o600)
    return data[ADMIN]
