"""What the DAG files share: Asset URIs, reading asset events, and DAG param errors.

Not a DAG file: `.airflowignore` keeps Airflow's DAG processor from parsing it (its safe-mode
heuristic alone would not, since the file mentions both words it looks for). DAG files import it by
its plain name, `dag_support`, because Airflow puts the DAG folder on sys.path. DAG files import it
at parse time, so it stays light: no heavy import at module level. No Airflow import either: an
Airflow task context is a mapping here, so all of it is testable without a scheduler.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.exceptions import TidemarkError, reword
from lakehouse.tables import TableName

if TYPE_CHECKING:
    from lakehouse.config import Settings
    from models.jobs import TrainingJob

log = logging.getLogger(__name__)

ASSET_SCHEME = "x-iceberg://tidemark/"


class DagConfigError(TidemarkError):
    """A DAG's params, or the asset events it runs on, are not what it needs; `parameter` is the DAG param."""


def settings() -> Settings:
    """Tidemark's settings for a task (loaded when the task runs, never at parse time); every task
    calls it first, so it also hands the task's OpenLineage identity to the runs it makes."""
    from lakehouse.config import load_settings

    link_openlineage_parent()
    return load_settings()


def link_openlineage_parent(environ: dict[str, str] | None = None) -> None:
    """Name this task's run, as Airflow's OpenLineage provider identifies it, as the parent of the
    lineage runs it starts: `OPENLINEAGE_PARENT_ID` and `OPENLINEAGE_ROOT_PARENT_ID`
    (`namespace/job/runId`, the convention OpenLineage integrations read), from the provider's
    own macros. Then a trace follows a snapshot's or model's parent facet to the task and DAG run
    events the provider stored. Nothing is set when the provider is absent or disabled (the runs
    then name a parent derived from the task's names: `lineage.code.airflow_parent`)."""
    env = os.environ if environ is None else environ
    try:
        from airflow.providers.openlineage.conf import is_disabled
        from airflow.providers.openlineage.plugins.macros import lineage_parent_id, lineage_root_parent_id
        from airflow.sdk import get_current_context
    except ImportError:
        return
    try:
        if is_disabled():
            return
        ti = get_current_context()["ti"]
        env["OPENLINEAGE_PARENT_ID"] = lineage_parent_id(ti)
        env["OPENLINEAGE_ROOT_PARENT_ID"] = lineage_root_parent_id(ti)
    except Exception as exc:  # outside a running task, or a provider that changed: keep the derived parent
        log.info("no OpenLineage parent from the provider: %s", exc)


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
        task_note(f"failed: {message}")
        raise AirflowFailException(message) from None


def nothing_new(reason: str) -> Exception:
    """The exception that ends a task whose schedule found nothing new: the task is skipped (not
    failed) and `reason` is its log line and its task instance note."""
    from airflow.sdk.exceptions import AirflowSkipException

    log.info("%s", reason)
    task_note(f"skipped: {reason}")
    return AirflowSkipException(reason)


NOTE_MAX = 1000  # Airflow's task_instance_note.content column


def task_note(text: str, context: Mapping[str, Any] | None = None) -> bool:
    """Set the running task instance's note (what the UI shows beside the task) to `text`; True if set.

    Airflow 3's task SDK has no call to set a note from inside a task (its execution API only writes
    state, XCom and the like), so this goes through Airflow's public REST API, like a user editing the
    note: PATCH `/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}?update_mask=note`, on the API
    server the task already reports to (`[core] execution_api_server_url` without `execution/`),
    logged in with the simple auth manager's user and password from its passwords file
    (`[core] simple_auth_manager_passwords_file`; `make airflow` and the tests write it). Where that
    file is not readable (another auth manager, a worker on another host) or the server does not
    answer (`airflow dags test` runs without one), the note is skipped and the log says why; the
    reason is in the task log either way. Never raises: a note must not change the task's outcome."""
    try:
        from airflow.sdk import get_current_context
        from airflow.sdk.configuration import conf

        ti = (context or get_current_context())["ti"]
        base = (conf.get("core", "execution_api_server_url", fallback=None) or f"http://localhost:{conf.get('api', 'port', fallback='8080')}/execution/")
        base = base.rstrip("/").removesuffix("/execution") + "/"
        passwords = json.loads(Path(conf.get("core", "simple_auth_manager_passwords_file")).read_text() or "{}")
        user = "admin" if "admin" in passwords else next(iter(passwords))
        token = _post_json(base + "auth/token", {"username": user, "password": passwords[user]})["access_token"]
        q = urllib.parse.quote
        path = f"api/v2/dags/{q(ti.dag_id, safe='')}/dagRuns/{q(ti.run_id, safe='')}/taskInstances/{q(ti.task_id, safe='')}"
        if getattr(ti, "map_index", -1) not in (-1, None):
            path += f"/{ti.map_index}"
        _post_json(base + path + "?update_mask=note", {"note": text[:NOTE_MAX]}, token=token, method="PATCH")
        return True
    except Exception as exc:  # no API server, no credentials here, an older Airflow: the log has the reason
        log.warning("task note not set (%s: %s); the reason is in this log", exc.__class__.__name__, exc)
        return False


def _post_json(url: str, body: Mapping[str, Any], token: str | None = None, method: str = "POST") -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def scheduled_jobs() -> list[TrainingJob]:
    """The training jobs the train and monitor DAG files make DAGs for: the Python ones.

    A Spark job needs Java and the Spark jars on every worker, and renewal does not score Spark
    versions yet: it is run with `tidemark train`, not scheduled beside the Python jobs.
    """
    from models.jobs import JOBS

    return [job for job in JOBS.values() if job.engine == "python"]


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
