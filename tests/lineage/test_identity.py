"""Event identity that survives re-serialisation, and arrival order that does not matter (issue 17).

The official openlineage-python client's KafkaTransport (confluent-kafka, keyed by parent job,
`sort_keys` with `", "` separators) and `tidemark lineage emit` (compact JSON, keyed by run) send
the same events to the local broker; out of order and across partitions they give the same tables
as one in-order producer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lakehouse.config import load_settings
from lineage import events as ev
from lineage.consumer import consume
from lineage.graph import Node, connect_for_walk, walk
from lineage.kafka import ensure_topic
from lineage.query import run_sql
from tests.conftest import run_cli

pytestmark = pytest.mark.integration

client_v2 = pytest.importorskip("openlineage.client.event_v2", reason="the official openlineage-python client is not installed")
pytest.importorskip("confluent_kafka", reason="the official client's KafkaTransport needs confluent-kafka")

PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/client/python"


def _events() -> list[Any]:
    """Two runs of a DAG's tasks (parent facet with root), a JobEvent and a DatasetEvent, built
    with the official client's classes, in the order they happened."""
    from openlineage.client.event_v2 import Dataset, DatasetEvent, InputDataset, Job, JobEvent, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import parent_run, schema_dataset, sql_job

    dag_run = "01934a00-0000-7000-8000-000000000000"
    parent = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=dag_run), job=parent_run.Job(namespace="airflow", name="etl"),
        root=parent_run.Root(run=parent_run.RootRun(runId=dag_run), job=parent_run.RootJob(namespace="airflow", name="etl")))
    schema = schema_dataset.SchemaDatasetFacet(fields=[schema_dataset.SchemaDatasetFacetFields(name="id", type="INT64", description=None)])
    raw, clean, report = "project.raw.orders", "project.clean.orders", "gs://reports:orders.csv"
    out: list[Any] = []
    steps = [("etl.clean", "01934a00-0000-7000-8000-000000000001", raw, clean, "00"),
             ("etl.report", "01934a00-0000-7000-8000-000000000002", clean, report, "10")]
    for job, run_id, src, dst, minute in steps:
        ns_dst, _, name_dst = dst.rpartition(":") if dst.startswith("gs://") else ("bigquery", "", dst)
        for state, second in ((RunState.START, "00"), (RunState.COMPLETE, "30")):
            out.append(RunEvent(
                eventType=state, eventTime=f"2026-11-20T10:{minute}:{second}.000000+00:00", producer=PRODUCER,
                run=Run(runId=run_id, facets={"parent": parent}),
                job=Job(namespace="airflow", name=job, facets={"sql": sql_job.SQLJobFacet(query=f"-- {job} {state.value}")}),
                inputs=[InputDataset(namespace="bigquery", name=src, facets={"schema": schema})],
                outputs=[OutputDataset(namespace=ns_dst, name=name_dst)]))
    out.append(JobEvent(eventTime="2026-11-20T10:20:00.000000+00:00", producer=PRODUCER,
                        job=Job(namespace="dbt", name="orders_mart"),
                        inputs=[InputDataset(namespace="bigquery", name=clean)],
                        outputs=[OutputDataset(namespace="bigquery", name="project.mart.orders")]))
    out.append(DatasetEvent(eventTime="2026-11-20T10:21:00.000000+00:00", producer=PRODUCER,
                            dataset=Dataset(namespace="bigquery", name=clean, facets={"schema": schema})))
    return out


def _client_transport(settings: Any) -> Any:
    from openlineage.client.transport.kafka import KafkaConfig, KafkaTransport

    return KafkaTransport(KafkaConfig(topic=settings.kafka.topic, config={"bootstrap.servers": settings.kafka.bootstrap_servers}, flush=True))


def _tables(settings: Any) -> dict[str, Any]:
    """What the store holds, without where it came from (partition, offset, payload bytes)."""
    ns = settings.lineage.namespace
    q = {
        "events": f"SELECT event_id, event_time, event_type, run_id, job_namespace, job_name, parent_run_id, producer, event_kind FROM {ns}.events",
        "runs": f"SELECT * EXCLUDE (run_facets) FROM {ns}.runs",
        "run_datasets": f"SELECT * FROM {ns}.run_datasets",
        "latest_job_facets": f"""SELECT job_namespace, job_name, facet_name, arg_max(facet_value, facet_time) AS value
                                 FROM {ns}.jobs WHERE facet_name IS NOT NULL GROUP BY ALL""",
        "jobs": f"SELECT DISTINCT job_namespace, job_name FROM {ns}.jobs",
    }
    return {name: sorted(tuple(map(str, r.values())) for r in run_sql(settings, sql).to_pylist()) for name, sql in q.items()}


