"""Lineage graphs as pictures: laid out by Graphviz's `dot`, written as SVG or as an interactive page.

One graph model (`Graph`: nodes with a title, a subtitle and details; edges with an optional
gate label) is laid out by a real layout engine, left to right: `dot` ranks the nodes, orders
each rank to minimise crossings, reserves room for every edge label and routes edges around the
boxes. `to_svg` is that picture; `to_html` wraps the same SVG in a self-contained page (the
vendored svg-pan-zoom and our `assets/graph.js` inlined) with zoom, pan, search and details on
click. `tidemark lineage graph` and the Airflow plugin both draw through here, and `models` builds
its trace graph as a `Graph` too.

Graphviz is a Debian package (`apt-get install graphviz`, `make sysdeps`); the `graphviz` PyPI
binding writes the DOT source (quoting every name) and runs `dot`.
"""

from __future__ import annotations

import contextlib
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.exceptions import no_space, storage_full
from lakehouse.sql import query
from lineage.exceptions import NotFoundError, RenderError

ASSETS = Path(__file__).parent / "assets"
FONT = "DejaVu Sans"
# Fill per node kind; the legend and the page's CSS use the same colours.
FILLS = {"model": "#fff3e0", "run": "#e3f2fd", "table": "#e8f5e9", "file": "#f3e5f5", "dataset": "#eceff1"}
STATUS_COLOURS = {"passed": "#2e7d32", "failed": "#c62828"}


@dataclass
class GraphNode:
    id: str
    kind: str  # model | run | table | file | dataset
    title: str
    sub: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    highlight: bool = False  # drawn with a thick border: the node the graph is about


@dataclass
class GraphEdge:
    source: str
    target: str
    label: str = ""
    status: str | None = None  # "passed" / "failed": colours the edge and its label
    style: str = "solid"  # "dashed": a weaker relation (an earlier snapshot whose rows a later one holds)


@dataclass
class Graph:
    """Nodes and edges in the order they were added (ids are stable: `n0`, `n1`, ...)."""

    title: str
    nodes: dict[str, GraphNode] = field(default_factory=dict)
    edges: list[GraphEdge] = field(default_factory=list)
    _keys: dict[str, str] = field(default_factory=dict)
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def node(self, key: str, kind: str, title: str, sub: str = "", **details: Any) -> GraphNode:
        """The node for `key` (any string identifying the thing), created on first use."""
        if key not in self._keys:
            nid = f"n{len(self._keys)}"
            self._keys[key] = nid
            self.nodes[nid] = GraphNode(nid, kind, title, sub, {k: v for k, v in details.items() if v not in (None, "", [], {})})
        return self.nodes[self._keys[key]]

    def edge(self, source: GraphNode, target: GraphNode, label: str = "", status: str | None = None, style: str = "solid") -> None:
        if (source.id, target.id) in self._seen:
            return
        self._seen.add((source.id, target.id))
        self.edges.append(GraphEdge(source.id, target.id, label, status, style))

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "nodes": [{"id": n.id, "kind": n.kind, "title": n.title, "sub": n.sub, "details": n.details, "highlight": n.highlight} for n in self.nodes.values()],
            "edges": [{"source": e.source, "target": e.target, "label": e.label, "status": e.status} for e in self.edges],
        }


# -- from a lineage walk ------------------------------------------------------------------------------


def short_run(run_id: str | None) -> str:
    """A run's box label. UUIDv7 run ids share their leading (time) digits: the tail tells runs apart."""
    return f"run …{run_id[-12:]}" if run_id else "run (unknown)"


def _file_title(name: str) -> str:
    """A source file's own name (the full path is in its details): never cut in the middle."""
    return name.rstrip("/").rsplit("/", 1)[-1] or name


