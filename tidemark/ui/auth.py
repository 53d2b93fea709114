"""Who may see the pages and who may retrain: Airflow's own auth manager decides, as for its core API.

Airflow mounts a plugin's FastAPI app without protecting it. Every route of ours depends on
Airflow's `get_user` (the core API's dependency): it reads the JWT from an `Authorization: Bearer`
header or the UI's `_token` cookie, has the configured auth manager check it, and answers 401
(no or expired token) or 403 (a token that does not verify). Retraining starts work, so it also
needs what triggering a DAG run needs: the auth manager's `is_authorized_dag(POST, RUN)` for the
`retrain_model` DAG, which does the same from Airflow.
"""

from __future__ import annotations

from typing import Any

RETRAIN_DAG = "retrain_model"


def user_dependency() -> Any:
    """Airflow's dependency that resolves (or refuses) the signed-in user."""
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def may_trigger(user: Any, dag_id: str = RETRAIN_DAG) -> bool:
    """Whether the auth manager lets `user` trigger a run of `dag_id` (what retraining asks for)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return bool(get_auth_manager().is_authorized_dag(method="POST", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user))


def user_name(user: Any) -> str:
    getter = getattr(user, "get_name", None)
    return str(getter()) if callable(getter) else str(getattr(user, "username", "user"))
