"""`tidemark serve`: real uvicorn on loopback, a real registry from real trainings, the session's broker.

One service for the answers and refusals, then a promotion under a request loop (the event path:
its registry poll is set to a minute, so only the event can make the swap within 5 s); one service
with its broker away (the poll path); and starts that must be refused.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli
from tests.serving.conftest import Server, World, clean_environ, in_process, serving

pytestmark = pytest.mark.integration

JSON = {"content-type": "application/json"}


def expected(world: World, version: int, rows: list[dict[str, Any]]) -> list[Any]:
    """What version `version` predicts for `rows`, by its own pickled artifact."""
    import numpy as np

    mv = next(v for v in world.versions if v.version == version)
    estimator = pickle.loads(Path(mv.artifact_uri.removeprefix("file://")).read_bytes())
    fields = [f for f in rows[0]]
    return list(estimator.predict(np.asarray([[r[f] for f in fields] for r in rows], dtype="float64")).tolist())


@pytest.fixture(scope="module")
def service(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {**world.env, "TIDEMARK__SERVING__REGISTRY_POLL_S": "60", "TIDEMARK__SERVING__MAX_BODY_BYTES": "65536"}
    with serving("wine@production", env, tmp_path_factory.mktemp("serve") / "serve.log", events=True) as server:
        yield server


def test_one_record_and_a_batch_are_answered_by_the_holder_with_its_identity(world: World, service: Server) -> None:
    v1 = world.versions[0]
    with service.client() as c:
        one = c.post("/predict", json=world.rows[0])
        assert one.status_code == 200, one.text
        body = one.json()
        assert body["predictions"] == expected(world, v1.version, world.rows[:1])
        assert (body["model"], body["version"], body["run_id"], body["artifact_sha256"]) == ("wine", v1.version, v1.run_id, v1.sha256)
        assert len(body["prediction_id"]) == 36 and body["prediction_id"][14] == "7"  # a UUIDv7
        assert "prediction_ids" not in body

        batch = c.post("/predict", json={"records": world.rows[:100]})
        assert batch.status_code == 200, batch.text
        out = batch.json()
        assert out["predictions"] == expected(world, v1.version, world.rows[:100])
        assert len(out["prediction_ids"]) == 100 and len(set(out["prediction_ids"]) | {out["prediction_id"]}) == 101
        # Integral floats are whole numbers for a long column; JSON ints are numbers for a double one.
        row = {**world.rows[0], "magnesium": 127.0, "alcohol": 14}
        assert c.post("/predict", json=row).status_code == 200

    # Every answered record is in the prediction log, under the id the answer gave it.
    logged = logged_rows(world, {body["prediction_id"], *out["prediction_ids"][:3]})
    assert logged[body["prediction_id"]]["version"] == v1.version
    assert logged[out["prediction_ids"][2]]["alcohol"] == world.rows[2]["alcohol"]


def logged_rows(world: World, ids: set[str], timeout_s: float = 30) -> dict[str, dict[str, Any]]:
    """The prediction log's rows with these ids, once all are committed (the flusher runs every
    `serving.log_interval_s`, 2 s by default)."""
    from lakehouse.catalog import load_catalog

    catalog = load_catalog(world.settings)
    deadline = time.monotonic() + timeout_s
    found: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        if catalog.table_exists(("serving", "wine_predictions")):
            rows = catalog.load_table(("serving", "wine_predictions")).scan().to_arrow().to_pylist()
            found = {r["prediction_id"]: r for r in rows if r["prediction_id"] in ids}
            if len(found) == len(ids):
                return found
        time.sleep(0.5)
    raise AssertionError(f"only {len(found)} of {len(ids)} predictions reached serving.wine_predictions in {timeout_s} s")


def bad(c: httpx.Client, body: Any = None, *, content: bytes | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    if content is None:
        content = json.dumps(body).encode()
    return c.post("/predict", content=content, headers=headers or JSON)


def test_every_bad_request_is_a_4xx_naming_the_problem_and_the_service_stays_up(world: World, service: Server) -> None:
    row = world.rows[0]
    without = {k: v for k, v in row.items() if k != "hue"}
    cases: list[tuple[httpx.Response, int, str, str | None]] = []
    with service.client() as c:
        cases += [
            (bad(c, without), 422, "field hue is missing", "hue"),
            (bad(c, {**row, "colour": 1}), 422, "field colour is not an input of this model", "colour"),
            (bad(c, {**row, "ash": "2.4"}), 422, "field ash must be a number (double), got str", "ash"),
            (bad(c, {**row, "ash": None}), 422, "field ash must be a number (double), got null", "ash"),
            (bad(c, {**row, "ash": True}), 422, "field ash must be a number (double), got bool", "ash"),
            (bad(c, {**row, "magnesium": 127.5}), 422, "field magnesium must be a whole number (long), got 127.5", "magnesium"),
            (bad(c, content=json.dumps({**row, "hue": float("nan")}).encode()), 422, "field hue is NaN", "hue"),
            (bad(c, content=json.dumps({**row, "hue": float("-inf")}).encode()), 422, "field hue is -Infinity", "hue"),
            (bad(c, {"records": [row, without]}), 422, "field hue is missing in record 1", "hue"),
            (bad(c, {"records": []}), 422, "records is empty", "records"),
            (bad(c, {"records": row}), 422, "records must be a list", "records"),
            (bad(c, [row]), 422, "the body is a JSON list", None),
            (bad(c, content=b'{"alcohol": 13.2,'), 400, "the body is not valid JSON", None),
            (bad(c, content=json.dumps(row).encode(), headers={"content-type": "text/plain"}), 415, "content type text/plain is not accepted", None),
            (bad(c, {"records": [row] * 300}), 413, "over the limit of 65536 bytes (serving.max_body_bytes)", None),
        ]
        # Chunked (no Content-Length): the limit holds while reading.
        big = json.dumps({"records": [row] * 300}).encode()
        assert len(big) > 65536
        chunks = (big[i : i + 4096] for i in range(0, len(big), 4096))
        cases.append((c.post("/predict", content=chunks, headers=JSON), 413, "over the limit of 65536 bytes", None))
        for response, status, message, field in cases:
            assert response.status_code == status, (message, response.text)
            assert message in response.json()["detail"], response.text
            assert response.json().get("field") == field
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.post("/predict", json=row).status_code == 200
    assert service.proc.poll() is None


def test_metadata_is_the_model_card_with_its_snapshots_code_and_environment(world: World, service: Server) -> None:
    v1 = world.versions[0]
    with service.client() as c:
        meta = c.get("/metadata").json()
    assert (meta["version"], meta["alias"], meta["artifact_sha256"]) == (v1.version, "production", v1.sha256)
    card = meta["card"]
    assert card["inputs"] == [i.to_json() for i in v1.inputs] and card["inputs"][0]["snapshot_id"] is not None
    assert card["metrics"] == v1.metrics and card["code"]["entry_point"] == "models.jobs:train_wine_classifier"
    assert card["environment"]["python"] and card["pins"] == {"raw.wine": f"model/wine/{v1.version}"}
    fields = meta["input_schema"]["fields"]
    assert [f["name"] for f in fields][:2] == ["alcohol", "malic_acid"] and len(fields) == 13
    assert {f["name"]: f["type"] for f in fields}["magnesium"] == "long"


def test_readyz_metrics_and_openapi_docs(world: World, service: Server) -> None:
    with service.client() as c:
        ready = c.get("/readyz").json()
        assert ready["status"] == "ready" and ready["version"] == world.versions[0].version
        c.post("/predict", json=world.rows[0])
        c.post("/predict", content=b"{", headers=JSON)
        text = c.get("/metrics").text
        assert f'tidemark_serve_model_version{{alias="production",model="wine"}} {world.versions[0].version}.0' in text
        assert 'tidemark_serve_requests_total{path="/predict",status="200"}' in text
        assert 'tidemark_serve_requests_total{path="/predict",status="400"}' in text
        assert 'tidemark_serve_request_seconds_bucket{le="0.005",path="/predict"}' in text
        assert "tidemark_serve_predicted_records_total" in text
        spec = c.get("/openapi.json").json()
        assert "/predict" in spec["paths"] and "requestBody" in spec["paths"]["/predict"]["post"]
        assert c.get("/docs").status_code == 200


def test_a_promotion_swaps_within_5_s_under_load_with_no_failed_request(world: World, service: Server) -> None:
    """The service's registry poll is a minute: the swap within 5 s comes from the event."""
    from lineage.outbox import OutboxTransport
    from models.registry import Registry

    v1, v2 = world.versions[0].version, world.versions[1].version
    answers: list[tuple[float, int]] = []
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with service.client() as c:
            while not stop.is_set():
                try:
                    sent = time.monotonic()
                    r = c.post("/predict", json={"records": world.rows[:5]})
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text}")
                        continue
                    body = r.json()
                    if body["predictions"] != expected_by[body["version"]]:
                        failures.append(f"version {body['version']} answered {body['predictions']}")
                    answers.append((sent, time.monotonic(), body["version"]))
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    expected_by = {v: expected(world, v, world.rows[:5]) for v in (v1, v2)}
    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        tr = OutboxTransport(world.settings)
        try:
            promoted = time.monotonic()
            Registry(world.settings).promote("wine", v2, "production", reason="serving test", transport=tr)
        finally:
            tr.close()
        deadline = promoted + 10
        while time.monotonic() < deadline and not any(v == v2 for _, _, v in answers):
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    first_new = min((got for _, got, v in answers if v == v2), default=None)
    assert first_new is not None, f"never answered by version {v2}:\n{service.stderr()}"
    print(f"swap: first answer by version {v2} {first_new - promoted:.2f} s after the promotion started, {len(answers)} answers, 0 failed")
    assert first_new - promoted < 5.0
    # Both versions answered; once the new one has answered, no request sent after that gets the old
    # one (a request already in flight may still finish on it: that is the point of the swap).
    assert {v for _, _, v in answers} == {v1, v2}
    assert [v for sent, _, v in answers if sent > first_new] and all(v == v2 for sent, _, v in answers if sent > first_new)
    assert service.proc.poll() is None

    # The swap is a lineage run serve.wine with the new version as its input.
    assert v2 in served_versions(world, "serve.wine")


