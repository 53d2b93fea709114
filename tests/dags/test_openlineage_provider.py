"""Airflow's OpenLineage provider wired in: a real DAG run (`airflow dags test`) puts its DAG run and
task events in the lineage store through Tidemark's outbox, and trace follows the parent facets to them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.dags.test_dags import airflow_home, dags_test, migrated_airflow_db, task_states  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


def _runs(settings: Any) -> list[dict[str, Any]]:
    from lineage.query import run_sql

    ns = settings.lineage.namespace
    return run_sql(settings, f'SELECT run_id, job_namespace, job_name, event_type, parent_run_id, parent_job_name, root_run_id FROM "{ns}".runs ORDER BY event_time').to_pylist()


def test_dag_run_and_task_events_are_stored_and_trace_names_them(settings: Any, airflow_home: Path) -> None:  # noqa: F811
    from tidemark.demo import write_landing_files

    write_landing_files(settings.home)
    ingest = dags_test("ingest_wine")
    assert ingest.returncode == 0, ingest.stdout[-3000:] + ingest.stderr[-3000:]
    run_cli("lineage", "consume", "--once")
    runs = _runs(settings)
    provider = {(r["job_namespace"], r["job_name"], r["event_type"]): r for r in runs if r["job_namespace"] == "airflow"}
    # The provider's events for every task and for the DAG run, stored through the outbox.
    for task in ("land", "validate", "publish", "quarantine"):
        assert ("airflow", f"ingest_wine.{task}", "START") in provider and ("airflow", f"ingest_wine.{task}", "COMPLETE") in provider
    dag_run = provider[("airflow", "ingest_wine", "COMPLETE")]
    land_task = provider[("airflow", "ingest_wine.land", "COMPLETE")]
    assert land_task["parent_run_id"] == dag_run["run_id"]
    # Tidemark's own run inside the task names the provider's task run as parent, the DAG run as root.
    [ingest] = {(r["run_id"], r["parent_run_id"], r["root_run_id"]) for r in runs if r["job_name"] == "ingest.raw.wine"}
    assert ingest[1:] == (land_task["run_id"], dag_run["run_id"])

    train = dags_test("train_wine_classifier")
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    run_cli("lineage", "consume", "--once")
    trace = json.loads(run_cli("trace", "wine", "--output", "json").stdout)
    assert (trace["parent"]["task_run"]["job_name"], trace["parent"]["task_run"]["state"]) == ("train_wine_classifier.train", "COMPLETE")
    assert trace["parent"]["dag_run"]["job_name"] == "train_wine_classifier"
    # The run that made the snapshot (the landing; publish moved main to that same snapshot).
    snapshot_parent = trace["inputs"][0]["ingest_run"]["parent"]
    assert snapshot_parent["task_run"]["run_id"] == land_task["run_id"] and snapshot_parent["task_run"]["job_name"] == "ingest_wine.land"
    assert snapshot_parent["dag_run"] == {**snapshot_parent["dag_run"], "run_id": dag_run["run_id"], "job_name": "ingest_wine"}
    # The walks name them too, run by run.
    up = json.loads(run_cli("lineage", "upstream", "model:wine", "--depth", "2", "--output", "json").stdout)
    landing = next(r for r in up if r["job_name"] == "ingest.raw.wine")
    assert landing["parent"]["task_run"]["job_name"] == "ingest_wine.land" and landing["parent"]["dag_run"]["run_id"] == dag_run["run_id"]
    walk_text = run_cli("lineage", "upstream", "model:wine", "--depth", "2").stdout
    assert f"DAG run ingest_wine {dag_run['run_id']} COMPLETE" in walk_text
    text = run_cli("trace", "wine").stdout
    assert f"DAG run ingest_wine {dag_run['run_id']} COMPLETE" in text and "task run train_wine_classifier.train" in text
