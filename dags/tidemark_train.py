"""Training DAGs scheduled on the ingest DAGs' assets (data-aware scheduling).

`train_<job>` runs when every input table of the reference job has a new asset event, and trains on
exactly the snapshot ids those events carry (never on whatever main holds by then). Run by hand
(or by `airflow dags test`), it uses the newest asset event of each input, so the data is still the
snapshot an ingest DAG published and validated.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, task

from models.jobs import JOBS, TrainingJob
from tidemark.dagtasks import asset_uri


def train_dag(job: TrainingJob) -> DAG:
    assets = [Asset(asset_uri(t), extra={"table": t}) for t in job.inputs]
    schedule = assets[0] if len(assets) == 1 else assets  # all of them: AND of the inputs
    with DAG(
        dag_id=f"train_{job.name}",
        schedule=schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["tidemark", "training"],
        doc_md=f"Train `{job.name}` (model `{job.model}`) on the snapshots of {', '.join(job.inputs)} that triggered the run. {__doc__}",
    ) as dag:

        @task(inlets=assets)
        def pick_snapshots(**context: Any) -> dict[str, int]:
            from tidemark.dagtasks import asset_event_extras, snapshots_from_asset_events

            return snapshots_from_asset_events(job.inputs, asset_event_extras(context, assets))

        @task
        def train(snapshots: dict[str, int]) -> dict[str, Any]:
            from lakehouse.config import load_settings
            from tidemark.dagtasks import train_on_snapshots

            return train_on_snapshots(load_settings(), job.name, snapshots)

        train(pick_snapshots())
    return dag


for _job in JOBS.values():
    globals()[f"train_{_job.name}"] = train_dag(_job)
