"""Continuous training: watch production models' data for drift, and renew them automatically.

- `monitor_<model>` runs on every new snapshot of the model's input tables (their Assets): it compares
  each alias holder's training snapshots with the new ones (PSI, Kolmogorov–Smirnov, category shift,
  missing values, row count; in DuckDB, by time travel). Drift above the thresholds updates the Asset
  `x-tidemark://models/<model>/drift` (its extra names the snapshots and the drift run); no drift, no
  event.
- `renew_<model>` runs on that drift Asset, or weekly: it trains a candidate on the new snapshots,
  scores it and the alias holder on the same holdout, and promotes it only if it passes the promotion
  gate; otherwise it stays a candidate and the reason is recorded (`tidemark models status <model>`).
"""

from __future__ import annotations

import logging
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronTriggerTimetable, task
from airflow.sdk.exceptions import AirflowSkipException

from dag_support import asset_event_extras, asset_uri, drift_asset_uri, settings, snapshots_from_asset_events
from models.jobs import JOBS, TrainingJob

log = logging.getLogger(__name__)


def monitor_dags(job: TrainingJob) -> tuple[DAG, DAG]:
    inputs = [Asset(asset_uri(t), extra={"table": t}) for t in job.inputs]
    drift = Asset(drift_asset_uri(job.model), extra={"model": job.model})
    start = pendulum.datetime(2026, 1, 1, tz="UTC")
    with DAG(
        dag_id=f"monitor_{job.model}",
        schedule=inputs[0] if len(inputs) == 1 else inputs,
        start_date=start,
        catchup=False,
        max_active_runs=1,
        tags=["tidemark", "monitoring"],
        doc_md=__doc__,
    ) as monitor:

        @task(inlets=inputs, outlets=[drift])
        def check_drift(**context: Any) -> dict[str, Any]:
            from models.monitor import check_alias_holders

            snapshots = snapshots_from_asset_events(job.inputs, asset_event_extras(context, inputs))
            found = check_alias_holders(settings(), job.model, snapshots)
            if found is None:
                raise AirflowSkipException(f"no drift for {job.model} on {snapshots}; nothing to renew")
            context["outlet_events"][drift].extra = found
            return found

        check_drift()

    with DAG(
        dag_id=f"renew_{job.model}",
        schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 3 * * 1", timezone="UTC"), assets=drift),
        start_date=start,
        catchup=False,
        max_active_runs=1,
        tags=["tidemark", "monitoring"],
        doc_md=__doc__,
    ) as renew:

        @task(inlets=[drift, *inputs])
        def renew_on_new_data(**context: Any) -> dict[str, Any]:
            from models.renewal import renew_alias

            newest = snapshots_from_asset_events(job.inputs, asset_event_extras(context, inputs))
            drift_events = asset_event_extras(context, [drift])[drift.uri]  # triggering ones, else the newest
            found = drift_events[-1] if drift_events else None
            triggered = drift in (context.get("triggering_asset_events") or {})
            # Renew because of drift when a drift event triggered the run, or when a hand/weekly run finds
            # that the newest data is the data that drifted; else a plain scheduled renewal on the newest data.
            if found and (triggered or {k: int(v) for k, v in found["snapshots"].items()} == newest):
                snapshots = {k: int(v) for k, v in found["snapshots"].items()}
                decision = renew_alias(settings(), job.model, found["alias"], snapshots, "drift", found.get("drift_run_id"), progress=log.info)
            else:
                decision = renew_alias(settings(), job.model, "production", newest, "schedule", progress=log.info)
            if decision is None:
                raise AirflowSkipException(f"no version of {job.model} holds the alias yet; nothing to renew")
            return decision

        renew_on_new_data()
    return monitor, renew


for _job in JOBS.values():
    _monitor, _renew = monitor_dags(_job)
    globals()[_monitor.dag_id] = _monitor
    globals()[_renew.dag_id] = _renew
