"""`tidemark lineage graph NODE -o FILE.svg|FILE.html`: the up- and downstream graph as a picture.

Left to right: each dataset version and each run is a box, placed in columns by the longest path
from the sources; edges carry the snapshot id (dataset version) and, on outputs that went through a
validation gate, how many expectations passed. Plain SVG written by hand: no network, no Graphviz.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from lakehouse.sql import query

BOX_W, BOX_H, COL_GAP, ROW_GAP, PAD = 230, 46, 170, 30, 30


def _short(text: str | None, n: int = 30) -> str:
    text = text or ""
    return text if len(text) <= n else text[: n // 2 - 1] + "…" + text[-(n // 2) :]


def graph_model(rows: list[dict[str, Any]], checks: dict[tuple[str, str], str]) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Nodes (runs and dataset versions) and edges from walk rows."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for r in rows:
        run_key = f"run:{r['run_id']}"
        nodes.setdefault(run_key, {"kind": "run", "title": r["job_name"], "sub": f"run {r['run_id'][:13]}"})
        ds_key = f"ds:{r['dataset_namespace']}:{r['dataset_name']}@{r['version']}"
        nodes.setdefault(ds_key, {"kind": (r.get("dataset_type") or "TABLE").lower(), "title": _short(r["dataset"]), "sub": f"@ {_short(r['version'], 24)}" if r["version"] else ""})
        a, b = (ds_key, run_key) if r["direction"] == "input" else (run_key, ds_key)
        if (a, b) in seen:
            continue
        seen.add((a, b))
        label = _short(r["version"], 24) if r["version"] else ""
        status = checks.get((r["run_id"], r["dataset_name"])) if r["direction"] == "output" else None
        edges.append({"from": a, "to": b, "label": label, "status": status})
    return nodes, edges


def _ranks(nodes: dict[str, Any], edges: list[dict[str, Any]]) -> dict[str, int]:
    incoming: dict[str, list[str]] = defaultdict(list)
    for e in edges:
        incoming[e["to"]].append(e["from"])
    rank: dict[str, int] = {}

    def visit(n: str, stack: frozenset[str]) -> int:
        if n in rank:
            return rank[n]
        if n in stack:  # a cycle (a run reading its own output): cut it here
            return 0
        rank[n] = max((visit(p, stack | {n}) + 1 for p in incoming[n]), default=0)
        return rank[n]

    for n in nodes:
        visit(n, frozenset())
    return rank


def to_svg(nodes: dict[str, dict[str, Any]], edges: list[dict[str, Any]], title: str) -> str:
    rank = _ranks(nodes, edges)
    columns: dict[int, list[str]] = defaultdict(list)
    for n in sorted(nodes, key=lambda k: (rank[k], nodes[k]["title"])):
        columns[rank[n]].append(n)
    pos: dict[str, tuple[float, float]] = {}
    for col, members in columns.items():
        for i, n in enumerate(members):
            pos[n] = (PAD + col * (BOX_W + COL_GAP), PAD + 30 + i * (BOX_H + ROW_GAP))
    width = PAD * 2 + (max(columns) + 1) * (BOX_W + COL_GAP) - COL_GAP if columns else 400
    height = PAD * 2 + 30 + max((len(m) for m in columns.values()), default=1) * (BOX_H + ROW_GAP)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
        f'<rect width="100%" height="100%" fill="white"/><text x="{PAD}" y="{PAD}" font-size="15" font-weight="bold">{html.escape(title)}</text>',
    ]
    for e in edges:
        (x1, y1), (x2, y2) = pos[e["from"]], pos[e["to"]]
        sx, sy, ex, ey = x1 + BOX_W, y1 + BOX_H / 2, x2, y2 + BOX_H / 2
        mid = (sx + ex) / 2
        color = {"passed": "#2e7d32", "failed": "#c62828"}.get((e["status"] or "").split(" ")[0], "#555")
        out.append(f'<path d="M {sx} {sy} C {mid} {sy}, {mid} {ey}, {ex} {ey}" fill="none" stroke="{color}" stroke-width="1.5" marker-end="url(#arrow)"/>')
        if e["label"]:
            out.append(f'<text x="{mid}" y="{(sy + ey) / 2 - 5}" text-anchor="middle" fill="{color}" font-size="10">{html.escape(e["label"])}</text>')
        if e["status"]:
            out.append(f'<text x="{mid}" y="{(sy + ey) / 2 + 12}" text-anchor="middle" fill="{color}" font-size="10">{html.escape(e["status"])}</text>')
    fills = {"run": "#e3f2fd", "model": "#fff3e0", "file": "#f3e5f5"}
    for n, (x, y) in pos.items():
        node = nodes[n]
        rx = 4 if node["kind"] == "run" else 14
        out.append(f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="{rx}" fill="{fills.get(node["kind"], "#e8f5e9")}" stroke="#444"/>')
        out.append(f'<text x="{x + 8}" y="{y + 19}" font-weight="bold">{html.escape(node["title"])}</text>')
        out.append(f'<text x="{x + 8}" y="{y + 36}" fill="#333">{html.escape(node["sub"])}</text>')
    out.append("</svg>")
    return "\n".join(out)


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


def draw(con: Any, rows: list[dict[str, Any]], path: Path, title: str, ns: str = "lineage") -> Path:
    checks = validation_status(con, sorted({r["run_id"] for r in rows}), ns)
    svg = to_svg(*graph_model(rows, checks), title=title)
    if path.suffix.lower() == ".svg":
        path.write_text(svg, encoding="utf-8")
    elif path.suffix.lower() in (".html", ".htm"):
        path.write_text(
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='margin:0'>{svg}</body></html>",
            encoding="utf-8",
        )
    else:
        from lineage.exceptions import NotFoundError

        raise NotFoundError(f"-o {path}: write the graph to a .svg or .html file")
    return path
