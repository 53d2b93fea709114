"""No event rewrites the registry: alias moves and archives that arrive as events are re-checked.

Each forged event is made the way an adversary would (issue 16): copy a real `models.promote`
event from the lineage store, change it, send it with `tidemark lineage emit` through the real
broker, and run the real consumer. The registry must stay as it was, the event must be stored, and
the refusal must be in `lineage.rejected_moves` and in `models status` (text and JSON).
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ingest.exceptions import GateFailedError
from ingest.land import land as land_file
from lakehouse.catalog import load_catalog
from lineage import model_store
from lineage.consumer import consume
from lineage.exceptions import NotFoundError
from lineage.graph import Node, connect_for_walk, walk
from lineage.query import run_sql
from lineage.transport import InMemoryTransport, KafkaTransport
from models.jobs import get_job
from models.promotion import promote
from models.registry import Registry
from models.train import train
from tests.conftest import run_cli
from tests.faults.report import FaultReport
from tests.models.conftest import land, wine_part

pytestmark = pytest.mark.integration


def _state(settings: Any) -> dict[str, Any]:
    reg = Registry(settings)
    aliases = {a: v for (m, a), v in reg.current_aliases().items() if m == "wine"}
    return {
        "production": aliases.get("production"),
        "staging": aliases.get("staging"),
        "alias moves": len(reg.alias_history("wine")),
        "archived": sum(1 for v in reg.versions("wine") if v.archived),
        "rejected": len(reg.rejected_moves("wine")),
    }


def _promote_event(settings: Any) -> dict[str, Any]:
    (row,) = run_sql(settings, "SELECT payload FROM lineage.events WHERE job_name = 'models.promote'").to_pylist()
    return json.loads(row["payload"])


def _forge(event: dict[str, Any], *, version: int, minutes: int, drop_signature: bool = True, **facet: Any) -> dict[str, Any]:
    """The promote event pointed at `version`, with a new run id and time and these facet fields."""
    forged = copy.deepcopy(event)
    forged["run"]["runId"] = str(uuid.uuid4())
    when = datetime.now(timezone.utc) + timedelta(minutes=minutes)
    forged["eventTime"] = when.isoformat().replace("+00:00", "Z")
    (ds,) = forged["inputs"]
    ds["facets"]["version"]["datasetVersion"] = str(version)
    alias_facet = ds["facets"][model_store.ALIAS_FACET]
    alias_facet.update(facet)
    if drop_signature:
        alias_facet.pop("signature", None)
    return forged


def _emit(tmp_path: Path, events: list[dict[str, Any]]) -> None:
    path = tmp_path / f"forged-{uuid.uuid4().hex[:6]}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    out = run_cli("lineage", "emit", str(path), "--output", "json")
    assert json.loads(out.stdout)["sent"] == len(events)


def test_forged_alias_moves_and_archives_are_stored_flagged_and_never_applied(
    tmp_path: Path, settings: Any, fault_report: FaultReport
) -> None:
    tr = KafkaTransport(settings)
    try:
        land(settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", tr)
        with pytest.raises(GateFailedError):  # out of range: the gate fails, rows go to quarantine
            land_file(settings, str(wine_part(tmp_path / "bad.csv", 0, 178, id_offset=500, alcohol=99.5)), "raw.wine", transport=tr)
        table = load_catalog(settings).load_table(("raw", "wine"))
        (quarantine,) = [r.snapshot_id for n, r in table.metadata.refs.items() if n.startswith("quarantine-")]
        job = get_job("wine_classifier")
        good = train(settings, job, transport=tr).version  # 1
        ungated = train(settings, job, snapshots={"raw.wine": quarantine}, transport=tr).version  # 2
        worse = train(settings, job, params={**job.params, "C": 0.0001}, transport=tr).version  # 3
        consume(settings, once=True)
        promote(settings, "wine", good.version, "production", reason="first", transport=tr)
    finally:
        tr.close()
    consume(settings, once=True)
    real = _promote_event(settings)
    assert real["inputs"][0]["facets"][model_store.ALIAS_FACET]["signature"].startswith("hmac-sha256:")
    before = _state(settings)
    assert before == {"production": 1, "staging": None, "alias moves": 1, "archived": 0, "rejected": 0}

    archive = _forge(real, version=good.version, minutes=7, action="archive", alias="", previousVersion=None)
    forged = {
        # The reproduction: the copied event pointed at a version that does not exist.
        "version 99 that does not exist (copied signature)": (_forge(real, version=99, minutes=1, drop_signature=False), "does not verify"),
        "version 99 that does not exist (no signature)": (_forge(real, version=99, minutes=2), "has no version 99 in the registry"),
        "forced=true without a signature": (_forge(real, version=worse.version, minutes=3, forced=True, reason="x"), "claims forced"),
        "forced=true with the copied signature": (
            _forge(real, version=worse.version, minutes=4, drop_signature=False, forced=True),
            "does not verify",
        ),
        "ungated version (quarantined input), forced=false": (
            _forge(real, version=ungated.version, minutes=5),
            f"snapshot {quarantine} of raw.wine never passed its gate",
        ),
        "worse metric than the holder, forced=false": (_forge(real, version=worse.version, minutes=6), "more than the threshold"),
        "archive of the version holding production": (archive, "holds alias production"),
        "alias ../../../etc": (_forge(real, version=good.version, minutes=7, alias="../../../etc", previousVersion=None), "alias name '../../../etc' is not allowed"),
    }
    # A forged registration (the real one's event, as version 4 with a perfect score and another
    # artifact), then an unsigned move of it, which the gate alone would pass.
    (reg_row,) = run_sql(
        settings, "SELECT payload FROM lineage.events WHERE job_name = 'train.wine_classifier' AND event_type = 'COMPLETE' "
        f"AND run_id = '{good.run_id}'"
    ).to_pylist()
    registration = json.loads(reg_row["payload"])
    registration["run"]["runId"] = str(uuid.uuid4())
    (model_ds,) = [d for d in registration["outputs"] if d["facets"].get(model_store.VERSION_FACET)]
    model_ds["facets"]["version"]["datasetVersion"] = "4"
    model_ds["facets"][model_store.VERSION_FACET].update(version=4, metrics={"accuracy": 1.0}, artifactUri="file:///tmp/evil.pkl")
    forged["unsigned move of a forged registration (version 4)"] = (
        _forge(real, version=4, minutes=9), "registered by an event without a valid signature"
    )
    # One honest move from another producer (no key): it passes the gate, so it is applied.
    honest = _forge(real, version=good.version, minutes=8, alias="staging", previousVersion=None)
    _emit(tmp_path, [registration] + [e for e, _ in forged.values()] + [honest])
    report = consume(settings, once=True)
    after = _state(settings)

    rejected = {r["run_id"]: r for r in Registry(settings).rejected_moves("wine")}
    stored = {r["run_id"] for r in run_sql(settings, "SELECT run_id FROM lineage.events WHERE job_name = 'models.promote'").to_pylist()}
    for fault, (event, why) in forged.items():
        run_id = event["run"]["runId"]
        row = rejected.get(run_id)
        held = row is not None and why in row["rejected_because"] and run_id in stored and after["production"] == 1
        fault_report.record(
            "registry",
            f"forged promote event: {fault}",
            trials=1,
            held=held,
            before={k: before[k] for k in ("production", "staging", "alias moves", "archived")},
            after={k: after[k] for k in ("production", "staging", "alias moves", "archived")},
            note=((row or {}).get("rejected_because", "APPLIED")[:90] + " (the +1 alias move: an honest staging move in the same batch)"),
        )
        assert held, (fault, row)
    assert after == {"production": good.version, "staging": good.version, "alias moves": 2, "archived": 0, "rejected": len(forged)}
    assert honest["run"]["runId"] in stored and honest["run"]["runId"] not in rejected
    assert report.registry_rows == 1 + 1 + len(forged)  # the forged registration is stored, unverified
    rows = load_catalog(settings).load_table(("lineage", model_store.VERSIONS)).scan().to_arrow().to_pylist()
    (v4,) = [r for r in rows if r["version"] == 4]
    assert v4["verified"] is False and v4["artifact_uri"] == "file:///tmp/evil.pkl"
    assert all(r["verified"] for r in rows if r["version"] != 4)

    # A replay of the same events changes nothing: refusals are recorded once.
    model_store.upsert_from_events(load_catalog(settings), settings, [e for e, _ in forged.values()])
    assert _state(settings) == after

    # `models status` reports them, in JSON and in text.
    st = json.loads(run_cli("models", "status", "wine", "--output", "json").stdout)
    assert st["aliases"]["production"] == good.version
    assert {r["run_id"] for r in st["rejected_moves"]} == {e["run"]["runId"] for e, _ in forged.values()}
    text = run_cli("models", "status", "wine").stdout
    assert f"REJECTED moves from events ({len(forged)}, never applied)" in text
    assert "production -> version 99" in text and "claims forced" in text and "archive version 1" in text
    assert "../../../etc" not in {a for (m, a) in Registry(settings).current_aliases()}
    # The forged registration (version 4, accuracy 1.0) is no candidate, and the gate refuses it by hand too.
    assert st["unverified_versions"] == [4] and 4 not in [c["version"] for c in st["candidates"]]
    assert "UNVERIFIED versions (registered by unsigned events; not candidates, the gate refuses them): 4" in text
    by_hand = run_cli("models", "promote", "wine", "4", "--alias", "staging", check=False)
    assert by_hand.returncode == 1 and "version 4 was registered by an event without a valid signature" in by_hand.stderr
    assert Registry(settings).current_aliases().get(("wine", "staging")) == good.version

    # Nor does any graph or walk draw a refused move (issues 16 and 20): `wine @ 99` was a version the
    # registry never had. The honest staging move, stored beside them, is still drawn.
    refused_runs = {e["run"]["runId"] for e, _ in forged.values()}
    _no_refused_move_drawn(tmp_path, refused_runs, honest["run"]["runId"])


def _no_refused_move_drawn(tmp_path: Path, refused_runs: set[str], applied_run: str) -> None:
    """`lineage downstream`, `lineage graph` (SVG and page) and `trace` of wine show no refused move."""
    rows = json.loads(run_cli("lineage", "downstream", "model:wine", "--depth", "3", "--output", "json").stdout)
    moves = {r["run_id"]: r["version"] for r in rows if r["dataset_type"] == "MODEL" and r["job_name"] == "models.promote"}
    assert applied_run in moves and not refused_runs & set(moves), moves
    assert "99" not in {r["version"] for r in rows}
    for side in ("upstream", "downstream"):
        gone = run_cli("lineage", side, "model:wine:99", check=False)
        assert gone.returncode != 0 and "nothing in the lineage store matches model wine at 99" in gone.stderr, gone.stderr
    for suffix in ("svg", "html"):
        out = tmp_path / f"wine.{suffix}"
        run_cli("lineage", "graph", "model:wine", "--depth", "3", "-o", str(out))
        text = out.read_text()
        assert applied_run[-12:] in text and "@ 99" not in text and not any(r[-12:] in text for r in refused_runs), suffix
    trace = run_cli("trace", "wine:99", check=False)
    assert trace.returncode != 0 and "99" in trace.stderr


def test_an_authorised_forced_move_is_applied_by_a_consumer_that_holds_the_key(tmp_path: Path, settings: Any) -> None:
    """The other side: a move `models promote --force` made (and signed) reaches a registry fed only
    by events, although it fails the gate there; the same move without the key is refused."""
    import os
    import shutil

    from lakehouse.config import load_settings

    tr = KafkaTransport(settings)
    try:
        land(settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", tr)
        job = get_job("wine_classifier")
        train(settings, job, transport=tr)
        worse = train(settings, job, params={**job.params, "C": 0.0001}, transport=tr).version
        consume(settings, once=True)
        promote(settings, "wine", 1, "production", reason="first", transport=tr)
        promote(settings, "wine", worse.version, "production", force=True, reason="rollback drill", transport=tr)
    finally:
        tr.close()

    def replica(name: str, key: bool) -> Registry:
        home = tmp_path / name
        home.mkdir()
        if key:
            shutil.copy(settings.home / "registry.key", home / "registry.key")
        # Its own consumer group: the producer's consumer committed its offsets under the default one.
        other = load_settings(environ={**os.environ, "TIDEMARK_HOME": str(home), "TIDEMARK__LINEAGE__CONSUMER_GROUP": name})
        consume(other, once=True)
        return Registry(other)

    trusted = replica("trusted", key=True)
    assert trusted.resolve("wine@production").version == worse.version
    assert trusted.alias_history("wine")[-1]["forced"] is True and trusted.rejected_moves("wine") == []
    stranger = replica("stranger", key=False)
    assert "wine" not in {m for m, _ in stranger.current_aliases()}
    reasons = [r["rejected_because"] for r in stranger.rejected_moves("wine")]
    assert len(reasons) == 2 and all("does not verify" in r for r in reasons)


def test_a_forged_validation_result_cannot_open_the_gate(tmp_path: Path, settings: Any, fault_report: FaultReport) -> None:
    """The gate reads a landing's validation from events; a forged event claiming that an ungated
    landing passed (same run id, earlier time) must not make its snapshot count as gated."""
    from models.exceptions import PromotionRefusedError
    from models.jobs import resolve_job

    tr = KafkaTransport(settings)
    try:
        land_file(settings, str(wine_part(tmp_path / "plain.csv", 0, 178)), "raw.plain", transport=tr)  # no suite: ungated
        job = resolve_job("tests.models.test_promotion:train_any", model="plain", inputs=["raw.plain"])
        version = train(settings, job, transport=tr).version.version
    finally:
        tr.close()
    consume(settings, once=True)
    (row,) = run_sql(settings, "SELECT payload FROM lineage.events WHERE job_name = 'ingest.raw.plain' AND event_type = 'COMPLETE'").to_pylist()
    forged = json.loads(row["payload"])
    forged["eventTime"] = "2020-01-01T00:00:00Z"  # first in time: the old gate took the earliest event
    (table_out,) = [d for d in forged["outputs"] if d["facets"].get("version")]
    table_out["facets"]["dataQualityAssertions"] = {
        "_producer": "https://example.com/forger",
        "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet",
        "assertions": [{"assertion": "expect_anything", "success": True}],
    }
    _emit(tmp_path, [forged])
    consume(settings, once=True)
    before = {"plain holders": 0}
    with pytest.raises(PromotionRefusedError, match="of raw.plain was landed without a validation gate") as err:
        promote(settings, "plain", version, "production", transport=InMemoryTransport())
    after = {"plain holders": sum(1 for (m, _a) in Registry(settings).current_aliases() if m == "plain")}
    held = after == before
    fault_report.record(
        "registry", "forged validation result (ungated landing claimed as passed, same run id, earlier time)", trials=1,
        held=held, before=before, after=after, note=str(err.value)[:100],
    )
    assert held


def test_a_signed_move_read_before_its_registration_is_applied_when_the_registration_arrives(tmp_path: Path, settings: Any) -> None:
    """A registration and a move travel under different run ids, so in different partitions: a
    replica may read the move first. Refused then ("no version"), it is judged again and applied
    when the registration arrives, and no longer listed as refused."""
    import os
    import shutil

    from lakehouse.config import load_settings

    tr = InMemoryTransport()
    land(settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", tr)
    train(settings, get_job("wine_classifier"), transport=tr)
    Registry(settings).promote("wine", 1, "production", reason="first", transport=tr)
    (registration,) = [e for e in tr.events if e["job"]["name"] == "train.wine_classifier" and e["eventType"] == "COMPLETE"]
    (move,) = [e for e in tr.events if e["job"]["name"] == "models.promote"]

    home = tmp_path / "replica"
    home.mkdir()
    shutil.copy(settings.home / "registry.key", home / "registry.key")
    replica = load_settings(environ={**os.environ, "TIDEMARK_HOME": str(home), "TIDEMARK__LINEAGE__CONSUMER_GROUP": "replica"})
    kafka = KafkaTransport(settings)
    try:
        kafka.emit(move)
        consume(replica, once=True)
        (refused,) = Registry(replica).rejected_moves("wine")
        assert "has no version 1" in refused["rejected_because"]
        # Refused, the move is no step of wine's lineage (lineage.graph), though its event is stored.
        with pytest.raises(NotFoundError):
            walk(connect_for_walk(replica), Node.parse("model:wine"), "downstream", 1, replica.lineage.namespace)
        assert run_sql(replica, "SELECT count(*) AS n FROM lineage.events WHERE job_name = 'models.promote'").to_pylist() == [{"n": 1}]
        kafka.emit(registration)
    finally:
        kafka.close()
    consume(replica, once=True)
    reg = Registry(replica)
    assert reg.resolve("wine@production").version == 1
    assert reg.rejected_moves("wine") == [] and len(reg.alias_history("wine")) == 1
    # Applied now: the walk draws it (the refusal no longer hides it).
    rows = walk(connect_for_walk(replica), Node.parse("model:wine"), "downstream", 1, replica.lineage.namespace)
    assert {(r["run_id"], r["version"]) for r in rows} == {(move["run"]["runId"], "1")}


def test_a_forged_drift_result_is_stored_unverified_and_never_reported(tmp_path: Path, settings: Any, fault_report: FaultReport) -> None:
    """A copy of a real drift check's event, unsigned and claiming drift at a later time: stored in
    `lineage.drift` with verified=false; `models status` keeps reporting the real, newest signed check,
    and shows no made-up renewal decision."""
    from lineage import drift_store
    from models.drift.check import check_model
    from models.renewal import DECISION_FACET, RENEW_JOB

    tr = KafkaTransport(settings)
    try:
        land(settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", tr)
        version = train(settings, get_job("wine_classifier"), transport=tr).version.version
        consume(settings, once=True)
        promote(settings, "wine", version, "production", reason="first", transport=tr)
        real = check_model(settings, "wine@production", transport=tr)
    finally:
        tr.close()
    consume(settings, once=True)
    before = json.loads(run_cli("models", "status", "wine", "--output", "json").stdout)["last_drift_check"]
    assert before["run_id"] == real.run_id and before["drifted"] is False
    (row,) = run_sql(settings, f"SELECT payload FROM lineage.events WHERE run_id = '{real.run_id}' AND event_type = 'COMPLETE'").to_pylist()
    forged = json.loads(row["payload"])
    forged["run"]["runId"] = str(uuid.uuid4())
    forged["eventTime"] = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    for ds in forged["inputs"]:
        facet = (ds.get("inputFacets") or {}).get(drift_store.DRIFT_FACET)
        if facet:
            facet.pop("signature", None)
            facet["drifted"] = True
            for f in facet["features"]:
                f.update(drifted=True, reasons=["forged"])
    # And a made-up renewal decision (an unsigned `renew.wine` COMPLETE event) claiming a promotion.
    decision = copy.deepcopy(forged)
    decision["run"]["runId"] = str(uuid.uuid4())
    decision["job"]["name"] = f"{RENEW_JOB}.wine"
    decision["inputs"] = []  # no drift facets of its own
    decision["run"].setdefault("facets", {})[DECISION_FACET] = {
        "_producer": "https://example.com/forger", "_schemaURL": "https://example.com/x.json",
        "model": "wine", "alias": "production", "candidate_version": 99, "promoted": True, "reason": "forged",
    }
    _emit(tmp_path, [forged, decision])
    consume(settings, once=True)
    assert json.loads(run_cli("models", "status", "wine", "--output", "json").stdout)["last_decision"] is None
    rows = run_sql(settings, "SELECT run_id, verified FROM lineage.drift").to_pylist()
    verified = {r["run_id"]: r["verified"] for r in rows}
    after = json.loads(run_cli("models", "status", "wine", "--output", "json").stdout)["last_drift_check"]
    held = verified == {real.run_id: True, forged["run"]["runId"]: False} and after == before
    fault_report.record(
        "registry", "forged drift result (a real check's event, unsigned, claiming drift, later)", trials=1, held=held,
        before={"last check": before["run_id"][:8], "drifted": before["drifted"]}, after={"last check": after["run_id"][:8], "drifted": after["drifted"]},
        note="stored with verified=false; models status reports the signed check",
    )
    assert held, (verified, after)
