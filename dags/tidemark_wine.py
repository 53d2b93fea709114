"""Ingest the wine data set and train on the snapshot it published: a thin wrapper over the packages.

The fuller set (one ingest DAG per configured source, asset-driven training, retraining and
maintenance DAGs) is issue 6; this one shows the shape: tasks call `ingest` and `models`, and pass
the published snapshot id from the landing to the training task.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task

RAW_WINE = Asset("x-iceberg://tidemark/raw.wine")


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["tidemark"])
def tidemark_wine() -> None:
    @task(outlets=[RAW_WINE])
    def land_wine() -> int:
        from ingest.land import land
        from lakehouse.config import load_settings
        from tidemark.demo import write_wine_csv

        settings = load_settings()
        path = write_wine_csv(settings.home / "demo" / "wine.csv")
        result = land(settings, str(path), "raw.wine")
        assert result.snapshot_id is not None
        return result.snapshot_id

    @task
    def train_wine(snapshot_id: int) -> int:
        from lakehouse.config import load_settings
        from models.jobs import get_job
        from models.train import train

        result = train(load_settings(), get_job("wine_classifier"), snapshots={"raw.wine": snapshot_id})
        return result.version.version

    train_wine(land_wine())


tidemark_wine()
