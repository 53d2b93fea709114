"""Who a run is recorded under: configured service, Airflow DAG owner, or the OS user."""

from __future__ import annotations

import getpass

import pytest

from lakehouse.config import load_settings
from lakehouse.exceptions import ConfigError
from lineage.actors import Actor, current_actor, from_facet

AIRFLOW_ENV = {
    "AIRFLOW_CTX_DAG_ID": "tidemark_retrain",
    "AIRFLOW_CTX_TASK_ID": "renew",
    "AIRFLOW_CTX_DAG_RUN_ID": "manual__2026-11-30T00:00:00+00:00",
    "AIRFLOW_CTX_DAG_OWNER": "data-team",
}


def test_default_is_the_os_user() -> None:
    actor = current_actor(load_settings(environ={}), environ={})
    assert actor == Actor(name=getpass.getuser(), kind="user")


def test_configured_service_identity_wins_over_airflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMARK__ACTOR__NAME", "svc-renewal")
    actor = current_actor(load_settings(), environ=AIRFLOW_ENV)
    assert actor == Actor(name="svc-renewal", kind="service")


def test_inside_an_airflow_task_the_dag_owner_acts() -> None:
    actor = current_actor(load_settings(environ={}), environ=AIRFLOW_ENV)
    assert (actor.kind, actor.name, actor.dag_owner, actor.triggered_by) == ("airflow", "airflow:data-team", "data-team", None)
    exported = current_actor(load_settings(environ={}), environ={**AIRFLOW_ENV, "AIRFLOW_CTX_TRIGGERING_USER": "bob"})
    assert exported.triggered_by == "bob"
    assert exported.describe() == "airflow:data-team (triggered by bob)"


def test_an_owner_without_a_task_is_not_airflow() -> None:
    # A stray AIRFLOW_CTX_DAG_OWNER in a shell is not an Airflow task.
    actor = current_actor(load_settings(environ={}), environ={"AIRFLOW_CTX_DAG_OWNER": "x"})
    assert actor.kind == "user"


def test_facet_round_trip() -> None:
    actor = Actor(name="airflow:data-team", kind="airflow", dag_owner="data-team", triggered_by="alice")
    facet = actor.as_facet("https://example.org/producer")
    assert facet["_producer"] == "https://example.org/producer"
    assert facet["_schemaURL"].endswith("/ActorRunFacet.json")
    assert (facet["dagOwner"], facet["triggeredBy"]) == ("data-team", "alice")
    assert from_facet(facet) == actor
    assert from_facet(actor.to_json()) == actor
    assert from_facet({"name": "x", "kind": "robot"}) is None
    assert from_facet(None) is None


def test_actor_name_with_spaces_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMARK__ACTOR__NAME", "alice smith")
    with pytest.raises(ConfigError, match="actor.name"):
        load_settings()


def test_watch_lines_say_who() -> None:
    from lineage.watch import describe

    facet = Actor(name="alice", kind="service").as_facet()
    line = describe({"eventType": "COMPLETE", "job": {"name": "models.promote"}, "run": {"runId": "r", "facets": {"tidemark_actor": facet}}})
    assert "models.promote run r by alice" in line
    assert " by " not in describe({"eventType": "START", "job": {"name": "j"}, "run": {"runId": "r"}})
