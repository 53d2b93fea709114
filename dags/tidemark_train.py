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
            from tidemark.dagtasks import snapshots_from_asset_events

            triggering = context.get("triggering_asset_events") or {}
            events: dict[str, list[dict[str, Any]]] = {}
            for a in assets:
                got = list(triggering[a]) if a in triggering else []
                if got:
                    print(f"{a.uri}: {len(got)} triggering asset event(s); training on the newest")
                else:  # a manual run: the newest event of the asset, not the table's current main
                    print(f"{a.uri}: run not triggered by it; training on its newest asset event")
                    try:
                        newest = context["inlet_events"][a][-1]
                    except (IndexError, KeyError):
                        newest = None
                    got = [newest] if newest is not None else []
                events[a.uri] = [dict(e.extra or {}) for e in got]
            return snapshots_from_asset_events(job.inputs, events)

        @task
        def train(snapshots: dict[str, int]) -> dict[str, Any]:
            from lakehouse.config import load_settings
            from tidemark.dagtasks import train_on_snapshots

            return train_on_snapshots(load_settings(), job.name, snapshots)

        train(pick_snapshots())
    return dag


for _job in JOBS.values():
    globals()[f"train_{_job.name}"] = train_dag(_job)
