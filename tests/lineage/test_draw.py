"""Lineage pictures from a real layout engine: no two labels overlap, no edge crosses a box, the page is
self-contained, and a missing Graphviz is a clear error. The positions come from `dot` itself."""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from lineage import events as ev
from lineage.consumer import consume
from lineage.draw import ASSETS, from_walk, layout, to_html, validation_status, write
from lineage.exceptions import RenderError
from lineage.graph import Node, connect_for_walk, walk
from lineage.transport import KafkaTransport

LANDINGS = 16


def _table(snapshot: str, **extra: Any) -> dict[str, Any]:
    return ev.iceberg_dataset(producer="p", catalog_name="tidemark", catalog_type="sql", table="raw.wine", location="file:///warehouse/raw/wine",
                              snapshot_id=int(snapshot), direction="output", extra_facets=extra)


def _history(settings: Any) -> None:
    """16 landings of one table (file -> ingest run -> snapshot, each gated; one gate failed), then a
    training run on the last snapshot: the shape whose labels piled up in the hand-made layout. The
    datasets are built by the same helpers the real jobs use."""
    tr = KafkaTransport(settings)
    for i in range(LANDINGS):
        ok = i != 5
        gate = ev.facet("p", f"{ev.FACETS}/1-0-1/DataQualityAssertionsDatasetFacet.json",
                        assertions=[{"assertion": "expect_column_values_to_not_be_null", "success": True, "column": "id"},
                                    {"assertion": "expect_column_values_to_be_between", "success": ok, "column": "alcohol"}])
        snapshot = str(7_000_000_000_000_000_000 + i * 123_456_789_012)
        source = ev.file_dataset(producer="p", path=f"/data/landing/wine/2026-11-{i + 1:02d}-wine-extract-batch.csv", sha256=f"{i:064x}", size=10, fmt="csv")
        tr.emit(ev.run_event(producer="p", event_type="COMPLETE", run_id=ev.new_run_id(), job_namespace="tidemark", job_name="ingest.raw.wine",
                             inputs=[source], outputs=[_table(snapshot, dataQualityAssertions=gate)]))
    model = ev.model_dataset(producer="p", namespace="models", name="wine", version="1")
    tr.emit(ev.run_event(producer="p", event_type="COMPLETE", run_id=ev.new_run_id(), job_namespace="tidemark", job_name="train.wine_classifier",
                         inputs=[_table(snapshot)], outputs=[model]))
    tr.close()
    consume(settings, once=True)


def _graph(settings: Any) -> Any:
    _history(settings)
    con = connect_for_walk(settings)
    node = Node("table", "raw.wine")
    rows = walk(con, node, "upstream", 2) + walk(con, node, "downstream", 2)
    assert len({r["run_id"] for r in rows}) == LANDINGS + 1
    return from_walk(rows, validation_status(con, sorted({r["run_id"] for r in rows}), "lineage"), "lineage of raw.wine")


def _text_boxes(obj: dict[str, Any]) -> list[tuple[str, float, float, float, float]]:
    """Every text `dot` placed for one node or edge: (text, x0, y0, x1, y1) in points."""
    boxes, size = [], 14.0
    for op in obj.get("_ldraw_", []) + obj.get("_hldraw_", []) + obj.get("_tldraw_", []):
        if op["op"] == "F":
            size = float(op["size"])
        elif op["op"] == "T":
            x, y, w = float(op["pt"][0]), float(op["pt"][1]), float(op["width"])
            x0 = {"l": x, "c": x - w / 2, "r": x - w}[op["align"]]
            boxes.append((op["text"], x0, y - 0.2 * size, x0 + w, y + 0.75 * size))
    return boxes


def _overlap(a: tuple[Any, ...], b: tuple[Any, ...], slack: float = 0.5) -> bool:
    return a[1] < b[3] - slack and b[1] < a[3] - slack and a[2] < b[4] - slack and b[2] < a[4] - slack


