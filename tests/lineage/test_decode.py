"""Decoding a batch: rows of every table stay aligned with their events across chunk boundaries."""

from __future__ import annotations

from lineage import decode
from lineage import events as ev


def _event(i: int) -> bytes:
    ds = ev.iceberg_dataset(
        producer="p", catalog_name="tidemark", catalog_type="sql", table=f"raw.t{i}", location=f"file:///w/raw/t{i}",
        snapshot_id=i, direction="input",
    )
    # Every third event has no datasets, so dataset rows and events do not line up by position.
    inputs = [] if i % 3 == 0 else [ds]
    return ev.serialize(ev.run_event(producer="p", event_type="COMPLETE", run_id=f"r-{i}", job_namespace="n", job_name=f"j.{i % 7}", inputs=inputs))


def test_rows_stay_with_their_event_across_chunks_and_bad_records() -> None:
    values: list[bytes] = []
    for i in range(3 * decode._CHUNK + 17):
        values.append(_event(i))
        if i % 1000 == 0:
            values.append(b"{not json")
    batch = decode.decode([0] * len(values), list(range(len(values))), values)
    good = [v for v in values if v != b"{not json"]
    assert all(reason.startswith("invalid JSON") for _, reason in batch.dead)
    assert len(batch.dead) == len(values) - len(good)
    events = batch.tables["events"]
    assert events.column("event_id").to_pylist() == [ev.event_id(v) for v in good]
    assert batch.offsets == [i for i, v in enumerate(values) if v != b"{not json"]
    ids = events.column("event_id").to_pylist()
    datasets = batch.tables["run_datasets"]
    assert datasets.num_rows == sum(1 for i in range(len(good)) if i % 3)
    assert datasets.column("event_id").to_pylist() == [ids[j] for j in batch.dataset_event]
    assert datasets.column("table_name").to_pylist() == [f"raw.t{j}" for j in batch.dataset_event]
    assert batch.tables["runs"].column("run_id").to_pylist() == [f"r-{i}" for i in range(len(good))]


def test_each_malformed_shape_gets_its_own_reason() -> None:
    """The fast check and the one-by-one explanation agree: a bad event is never waved through,
    and its reason names what is wrong."""
    ok = ev.run_event(producer="p", event_type="START", run_id="r", job_namespace="n", job_name="j")
    assert decode.check_event(ok) is None
    cases = {
        "not a JSON object": [ok],
        "missing required field(s) of a RunEvent: eventTime, job": {k: v for k, v in ok.items() if k not in ("eventTime", "job")},
        "job.name is missing (JobEvent)": {"eventTime": ok["eventTime"], "job": {"namespace": "n"}},
        "dataset.name is missing (DatasetEvent)": {"eventTime": ok["eventTime"], "dataset": {"namespace": "n"}},
        "eventTime is missing or not a string (JobEvent)": {"job": {"namespace": "n", "name": "j"}},
        "run.runId is a test template's placeholder ('{{ any(result) }}'), not a value: send the event as the producer emitted it":
            {**ok, "run": {"runId": "{{ any(result) }}"}},
        "run.runId is missing": {**ok, "run": {"runId": ""}},
        "job.name is missing": {**ok, "job": "j"},
        "eventTime is missing or not a string": {**ok, "eventTime": None},
        "eventTime '2026-13-45' is not an ISO-8601 time; write it like 2026-11-26T18:00:00Z": {**ok, "eventTime": "2026-13-45"},
        # OpenLineage's eventTime is an RFC 3339 date-time: the zone is part of it.
        "eventTime '2026-11-26T18:00:00' has no time zone; add one, e.g. 2026-11-26T18:00:00Z (UTC) or an offset such as +01:00":
            {**ok, "eventTime": "2026-11-26T18:00:00"},
        "inputs is not a list of datasets": {**ok, "inputs": {}},
        "outputs is not a list of datasets": {**ok, "outputs": [{"name": "x"}, 3]},
    }
    for reason, event in cases.items():
        assert decode.check_event(event) == reason, reason
    # eventType is optional in OpenLineage 2 (a RunEvent without one is stored, and walks skip it).
    assert decode.check_event({k: v for k, v in ok.items() if k != "eventType"}) is None


def test_events_with_registry_or_drift_facets_reach_the_registry_sync() -> None:
    from lineage import drift_store, model_store, store

    from lineage import alias_requests

    assert store.REGISTRY_FACETS == {model_store.VERSION_FACET, model_store.ALIAS_FACET, drift_store.DRIFT_FACET, alias_requests.FACET}
    plain = ev.run_event(producer="p", event_type="COMPLETE", run_id="plain", job_namespace="n", job_name="j",
                         outputs=[{"namespace": "n", "name": "m", "facets": {"other": {}}}])
    version = {**plain, "run": {"runId": "v"}, "outputs": [{"namespace": "n", "name": "m", "facets": {model_store.VERSION_FACET: {}}}]}
    drift = {**plain, "run": {"runId": "d"}, "inputs": [{"namespace": "n", "name": "t", "inputFacets": {drift_store.DRIFT_FACET: {}}}]}
    values = [ev.serialize(e) for e in (plain, version, drift)]
    # The alias facet with its name spelled with JSON escapes: the same key once parsed.
    alias = {**plain, "run": {"runId": "a"}, "outputs": [{"namespace": "n", "name": "m", "facets": {"ALIAS": {}}}]}
    values.append(ev.serialize(alias).replace(b'"ALIAS"', b'"tidemark_\\u006dodelAlias"'))
    batch = decode.decode([0] * 4, [0, 1, 2, 3], values)
    assert not batch.dead
    assert [e["run"]["runId"] for e in batch.registry_events] == ["v", "d", "a"]