def from_walk(rows: list[dict[str, Any]], checks: dict[tuple[str, str], str], title: str, focus: str | None = None) -> Graph:
    """The graph of `lineage.graph.walk` rows: a box per run and per dataset version.

    `checks`: (run, dataset name) -> "passed 5/5" for gated outputs (see `validation_status`).
    `focus`: a run id or dataset label drawn highlighted (what was searched for).
    """
    g = Graph(title)
    for r in rows:
        run = g.node(f"run:{r['run_id']}", "run", r["job_name"], short_run(r["run_id"]), run_id=r["run_id"], job=r["job_name"], depth=r["depth"])
        kind = (r.get("dataset_type") or "TABLE").lower()
        kind = kind if kind in FILLS else "dataset"
        label = _file_title(r["dataset"]) if kind == "file" else r["dataset"]
        version = r["version"] or ""
        sub = f"sha256 {version[:12]}" if kind == "file" and version else (f"@ {version}" if version else "")
        ds = g.node(
            f"ds:{r['dataset_namespace']}:{r['dataset_name']}@{version}", kind, label, sub,
            dataset=r["dataset"], namespace=r["dataset_namespace"], name=r["dataset_name"], version=version, type=r.get("dataset_type"),
        )
        if focus is not None and focus in (r["run_id"], r["dataset"], f"{r['dataset']}@{version}"):
            (run if focus == r["run_id"] else ds).highlight = True
        if r["direction"] == "input":
            g.edge(ds, run)
        else:
            status = checks.get((r["run_id"], r["dataset_name"]))
            g.edge(run, ds, f"gate {status}" if status else "", status.split(" ")[0] if status else None)
    return g


def validation_status(con: Any, run_ids: list[str], ns: str) -> dict[tuple[str, str], str]:
    """(run, dataset name) -> "passed 5/5" for outputs that carry dataQualityAssertions."""
    if not run_ids:
        return {}
    marks = ", ".join("?" for _ in run_ids)
    rows = query(
        con,
        f'SELECT run_id, dataset_name, facets FROM "{ns}".run_datasets '
        f"WHERE direction = 'output' AND event_type IN ('COMPLETE', 'FAIL') AND run_id IN ({marks})",
        run_ids,
    ).to_pylist()
    out = {}
    for r in rows:
        assertions = (json.loads(r["facets"] or "{}").get("dataQualityAssertions") or {}).get("assertions")
        if assertions:
            ok = sum(1 for a in assertions if a.get("success"))
            out[(r["run_id"], r["dataset_name"])] = f"{'passed' if ok == len(assertions) else 'failed'} {ok}/{len(assertions)}"
    return out


# -- layout and pictures ------------------------------------------------------------------------------


def _label(node: GraphNode) -> str:
    """A Graphviz HTML-like label: the title in bold, the subtitle small, both escaped."""
    rows = f'<TR><TD ALIGN="LEFT"><B>{html.escape(node.title)}</B></TD></TR>'
    if node.sub:
        rows += f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="10" COLOR="#333333">{html.escape(node.sub)}</FONT></TD></TR>'
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">{rows}</TABLE>>'


def dot_source(graph: Graph) -> Any:
    """The graph as a `graphviz.Digraph` (DOT source; nothing is run yet)."""
    import graphviz

    d = graphviz.Digraph(graph.title, engine="dot")
    d.attr("graph", rankdir="LR", nodesep="0.25", ranksep="0.6", fontname=FONT, bgcolor="white", pad="0.2")
    d.attr("node", shape="box", style="rounded,filled", fontname=FONT, fontsize="11", margin="0.16,0.06", color="#555555", penwidth="1")
    d.attr("edge", fontname=FONT, fontsize="9", color="#666666", arrowsize="0.7")
    # No tooltips: the page's details panel shows everything, and a 600-box SVG stays a third smaller.
    for n in graph.nodes.values():
        d.node(
            n.id, _label(n), id=n.id, fillcolor=FILLS.get(n.kind, FILLS["dataset"]),
            penwidth="3" if n.highlight else "1", color="#e65100" if n.highlight else "#555555", **{"class": f"tm-node tm-{n.kind}"},
        )
    for i, e in enumerate(graph.edges):
        colour = STATUS_COLOURS.get(e.status or "", "#666666")
        d.edge(e.source, e.target, label=e.label, color=colour, fontcolor=colour, style=e.style, id=f"e{i}", **{"class": "tm-edge"})
    return d