def _node_boxes(lay: dict[str, Any]) -> dict[int, tuple[float, float, float, float]]:
    out = {}
    for o in lay["objects"]:
        x, y = (float(v) for v in o["pos"].split(","))
        w, h = float(o["width"]) * 72, float(o["height"]) * 72
        out[o["_gvid"]] = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
    return out


def _bezier(points: list[list[float]], steps: int = 12) -> list[tuple[float, float]]:
    out = []
    for i in range(0, len(points) - 3, 3):
        p0, p1, p2, p3 = points[i : i + 4]
        for k in range(steps + 1):
            t = k / steps
            out.append(tuple((1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t**2 * c + t**3 * d for a, b, c, d in zip(p0, p1, p2, p3)))
    return out  # type: ignore[return-value]


@pytest.mark.integration
def test_static_graph_labels_never_overlap_and_edges_go_around_boxes(settings: Any, tmp_path: Path) -> None:
    graph = _graph(settings)
    lay = layout(graph)
    nodes = _node_boxes(lay)
    texts = [(o["_gvid"], "node", b) for o in lay["objects"] for b in _text_boxes(o)]
    texts += [(e["_gvid"], "edge", b) for e in lay["edges"] for b in _text_boxes(e)]
    labels = {b[0] for _, _, b in texts}
    assert "gate failed 1/2" in labels and "gate passed 2/2" in labels and "train.wine_classifier" in labels
    assert sum(1 for _, kind, _ in texts if kind == "edge") == LANDINGS  # one gate label per landing
    # Every snapshot id and file name is written whole (the full texts are in the boxes).
    assert any(t.startswith("@ 70000") and len(t) == 21 for t in labels)
    assert "2026-11-16-wine-extract-batch.csv" in labels
    clashes = [(a[2][0], b[2][0]) for a, b in itertools.combinations(texts, 2) if _overlap(a[2], b[2])]
    assert clashes == [], f"labels drawn over each other: {clashes[:5]}"
    # Edge labels sit clear of every box.
    for _, kind, box in texts:
        if kind == "edge":
            assert not any(_overlap(box, ("", *n)) for n in nodes.values()), box[0]
    # Edges are routed around the boxes they do not connect.
    for e in lay["edges"]:
        curve = [p for op in e["_draw_"] if op["op"] == "b" for p in _bezier(op["points"])]
        for gvid, (x0, y0, x1, y1) in nodes.items():
            if gvid in (e["tail"], e["head"]):
                continue
            inside = [p for p in curve if x0 + 2 < p[0] < x1 - 2 and y0 + 2 < p[1] < y1 - 2]
            assert not inside, f"edge {e['_gvid']} passes through box {gvid}"
    svg = write(graph, tmp_path / "g.svg").read_text()
    assert svg.startswith("<svg") and "gate failed 1/2" in svg


@pytest.mark.integration
def test_interactive_page_is_self_contained(settings: Any, tmp_path: Path) -> None:
    graph = _graph(settings)
    page = write(graph, tmp_path / "g.html").read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page
    assert "svgPanZoom" in page and "tm-graph-data" in page and 'class="tm-search"' in page
    # Nothing is loaded from elsewhere: no src/href to another place, no external stylesheet.
    assert not re.findall(r"""(?:src|href)=["'](?:https?:)?//""", page)
    assert "<link" not in page
    # Details behind every box travel with the page.
    assert page.count('"kind": "run"') == LANDINGS + 1


def test_vendored_files_are_the_ones_the_registry_published() -> None:
    record = (ASSETS / "VENDORED.md").read_text()
    digest = hashlib.sha256((ASSETS / "svg-pan-zoom.min.js").read_bytes()).hexdigest()
    assert digest in record
    assert (ASSETS / "svg-pan-zoom.LICENSE").read_text().startswith("Copyright")


def test_without_graphviz_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lineage.draw import Graph

    g = Graph("t")
    g.edge(g.node("a", "run", "a"), g.node("b", "table", "b"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` anywhere on it
    with pytest.raises(RenderError, match="apt-get install graphviz"):
        write(g, tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()
    with pytest.raises(Exception, match=r"\.svg or \.html"):
        write(g, tmp_path / "g.png")
    assert to_html  # the page writer shares the same layout path
