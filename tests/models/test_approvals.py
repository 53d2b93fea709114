"""Protected aliases: requests by one actor, approvals by another, refusals that move nothing, the consumer's vetting."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli, shifted_wine

pytestmark = pytest.mark.integration

ALICE = {"TIDEMARK__ACTOR__NAME": "alice"}
BOB = {"TIDEMARK__ACTOR__NAME": "bob"}


@pytest.fixture
def protected(kafka_env: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Settings with `production` protected for every model (also for the CLI processes)."""
    from lakehouse.config import load_settings

    monkeypatch.setenv("TIDEMARK__MODELS__PROTECTED_ALIASES", "production")
    return load_settings()


def _land(settings: Any, path: Path) -> None:
    from ingest.land import land

    land(settings, str(path), "raw.wine")


def _train(settings: Any, **params: Any) -> int:
    from models.jobs import get_job
    from models.train import train

    job = get_job("wine_classifier")
    return train(settings, job, params={**job.params, **params}).version.version


def _consume(settings: Any) -> None:
    from lineage.consumer import consume

    consume(settings, once=True)


def _holder(settings: Any) -> int | None:
    from models.registry import Registry

    return Registry(settings).current_aliases().get(("wine", "production"))


def _refused(*args: str, env: dict[str, str]) -> str:
    """Run a command that must be refused; its one-line message."""
    proc = run_cli(*args, check=False, env=env)
    assert proc.returncode != 0, proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_two_actors_request_refuse_self_approval_approve_and_history_shows_both(
    protected: Any, wine_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = protected
    _land(s, wine_csv)
    assert _train(s) == 1
    _consume(s)

    out = run_cli("models", "promote", "wine", "1", "--alias", "production", "--reason", "first model", env=ALICE).stdout
    assert "wine@production is protected: request r" in out and "tidemark models approve wine r" in out
    assert _holder(s) is None  # a request, not a move
    (pending,) = json.loads(run_cli("models", "requests", "--output", "json").stdout)
    rid = pending["request_id"]
    assert (pending["actor"], pending["version"], pending["holder_version"], pending["status"]) == ("alice", 1, None, "pending")
    assert pending["gate_problems"] == [] and pending["inputs"][0]["table"] == "raw.wine" and pending["inputs"][0]["snapshot_id"]
    assert pending["metrics"]["candidate"]["accuracy"] > 0.5 and pending["metrics"]["primary_metric"] == "accuracy"

    line = _refused("models", "approve", "wine", rid, env=ALICE)
    assert f"request {rid} was made by alice; another actor must approve it" in line
    assert _holder(s) is None
    line = _refused("models", "approve", "wine", "r00000000", env=BOB)
    assert "wine has no request 'r00000000'" in line

    out = run_cli("models", "approve", "wine", rid, env=BOB).stdout
    assert f"approved request {rid}: wine@production -> version 1" in out
    assert _holder(s) == 1
    line = _refused("models", "approve", "wine", rid, env=BOB)
    assert f"request {rid} is already closed: approved by bob" in line
    assert "no pending requests" in run_cli("models", "requests", "wine").stdout

    # A second version, requested and approved the same way, replaces the first.
    _land(s, shifted_wine(wine_csv, 1.5))
    assert _train(s) == 2
    _consume(s)
    rid2 = json.loads(run_cli("models", "promote", "wine", "2", "--alias", "production", "--output", "json", env=ALICE).stdout)["request_id"]
    assert _holder(s) == 1
    run_cli("models", "approve", "wine", rid2, "--reason", "looked at the metrics", env=BOB)
    assert _holder(s) == 2

    history = json.loads(run_cli("models", "history", "wine", "--alias", "production", "--output", "json").stdout)
    assert [(h["version"], h["approval"], h["requested_by"], h["approved_by"]) for h in history] == [
        (1, rid, "alice", "bob"), (2, rid2, "alice", "bob"),
    ]
    text = run_cli("models", "history", "wine", "--alias", "production").stdout
    assert text.count("asked by alice, approved by bob") == 2
    shown = json.loads(run_cli("models", "show", "wine:2", "--output", "json").stdout)
    assert [(r["request_id"], r["status"], r["closed_by"]["actor"]) for r in shown["requests"]] == [(rid2, "approved", "bob")]

    # The UI's Models page lists the requests and names both actors in the alias timeline.
    from tidemark.ui import data
    from tidemark.ui.app import _templates

    page = data.model(s, "wine")
    assert [(r["request_id"], r["status"]) for r in page["requests"]] == [(rid, "approved"), (rid2, "approved")]
    html = _templates().get_template("model.html").render(base="", user="u", **page)
    assert html.count("asked by alice, approved by bob") == 2 and f"<td>{rid2}</td>" in html

    # The consumer takes the same steps from the events (signed) and refuses nothing; the table is SQL.
    _consume(s)
    st = json.loads(run_cli("models", "status", "wine", "--output", "json").stdout)
    assert st["rejected_moves"] == [] and st["aliases"] == {"production": 2}
    rows = json.loads(run_cli(
        "sql", "SELECT request_id, action, actor FROM lineage.alias_requests ORDER BY event_time", "--output", "json"
    ).stdout)
    assert [(r["request_id"], r["action"], r["actor"]) for r in rows] == [
        (rid, "request", "alice"), (rid, "approve", "bob"), (rid2, "request", "alice"), (rid2, "approve", "bob"),
    ]

    # A second store fed only by the topic (same registry key) ends up the same: the approvals are
    # taken from the signed events, and the moves of the protected alias are applied because of them.
    from lakehouse.config import load_settings
    from lineage import signing
    from models import approvals
    from models.registry import Registry

    key = signing.key_path(s).read_text().strip()
    monkeypatch.setenv("TIDEMARK_HOME", str(tmp_path / "second"))
    monkeypatch.setenv("TIDEMARK__LINEAGE__REGISTRY_KEY", key)
    monkeypatch.setenv("TIDEMARK__LINEAGE__CONSUMER_GROUP", "second-store")  # from the topic's beginning
    second = load_settings()
    _consume(second)
    assert [v.version for v in Registry(second).versions("wine")] == [1, 2]
    assert Registry(second).current_aliases() == {("wine", "production"): 2}
    assert Registry(second).rejected_moves("wine") == []
    assert [(r["request_id"], r["status"], r["closed_by"]["actor"]) for r in approvals.listing(second, "wine", include_closed=True)] == [
        (rid, "approved", "bob"), (rid2, "approved", "bob"),
    ]


def test_approval_is_refused_when_the_holder_changed_or_a_snapshot_expired(protected: Any, wine_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse.catalog import load_catalog
    from models import approvals, pinning
    from models.exceptions import ApprovalRefusedError, ModelNotFoundError
    from models.pinning import archive
    from models.registry import Registry

    s = protected
    _land(s, wine_csv)
    _train(s)
    _train(s, C=0.5)
    _consume(s)
    monkeypatch.setenv("TIDEMARK__ACTOR__NAME", "alice")
    from lakehouse.config import load_settings

    as_alice = load_settings()
    r1 = approvals.request(as_alice, "wine", 1, "production")["request_id"]
    r2 = approvals.request(as_alice, "wine", 2, "production")["request_id"]
    monkeypatch.setenv("TIDEMARK__ACTOR__NAME", "bob")
    as_bob = load_settings()
    approvals.approve(as_bob, "wine", r1)
    with pytest.raises(ApprovalRefusedError, match=r"the holder of wine@production changed since request r\w+ \(version none then, 1 now\)"):
        approvals.approve(as_bob, "wine", r2)
    assert _holder(s) == 1
    assert [r["request_id"] for r in approvals.listing(s, "wine")] == [r2]  # still pending: nothing was written

    # A request whose version's input snapshot expires before the approval.
    _land(s, shifted_wine(wine_csv, 1.5))
    v3 = _train(s)
    _consume(s)
    r3 = approvals.request(as_alice, "wine", v3, "production")["request_id"]
    catalog = load_catalog(s)
    mv = Registry(s).get("wine", v3)
    pinning.release(catalog, mv)  # what archiving would do; the snapshot is then fair game for expiry
    _land(s, shifted_wine(wine_csv, 2.0, first_id=5000))  # main moves on: the trained-on snapshot is no longer current
    time.sleep(0.01)
    catalog.load_table(("raw", "wine")).maintenance.expire_snapshots().older_than(datetime.now(timezone.utc)).commit()
    assert catalog.load_table(("raw", "wine")).snapshot_by_id(mv.inputs[0].snapshot_id) is None
    with pytest.raises(ApprovalRefusedError, match=rf"the promotion gate no longer passes request {r3}: snapshot \d+ of raw.wine no longer exists \(expired\)"):
        approvals.approve(as_bob, "wine", r3)
    assert _holder(s) == 1

    # Rejection closes a request; closing it twice is refused; reject needs a reason.
    with pytest.raises(ApprovalRefusedError, match="reject needs --reason"):
        approvals.reject(as_bob, "wine", r3, reason=" ")
    approvals.reject(as_bob, "wine", r3, reason="its data is gone")
    archive(s, "wine", v3, reason="its data is gone")
    with pytest.raises(ModelNotFoundError, match=f"model wine version {v3} is archived; request a version that is not"):
        approvals.request(as_alice, "wine", v3, "production", force=True, reason="past the gate, still archived")
    with pytest.raises(ApprovalRefusedError, match=f"request {r3} is already closed: rejected by bob"):
        approvals.approve(as_bob, "wine", r3)
    assert _holder(s) == 1


def test_forced_promotion_of_a_protected_alias_is_only_a_request(protected: Any, wine_csv: Path) -> None:
    s = protected
    _land(s, wine_csv)
    _train(s)
    # No consume: the landing's validation is not in the store, so the gate refuses.
    line = _refused("models", "promote", "wine", "1", "--alias", "production", env=ALICE)
    assert "refusing to request wine:1 for production" in line and "pass --force with a reason" in line
    out = run_cli("models", "promote", "wine", "1", "--alias", "production", "--force", "--reason", "hotfix", env=ALICE).stdout
    assert "is pending (forced" in out
    assert _holder(s) is None
    (req,) = json.loads(run_cli("models", "requests", "wine", "--output", "json").stdout)
    assert req["forced"] and req["reason"] == "hotfix" and "is not in the lineage store" in req["gate_problems"][0]
    # The approver applies it with the same override recorded (the problem is the one the request carried).
    run_cli("models", "approve", "wine", req["request_id"], env=BOB)
    assert _holder(s) == 1
    last = json.loads(run_cli("models", "history", "wine", "--output", "json").stdout)[-1]
    assert last["forced"] and last["approval"] == req["request_id"]


def test_the_consumer_refuses_a_forged_approval_and_an_unapproved_move_of_a_protected_alias(protected: Any, wine_csv: Path) -> None:
    from lineage import alias_requests, model_store
    from lineage import events as ev
    from lineage.transport import KafkaTransport
    from models import approvals
    from models.registry import Registry

    s = protected
    _land(s, wine_csv)
    _train(s)
    _consume(s)
    rid = approvals.request(s, "wine", 1, "production")["request_id"]
    registry = Registry(s)
    mv = registry.get("wine", 1)

    def forged(signature: str | None) -> dict[str, Any]:
        """An approval and its move as `models approve` would send them, signed with `signature` (or not)."""
        run_id = ev.new_run_id()
        move = {"event_time": datetime.now(timezone.utc), "model": "wine", "alias": "production", "version": 1, "previous_version": None,
                "action": "set", "reason": "forged", "run_id": run_id, "forced": False, "overridden": None, "approval": rid}
        step = {**alias_requests.rows(registry.catalog, s, "wine")[0], "action": "approve", "actor": "mallory", "run_id": run_id}
        event = registry.alias_event(mv, move, "models.approve", {alias_requests.FACET: alias_requests.request_facet(s, step)})
        for ds in event["inputs"]:
            for name in (model_store.ALIAS_FACET, alias_requests.FACET):
                ds["facets"][name].pop("signature")
                if signature is not None:
                    ds["facets"][name]["signature"] = signature
        return event

    unapproved = forged(None)
    for ds in unapproved["inputs"]:
        ds["facets"][model_store.ALIAS_FACET].pop("approval")
        ds["facets"].pop(alias_requests.FACET)
    tr = KafkaTransport(s)
    try:
        for event in (forged(None), forged("hmac-sha256:" + "0" * 64), unapproved):
            tr.emit(event)
    finally:
        tr.close()
    _consume(s)
    assert _holder(s) is None
    assert [r["request_id"] for r in approvals.listing(s, "wine")] == [rid]  # still pending: no approval was stored
    why = [r["rejected_because"] for r in registry.rejected_moves("wine")]
    assert any("approve of request" in w and "carries no signature" in w for w in why), why
    assert any("signature does not verify" in w for w in why), why
    assert any("wine@production is protected" in w for w in why), why


def test_renewal_of_a_protected_alias_ends_in_a_pending_request_and_each_step_is_a_notification(
    protected: Any, wine_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models import approvals
    from lineage.actors import current_actor
    from models.drift import check_model
    from tests.lineage.test_webhook import Receiver, forward_all

    s = protected
    _land(s, wine_csv)
    _train(s)
    _consume(s)
    rid = approvals.request(s, "wine", 1, "production")["request_id"]
    monkeypatch.setenv("TIDEMARK__ACTOR__NAME", "bob")
    from lakehouse.config import load_settings

    approvals.approve(load_settings(), "wine", rid)
    _land(s, shifted_wine(wine_csv, 1.5))
    _consume(s)
    assert check_model(s, "wine@production").drifted
    d = json.loads(run_cli("models", "renew", "wine@production", "--output", "json", env={"TIDEMARK__ACTOR__NAME": "svc-renewal"}).stdout)
    assert not d["promoted"] and d["request_id"] and d["candidate_version"] == 2
    assert "is protected: requested, awaiting approval" in d["reason"] and f"tidemark models approve wine {d['request_id']}" in d["reason"]
    assert _holder(s) == 1
    (req,) = approvals.listing(s, "wine")
    assert (req["request_id"], req["actor"], req["version"], req["holder_version"]) == (d["request_id"], "svc-renewal", 2, 1)
    assert req["reason"].startswith("automatic renewal (run ")
    status = run_cli("models", "status", "wine").stdout
    assert f"PENDING request {d['request_id']}: production -> version 2, asked by svc-renewal" in status
    out = run_cli("models", "approve", "wine", d["request_id"], env=ALICE).stdout
    assert "wine@production -> version 2 (was version 1)" in out
    assert _holder(s) == 2

    # Item 4: each of these is a notification on the topic, which the example subscriber posts to a webhook.
    receiver = Receiver()
    try:
        posted = forward_all(s, receiver.url)
    finally:
        receiver.close()
    assert posted == receiver.posted
    me = current_actor().name  # the in-process steps run as the OS user
    kinds = {(n["kind"], n["actor"]): n for n in posted}
    assert len(kinds) == len(posted) and sorted(kinds) == sorted([
        ("alias_request", me), ("alias_approved", "bob"), ("drift_alarm", me),
        ("alias_request", "svc-renewal"), ("renewal_decision", "svc-renewal"), ("alias_approved", "alice"),
    ])
    request = kinds[("alias_request", "svc-renewal")]
    assert request["details"]["requestId"] == d["request_id"] and request["details"]["approve"] == f"tidemark models approve wine {d['request_id']}"
    decision = next(n for n in posted if n["kind"] == "renewal_decision")
    assert decision["details"] == {"outcome": "requested", "holderVersion": 1, "requestId": d["request_id"], "trigger": "manual"}
    alarm = next(n for n in posted if n["kind"] == "drift_alarm")
    assert alarm["version"] == 1 and "raw.wine" in alarm["details"]["tables"]
