"""The reason of a failed, skipped or refused Tidemark task is in the Airflow UI's task instance
note: a real `airflow api-server` and `airflow dags test` on one metadata database, the note read
back from that database (what the UI shows)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_api import api_server
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
def test_a_failed_or_skipped_task_says_why_in_its_note(settings: Any, airflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
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


@pytest.mark.integration
def test_without_an_api_server_the_task_still_fails_in_one_line_and_logs_why_no_note(settings: Any, airflow_home: Path) -> None:  # noqa: F811
    bad = dags_test("renew_wine", {"snapshots": {"raw.wine": "abc"}})
    assert task_states(airflow_home, "renew_wine") == {"renew_on_new_data": "failed"}
    assert "task note not set (" in bad.stdout + bad.stderr
    assert note_of(airflow_home, "renew_wine", "renew_on_new_data") is None
