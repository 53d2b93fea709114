"""`lakehouse_maintenance` (daily) and `lineage_consumer_health` (every 10 minutes).

Maintenance: expire snapshots older than the retention in every table (snapshots tagged by a model
version, and branch heads, stay), rewrite the lineage tables' small files, remove orphan files, and
report what each step did. Health: the lineage consumer is a service, not a DAG; this reconciles the
worker's outbox with the lineage store, then checks that events waiting in the topic or the outbox
are being stored, and fails loudly when they are not.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.sdk import Param, TriggerRule, dag, task

from dag_support import settings
# One definition of the retention (TIDEMARK_MAINTENANCE_RETENTION_S), which the plugin's table page shows too.
from lakehouse.timeline import MAINTENANCE_RETENTION_S as RETENTION_S

log = logging.getLogger(__name__)


@dag(
    schedule="@daily",
    # No start_date: a time schedule then first fires at its next time, never "the latest
    # interval" on first start (with a start_date and catchup off, Airflow replays that one, which
    # only finds nothing new: the red runs of a fresh `make airflow`).
    catchup=False,
    max_active_runs=1,
    tags=["tidemark", "maintenance"],
    doc_md=__doc__,
    params={
        "retention_s": Param(RETENTION_S, type="number", minimum=0, description="expire snapshots older than this"),
        # Iceberg's own default: a younger unreferenced file may belong to a commit still in flight.
        "orphan_grace_s": Param(3 * 24 * 3600, type="number", minimum=0, description="remove orphan files older than this"),
    },
)
def lakehouse_maintenance() -> None:
    @task
    def expire_snapshots(**context: Any) -> dict[str, int]:
        from lakehouse.catalog import load_catalog
        from lakehouse.maintenance import expire_all_snapshots

        return expire_all_snapshots(load_catalog(settings()), timedelta(seconds=float(context["params"]["retention_s"])))

    @task
    def compact_lineage_tables() -> dict[str, int]:
        from lineage.consumer import compact

        return {"files_rewritten": compact(settings())}

    @task
    def remove_orphan_files(**context: Any) -> dict[str, Any]:
        from lakehouse.catalog import load_catalog
        from lakehouse.maintenance import remove_all_orphan_files

        return remove_all_orphan_files(load_catalog(settings()), timedelta(seconds=float(context["params"]["orphan_grace_s"])))

    @task
    def report(expired: dict[str, int], compacted: dict[str, int], orphans: dict[str, Any]) -> dict[str, Any]:
        summary = {
            "snapshots_expired": sum(expired.values()),
            "snapshots_expired_by_table": {k: v for k, v in expired.items() if v},
            "lineage_partitions_rewritten": compacted.get("files_rewritten", 0),
            "orphan_files_removed": orphans.get("removed", 0),
            "orphan_bytes_removed": orphans.get("bytes", 0),
        }
        log.info(
            "maintenance: %d snapshots expired, %d lineage partitions rewritten, %d orphan files (%d bytes) removed",
            summary["snapshots_expired"], summary["lineage_partitions_rewritten"], summary["orphan_files_removed"], summary["orphan_bytes_removed"],
        )
        return summary

    expired = expire_snapshots()
    compacted = compact_lineage_tables()
    orphans = remove_orphan_files()
    expired >> compacted >> orphans  # orphans last: expiry and rewrites are what leave files unreferenced
    report(expired, compacted, orphans)


@dag(
    schedule="*/10 * * * *",
    # No start_date: a time schedule then first fires at its next time, never "the latest
    # interval" on first start (with a start_date and catchup off, Airflow replays that one, which
    # only finds nothing new: the red runs of a fresh `make airflow`).
    catchup=False,
    max_active_runs=1,
    tags=["tidemark", "maintenance"],
    doc_md=__doc__,
    params={"max_age_s": Param(600, type="number", minimum=1, description="fail when events wait longer than this")},
)
def lineage_consumer_health() -> None:
    @task
    def reconcile_outbox() -> dict[str, Any]:
        # This worker's outbox holds each event it sent until the lineage store has it. A consumer
        # in another container cannot acknowledge there, so the store is asked (`tidemark lineage
        # recover`): what it holds is acknowledged, what a lost or replaced broker dropped is sent
        # again, and runs a killed task left in flight are finished.
        from lineage.recovery import recover

        report = recover(settings(), reconcile_store=True)
        report.raise_for_errors()
        return report.to_json()

    # Lag is reported even when reconciling failed (a broker or store down is when it matters most).
    @task(trigger_rule=TriggerRule.ALL_DONE)
    def check_lag(**context: Any) -> dict[str, Any]:
        from lineage.lag import consumer_lag

        return consumer_lag(settings(), float(context["params"]["max_age_s"]))

    # Airflow decides a run's state by its leaf tasks only: with check_lag the one leaf, a failed
    # reconcile would leave the run green. This leaf fails it then (and is skipped otherwise).
    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
    def fail_if_reconcile_failed() -> None:
        raise RuntimeError("reconcile_outbox failed: see its log (check_lag still ran)")

    reconciled = reconcile_outbox()
    reconciled >> check_lag()
    reconciled >> fail_if_reconcile_failed()


lakehouse_maintenance()
lineage_consumer_health()
