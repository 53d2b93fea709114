"""Lineage search counts what a walk can reach: a refused alias move (issue 16) is no hit and no run."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lakehouse.catalog import load_catalog
from lineage import events as ev
from lineage import model_store
from lineage.consumer import ConsumeReport, LineageWriter
from lineage.graph import Node, connect_for_walk, walk
from lineage.search import find

pytestmark = pytest.mark.integration

TRAIN = "a1000000-0000-4000-8000-000000000001"
FORGED = "f1000000-0000-4000-8000-000000000001"


def _model(version: str, **facets: Any) -> dict[str, Any]:
    return ev.model_dataset(producer="t", namespace="tidemark://registry", name="wine", version=version, extra_facets=facets)


def _event(run_id: str, job: str, minute: int, inputs: list[Any], outputs: list[Any]) -> bytes:
    return json.dumps(ev.run_event(producer="t", event_type="COMPLETE", run_id=run_id, job_namespace="t", job_name=job,
                                   inputs=inputs, outputs=outputs, event_time=f"2026-11-20T10:{minute:02d}:00Z")).encode()


def test_search_counts_no_run_of_a_refused_move(settings: Any) -> None:
    """A forged, unsigned move of wine to a version the registry never had is stored (the store is an
    honest log) and refused (`lineage.rejected_moves`); the walk leaves it out, and so must search:
    model wine was made by one run, and the forged promote job is found nowhere."""
    honest = _event(TRAIN, "train.wine", 0, [{"namespace": "file", "name": "/data/wine.csv"}], [_model("1")])
    forged = _event(FORGED, "models.promote", 5, [_model("99", **{model_store.ALIAS_FACET: {"alias": "production", "action": "set"}})], [])
    LineageWriter(settings, load_catalog(settings)).write_columns([0, 0], [0, 1], [honest, forged], ConsumeReport())
    assert [r["run_id"] for r in model_store.rejected_moves(load_catalog(settings), settings, "wine")] == [FORGED]

    con = connect_for_walk(settings)
    assert {r["run_id"] for r in walk(con, Node.parse("model:wine"), "upstream", 2, settings.lineage.namespace)} == {TRAIN}
    hits = {(h["kind"], h["node"]): h["runs"] for h in find(con, "wine", ns=settings.lineage.namespace)}
    assert hits == {("model", "model:wine"): 1, ("job", "job:train.wine"): 1, ("dataset", "dataset:file:/data/wine.csv"): 1}
    assert find(con, "promote", ns=settings.lineage.namespace) == []
    assert find(con, FORGED[:12], ns=settings.lineage.namespace) == []
    assert [h["node"] for h in find(con, TRAIN[:12], ns=settings.lineage.namespace)] == [f"run:{TRAIN}"]
