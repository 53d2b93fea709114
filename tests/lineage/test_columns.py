"""Column-level lineage from real producers' events: stored once, walked like the raw events say.

The captured corpus (`columns/` of the real producers' corpus beside the project, origin in its SOURCES file) goes through the real
broker and the real consumer into the Iceberg table; the expected rows and walks are computed
here from the raw events with plain Python, independently of lineage.columns and the SQL walk.
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse.catalog import load_catalog
from lineage import columns
from lineage.column_graph import ColumnNode, connect_for_walk, walk
from lineage.consumer import consume
from lineage.exceptions import NotFoundError
from lineage.transport import KafkaTransport

from tests.lineage.corpus import MISSING, corpus_root

pytestmark = pytest.mark.integration

def _corpus_dir() -> Path | None:
    """The captured columnLineage events: `columns/` of the real producers' corpus, which is
    third-party data and so lives beside the project, never in it (see tests/data/README.md)."""
    path = corpus_root() / "columns"
    return path if (path / "SOURCES").is_file() else None


CORPUS = _corpus_dir()
needs_corpus = pytest.mark.skipif(CORPUS is None, reason=MISSING)
_NS = uuid.UUID("6f1b7c1e-0000-4000-8000-00000000c011")


def _complete(event: dict[str, Any], source: str, i: int) -> dict[str, Any]:
    """Fill what a captured expectation leaves as a placeholder or out (see SOURCES)."""
    e = json.loads(json.dumps(event))
    job = e.setdefault("job", {})
    job.setdefault("name", source)
    run = e.setdefault("run", {})
    if "{{" in str(run.get("runId", "{{")):
        run["runId"] = str(uuid.uuid5(_NS, f"{source}/{job['name']}"))
    parent = (run.get("facets") or {}).get("parent")
    if isinstance(parent, dict) and "{{" in str((parent.get("run") or {}).get("runId", "")):
        parent["run"]["runId"] = str(uuid.uuid5(_NS, f"{source}/{parent['job']['name']}"))
    if "{{" in str(e.get("eventTime", "{{")):
        e["eventTime"] = f"2026-06-01T10:00:{i:02d}.000000Z"
    e.setdefault("producer", f"https://github.com/OpenLineage/OpenLineage/{source}")
    e.setdefault("schemaURL", "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent")
    return e


def corpus() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    assert CORPUS is not None
    for path in sorted(CORPUS.glob("*.json")):
        data = json.loads(path.read_text())
        if path.name.startswith("spec_facet_"):
            # A facet example: one output dataset of a run reading the datasets it names.
            cl = data["columnLineage"]
            names = {(f["namespace"], f["name"]) for spec in cl["fields"].values() for f in spec["inputFields"]}
            names |= {(f["namespace"], f["name"]) for f in cl.get("dataset") or []}
            data = {
                "eventType": "COMPLETE",
                "job": {"namespace": "spec-tests", "name": path.stem},
                "inputs": [{"namespace": ns, "name": n} for ns, n in sorted(names)],
                "outputs": [{"namespace": "spec-tests", "name": f"{path.stem}.out", "facets": {"columnLineage": cl}}],
            }
        for event in data if isinstance(data, list) else [data]:
            events.append(_complete(event, path.stem, len(events)))
    return events


def expected_edges(events: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """Every (run, output ns, name, field, input ns, name, field, type, subtype) the raw events state.

    Both forms of the facet: the 1.0 field-level transformationType (IDENTITY/MASKED) is type
    DIRECT with that subtype, "" meaning none; a dataset-level dependency applies to every field
    the facet names (no output field when it names none).
    """
    out = set()
    for e in events:
        for ds in e.get("outputs") or []:
            cl = (ds.get("facets") or {}).get("columnLineage")
            if not cl:
                continue
            targets = [(f, spec, spec["inputFields"]) for f, spec in cl.get("fields", {}).items()]
            targets += [(f, {}, cl.get("dataset") or []) for f in cl.get("fields", {})] or [(None, {}, cl.get("dataset") or [])]
            for field, spec, inputs in targets:
                for inp in inputs:
                    hows = [(t.get("type"), t.get("subtype") or None) for t in inp.get("transformations") or []]
                    if not hows:
                        old = spec.get("transformationType") or None
                        hows = [("DIRECT" if old else None, old)]
                    for kind, sub in hows:
                        out.add((e["run"]["runId"], ds.get("namespace") or "", ds["name"], field,
                                 inp.get("namespace") or "", inp["name"], inp["field"], kind, sub))
    return out


def _send(settings: Any, events: list[dict[str, Any]]) -> None:
    tr = KafkaTransport(settings)
    for e in events:
        tr.emit(e)
    tr.close()


def _stored(settings: Any) -> list[dict[str, Any]]:
    t = load_catalog(settings).load_table((settings.lineage.namespace, columns.COLUMN_LINEAGE))
    return t.scan().to_arrow().to_pylist()


def _edge(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["run_id"], r["output_namespace"], r["output_name"], r["output_field"], r["input_namespace"],
            r["input_name"], r["input_field"], r["transformation_type"], r["transformation_subtype"])


@needs_corpus
def test_corpus_edges_are_stored_exactly_once(settings: Any) -> None:
    events = corpus()
    assert {e["job"]["namespace"] for e in events} >= {"dbt-test-namespace", "testColumnLevelLineage", "food_delivery"}
    _send(settings, events + events[:3])  # a producer's retry re-sends three of them
    report = consume(settings, once=True)
    assert report.dead_letters == 0
    rows = _stored(settings)
    want = expected_edges(events)
    assert len(want) > 40
    assert sorted(map(_edge, rows), key=str) == sorted(want, key=str)  # every edge, none twice
    again = consume(settings, once=True)
    assert again.records == 0 and len(_stored(settings)) == len(rows)
    # The 1.0 form (Airflow's SQL extractor): "" for no transformation is no value, not "".
    legacy = [r for r in rows if r["job_name"] == "postgres_orders_popular_day_of_week.postgres_insert"]
    assert len(legacy) == 2 and {(r["transformation_type"], r["transformation_description"]) for r in legacy} == {(None, None)}
    assert any(r["masking"] is False for r in rows if r["job_name"] == "spec_facet_dataset_level")
    # Dataset-level dependencies (the facet's `dataset`) go to every field, marked as such.
    sort = [r for r in rows if r["transformation_subtype"] == "SORT"]
    assert sort and all(r["whole_dataset"] and r["output_field"] is not None for r in sort)


def _closure(events: list[dict[str, Any]], start: tuple[str, str, str], direction: str, depth: int) -> set[tuple[Any, ...]]:
    """The walk's answer computed from the raw edges: breadth first, unversioned runs meeting only
    forwards in time (no version is in this corpus)."""
    times = {e["run"]["runId"]: e["eventTime"] for e in reversed(events) if "columnLineage" in json.dumps(e)}
    edges = {r for r in expected_edges(events) if r[3] is not None}
    found: dict[tuple[Any, ...], int] = {}
    if direction == "upstream":
        frontier = deque((e, 1) for e in edges if (e[1], e[2], e[3]) == start)
    else:
        frontier = deque((e, 1) for e in edges if (e[4], e[5], e[6]) == start)
    while frontier:
        e, d = frontier.popleft()
        if e in found and found[e] <= d:
            continue
        found[e] = d
        if d == depth:
            continue
        for n in edges:
            if direction == "upstream" and (n[1], n[2], n[3]) == (e[4], e[5], e[6]) and times[n[0]] <= times[e[0]]:
                frontier.append((n, d + 1))
            if direction == "downstream" and (n[4], n[5], n[6]) == (e[1], e[2], e[3]) and times[n[0]] >= times[e[0]]:
                frontier.append((n, d + 1))
    return set(found)


def _seeds(events: list[dict[str, Any]]) -> Iterator[tuple[str, tuple[str, str, str]]]:
    raw = sorted(expected_edges(events), key=str)
    for r in raw:
        if r[3] is not None:
            yield "upstream", (r[1], r[2], r[3])
        yield "downstream", (r[4], r[5], r[6])


@needs_corpus
def test_walks_equal_the_graph_of_the_raw_events(settings: Any) -> None:
    events = corpus()
    _send(settings, events)
    consume(settings, once=True)
    con = connect_for_walk(settings)
    checked = 0
    for direction, (ns, name, field) in sorted(set(_seeds(events))):
        node = ColumnNode("dataset", name, field=field, namespace=ns)
        want = _closure(events, (ns, name, field), direction, 3)
        if not want:
            with pytest.raises(NotFoundError):
                walk(con, node, direction, 3)  # type: ignore[arg-type]
            continue
        got = walk(con, node, direction, 3)  # type: ignore[arg-type]
        assert {_edge(r) for r in got} == want, (direction, ns, name, field)
        checked += 1
    assert checked >= 12


def test_node_syntax() -> None:
    assert ColumnNode.parse("raw.wine.alcohol") == ColumnNode("table", "raw.wine", field="alcohol")
    assert ColumnNode.parse("raw.wine.alcohol@123") == ColumnNode("table", "raw.wine", field="alcohol", version="123")
    assert ColumnNode.parse("model:wine:3") == ColumnNode("model", "wine", version="3")
    assert ColumnNode.parse("model:wine:3#alcohol") == ColumnNode("model", "wine", field="alcohol", version="3")
    assert ColumnNode.parse("dataset:s3://b:/w/x.csv#a b@v1") == ColumnNode("dataset", "/w/x.csv", field="a b", namespace="s3://b", version="v1")
    for bad in ("raw.wine", "wine", "dataset:file:/x", "model:", "model:wine#f"):
        with pytest.raises(NotFoundError, match="is not a column; write NS.TABLE.COLUMN"):
            ColumnNode.parse(bad)


def test_malformed_facets_give_no_rows_and_keep_the_event(settings: Any) -> None:
    good = _complete({"eventType": "COMPLETE", "job": {"namespace": "t", "name": "bad-facets"}, "inputs": [], "outputs": [
        {"namespace": "t", "name": "a", "facets": {"columnLineage": "not an object"}},
        {"namespace": "t", "name": "b", "facets": {"columnLineage": {"fields": {"x": {"inputFields": [{"name": "no field"}, 7]},
                                                                                "y": {"inputFields": [{"namespace": "t", "name": "c", "field": "z"}]}}}}},
    ]}, "bad", 1)
    _send(settings, [good])
    report = consume(settings, once=True)
    assert report.stored_events == 1 and report.dead_letters == 0
    assert [(_edge(r)[2:7]) for r in _stored(settings)] == [("b", "y", "t", "c", "z")]


def test_the_1_0_form_maps_to_direct_with_its_subtype() -> None:
    event = _complete({"eventType": "COMPLETE", "job": {"namespace": "t", "name": "old"}, "outputs": [
        {"namespace": "t", "name": "out", "facets": {"columnLineage": {"fields": {
            "id": {"inputFields": [{"namespace": "t", "name": "in", "field": "id"}], "transformationType": "IDENTITY",
                   "transformationDescription": "copied"},
            "email": {"inputFields": [{"namespace": "t", "name": "in", "field": "email"}], "transformationType": "MASKED"},
        }}}}]}, "old", 2)
    rows = {r["output_field"]: r for r in columns.rows_from_event(event)}
    assert (rows["id"]["transformation_type"], rows["id"]["transformation_subtype"], rows["id"]["transformation_description"]) == ("DIRECT", "IDENTITY", "copied")
    assert (rows["email"]["transformation_subtype"], rows["email"]["masking"]) == ("MASKED", True)


@needs_corpus
def test_compaction_merges_the_column_table_and_keeps_every_edge(settings: Any) -> None:
    from lakehouse.catalog import load_catalog as catalog_of
    from lineage.consumer import LineageWriter

    events = corpus()
    for part in (events[:4], events[4:8], events[8:]):  # three batches: three files
        _send(settings, part)
        consume(settings, once=True)
    table = catalog_of(settings).load_table((settings.lineage.namespace, columns.COLUMN_LINEAGE))
    before = sorted(map(_edge, table.scan().to_arrow().to_pylist()), key=str)
    assert len(list(table.scan().plan_files())) == 3
    LineageWriter(settings, catalog_of(settings)).compact(min_files=2, keep_snapshots_s=0)
    table = catalog_of(settings).load_table((settings.lineage.namespace, columns.COLUMN_LINEAGE))
    assert len(list(table.scan().plan_files())) == 1 and len(table.snapshots()) == 1
    assert sorted(map(_edge, table.scan().to_arrow().to_pylist()), key=str) == before == sorted(expected_edges(events), key=str)


def test_column_table_files_are_laid_out_by_output_column_before_and_after_compaction(settings: Any) -> None:
    """A walk's steps look up output columns; DuckDB can skip a row group only when the rows are
    sorted by them (columns.ORDER) in row groups of columns.ROW_GROUP rows: each batch's file and
    the compacted file, also for a table made before that layout (no row-group property yet)."""
    import pyarrow.parquet as pq

    from lakehouse.tables import RUN_ID, summary_properties, transaction
    from lineage import events as ev
    from lineage.consumer import ConsumeReport, LineageWriter

    def event(i: int, out: str) -> bytes:
        fields = {f: [columns.InputField("s3://lake", f"in{i}", f)] for f in ("b", "a")}
        return ev.serialize(ev.run_event(producer="t", event_type="COMPLETE", run_id=str(uuid.uuid5(_NS, f"layout{i}")), job_namespace="t",
                                         job_name=f"j{i}", inputs=[{"namespace": "s3://lake", "name": f"in{i}"}],
                                         outputs=[{"namespace": "s3://lake", "name": out, "facets": {"columnLineage": columns.facet("t", fields)}}]))

    writer = LineageWriter(settings, load_catalog(settings))
    for i, batch in enumerate((["z", "m"], ["y", "a"])):  # two batches, names not in order: two files
        values = [event(10 * i + k, out) for k, out in enumerate(batch)]
        writer.write_columns([0] * len(values), list(range(10 * i, 10 * i + len(values))), values, ConsumeReport())
    table = load_catalog(settings).load_table((settings.lineage.namespace, columns.COLUMN_LINEAGE))
    assert table.properties["write.parquet.row-group-limit"] == str(columns.ROW_GROUP)
    # Laid out in order, yet each commit still names its batch's first run (not the run whose
    # output sorts first: "m" before "z").
    assert [summary_properties(s)[RUN_ID] for s in table.snapshots()] == [str(uuid.uuid5(_NS, f"layout{10 * i}")) for i in range(2)]

    def files_in_order() -> list[list[tuple[str, str]]]:
        t = load_catalog(settings).load_table((settings.lineage.namespace, columns.COLUMN_LINEAGE))
        out = []
        for task in t.scan().plan_files():
            rows = pq.read_table(task.file.file_path.removeprefix("file://"), columns=list(columns.ORDER[1:])).to_pylist()
            out.append([(r["output_name"], r["output_field"]) for r in rows])
        return out

    assert all(f == sorted(f) and len(f) == 4 for f in files_in_order()) and len(files_in_order()) == 2

    def made_before_the_layout() -> None:
        t = load_catalog(settings).load_table((settings.lineage.namespace, columns.COLUMN_LINEAGE))
        with transaction(t) as tx:
            tx.remove_properties("write.parquet.row-group-limit")

    # Ensured (as every batch's write, walk and compaction does), an older table gets the property.
    made_before_the_layout()
    assert columns.ensure(load_catalog(settings), settings).properties["write.parquet.row-group-limit"] == str(columns.ROW_GROUP)
    assert load_catalog(settings).load_table(table.name()).properties["write.parquet.row-group-limit"] == str(columns.ROW_GROUP)
    made_before_the_layout()
    writer.compact(min_files=2, keep_snapshots_s=0)
    (merged,) = files_in_order()
    assert merged == sorted(merged) and [n for n, _ in merged] == ["a", "a", "m", "m", "y", "y", "z", "z"]
    table = load_catalog(settings).load_table((settings.lineage.namespace, columns.COLUMN_LINEAGE))
    assert table.properties["write.parquet.row-group-limit"] == str(columns.ROW_GROUP)
