"""Who did what and who owns what: two configured actors and the OS user through ingest, train,
promote and archive, seen in the registry, the lineage tables, the CLI and the UI's JSON."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest

from lakehouse.config import load_settings
from lineage.transport import KafkaTransport
from tests.conftest import SPEC_DIR, run_cli
from tests.models.conftest import wine_part

pytestmark = pytest.mark.integration

ME = getpass.getuser()


def _as(monkeypatch: pytest.MonkeyPatch, name: str | None) -> Any:
    """Settings acting as `name` (a configured identity), or as the OS user (None)."""
    if name is None:
        monkeypatch.delenv("TIDEMARK__ACTOR__NAME", raising=False)
    else:
        monkeypatch.setenv("TIDEMARK__ACTOR__NAME", name)
    return load_settings()


class _Both:
    """Each event to Kafka (for the lineage store) and kept in memory (to look at)."""

    def __init__(self, settings: Any, kept: list[dict[str, Any]]) -> None:
        self.kafka, self.kept = KafkaTransport(settings), kept

    def emit(self, event: dict[str, Any]) -> None:
        self.kept.append(event)
        self.kafka.emit(event)

    def close(self) -> None:
        self.kafka.close()


def test_two_actors_and_the_os_user_from_landing_to_archive(tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """alice lands raw.wine (owner team:wine), trains v1 and promotes it; bob trains v2 and
    promotes it; the OS user archives v1. Then every place that should say who, says it."""
    from ingest.land import land
    from lineage.consumer import consume
    from models.jobs import get_job
    from models.pinning import archive
    from models.promotion import promote
    from models.train import train

    assert ME not in ("alice", "bob")
    events: list[dict[str, Any]] = []

    def step(settings_as: Any, action: Any) -> None:
        tr = _Both(settings_as, events)
        try:
            action(tr)
        finally:
            tr.close()
        consume(settings, once=True)  # the promotion gate reads the landing's validation from the store

    alice = _as(monkeypatch, "alice")
    step(alice, lambda tr: land(alice, str(wine_part(tmp_path / "a.csv", 0, 178)), "raw.wine", transport=tr, owner="team:wine"))
    step(alice, lambda tr: (train(alice, get_job("wine_classifier"), transport=tr), promote(alice, "wine", 1, "production", transport=tr)))
    bob = _as(monkeypatch, "bob")
    step(bob, lambda tr: (train(bob, get_job("wine_classifier"), transport=tr), promote(bob, "wine", 2, "production", transport=tr)))
    me = _as(monkeypatch, None)
    step(me, lambda tr: archive(me, "wine", 1, reason="superseded", transport=tr))
    story = {"events": events, "settings": me}

    _registry_rows_and_alias_events_name_their_actor(story)
    _every_run_carries_the_actor_facet_and_the_moves_sign_it(story)
    _everything_alice_did_is_one_query_over_the_lineage_tables(story)
    if (SPEC_DIR / "OpenLineage.json").is_file():
        _owners_are_the_standard_ownership_facet_and_conform(story)
    _cli_and_ui_show_actors_and_owners(story)


def _registry_rows_and_alias_events_name_their_actor(story: dict[str, Any]) -> None:
    from models.registry import Registry

    reg = Registry(story["settings"])
    v1, v2 = reg.versions("wine")
    assert (v1.actor.name, v1.actor.kind, v2.actor.name) == ("alice", "service", "bob")
    # The model's owner: the first registering actor, kept when bob trains the next version.
    assert (v1.owner, v2.owner) == ("alice", "alice")
    moves = [(r["action"], r["alias"], r["version"], r["actor"], r["actor_kind"]) for r in reg.alias_history("wine")]
    assert moves == [("set", "production", 1, "alice", "service"), ("set", "production", 2, "bob", "service"), ("archive", "", 1, ME, "user")]
    assert v1.to_json()["archived"]["actor"]["name"] == ME


def _every_run_carries_the_actor_facet_and_the_moves_sign_it(story: dict[str, Any]) -> None:
    from lineage import model_store, signing

    by_job: dict[str, set[str]] = {}
    for e in story["events"]:
        by_job.setdefault(e["job"]["name"], set()).add(e["run"]["facets"]["tidemark_actor"]["name"])
    assert by_job == {"ingest.raw.wine": {"alice"}, "train.wine_classifier": {"alice", "bob"}, "models.promote": {"alice", "bob"}, "models.archive": {ME}}
    # The actor is inside the signed fields of a move: changing it breaks the signature.
    promote_event = next(e for e in story["events"] if e["job"]["name"] == "models.promote")
    (row,) = model_store.alias_rows_from_event(promote_event)
    settings = story["settings"]
    assert signing.verify(settings, model_store.signed_move(row), row["_signature"])
    assert not signing.verify(settings, model_store.signed_move({**row, "actor": "mallory"}), row["_signature"])


def _everything_alice_did_is_one_query_over_the_lineage_tables(story: dict[str, Any]) -> None:
    from lineage.query import run_sql

    rows = run_sql(
        story["settings"],
        """SELECT job_name, actor_kind, count(*) AS runs FROM lineage.runs
           WHERE actor = 'alice' AND event_type = 'COMPLETE' AND event_time >= now() - INTERVAL 1 MONTH
           GROUP BY ALL ORDER BY job_name""",
    ).to_pylist()
    assert rows == [
        {"job_name": "ingest.raw.wine", "actor_kind": "service", "runs": 1},
        {"job_name": "models.promote", "actor_kind": "service", "runs": 1},
        {"job_name": "train.wine_classifier", "actor_kind": "service", "runs": 1},
    ]
    promoted = run_sql(
        story["settings"],
        "SELECT actor FROM lineage.runs WHERE job_name = 'models.promote' AND event_type = 'COMPLETE' ORDER BY event_time",
    ).column("actor").to_pylist()
    assert promoted == ["alice", "bob"]


def _owners_are_the_standard_ownership_facet_and_conform(story: dict[str, Any]) -> None:
    from tests.lineage.test_events import validate

    for e in story["events"]:
        validate(e)
    complete = {e["job"]["name"]: e for e in reversed(story["events"]) if e["eventType"] == "COMPLETE"}
    ingest, training = complete["ingest.raw.wine"], complete["train.wine_classifier"]
    assert ingest["outputs"][0]["facets"]["ownership"]["owners"] == [{"name": "team:wine"}]
    assert ingest["job"]["facets"]["ownership"]["owners"] == [{"name": "team:wine"}]
    # The training run's input table carries its owner too, and the model dataset the model's.
    assert training["inputs"][0]["facets"]["ownership"]["owners"] == [{"name": "team:wine"}]
    model = next(d for d in training["outputs"] if d["facets"]["datasetType"]["datasetType"] == "MODEL")
    assert model["facets"]["ownership"]["owners"] == [{"name": "alice"}]
    assert training["job"]["facets"]["ownership"]["owners"] == [{"name": "alice"}]


def _cli_and_ui_show_actors_and_owners(story: dict[str, Any]) -> None:
    from tidemark.ui import data

    listed = json.loads(run_cli("models", "list", "wine", "--output", "json").stdout)
    assert [(v["version"], v["actor"]["name"], v["owner"]) for v in listed] == [(1, "alice", "alice"), (2, "bob", "alice")]
    text = run_cli("models", "list", "wine").stdout
    assert "bob" in text and "owner" in text
    status = json.loads(run_cli("models", "status", "wine", "--output", "json").stdout)
    assert status["owner"] == "alice"
    assert status["alias_moves"]["production"]["actor"]["name"] == "bob"
    status_text = run_cli("models", "status", "wine").stdout
    assert "owner alice" in status_text and "production   version 2 (moved by bob at" in status_text
    assert "bob" in run_cli("models", "history", "wine").stdout
    history = json.loads(run_cli("models", "history", "wine", "--output", "json").stdout)
    assert [(h["version"], h["actor"]) for h in history] == [(1, "alice"), (2, "bob")]
    shown = json.loads(run_cli("models", "show", "wine@production", "--output", "json").stdout)
    assert shown["actor"] == {"name": "bob", "kind": "service", "dag_owner": None, "triggered_by": None}
    assert "actor           bob" in run_cli("models", "show", "wine:2").stdout
    trace = json.loads(run_cli("trace", "wine@production", "--output", "json").stdout)
    assert (trace["actor"]["name"], trace["owner"]) == ("bob", "alice")
    assert trace["alias_moves"][0]["actor"]["name"] == "bob"
    (inp,) = trace["inputs"]
    assert (inp["owner"], inp["ingest_run"]["actor"]["name"]) == ("team:wine", "alice")
    trace_text = run_cli("trace", "wine@production").stdout
    assert "by bob" in trace_text and "production since" in trace_text and "owner team:wine" in trace_text

    # The UI pages' JSON twins (what /api/.../models, /models/NAME and /tables/NAME return).
    settings = story["settings"]
    assert data.models(settings)["models"][0]["owner"] == "alice"
    page = data.model(settings, "wine")
    assert page["owner"] == "alice" and page["versions"][0]["actor"]["name"] == "bob"
    assert [r["actor"] for r in page["alias_timeline"]] == ["alice", "bob"]
    assert data.table(settings, "raw.wine")["owner"] == "team:wine"


def test_a_bad_owner_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    proc = run_cli("ingest", str(wine_part(tmp_path / "a.csv", 0, 10)), "--table", "raw.wine", "--owner", "team wine", check=False)
    assert proc.returncode != 0
    assert "owner name 'team wine' is not allowed" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "raw.wine" not in run_cli("tables").stdout


def test_drift_renew_retrain_and_a_serve_swap_record_their_actor(wine_csv: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs the first test does not make: a drift check, a renewal, a retrain and a serve swap,
    all by carol, each a run in lineage.runs under her name (one query finds them)."""
    from ingest.land import land
    from lineage.consumer import consume
    from lineage.query import run_sql
    from models.drift import check_model
    from models.jobs import get_job
    from models.promotion import promote
    from models.registry import ModelRef
    from models.renewal import renew
    from models.retrain import retrain
    from models.train import train
    from serving.follow import Follower
    from tests.conftest import shifted_wine

    carol = _as(monkeypatch, "carol")
    land(carol, str(wine_csv), "raw.wine")
    train(carol, get_job("wine_classifier"))
    consume(settings, once=True)
    promote(carol, "wine", 1, "production")
    follower = Follower(carol, ModelRef.parse("wine@production"))
    assert follower.start_serving().version.version == 1
    land(carol, str(shifted_wine(wine_csv, 1.5)), "raw.wine")
    consume(settings, once=True)
    assert check_model(carol, "wine@production").drifted
    decision = renew(carol, "wine@production")
    if not decision.promoted:  # kept, with its reason: move production by hand so the server swaps
        promote(carol, "wine", decision.candidate_version, "production", reason="swap for the test", force=True)
    assert follower.check() and follower.current is not None and follower.current.version.version == decision.candidate_version
    assert retrain(carol, "wine:1").identical
    consume(settings, once=True)

    rows = run_sql(settings, "SELECT DISTINCT job_name, actor, actor_kind FROM lineage.runs WHERE event_type = 'COMPLETE' ORDER BY job_name").to_pylist()
    jobs = {r["job_name"] for r in rows}
    assert {"drift.wine", "renew.wine", "retrain.wine_classifier", "serve.wine"} <= jobs, jobs
    assert {(r["actor"], r["actor_kind"]) for r in rows} == {("carol", "service")}, rows
