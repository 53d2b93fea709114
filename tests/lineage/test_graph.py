"""Multi-hop lineage in SQL, with hostile names bound as parameters, and answers as of a past time."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from lineage import events as ev
from lineage.consumer import consume
from lineage.exceptions import NotFoundError
from lineage.graph import Node, walk
from lineage.query import connect, run_sql
from lineage.transport import KafkaTransport
from tests.conftest import run_cli

pytestmark = pytest.mark.integration

EVIL = "t'; DROP TABLE lineage.events; --"


def _ds(name: str, version: str) -> dict[str, Any]:
    return {
        "namespace": "warehouse",
        "name": name,
        "facets": {"version": ev.facet("p", f"{ev.FACETS}/1-0-1/DatasetVersionDatasetFacet.json", datasetVersion=version)},
    }


def _chain(settings: Any, hops: int) -> list[str]:
    """run_i reads d{i}@v{i} and writes d{i+1}@v{i+1}; returns the run ids in order."""
    tr = KafkaTransport(settings)
    runs = []
    for i in range(hops):
        rid = ev.new_run_id()
        runs.append(rid)
        name = EVIL if i == 2 else f"d{i + 1}"
        inp = EVIL if i == 3 else f"d{i}"
        tr.emit(ev.run_event(producer="p", event_type="COMPLETE", run_id=rid, job_namespace="n", job_name=f"job {i} '\";",
                             inputs=[_ds(inp, f"v{i}")], outputs=[_ds(name, f"v{i + 1}")]))
    tr.close()
    consume(settings, once=True)
    return runs


def test_five_hops_upstream_and_downstream(settings: Any) -> None:
    runs = _chain(settings, 6)
    con = connect(settings)
    up = walk(con, Node("dataset", "d6", namespace="warehouse", version="v6"), "upstream", 5)
    assert [r["run_id"] for r in up if r["direction"] == "output"] == list(reversed(runs))[:5]
    assert max(r["depth"] for r in up) == 5
    assert any(r["dataset"] == EVIL for r in up)  # the hostile name went through as data
    down = walk(con, Node.parse(f"run:{runs[0]}"), "downstream", 10)
    assert {r["run_id"] for r in down} == set(runs)
    assert [r["job_name"] for r in down][0] == "job 0 '\";"
    job = walk(con, Node.parse("job:job 4 '\";"), "upstream", 1)
    assert {r["run_id"] for r in job} == {runs[4]}
    # The table the hostile name tried to drop is still there.
    assert run_sql(settings, "SELECT count(*) AS n FROM lineage.events").to_pylist() == [{"n": 6}]


def test_hostile_names_through_the_cli(settings: Any) -> None:
    _chain(settings, 4)
    out = json.loads(run_cli("lineage", "upstream", f"dataset:warehouse:{EVIL}@v3", "--depth", "5", "--output", "json").stdout)
    assert {r["dataset"] for r in out} == {"d0", "d1", "d2", EVIL}


def test_as_of_answers_as_the_store_stood_then(settings: Any) -> None:
    runs = _chain(settings, 2)
    time.sleep(0.05)
    then = datetime.now(timezone.utc)
    time.sleep(0.05)
    tr = KafkaTransport(settings)
    tr.emit(ev.run_event(producer="p", event_type="COMPLETE", run_id=ev.new_run_id(), job_namespace="n", job_name="later",
                         inputs=[_ds("d2", "v2")], outputs=[_ds("d3", "v3")]))
    tr.close()
    consume(settings, once=True)
    now_rows = walk(connect(settings), Node.parse("run:" + runs[0]), "downstream", 5)
    then_rows = walk(connect(settings, as_of=then), Node.parse("run:" + runs[0]), "downstream", 5)
    assert "later" in {r["job_name"] for r in now_rows} and "later" not in {r["job_name"] for r in then_rows}
    counts = json.loads(run_cli("sql", "SELECT count(*) AS n FROM lineage.events", "--as-of", then.isoformat(), "--output", "json").stdout)
    assert counts == [{"n": 2}]


@pytest.mark.parametrize("bad", ["", "nonsense", "model:", "dataset:onlyname", "a..b", "1a.b"])
def test_bad_nodes_are_clear_errors(bad: str) -> None:
    with pytest.raises(NotFoundError, match="is not a lineage node"):
        Node.parse(bad)


def test_unknown_node_and_bad_time(settings: Any) -> None:
    _chain(settings, 1)
    proc = run_cli("lineage", "upstream", "raw.nothing", check=False)
    assert proc.returncode == 1 and "nothing in the lineage store matches table raw.nothing" in proc.stderr
    proc = run_cli("sql", "SELECT 1", "--as-of", "last tuesday", check=False)
    assert proc.returncode == 1 and "--as-of 'last tuesday' is not an ISO-8601 time" in proc.stderr


def test_graph_drawn_as_svg_and_html(settings: Any, tmp_path: Any) -> None:
    import xml.etree.ElementTree as ET

    runs = _chain(settings, 3)
    svg = tmp_path / "g.svg"
    out = json.loads(run_cli("lineage", "graph", f"run:{runs[1]}", "-o", str(svg), "--output", "json").stdout)
    assert out == {"path": str(svg), "runs": 3}
    root = ET.fromstring(svg.read_text())  # well-formed SVG
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "job 1 '\";" in texts and "@ v2" in texts and "d2" in texts  # run, dataset and its version
    page = tmp_path / "g.html"
    run_cli("lineage", "graph", f"run:{runs[1]}", "-o", str(page))
    assert page.read_text().startswith("<!doctype html>") and "<svg" in page.read_text() and "svgPanZoom" in page.read_text()
    bad = run_cli("lineage", "graph", f"run:{runs[1]}", "-o", str(tmp_path / "g.png"), check=False)
    assert bad.returncode == 1 and "write the graph to a .svg or .html file" in bad.stderr


def test_as_of_before_the_kept_history_is_a_clear_error(settings: Any) -> None:
    from lakehouse.catalog import load_catalog
    from lakehouse.exceptions import QueryError
    from lineage.consumer import LineageWriter

    _chain(settings, 1)
    early = datetime.now(timezone.utc)
    time.sleep(0.05)
    _chain(settings, 1)
    LineageWriter(settings, load_catalog(settings)).compact(min_files=1, keep_snapshots_s=0)
    with pytest.raises(QueryError, match="keeps history only from .*lineage.keep_snapshots_s"):
        connect(settings, as_of=early)


def test_a_question_on_a_fresh_or_damaged_store_finds_every_lineage_table() -> None:
    """The query path lists the namespace and creates only what is missing (it does not load
    every lineage table before each question)."""
    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings
    from lineage import store

    settings = load_settings()
    assert run_sql(settings, "SELECT count(*) AS n FROM lineage.events").to_pylist() == [{"n": 0}]
    catalog = load_catalog(settings)
    catalog.drop_table(("lineage", "jobs"))
    assert store.ensure_tables(catalog, settings, missing_only=True).keys() == {"jobs"}
    assert store.ensure_tables(catalog, settings, missing_only=True) == {}
    assert run_sql(settings, "SELECT count(*) AS n FROM lineage.jobs").to_pylist() == [{"n": 0}]
