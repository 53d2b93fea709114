"""The run SDK, `lineage emit`, `lineage watch`, and events from the official OpenLineage client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lineage import events as ev
from lineage import run as lineage_run
from lineage.consumer import consume
from lineage.graph import Node, walk
from lineage.query import connect, run_sql
from lineage.transport import InMemoryTransport
from lineage.watch import describe, watch
from tests.conftest import run_cli


def test_run_emits_start_and_fail_with_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    tr = InMemoryTransport()
    with pytest.raises(ValueError, match="boom"):
        with lineage_run("etl.step", parameters={"k": 1}, transport=tr, code=test_run_emits_start_and_fail_with_the_error):
            raise ValueError("boom")
    start, fail = tr.events
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    assert fail["run"]["facets"]["errorMessage"]["message"] == "ValueError: boom"
    assert fail["run"]["facets"]["tidemark_parameters"]["parameters"] == {"k": 1}
    code = fail["run"]["facets"]["tidemark_code"]
    assert code["entryPoint"].endswith(":test_run_emits_start_and_fail_with_the_error")
    assert len(code["sourceSha256"]) == 64
    assert code["gitCommit"] is None or len(code["gitCommit"]) == 40
    env = fail["run"]["facets"]["tidemark_environment"]
    assert env["python"].startswith("3.11") and env["packages"]["pyiceberg"] == "0.12.0"


def test_parent_facet_under_airflow(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {"AIRFLOW_CTX_DAG_ID": "ingest_orders", "AIRFLOW_CTX_TASK_ID": "land", "AIRFLOW_CTX_DAG_RUN_ID": "manual__1", "AIRFLOW_CTX_TRY_NUMBER": "2"}.items():
        monkeypatch.setenv(k, v)
    tr = InMemoryTransport()
    with lineage_run("x", transport=tr):
        pass
    parents = [e["run"]["facets"]["parent"] for e in tr.events]
    assert parents[0] == parents[1]
    assert parents[0]["job"] == {"namespace": "airflow", "name": "ingest_orders.land"}
    assert parents[0]["root"]["job"]["name"] == "ingest_orders"
    airflow = tr.events[0]["run"]["facets"]["tidemark_airflow"]
    assert (airflow["dagId"], airflow["dagRunId"], airflow["taskId"], airflow["tryNumber"]) == ("ingest_orders", "manual__1", "land", 2)


def test_no_airflow_facets_outside_airflow() -> None:
    tr = InMemoryTransport()
    with lineage_run("x", transport=tr):
        pass
    assert not {"parent", "tidemark_airflow"} & set(tr.events[0]["run"]["facets"])


@pytest.mark.integration
def test_emit_file_skips_bad_lines_naming_them(settings: Any, tmp_path: Path) -> None:
    good = [ev.run_event(producer="backfill", event_type="COMPLETE", run_id=ev.new_run_id(), job_namespace="old", job_name=f"legacy.{i}") for i in range(3)]
    f = tmp_path / "backfill.jsonl"
    f.write_text("\n".join([json.dumps(good[0]), "{broken", json.dumps(good[1]), '{"eventType": "START"}', json.dumps(good[2])]) + "\n")
    strict = run_cli("lineage", "emit", str(f), "--strict", check=False)
    assert strict.returncode == 1 and f"{f}:2: invalid JSON" in strict.stderr and "nothing sent" in strict.stderr
    out = json.loads(run_cli("lineage", "emit", str(f), "--output", "json").stdout)
    assert out["sent"] == 3 and out["pending"] == 0
    assert [r.split(": ", 1)[0] for r in out["rejected"]] == [f"{f}:2", f"{f}:4"]
    consume(settings, once=True)
    jobs = run_sql(settings, "SELECT job_name FROM lineage.events ORDER BY 1").column("job_name").to_pylist()
    assert jobs == ["legacy.0", "legacy.1", "legacy.2"]


@pytest.mark.integration
def test_watch_prints_one_line_per_event(settings: Any) -> None:
    from lineage.transport import KafkaTransport

    ds = ev.iceberg_dataset(producer="p", catalog_name="tidemark", catalog_type="sql", table="raw.orders",
                            location="file:///w/raw/orders", snapshot_id=77, direction="output")
    tr = KafkaTransport(settings)
    tr.emit(ev.run_event(producer="p", event_type="COMPLETE", run_id=ev.new_run_id(), job_namespace="n", job_name="ingest.raw.orders", outputs=[ds]))
    tr.close()
    lines: list[str] = []
    assert watch(settings, out=lines.append, from_beginning=True, limit=1) == 1
    assert "COMPLETE" in lines[0] and "ingest.raw.orders" in lines[0] and "-> raw.orders@77" in lines[0]


def test_describe_handles_foreign_events() -> None:
    assert "START" in describe({"eventType": "START", "job": {"name": "j"}, "run": {"runId": "r"}})


@pytest.mark.integration
def test_events_from_the_official_client_are_stored_and_traced(settings: Any) -> None:
    """An event built with openlineage-python's own classes and serde, produced by a plain producer."""
    import datetime

    from kafka import KafkaProducer
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import dataset_version_dataset, symlinks_dataset
    from openlineage.client.serde import Serde
    from openlineage.client.uuid import generate_new_uuid

    from lineage.kafka import ensure_topic

    def table(name: str, version: str) -> dict[str, Any]:
        return {
            "namespace": "file",
            "name": f"/warehouse/{name.replace('.', '/')}",
            "facets": {
                "symlinks": symlinks_dataset.SymlinksDatasetFacet(
                    identifiers=[symlinks_dataset.Identifier(namespace="tidemark", name=f"tidemark.{name}", type="TABLE")]
                ),
                "version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=version),
            },
        }

    run_id = str(generate_new_uuid())
    event = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        run=Run(runId=run_id),
        job=Job(namespace="spark", name="orders.enrich"),
        producer="https://github.com/OpenLineage/OpenLineage/tree/1.54.0/client/python",
        inputs=[InputDataset(**table("raw.orders", "11"))],
        outputs=[OutputDataset(**table("curated.orders", "12"))],
    )
    ensure_topic(settings)
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    producer.send(settings.kafka.topic, key=run_id.encode(), value=Serde.to_json(event).encode())
    producer.flush(10)
    producer.close()
    report = consume(settings, once=True)
    assert report.stored_events == 1 and report.dead_letters == 0
    rows = walk(connect(settings), Node.parse("curated.orders@12"), "upstream", 3)
    assert [(r["direction"], r["dataset"], r["version"]) for r in rows] == [("input", "raw.orders", "11"), ("output", "curated.orders", "12")]
    assert rows[0]["run_id"] == run_id and rows[0]["job_name"] == "orders.enrich"