def _run_dot(graph: Graph, fmt: str) -> bytes:
    import graphviz

    try:
        return dot_source(graph).pipe(format=fmt)
    except graphviz.ExecutableNotFound as exc:
        raise RenderError("Graphviz's `dot` is not installed; install Debian's graphviz (`make sysdeps`, or apt-get install graphviz)") from exc
    except graphviz.CalledProcessError as exc:
        raise RenderError(f"Graphviz's dot failed to lay out {graph.title!r}: {exc.stderr.decode(errors='replace').strip()[-300:]}") from exc


def to_svg(graph: Graph) -> str:
    """The laid-out graph as an SVG document."""
    svg = _run_dot(graph, "svg").decode("utf-8")
    return svg[svg.index("<svg") :]  # no XML prolog or DOCTYPE: the same text inlines into HTML


def layout(graph: Graph) -> dict[str, Any]:
    """What `dot` placed where (its JSON output): every node's box and every text's position and width."""
    return json.loads(_run_dot(graph, "json"))


def asset(name: str) -> str:
    """A file of `lineage/assets/` (the vendored svg-pan-zoom, graph.js, graph.css) as text."""
    return (ASSETS / name).read_text(encoding="utf-8")


def _script(text: str) -> str:
    return text.replace("</script", "<\\/script")


def graph_data(graph: Graph) -> str:
    """The details behind the picture, for graph.js: JSON safe to put inside a <script> element."""
    return json.dumps(graph.to_json(), default=str).replace("</", "<\\/")


def to_html(graph: Graph) -> str:
    """A self-contained page: the SVG with zoom, pan, search and details on click; nothing fetched."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(graph.title)}</title>
<style>{asset("graph.css")}</style></head>
<body class="tm-standalone">
<div class="tm-graph-view">
  <div class="tm-toolbar">
    <strong>{html.escape(graph.title)}</strong>
    <input class="tm-search" type="search" placeholder="search: job, table, snapshot, file, sha256…" aria-label="search the graph">
    <span class="tm-hits"></span>
    <button type="button" data-tm="zoom-in" title="zoom in">+</button><button type="button" data-tm="zoom-out" title="zoom out">−</button><button type="button" data-tm="fit" title="fit to window">fit</button>
  </div>
  <div class="tm-body"><div class="tm-canvas">{to_svg(graph)}</div>
  <aside class="tm-details"><p class="tm-hint">Click a box for its details. Drag to pan, wheel to zoom.</p></aside></div>
</div>
<script type="application/json" class="tm-graph-data">{graph_data(graph)}</script>
<script>{_script(asset("svg-pan-zoom.min.js"))}</script>
<script>{_script(asset("graph.js"))}</script>
</body></html>
"""


def write(graph: Graph, path: Path) -> Path:
    """`.svg`: the static picture; `.html`/`.htm`: the interactive page. Written whole or not at all."""
    suffix = path.suffix.lower()
    if suffix == ".svg":
        text = to_svg(graph)
    elif suffix in (".html", ".htm"):
        text = to_html(graph)
    else:
        raise NotFoundError(f"{path}: write the graph to a .svg or .html file", parameter="path")
    tmp = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # a half-written .part file; none if the folder was the problem
            tmp.unlink(missing_ok=True)
        if no_space(exc):
            raise storage_full(str(path.parent), f"writing the graph {path.name}") from exc
        raise RenderError(f"cannot write the graph to {path}: {exc.strerror or exc}; choose a file in a folder you can write to", parameter="path") from exc
    return path


def draw(con: Any, rows: list[dict[str, Any]], path: Path, title: str, ns: str = "lineage") -> Path:
    """`tidemark lineage graph`: the walk's rows drawn to `path` (.svg or .html)."""
    checks = validation_status(con, sorted({r["run_id"] for r in rows}), ns)
    return write(from_walk(rows, checks, title), path)