def served_versions(world: World, job: str, timeout_s: float = 15) -> set[int]:
    """Versions that COMPLETE events of `job` on the world's topic name as input."""
    from kafka import TopicPartition

    from lineage.kafka import consumer

    settings = world.settings
    kc = consumer(settings, None)
    found: set[int] = set()
    try:
        tps = [TopicPartition(settings.kafka.topic, p) for p in sorted(kc.partitions_for_topic(settings.kafka.topic) or [])]
        kc.assign(tps)
        kc.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for recs in kc.poll(timeout_ms=300).values():
                for r in recs:
                    event = json.loads(r.value)
                    if event.get("eventType") == "COMPLETE" and event["job"]["name"] == job:
                        found |= {int(d["facets"]["version"]["datasetVersion"]) for d in event["inputs"]}
            if found and world.versions[1].version in found:
                break
    finally:
        kc.close()
    return found


def test_broker_away_still_serves_and_the_registry_poll_swaps_and_a_bad_version_is_refused(world: World) -> None:
    from lineage.broker import free_port
    from lineage.transport import InMemoryTransport
    from models.registry import Registry

    v1, v2, v3 = (v.version for v in world.versions)
    away = world.load(
        TIDEMARK__KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",  # nothing listens there
        TIDEMARK__KAFKA__CONNECT_TIMEOUT_S="1",
        TIDEMARK__SERVING__REGISTRY_POLL_S="1",
    )
    registry = Registry(world.settings)
    artifact = Path(world.versions[2].artifact_uri.removeprefix("file://"))
    original = artifact.read_bytes()
    with in_process(away, "wine@canary") as server, server.client() as c:
        assert c.post("/predict", json=world.rows[0]).json()["version"] == v1
        assert c.get("/readyz").json()["events"] is False
        # The move's event cannot reach this service: the registry poll finds it.
        registry.promote("wine", v2, "canary", transport=InMemoryTransport())
        assert wait_for_version(c, world, v2, 30), server.logs()

        # An altered artifact: the service keeps the version it has, and says why.
        try:
            artifact.write_bytes(original + b"x")
            registry.promote("wine", v3, "canary", transport=InMemoryTransport())
            deadline = time.monotonic() + 30
            while 'outcome="refused"' not in c.get("/metrics").text and time.monotonic() < deadline:
                time.sleep(0.2)
            assert 'tidemark_serve_swaps_total{alias="canary",model="wine",outcome="refused"}' in c.get("/metrics").text
            assert c.post("/predict", json=world.rows[0]).json()["version"] == v2
            assert f"has sha256 {hashlib.sha256(original + b'x').hexdigest()}" in server.logs()
            assert f"still serving version {v2}" in server.logs()
            # Not tried again on every poll: after a pause that doubles.
            deadline = time.monotonic() + 20
            while "trying again in 2 s" not in server.logs() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "trying again in 1 s" in server.logs() and "trying again in 2 s" in server.logs()
        finally:
            artifact.write_bytes(original)
        # Restored: the next poll serves it.
        assert wait_for_version(c, world, v3, 30), server.logs()
        assert "cannot read the lineage topic" in server.logs()


