"""The "done when" of issue 18: the continuous loop runs by itself. Airflow's real scheduler on the
LocalExecutor (with its API server, DAG processor and triggerer) and the lineage consumer, supervised
by tidemark.airflow_stack, as `make airflow-demo` starts them; the only moves are two landings (a file
in the landing folder and a run of the ingest DAG). The scheduler alone trains and promotes a first
version, drift-checks it against the drifted second batch and renews it (promoted or kept, with the
reason); everything is then in the lineage store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.dags.test_dags import migrated_airflow_db  # noqa: F401  (the shared, once-per-session migrated database)

pytestmark = pytest.mark.integration


def test_two_landings_and_the_scheduler_alone_train_promote_monitor_and_renew(settings: Any, migrated_airflow_db: Path, capsys: Any) -> None:  # noqa: F811
    from lineage.broker import free_port
    from tidemark.airflow_demo import run_airflow_demo
    from tidemark.cli import main

    home = settings.home / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(migrated_airflow_db, home / "airflow.db")
    said: list[str] = []
    result = run_airflow_demo(settings, main, api_port=free_port(), timeout_s=420, say=said.append)

    runs = result["runs"]
    assert not [r for r in runs if r["state"] == "failed"], runs  # no red run without a fault
    landings = [r for r in runs if r["dag_id"] == "ingest_wine" and r["run_type"] == "manual"]
    assert len(landings) == 2 and all(r["state"] == "success" for r in landings), runs
    # Everything else was started by the scheduler on asset events, not by a call.
    for dag in ("train_wine_classifier", "monitor_wine", "renew_wine"):
        assert any(r["dag_id"] == dag and r["state"] == "success" and r["run_type"] == "asset_triggered" for r in runs), (dag, runs)
        assert not any(r["dag_id"] == dag and r["run_type"] == "manual" for r in runs), runs
    # A weekly renewal that fires before any landing (on a Monday morning) is skipped, not red.
    assert all(r["state"] == "success" for r in runs if r["run_type"] == "scheduled"), runs

    assert result["first_version"] == 1
    st = result["status"]
    drift = st["last_drift_check"]
    assert drift["drifted"] is True and "alcohol" in drift["tables"][0]["drifted_features"]
    d = st["last_decision"]
    assert d["trigger"] == "drift" and d["holder_version"] == 1 and d["candidate_version"] >= 2 and d["reason"]
    assert result["production"] == (d["candidate_version"] if d["promoted"] else 1)

    # All of it in the lineage store: the production model's training run and the landing behind it
    # name their DAG runs; the gate's validation is there.
    run_cli("lineage", "consume", "--once")
    trace = json.loads(run_cli("trace", "wine@production", "--output", "json").stdout)
    assert trace["parent"]["airflow"]["dag_id"] in ("train_wine_classifier", "renew_wine")
    [inp] = trace["inputs"]
    assert inp["ingest_run"]["parent"]["airflow"]["dag_id"] == "ingest_wine"
    assert inp["validation"] and all(a["success"] for a in inp["validation"])
    jobs = {r["job_name"] for r in json.loads(run_cli("sql", "SELECT DISTINCT job_name FROM lineage.events", "--output", "json").stdout)}
    assert {"drift.wine", "renew.wine", "models.promote"} <= jobs, jobs
    # The demo said each step as it happened.
    text = "\n".join(said)
    assert "DAG run monitor_wine" in text and "renewal (drift): " in text and "Airflow UI: http://localhost:" in text
