"""The reason of a failed, skipped or refused Tidemark task is in the Airflow UI's task instance
note: a real `airflow api-server` and `airflow dags test` on one metadata database, the note read
back from that database (what the UI shows)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_api import api_server
from tests.conftest import run_cli
from tests.dags.test_dags import airflow_home, dags_test, migrated_airflow_db, task_states  # noqa: F401  (fixtures)


def note_of(airflow_home: Path, dag_id: str, task_id: str) -> str | None:  # noqa: F811
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        rows = db.execute(
            "SELECT n.content FROM task_instance ti LEFT JOIN task_instance_note n ON n.ti_id = ti.id "
            "WHERE ti.dag_id = ? AND ti.task_id = ? ORDER BY ti.start_date DESC LIMIT 1",
            (dag_id, task_id),
        ).fetchall()
    return rows[0][0] if rows else None


@pytest.mark.integration
def test_a_failed_or_skipped_task_says_why_in_its_note(  # noqa: F811
    settings: Any, airflow_home: Path, wine_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    import json
    import os

    from tidemark import airflow_env

    env = airflow_env.environ(settings)
    airflow_env.admin_password(env)  # the local stack's admin, as `make airflow` makes it
    with api_server(env, settings.home / "api-server.log") as url:
        # Tasks find the API server where they report to; `dags test` runs its tasks in-process.
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"{url}/execution/")
        bad = dags_test("renew_wine", {"snapshots": {"raw.wine": "abc"}})
        assert task_states(airflow_home, "renew_wine") == {"renew_on_new_data": "failed"}, bad.stdout[-3000:]
        expected = "param `snapshots`: raw.wine='abc' is not a snapshot id (a whole number; `tidemark tables` lists them)"
        assert note_of(airflow_home, "renew_wine", "renew_on_new_data") == f"failed: {expected}", bad.stdout[-3000:] + bad.stderr[-3000:]

        early = dags_test("renew_wine")  # nothing landed yet: skipped, and the note says so
        assert task_states(airflow_home, "renew_wine") == {"renew_on_new_data": "skipped"}, early.stdout[-3000:]
        assert note_of(airflow_home, "renew_wine", "renew_on_new_data") == "skipped: nothing to renew wine on: no published snapshot of raw.wine yet (its ingest DAG publishes one)"

        # An unknown model, and a version whose job module is not on the workers' path: the retrain
        # task fails in one line naming the fix, the note says it, and nothing is trained or moved.
        unknown = dags_test("retrain_model", {"model": "no_such_model"})
        assert task_states(airflow_home, "retrain_model") == {"retrain": "failed"}, unknown.stdout[-3000:]
        assert note_of(airflow_home, "retrain_model", "retrain") == "failed: model 'no_such_model' is not registered; see `tidemark models list`"
        (tmp_path / "gone_r18.py").write_text(GONE_JOB)
        run_cli("ingest", str(wine_csv), "--table", "raw.wine")
        run_cli("train", "gone_r18:train", "--model", "gone", "--input", "raw.wine", "--primary-metric", "accuracy",
                env={"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])})
        missing = dags_test("retrain_model", {"model": "gone"})
        assert task_states(airflow_home, "retrain_model") == {"retrain": "failed"}, missing.stdout[-3000:]
        note = note_of(airflow_home, "retrain_model", "retrain")
        assert note is not None and note.startswith(
            "failed: cannot retrain gone:1: entry point gone_r18:train does not import: No module named 'gone_r18'; "
            "install it or put its folder on PYTHONPATH (under Airflow: the workers' too)"
        ), note
        assert "\n" not in note and "Traceback" not in note, note
        assert [(v["version"], v["aliases"]) for v in json.loads(run_cli("models", "list", "gone", "--output", "json").stdout)] == [(1, [])]


GONE_JOB = """
from models.jobs import train_wine_classifier

def train(inputs, params):
    return train_wine_classifier(inputs, {"seed": 7, "test_size": 0.25, "C": 1.0, "max_iter": 1000, **params})
"""


@pytest.mark.integration
def test_without_an_api_server_the_task_still_fails_in_one_line_and_logs_why_no_note(settings: Any, airflow_home: Path) -> None:  # noqa: F811
    bad = dags_test("renew_wine", {"snapshots": {"raw.wine": "abc"}})
    assert task_states(airflow_home, "renew_wine") == {"renew_on_new_data": "failed"}
    assert "task note not set (" in bad.stdout + bad.stderr
    assert note_of(airflow_home, "renew_wine", "renew_on_new_data") is None
