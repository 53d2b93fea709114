"""One ingest DAG per configured feed (dags/sources.yaml, see `ingest.feeds`): land -> validate -> publish | quarantine.

- `land`: each new file is written to an audit branch of the table, its rows checked by the table's
  Great Expectations suite as they stream (one read of the file); nothing is published yet. A file
  that cannot be landed does not stop the others; it fails the run at `quarantine`, named. No new
  file (none matches, or each is already landed): the task is skipped with that reason, and so is
  the rest of the run.
- `validate`: the gate's decision, read from the audited snapshots: which to publish, which to refuse.
- `publish`: main moves to the audited snapshot(s); the table's Asset gets an event whose extra carries
  the published snapshot id, which is what the training DAGs train on. Skipped when nothing passed,
  so no asset event and no training.
- `quarantine`: failed landings are kept on `quarantine-<run>` branches and the task fails, so the
  DAG run is failed and main is untouched by them; so does a file that could not be landed at all.

Parsing this file reads only the small sources file: every heavy import happens inside a task.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, task
from airflow.sdk.exceptions import AirflowSkipException

from dag_support import asset_uri, nothing_new, one_line_failure, settings
from ingest.feeds import Feed, load_feeds

SOURCES = Path(os.environ.get("TIDEMARK_AIRFLOW_SOURCES") or Path(__file__).with_name("sources.yaml"))


def ingest_dag(feed: Feed) -> DAG:
    asset = Asset(asset_uri(feed.table), extra={"table": feed.table})
    with DAG(
        dag_id=f"ingest_{feed.name}",
        schedule=feed.schedule,
        # No start_date: a time schedule then first fires at its next time, never "the latest
        # interval" on first start (with a start_date and catchup off, Airflow replays that one, which
        # only finds nothing new: the red runs of a fresh `make airflow`).
        catchup=False,
        max_active_runs=1,  # landings of one feed publish in order
        tags=["tidemark", "ingest"],
        # The feed's owner owns its DAG: its landings then run as actor `airflow:<owner>` (lineage.actors).
        **({"default_args": {"owner": feed.owner}} if feed.owner else {}),
        doc_md=f"Land `{feed.location}` into `{feed.table}` by write-audit-publish. {__doc__}",
    ) as dag:

        @task
        def land() -> list[dict[str, Any]]:
            from ingest.feeds import land_feed

            with one_line_failure():
                staged = land_feed(settings(), feed)
            if not any(not s.get("skipped") for s in staged):
                # A schedule that finds nothing new is a skipped run, not a green one that did nothing
                # silently nor a red one: say why, and what lands a file again.
                seen = ", ".join(str(s["file"]) for s in staged)
                raise nothing_new(
                    f"nothing new in {feed.location}: "
                    + (f"already landed in {feed.table}: {seen} (`tidemark ingest FILE --table {feed.table} --force` lands one again)" if staged else "no file matches")
                )
            return staged

        @task
        def validate(staged: list[dict[str, Any]]) -> dict[str, Any]:
            from ingest.feeds import validate_staged

            return validate_staged(settings(), feed.table, staged)

        @task(outlets=[asset])
        def publish(decision: dict[str, Any], **context: Any) -> dict[str, Any]:
            from ingest.feeds import publish_staged

            published = publish_staged(settings(), decision)
            if published is None:
                raise AirflowSkipException(f"nothing passed the gate for {feed.table}; no asset event")
            context["outlet_events"][asset].extra = published
            return published

        @task
        def quarantine(decision: dict[str, Any]) -> list[str]:
            from ingest.feeds import quarantine_staged

            if not decision["quarantine"] and not decision.get("failed"):
                raise AirflowSkipException("every landing passed its gate")
            return quarantine_staged(settings(), decision)

        decision = validate(land())
        publish(decision)
        quarantine(decision)
    return dag


for _feed in load_feeds(SOURCES):
    _dag = ingest_dag(_feed)
    globals()[_dag.dag_id] = _dag
