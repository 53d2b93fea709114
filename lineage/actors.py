"""Who did it: the actor a run, a registry row or an alias move is recorded under.

Resolution order (`current_actor`):
1. a configured service identity: `actor.name` in tidemark.yaml or TIDEMARK__ACTOR__NAME (kind "service");
2. inside an Airflow task: the DAG owner (AIRFLOW_CTX_DAG_OWNER, which Airflow exports to every task)
   and, when known, the user who triggered the DAG run (kind "airflow", name "airflow:<owner>");
3. else the OS user running the process (kind "user").

Airflow 3 keeps the triggering user on the DAG run (`DagRun.triggering_user_name`) but does not
export it as a variable: it is read from AIRFLOW_CTX_TRIGGERING_USER when a deployment's
`get_airflow_context_vars` policy exports it, else from the running task's context when the task
runs in this process (Tidemark's DAGs call it in-process).
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lakehouse.config import LineageSettings, Settings

FACET = "tidemark_actor"
SCHEMA = "https://github.com/tidemark/tidemark/blob/main/docs/facets/ActorRunFacet.json"
KINDS = ("user", "airflow", "service")


@dataclass(frozen=True)
class Actor:
    """A person or service acting on the lakehouse."""

    name: str  # "alice", "svc-renewal", "airflow:data-team"
    kind: str  # "user" | "airflow" | "service"
    dag_owner: str | None = None
    triggered_by: str | None = None  # Airflow's triggering user, when known

    def as_facet(self, producer: str = LineageSettings.producer) -> dict[str, Any]:
        """The `tidemark_actor` OpenLineage run facet."""
        facet: dict[str, Any] = {"_producer": producer, "_schemaURL": SCHEMA, "name": self.name, "kind": self.kind}
        if self.dag_owner:
            facet["dagOwner"] = self.dag_owner
        if self.triggered_by:
            facet["triggeredBy"] = self.triggered_by
        return facet

    def to_json(self) -> dict[str, Any]:
        """The actor in `--output json`, the UI's JSON and `ModelVersion.to_json` (no facet envelope)."""
        return {"name": self.name, "kind": self.kind, "dag_owner": self.dag_owner, "triggered_by": self.triggered_by}

    def signed(self) -> dict[str, Any]:
        """The fields a registry signature covers (`lineage.signing`): what the row's columns keep."""
        return {"name": self.name, "kind": self.kind, "triggeredBy": self.triggered_by}

    def columns(self) -> dict[str, Any]:
        """The `actor`, `actor_kind`, `triggered_by` columns of a registry or lineage row."""
        return {"actor": self.name, "actor_kind": self.kind, "triggered_by": self.triggered_by}

    def describe(self) -> str:
        """One phrase for text output: "alice", "airflow:data-team (triggered by bob)"."""
        return f"{self.name} (triggered by {self.triggered_by})" if self.triggered_by else self.name


def from_facet(facet: Mapping[str, Any] | None) -> Actor | None:
    """The actor a `tidemark_actor` facet (or a `to_json` dict) names; None when absent or malformed."""
    if not isinstance(facet, Mapping):
        return None
    name, kind = facet.get("name"), facet.get("kind")
    if not isinstance(name, str) or not name or kind not in KINDS:
        return None
    owner = facet.get("dagOwner", facet.get("dag_owner"))
    trigger = facet.get("triggeredBy", facet.get("triggered_by"))
    return Actor(
        name=name,
        kind=str(kind),
        dag_owner=owner if isinstance(owner, str) and owner else None,
        triggered_by=trigger if isinstance(trigger, str) and trigger else None,
    )


def from_columns(row: Mapping[str, Any]) -> Actor | None:
    """The actor of a row with `actor`, `actor_kind`, `triggered_by` columns; None for a row from
    before Tidemark recorded actors (its columns are null)."""
    name, kind = row.get("actor"), row.get("actor_kind")
    if not name or kind not in KINDS:
        return None
    owner = str(name).removeprefix("airflow:") if kind == "airflow" else None
    return Actor(name=str(name), kind=str(kind), dag_owner=owner, triggered_by=row.get("triggered_by") or None)


NO_COLUMNS: dict[str, Any] = {"actor": None, "actor_kind": None, "triggered_by": None}


def current_actor(settings: Settings | None = None, environ: Mapping[str, str] | None = None) -> Actor:
    """The actor this process acts as (see the module's resolution order)."""
    env = os.environ if environ is None else environ
    configured = settings.actor.name if settings is not None else None
    if configured:
        return Actor(name=configured, kind="service")
    owner = (env.get("AIRFLOW_CTX_DAG_OWNER") or "").strip()
    if owner and env.get("AIRFLOW_CTX_DAG_ID"):
        trigger = (env.get("AIRFLOW_CTX_TRIGGERING_USER") or "").strip() or _airflow_triggering_user()
        return Actor(name=f"airflow:{owner}", kind="airflow", dag_owner=owner, triggered_by=trigger or None)
    return Actor(name=_os_user(), kind="user")


def _airflow_triggering_user() -> str | None:
    """The running task's `dag_run.triggering_user_name`, when this process runs an Airflow task.

    Only asked when the task SDK is already loaded: importing Airflow costs seconds, and outside a
    task there is no context to read."""
    if "airflow.sdk" not in sys.modules:
        return None
    try:
        from airflow.sdk import get_current_context

        dag_run = get_current_context().get("dag_run")
    except Exception:  # noqa: BLE001 - no running task (or an Airflow without it): not known, not an error
        return None
    name = getattr(dag_run, "triggering_user_name", None)
    return name if isinstance(name, str) and name else None


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        # A container user without a passwd entry or LOGNAME: still say something true.
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"