def wait_for_version(c: httpx.Client, world: World, version: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = c.post("/predict", json=world.rows[0])
        assert r.status_code == 200, r.text
        if r.json()["version"] == version:
            return True
        time.sleep(0.1)
    return False


def test_a_start_is_refused_in_one_line_when_the_artifact_is_altered_missing_or_the_version_has_no_schema(world: World) -> None:
    from models.registry import Registry
    from serving.exceptions import ArtifactRefusedError
    from serving.server import check, parse_ref
    from lakehouse.exceptions import TidemarkError
    from models.exceptions import ModelNotFoundError, SchemaNotRecordedError

    v3 = world.versions[2]
    from lineage.transport import InMemoryTransport

    Registry(world.settings).promote("wine", v3.version, "staging", transport=InMemoryTransport())
    artifact = Path(v3.artifact_uri.removeprefix("file://"))
    original = artifact.read_bytes()
    try:
        artifact.write_bytes(original[:-1])
        done = run_cli("serve", "wine@staging", "--port", "1", check=False, env=clean_environ(**world.env))
        assert done.returncode == 1 and done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tidemark: error: the artifact of wine version")
        assert f"not the {v3.sha256} the registry recorded: it was altered" in lines[0]

        artifact.unlink()
        with pytest.raises(ArtifactRefusedError, match="cannot be read .*restore it from a backup or retrain"):
            check(world.settings, parse_ref("wine@staging"))
    finally:
        artifact.write_bytes(original)

    card = Path(str(v3.card_uri).removeprefix("file://"))
    text = card.read_text()
    try:
        card.write_text(json.dumps({k: v for k, v in json.loads(text).items() if k != "input_schema"}))
        with pytest.raises(SchemaNotRecordedError, match="trained before Tidemark recorded input schemas"):
            check(world.settings, parse_ref("wine@staging"))
    finally:
        card.write_text(text)
    assert check(world.settings, parse_ref("wine@staging")).version.version == v3.version
    with pytest.raises(ModelNotFoundError, match="has no alias 'nope'"):
        check(world.settings, parse_ref("wine@nope"))
    with pytest.raises(TidemarkError, match="write NAME@ALIAS"):
        parse_ref("wine:1")


def test_an_answer_the_prediction_log_cannot_take_is_a_503_and_the_service_stays_up(world: World) -> None:
    """The log closed under the service refuses rows, so the answer, which nobody could trace, is not given."""
    with in_process(world.load(TIDEMARK__SERVING__REGISTRY_POLL_S="60"), "wine@production", follow=False) as server, server.client() as c:
        assert c.post("/predict", json=world.rows[0]).status_code == 200
        server.app.state.prediction_log.close()
        refused = c.post("/predict", json=world.rows[0])
        assert refused.status_code == 503 and "the prediction could not be logged" in refused.json()["detail"]
        assert "is closed" in refused.json()["detail"]
        assert c.get("/healthz").status_code == 200


def test_on_the_embedded_broker_events_resume_after_it_is_restarted(world: World, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`tidemark down` / `tidemark up` gives a new local broker on another port with an empty log: the
    service notices, subscribes again, and the next promotion swaps by its event (the poll is a minute)."""
    from lineage import broker as local_broker
    from lineage.outbox import OutboxTransport
    from models.registry import Registry

    v1, v2 = world.versions[0].version, world.versions[1].version
    embedded = {k: v for k, v in world.env.items() if k != "TIDEMARK__KAFKA__BOOTSTRAP_SERVERS"}
    embedded["TIDEMARK__SERVING__REGISTRY_POLL_S"] = "60"
    settings = world.load(**{"TIDEMARK__KAFKA__BOOTSTRAP_SERVERS": ""})
    assert settings.uses_local_broker
    from lineage.transport import InMemoryTransport

    Registry(settings).promote("wine", v1, "blue", transport=InMemoryTransport())
    first = local_broker.start(settings)
    try:
        # Two worker processes: each subscribes on its own (partitions assigned, not balanced), so each
        # sees the event.
        log = tmp_path_factory.mktemp("embedded") / "serve.log"
        with serving("wine@blue", embedded, log, events=True, args=("--workers", "2")) as server, server.client() as c:
            local_broker.stop(settings)
            second = local_broker.start(settings)
            assert second.port != first.port or second.log_id != first.log_id
            # Both workers must have subscribed again before the promotion: the client's keep-alive
            # connection stays with one worker, and a worker that seeks to the end after the event
            # would only see the move at its next registry poll (a minute). Counted by pid: one
            # worker can say it twice when its broker check times out under load.
            deadline = time.monotonic() + 30
            while len(set(re.findall(r"the lineage topic answers again; .* \(worker pid (\d+)\)", server.stderr()))) < 2:
                assert time.monotonic() < deadline, server.stderr()
                time.sleep(0.2)
            assert c.get("/readyz").json()["events"] is True
            tr = OutboxTransport(settings)
            try:
                promoted = time.monotonic()
                Registry(settings).promote("wine", v2, "blue", reason="after the broker came back", transport=tr)
                # Delivered now, whatever an earlier failed delivery from this home's outbox (the broker
                # was away) left as its pause before the next try: this test is about the service's side.
                report = tr.flush(force=True)
                assert report.pending == 0, report
            finally:
                tr.close()
            assert wait_for_version(c, world, v2, 10), server.stderr()
            assert time.monotonic() - promoted < 10
            deadline = time.monotonic() + 30
            while server.stderr().count(f"wine@blue now serves version {v2}") < 2:  # the other worker too
                assert time.monotonic() < deadline, server.stderr()
                time.sleep(0.2)
    finally:
        local_broker.stop(settings)

