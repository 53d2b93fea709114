"""The continuous loop through the real DAGs: drifted data published, drift found, renewal run, decision in lineage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli, shifted_wine
from tests.dags.test_dags import airflow_home, asset_events, dags_test, migrated_airflow_db, task_states  # noqa: F401

pytestmark = pytest.mark.integration


def test_drifted_data_is_detected_and_renews_the_production_model(settings: Any, airflow_home: Path) -> None:  # noqa: F811
    from lineage.consumer import consume
    from models.promotion import promote
    from tidemark.demo import write_landing_files

    [wine, _] = write_landing_files(settings.home)
    assert dags_test("ingest_wine").returncode == 0
    assert dags_test("train_wine_classifier").returncode == 0
    consume(settings, once=True)
    promote(settings, "wine", 1, "production", reason="first")

    # No drift yet: the monitor finds none and emits no drift event.
    assert dags_test("monitor_wine").returncode == 0
    assert task_states(airflow_home, "monitor_wine") == {"check_drift": "skipped"}

    # New wines whose alcohol is shifted by about two standard deviations, where the ingest DAG looks.
    shifted_wine(wine, 1.6, first_id=2000, name="wine-2.csv")
    assert dags_test("ingest_wine").returncode == 0
    published = asset_events(airflow_home)[-1]["extra"]["snapshot_id"]

    assert dags_test("monitor_wine").returncode == 0
    assert task_states(airflow_home, "monitor_wine") == {"check_drift": "success"}
    drift = [e for e in asset_events(airflow_home) if e["uri"] == "x-tidemark://models/wine/drift"]
    assert len(drift) == 1
    assert drift[0]["extra"]["drifted_features"] == ["alcohol"]
    assert drift[0]["extra"]["snapshots"] == {"raw.wine": published}

    consume(settings, once=True)  # the promotion gate reads the landing's validation from the lineage store
    assert dags_test("renew_wine").returncode == 0
    assert task_states(airflow_home, "renew_wine") == {"renew_on_new_data": "success"}
    consume(settings, once=True)
    st = json.loads(run_cli("models", "status", "wine", "--output", "json").stdout)
    decision = st["last_decision"]
    assert decision["trigger"] == "drift" and decision["drift_run_id"] == drift[0]["extra"]["drift_run_id"]
    assert decision["snapshots"] == {"raw.wine": published}
    assert decision["holder_version"] == 1 and decision["candidate_version"] == 2
    assert st["last_drift_check"]["drifted"] is True
    # Promoted or kept, the reason is recorded and the registry agrees with it.
    assert decision["reason"]
    assert st["aliases"]["production"] == (2 if decision["promoted"] else 1)
