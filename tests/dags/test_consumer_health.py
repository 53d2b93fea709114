"""`lineage_consumer_health`, run for real (`airflow dags test`): a worker's outbox is reconciled
with the lineage store, so events a consumer in another container stored stop waiting there."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.dags.test_dags import airflow_home, dags_test, migrated_airflow_db, task_states  # noqa: F401 - fixtures


def test_lag_is_checked_even_when_reconciling_the_outbox_failed() -> None:
    from airflow.sdk import TriggerRule

    from tidemark_maintenance import lineage_consumer_health

    dag = lineage_consumer_health()
    assert dag.get_task("check_lag").upstream_task_ids == {"reconcile_outbox"}
    assert dag.get_task("check_lag").trigger_rule == TriggerRule.ALL_DONE
    # ...and the run still fails then: Airflow judges a run by its leaves, and check_lag succeeds.
    assert dag.get_task("fail_if_reconcile_failed").upstream_task_ids == {"reconcile_outbox"}
    assert dag.get_task("fail_if_reconcile_failed").trigger_rule == TriggerRule.ONE_FAILED


@pytest.mark.integration
def test_a_health_run_acknowledges_what_a_consumer_elsewhere_stored(settings: Any, airflow_home: Path, tmp_path: Path) -> None:  # noqa: F811
    from lineage import events as ev
    from lineage.consumer import consume
    from lineage.outbox import Outbox, OutboxTransport

    tr = OutboxTransport(settings, background=False)
    for kind in ("START", "COMPLETE"):
        tr.emit(ev.run_event(producer="p", event_type=kind, run_id="01930000-0000-7000-8000-0000000000c1", job_namespace="n", job_name="j"))
    tr.close()
    sent = set(Outbox(settings).sent_unacknowledged())
    assert len(sent) == 2
    # A consumer with its own home (another container) stores them in the same catalog; it cannot
    # reach this outbox, so nothing here is acknowledged.
    assert consume(replace(settings, home=tmp_path / "elsewhere"), once=True).stored_events == 2
    assert set(Outbox(settings).sent_unacknowledged()) == sent

    run = dags_test("lineage_consumer_health")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert task_states(airflow_home, "lineage_consumer_health") == {
        "reconcile_outbox": "success", "check_lag": "success", "fail_if_reconcile_failed": "skipped",
    }
    # The run's own OpenLineage events (the provider) may still wait; the two stored ones do not.
    assert not sent & set(Outbox(settings).sent_unacknowledged())


@pytest.mark.integration
def test_a_failed_reconcile_still_reports_lag_and_fails_the_run(settings: Any, airflow_home: Path) -> None:  # noqa: F811
    from lineage.outbox import Outbox

    # A dead run in flight whose resolver cannot be imported: recovery reports an error, so
    # reconcile_outbox fails (for real, not by a stub).
    outbox = Outbox(settings)
    outbox.begin_run(settings.kafka.topic, "01930000-0000-7000-8000-0000000000c2", "j", None)
    outbox.note_run("01930000-0000-7000-8000-0000000000c2", "tidemark_no_such_module:resolve", {})

    dags_test("lineage_consumer_health")
    assert task_states(airflow_home, "lineage_consumer_health") == {
        "reconcile_outbox": "failed", "check_lag": "success", "fail_if_reconcile_failed": "failed",
    }
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        (state,) = db.execute("SELECT state FROM dag_run WHERE dag_id = 'lineage_consumer_health' ORDER BY id DESC LIMIT 1").fetchone()
    assert state == "failed"
