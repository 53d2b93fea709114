"""A model version's trace (`models.trace.trace`) as a lineage `Graph`, drawn by `lineage.draw`.

Left to right: source files -> ingest runs -> input snapshots -> training run -> model version.
The snapshot the version was trained on is the highlighted box of its table; the earlier landings
whose rows that snapshot also holds hang off it as their own snapshot <- run <- file chains. Gate
results sit on the ingest run -> snapshot edges; the Airflow DAG run and task that did a step, when
known, are in its box's details.
"""

from __future__ import annotations

import json
from typing import Any

from lineage.draw import Graph, GraphNode, short_run


def _airflow(parent: dict[str, Any] | None) -> dict[str, Any] | None:
    if not parent:
        return None
    return parent.get("airflow") or {"parent_job": parent.get("job"), "parent_run_id": parent.get("run_id")}


def _gate(entry: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """Edge label, status and details of the gate that let the pinned snapshot onto main."""
    checks = entry.get("validation") or []
    gate = entry.get("gate") or {}
    failing = [c.get("assertion", "") + (f" ({c['column']})" if c.get("column") else "") for c in checks if not c.get("success")]
    info: dict[str, Any] = {"suite": gate.get("suite"), "failing_expectations": failing or None}
    if checks:
        ok = len(checks) - len(failing)
        status = "passed" if not failing else "failed"
        return f"gate {status} {ok}/{len(checks)}", status, info
    if gate.get("success") is not None:
        status = "passed" if gate["success"] == "true" else "failed"
        failures = json.loads(gate.get("failures") or "[]")
        info["failing_expectations"] = [f.get("expectation") or f for f in failures] or None
        return f"gate {status}", status, info
    return "", None, info


def trace_graph(trace: dict[str, Any]) -> Graph:
    """The graph of one model version's origin."""
    ref = f"{trace['model']}:{trace['version']}"
    g = Graph(f"trace of {ref}")
    model = g.node(
        f"model:{ref}", "model", ref, ", ".join(trace.get("aliases") or []) or "no alias",
        model=trace["model"], version=trace["version"], aliases=trace.get("aliases"), sha256=trace.get("sha256"),
        artifact_uri=trace.get("artifact_uri"), metrics=trace.get("metrics"), trained_at=trace.get("trained_at"),
    )
    model.highlight = True
    train = g.node(
        f"run:{trace['run_id']}", "run", trace.get("job") or "training run", short_run(trace["run_id"]),
        run_id=trace["run_id"], job=trace.get("job"), entry_point=trace.get("entry_point"), parameters=trace.get("parameters"),
        airflow=_airflow(trace.get("parent")),
    )
    g.edge(train, model)
    for entry in trace.get("inputs") or []:
        table, sid = entry["table"], entry.get("snapshot_id")
        label, status, gate_info = _gate(entry)
        snap = g.node(
            f"snap:{table}@{sid}", "table", table, f"@ {sid}  (trained on)",
            table=table, snapshot_id=sid, rows=entry.get("rows"), fingerprint=entry.get("fingerprint"),
            snapshot_exists=entry.get("snapshot_exists"), in_lineage_events=entry.get("in_lineage_events"), **gate_info,
        )
        g.edge(snap, train)
        producer = entry.get("ingest_run") or {}
        if producer.get("run_id"):
            run = g.node(
                f"run:{producer['run_id']}", "run", producer.get("job") or "ingest run", short_run(producer["run_id"]),
                run_id=producer["run_id"], job=producer.get("job"), time=producer.get("time"), recorded_in=producer.get("source"),
                airflow=_airflow(producer.get("parent")),
            )
            g.edge(run, snap, label, status)
            for f in entry.get("source_files") or []:
                _file(g, f.get("path"), f.get("sha256"), run)
        # Earlier landings: their own snapshots, whose rows the pinned one still holds.
        for landing in entry.get("landings") or []:
            if landing.get("snapshot_id") == sid:
                continue
            earlier = g.node(
                f"snap:{table}@{landing['snapshot_id']}", "table", table, f"@ {landing['snapshot_id']}",
                table=table, snapshot_id=landing["snapshot_id"], note=f"an earlier landing; its rows are in snapshot {sid}",
            )
            g.edge(earlier, snap, style="dashed")
            if landing.get("run_id"):
                run = g.node(f"run:{landing['run_id']}", "run", landing.get("job") or "ingest", short_run(landing["run_id"]),
                             run_id=landing["run_id"], job=landing.get("job"))
                g.edge(run, earlier)
                _file(g, landing.get("source_path"), landing.get("sha256"), run)
    return g


def _file(g: Graph, path: str | None, sha256: str | None, run: GraphNode) -> None:
    if not path and not sha256:
        return
    name = (path or "").rstrip("/").rsplit("/", 1)[-1] or "source file"
    f = g.node(f"file:{path}@{sha256}", "file", name, f"sha256 {(sha256 or '')[:12]}", path=path, sha256=sha256)
    g.edge(f, run)
