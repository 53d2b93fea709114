"""What the DAG files share: Asset URIs, reading asset events, and DAG param errors.

Not a DAG file: `.airflowignore` keeps Airflow's DAG processor from parsing it (its safe-mode
heuristic alone would not, since the file mentions both words it looks for). DAG files import it by
its plain name, `dag_support`, because Airflow puts the DAG folder on sys.path. DAG files import it
at parse time, so it stays light: no heavy import at module level. No Airflow import either: an
Airflow task context is a mapping here, so all of it is testable without a scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from lakehouse.exceptions import TidemarkError, reword
from lakehouse.tables import TableName

if TYPE_CHECKING:
    from lakehouse.config import Settings

log = logging.getLogger(__name__)

ASSET_SCHEME = "x-iceberg://tidemark/"


class DagConfigError(TidemarkError):
    """A DAG's params, or the asset events it runs on, are not what it needs; `parameter` is the DAG param."""


def settings() -> Settings:
    """Tidemark's settings for a task (loaded when the task runs, never at parse time)."""
    from lakehouse.config import load_settings

    return load_settings()


@contextmanager
def params_named(params: Mapping[str, str]) -> Iterator[None]:
    """Within: a library error about one of `params` (library parameter -> DAG param) becomes a
    `DagConfigError` that names the DAG param instead (`lakehouse.exceptions.reword`); any other
    error passes through unchanged."""
    try:
        yield
    except TidemarkError as exc:
        if exc.parameter not in params:
            raise
        words = {name: f"param `{param}`" for name, param in params.items()}
        raise DagConfigError(reword(exc, words), parameter=params[exc.parameter]) from exc


@contextmanager
def one_line_failure() -> Iterator[None]:
    """Within: a TidemarkError (bad input: a param, a snapshot id, an unknown model, a job module that
    does not import) fails the task with its one line, logged as such, and no retry (retrying cannot
    fix the input). Anything else (a bug, a service down) passes through for Airflow's retries."""
    try:
        yield
    except TidemarkError as exc:
        from airflow.sdk.exceptions import AirflowFailException

        message = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        log.error("%s", message)
        raise AirflowFailException(message) from None


def nothing_new(reason: str) -> Exception:
    """The exception that ends a task whose schedule found nothing new: the task is skipped (not
    failed) and `reason` is its log line."""
    from airflow.sdk.exceptions import AirflowSkipException

    log.info("%s", reason)
    return AirflowSkipException(reason)


def asset_uri(table: str) -> str:
    """The Airflow Asset URI of an Iceberg table (the same string in the ingest, training and monitor DAGs)."""
    return ASSET_SCHEME + str(TableName.parse(table))


def drift_asset_uri(model: str) -> str:
    """The Asset a drift check updates when it finds drift; the renewal DAG is scheduled on it."""
    return f"x-tidemark://models/{model}/drift"


def asset_event_extras(context: Mapping[str, Any], assets: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
    """Per asset URI, the extras of the events that triggered this run, else of the asset's newest
    event (a manual or `dags test` run). `context` is the task's Airflow context."""
    triggering = context.get("triggering_asset_events") or {}
    out: dict[str, list[dict[str, Any]]] = {}
    for a in assets:
        got = list(triggering[a]) if a in triggering else []
        if got:
            log.info("%s: %d triggering asset event(s); using the newest", a.uri, len(got))
        else:
            log.info("%s: run not triggered by it; using its newest asset event", a.uri)
            try:
                got = [context["inlet_events"][a][-1]]
            except (IndexError, KeyError):
                got = []
        out[a.uri] = [dict(e.extra or {}) for e in got]
    return out


def snapshots_from_asset_events(job_inputs: Sequence[str], events: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, int]:
    """The snapshot id each input table's newest asset event carries (`events`: asset URI -> extras, oldest first).

    Training uses exactly these, never "whatever is current": an input with no event is an error.
    """
    out: dict[str, int] = {}
    missing = []
    for table in job_inputs:
        extras = [e for e in events.get(asset_uri(table), []) if e and e.get("snapshot_id") is not None]
        if not extras:
            missing.append(table)
            continue
        out[table] = int(extras[-1]["snapshot_id"])
    if missing:
        raise DagConfigError(
            f"no asset event with a snapshot id for {', '.join(missing)}; run its ingest DAG first "
            f"(asset {', '.join(asset_uri(t) for t in missing)})"
        )
    return out
