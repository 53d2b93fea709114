"""Continuous training: watch production models' data for drift, and renew them automatically.

- `monitor_<model>` runs on every new snapshot of the model's input tables (their Assets): it compares
  each alias holder's training snapshots with the new ones (PSI, Kolmogorov–Smirnov, category shift,
  missing values, row count; in DuckDB, by time travel). Drift above the thresholds updates the Asset
  `x-tidemark://models/<model>/drift` (its extra names the snapshots and the drift run); no drift, no
  event.
- `monitor_traffic_<model>` runs when the model's prediction log (`serving.<model>_predictions`, its
  Asset) gets new rows, and hourly: each alias holder's traffic of the last `window` (default 1h)
  against its training snapshots, with the same statistics; drift updates the same drift Asset.
- `renew_<model>` runs on that drift Asset, or weekly: it trains a candidate on the new snapshots,
  scores it and the alias holder on the same holdout, and promotes it only if it passes the promotion
  gate; otherwise it stays a candidate and the reason is recorded (`tidemark models status <model>`).
  A run that finds nothing to do (no published snapshot yet, no alias holder, the holder already
  trained on exactly that data) is skipped with the reason; a bad `snapshots` param fails in one line.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, task

from dag_support import (
    DagConfigError,
    asset_event_extras,
    asset_uri,
    drift_asset_uri,
    nothing_new,
    one_line_failure,
    params_named,
    scheduled_jobs,
    settings,
    snapshots_from_asset_events,
    task_note,
)
from models.jobs import TrainingJob
from models.signature import prediction_table

log = logging.getLogger(__name__)


def _snapshot_id(table: Any, value: Any) -> int:
    """A snapshot id from the `snapshots` param: a whole number (JSON may bring it as text)."""
    try:
        return int(str(value))
    except ValueError:
        raise DagConfigError(f"param `snapshots`: {table}={value!r} is not a snapshot id (a whole number; `tidemark tables` lists them)", parameter="snapshots") from None


def monitor_dags(job: TrainingJob) -> tuple[DAG, DAG]:
    inputs = [Asset(asset_uri(t), extra={"table": t}) for t in job.inputs]
    drift = Asset(drift_asset_uri(job.model), extra={"model": job.model})
    with DAG(
        dag_id=f"monitor_{job.model}",
        schedule=inputs[0] if len(inputs) == 1 else inputs,
        catchup=False,
        max_active_runs=1,
        tags=["tidemark", "monitoring"],
        doc_md=__doc__,
    ) as monitor:

        @task(inlets=inputs, outlets=[drift])
        def check_drift(**context: Any) -> dict[str, Any]:
            from models.monitor import check_alias_holders

            with one_line_failure():
                snapshots = snapshots_from_asset_events(job.inputs, asset_event_extras(context, inputs))
                found = check_alias_holders(settings(), job.model, snapshots)
            if found is None:
                raise nothing_new(f"no drift for {job.model} on {snapshots} (or no alias holder to watch); nothing to renew")
            context["outlet_events"][drift].extra = found
            return found

        check_drift()

    with DAG(
        dag_id=f"renew_{job.model}",
        schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 3 * * 1", timezone="UTC"), assets=drift),
        # No start_date: a time schedule then first fires at its next time, never "the latest
        # interval" on first start (with a start_date and catchup off, Airflow replays that one, which
        # only finds nothing new: the red runs of a fresh `make airflow`).
        catchup=False,
        max_active_runs=1,
        tags=["tidemark", "monitoring"],
        doc_md=__doc__,
        params={
            "snapshots": Param(
                {}, type="object", description="by hand: the snapshot per input table to renew on, e.g. {\"raw.wine\": 123}; empty: the newest published"
            ),
        },
    ) as renew:

        @task(inlets=[drift, *inputs])
        def renew_on_new_data(**context: Any) -> dict[str, Any]:
            from models.renewal import renew_alias

            p = context.get("params") or {}
            with one_line_failure():
                given = {str(k): _snapshot_id(k, v) for k, v in (p.get("snapshots") or {}).items()}
                unknown = sorted(set(given) - set(job.inputs))
                if unknown:
                    raise DagConfigError(f"param `snapshots`: {', '.join(unknown)} is not an input of {job.model} (inputs: {', '.join(job.inputs)})", parameter="snapshots")
                extras = asset_event_extras(context, inputs)
                published = {t for t in job.inputs if any(e.get("snapshot_id") is not None for e in extras.get(asset_uri(t), []))}
                if not given and published != set(job.inputs):
                    missing = ", ".join(sorted(set(job.inputs) - published))
                    raise nothing_new(f"nothing to renew {job.model} on: no published snapshot of {missing} yet (its ingest DAG publishes one)")
                newest = given or snapshots_from_asset_events(job.inputs, extras)
                drift_events = asset_event_extras(context, [drift])[drift.uri]  # triggering ones, else the newest
                found = drift_events[-1] if drift_events else None
                triggered = drift in (context.get("triggering_asset_events") or {})
                # Renew because of drift when a drift event triggered the run, or when a hand/weekly run finds
                # that the newest data is the data that drifted; else a plain scheduled renewal on the newest data.
                with params_named({"snapshots": "snapshots"}):
                    if found and not given and (triggered or {k: int(v) for k, v in found["snapshots"].items()} == newest):
                        snapshots = {k: int(v) for k, v in found["snapshots"].items()}
                        decision = renew_alias(settings(), job.model, found["alias"], snapshots, "drift", found.get("drift_run_id"), progress=log.info)
                    else:
                        decision = renew_alias(settings(), job.model, "production", newest, "schedule" if not given else "manual", progress=log.info)
            if decision is None:
                raise nothing_new(f"no version of {job.model} holds the alias yet; nothing to renew (promote a first version)")
            if decision.get("nothing_new"):
                raise nothing_new(decision["reason"])
            # The decision in the UI beside the task: a refusal is a green run, its reason easy to miss.
            task_note(f"{'promoted' if decision.get('promoted') else 'refused'}: {decision.get('reason', '')}", context)
            return decision

        renew_on_new_data()
    return monitor, renew


def traffic_monitor_dag(job: TrainingJob) -> DAG:
    """`monitor_traffic_<model>`: on the prediction log's Asset (whoever updates it: the serving
    deployment through Airflow's API, or a DAG), and hourly since the log is written outside Airflow."""
    log_asset = Asset(asset_uri(prediction_table(job.model)), extra={"table": prediction_table(job.model)})
    drift = Asset(drift_asset_uri(job.model), extra={"model": job.model})
    with DAG(
        dag_id=f"monitor_traffic_{job.model}",
        schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"), assets=log_asset),
        catchup=False,
        max_active_runs=1,
        tags=["tidemark", "monitoring", "serving"],
        doc_md=__doc__,
        params={"window": Param("1h", type="string", pattern=r"^[0-9]+(\.[0-9]+)?(s|m|h|d)$", description="the span of traffic to check, e.g. 30m, 1h, 7d")},
    ) as monitor:

        @task(inlets=[log_asset], outlets=[drift])
        def check_traffic_drift(**context: Any) -> dict[str, Any]:
            from models.monitor import check_traffic_of_alias_holders

            window = str((context.get("params") or {}).get("window") or "1h")
            with one_line_failure(), params_named({"window": "window"}):
                found = check_traffic_of_alias_holders(settings(), job.model, window)
            if found is None:
                raise nothing_new(f"no traffic drift for {job.model} in the last {window} (or no alias holder, or no logged traffic)")
            context["outlet_events"][drift].extra = found
            return found

        check_traffic_drift()
    return monitor


for _job in scheduled_jobs():
    _monitor, _renew = monitor_dags(_job)
    globals()[_monitor.dag_id] = _monitor
    globals()[_renew.dag_id] = _renew
    _traffic = traffic_monitor_dag(_job)
    globals()[_traffic.dag_id] = _traffic
