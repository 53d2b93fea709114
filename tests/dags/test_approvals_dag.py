"""Protected `production` through Airflow's renewal DAG: the renewal ends in a pending request, not a move."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli, shifted_wine
from tests.dags.test_dags import airflow_home, dags_test, migrated_airflow_db, task_states  # noqa: F401

pytestmark = pytest.mark.integration


def test_the_renewal_dag_requests_a_protected_alias_and_another_actor_approves(
    settings: Any, airflow_home: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    from lineage.consumer import consume
    from tidemark.demo import write_landing_files

    monkeypatch.setenv("TIDEMARK__MODELS__PROTECTED_ALIASES", "production")  # the CLI and Airflow processes inherit it
    [wine, _] = write_landing_files(settings.home)
    assert dags_test("ingest_wine").returncode == 0
    assert dags_test("train_wine_classifier").returncode == 0
    consume(settings, once=True)
    first = json.loads(run_cli("models", "promote", "wine", "1", "--alias", "production", "--output", "json",
                               env={"TIDEMARK__ACTOR__NAME": "alice"}).stdout)
    run_cli("models", "approve", "wine", first["request_id"], env={"TIDEMARK__ACTOR__NAME": "bob"})

    shifted_wine(wine, 1.6, first_id=2000, name="wine-2.csv")
    assert dags_test("ingest_wine").returncode == 0
    consume(settings, once=True)
    assert dags_test("renew_wine").returncode == 0
    assert task_states(airflow_home, "renew_wine") == {"renew_on_new_data": "success"}

    st = json.loads(run_cli("models", "status", "wine", "--output", "json").stdout)
    assert st["aliases"] == {"production": 1}  # not moved
    pending = json.loads(run_cli("models", "requests", "wine", "--output", "json").stdout)
    if not pending:  # the candidate did not beat the holder: kept, so nothing to request
        consume(settings, once=True)
        decision = json.loads(run_cli("models", "status", "wine", "--output", "json").stdout)["last_decision"]
        pytest.fail(f"the renewal asked for no approval: {decision}")
    (req,) = pending
    assert req["version"] == 2 and req["holder_version"] == 1 and req["reason"].startswith("automatic renewal (run ")
    assert req["actor"].startswith("airflow:"), req["actor"]  # the DAG's owner, not a person
    run_cli("models", "approve", "wine", req["request_id"], env={"TIDEMARK__ACTOR__NAME": "bob"})
    assert json.loads(run_cli("models", "status", "wine", "--output", "json").stdout)["aliases"] == {"production": 2}
