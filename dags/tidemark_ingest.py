"""One ingest DAG per configured source (dags/sources.yaml): land -> validate -> publish | quarantine.

- `land`: each new file is written to an audit branch of the table, its rows checked by the table's
  Great Expectations suite as they stream (one read of the file); nothing is published yet.
- `validate`: the gate's decision, read from the audited snapshots: which to publish, which to refuse.
- `publish`: main moves to the audited snapshot(s); the table's Asset gets an event whose extra carries
  the published snapshot id, which is what the training DAGs train on. Skipped when nothing passed,
  so no asset event and no training.
- `quarantine`: failed landings are kept on `quarantine-<run>` branches and the task fails, so the
  DAG run is failed and main is untouched.

Parsing this file reads only the small sources file: every heavy import happens inside a task.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, task
from airflow.sdk.exceptions import AirflowSkipException

from tidemark.dagtasks import SOURCES_FILE, SourceConfig, asset_uri, load_sources

SOURCES = Path(os.environ.get("TIDEMARK_AIRFLOW_SOURCES") or Path(__file__).with_name(SOURCES_FILE))


def _settings() -> Any:
    from lakehouse.config import load_settings

    return load_settings()


def ingest_dag(source: SourceConfig) -> DAG:
    asset = Asset(asset_uri(source.table), extra={"table": source.table})
    with DAG(
        dag_id=source.dag_id,
        schedule=source.schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,  # landings of one source publish in order
        tags=["tidemark", "ingest"],
        doc_md=f"Land `{source.location}` into `{source.table}` by write-audit-publish. {__doc__}",
    ) as dag:

        @task
        def land() -> list[dict[str, Any]]:
            from tidemark.dagtasks import land_source

            return land_source(_settings(), source)

        @task
        def validate(staged: list[dict[str, Any]]) -> dict[str, Any]:
            from tidemark.dagtasks import validate_staged

            return validate_staged(_settings(), source.table, staged)

        @task(outlets=[asset])
        def publish(decision: dict[str, Any], **context: Any) -> dict[str, Any]:
            from tidemark.dagtasks import publish_staged

            published = publish_staged(_settings(), decision)
            if published is None:
                raise AirflowSkipException(f"nothing passed the gate for {source.table}; no asset event")
            context["outlet_events"][asset].extra = published
            return published

        @task
        def quarantine(decision: dict[str, Any]) -> list[str]:
            from tidemark.dagtasks import quarantine_staged

            if not decision["quarantine"]:
                raise AirflowSkipException("every landing passed its gate")
            return quarantine_staged(_settings(), decision)

        decision = validate(land())
        publish(decision)
        quarantine(decision)
    return dag


for _source in load_sources(SOURCES):
    globals()[_source.dag_id] = ingest_dag(_source)
