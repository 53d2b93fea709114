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
