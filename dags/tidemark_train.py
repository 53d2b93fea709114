"""Training DAGs scheduled on the ingest DAGs' assets (data-aware scheduling).

`train_<job>` runs when every input table of the reference job has a new asset event, and trains on
exactly the snapshot ids those events carry (never on whatever main holds by then). Run by hand
(or by `airflow dags test`), it uses the newest asset event of each input, so the data is still the
snapshot an ingest DAG published and validated.

`promote_first` promotes the new version to `production` when no version holds it yet and
`models.promote_first_version` is on (the continuous loop then has a holder to monitor and renew);
otherwise it is skipped, saying why.
"""

from __future__ import annotations

import logging
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, task

from dag_support import asset_event_extras, asset_uri, nothing_new, one_line_failure, scheduled_jobs, settings, snapshots_from_asset_events
from models.jobs import TrainingJob

log = logging.getLogger(__name__)


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
            with one_line_failure():
                return snapshots_from_asset_events(job.inputs, asset_event_extras(context, assets))

        @task
        def train(snapshots: dict[str, int]) -> dict[str, Any]:
            from models.train import train_on_snapshots

            with one_line_failure():
                return train_on_snapshots(settings(), job.name, snapshots, progress=log.info)

        @task
        def promote_first(trained: dict[str, Any]) -> dict[str, Any]:
            from models.renewal import promote_first_version

            s = settings()
            if not s.models.promote_first_version:
                raise nothing_new(f"models.promote_first_version is off: promote a first {job.model} version by hand (`tidemark models promote`)")
            with one_line_failure():
                move = promote_first_version(s, trained["model"], trained["version"], progress=log.info)
            if move is None:
                raise nothing_new(f"{job.model}@production has a holder; replacing it is renewal's job (renew_{job.model})")
            return move

        promote_first(train(pick_snapshots()))
    return dag


for _job in scheduled_jobs():
    globals()[f"train_{_job.name}"] = train_dag(_job)