def test_the_same_event_serialised_two_ways_has_one_id() -> None:
    from openlineage.client.serde import Serde

    for event in _events():
        client_bytes = Serde.to_json(event).encode()
        parsed = json.loads(client_bytes)
        compact = ev.serialize(parsed)
        assert client_bytes != compact
        assert ev.event_id(client_bytes) == ev.event_id(compact) == ev.event_id(parsed)
    # The RFC 8785 library's own answer where the fast path does not apply (floats, non-ASCII keys).
    import rfc8785

    odd = {"b": 1.0, "é": [1e21, 0.1], "a": "x"}
    assert ev.canonical(odd) == rfc8785.dumps(odd) == b'{"a":"x","b":1,"\xc3\xa9":[1e+21,0.1]}'
    # The fast path (orjson, floats rewritten as ECMAScript numbers) against the library, on
    # floats of every magnitude and on strings that look like numbers.
    import random
    import struct

    rnd = random.Random(17)
    floats = [struct.unpack("d", struct.pack("Q", rnd.getrandbits(64)))[0] for _ in range(5000)]
    floats = [f for f in floats if f == f and abs(f) != float("inf")] + [1e21, 1e-7, 0.000001, 100.0, -0.5, 5e-324]
    for i in range(0, len(floats), 50):
        doc = {"metrics": {f"m{j}": f for j, f in enumerate(floats[i:i + 50])}, "t": "10:00:00.5,", "list": floats[i:i + 5]}
        assert ev.canonical(doc) == rfc8785.dumps(doc)
        doc["quoted"] = 'say "1.5," \\ then'  # escapes: judged by the slower path, same answer
        assert ev.canonical(doc) == rfc8785.dumps(doc)
    # 64-bit snapshot ids stay exact (RFC 8785 itself refuses integers beyond 2**53).
    assert ev.canonical({"snapshotId": 2**62, "f": 0.5}) == b'{"f":0.5,"snapshotId":4611686018427387904}'
    assert ev.canonical({"snapshotId": 2**62, "é": 0.5}) == '{"snapshotId":"4611686018427387904","é":0.5}'.encode()


def test_out_of_order_across_partitions_and_two_producers_give_the_in_order_tables(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openlineage.client.serde import Serde

    events = _events()
    # In order, one producer (the official client).
    ensure_topic(settings)
    client = _client_transport(settings)
    for event in events:
        client.emit(event)
    client.close(timeout=10)
    report = consume(settings, once=True)
    assert (report.stored_events, report.dead_letters) == (len(events), 0)
    in_order = _tables(settings)
    assert len(in_order["events"]) == len(events)

    # Another store and topic: every event sent twice, by two producers, newest first. The client
    # keys by the root job (all of one DAG in one partition); `tidemark lineage emit` keys by run
    # id, so the copies of one run's events sit in other partitions, COMPLETE ahead of START.
    monkeypatch.setenv("TIDEMARK__LINEAGE__NAMESPACE", "lineage_shuffled")
    monkeypatch.setenv("TIDEMARK__KAFKA__TOPIC", settings.kafka.topic + "-shuffled")
    other = load_settings()
    ensure_topic(other)
    lines = tmp_path / "events.jsonl"
    lines.write_bytes(b"".join(ev.serialize(json.loads(Serde.to_json(e))) + b"\n" for e in reversed(events)))
    run_cli("lineage", "emit", str(lines))
    client = _client_transport(other)
    for event in reversed(events):
        client.emit(event)
    client.close(timeout=10)
    report = consume(other, once=True)
    assert report.stored_events == len(events) and report.duplicates + report.stored_events == 2 * len(events)
    shuffled = _tables(other)
    assert shuffled == in_order
    # ... and the walks agree.
    for node, direction in (("dataset:bigquery:project.raw.orders", "downstream"), ("dataset:gs://reports:orders.csv", "upstream")):
        a = walk(connect_for_walk(settings), Node.parse(node), direction, 5, settings.lineage.namespace)  # type: ignore[arg-type]
        b = walk(connect_for_walk(other), Node.parse(node), direction, 5, other.lineage.namespace)  # type: ignore[arg-type]
        assert a == b and len({r["run_id"] for r in a}) >= 2
    # The latest sql facet of each job is its COMPLETE's, whatever arrived last.
    facets = {(r[1], r[2]): json.loads(r[3])["query"] for r in in_order["latest_job_facets"] if r[2] == "sql"}
    assert facets == {("etl.clean", "sql"): "-- etl.clean COMPLETE", ("etl.report", "sql"): "-- etl.report COMPLETE"}
    # The root job is indexed, and the static events are stored by kind.
    kinds = {r[-1] for r in in_order["events"]}
    assert kinds == {"RunEvent", "JobEvent", "DatasetEvent"}
    roots = run_sql(settings, f"SELECT DISTINCT root_job_namespace, root_job_name, parent_job_namespace FROM {settings.lineage.namespace}.runs "
                              "WHERE event_type IN ('START', 'COMPLETE')").to_pylist()
    assert roots == [{"root_job_namespace": "airflow", "root_job_name": "etl", "parent_job_namespace": "airflow"}]
