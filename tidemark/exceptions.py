"""Errors of the CLI and the Airflow tasks; each message says what to do."""

from __future__ import annotations

from lakehouse.exceptions import TidemarkError


class DagConfigError(TidemarkError):
    """A DAG's configuration (sources file, params) is invalid."""


class LineageStalledError(TidemarkError):
    """Lineage events are waiting and the consumer is not storing them."""


class AirflowStackError(TidemarkError):
    """Airflow's parts on the CeleryExecutor cannot start or keep running (broker, database, a part exiting)."""
