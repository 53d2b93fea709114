"""`tidemark lineage columns` and the features in `tidemark trace`, end to end through Kafka."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.jobs import WINE_FEATURES
from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def test_model_features_walk_back_to_the_file_columns(kafka_env: str, wine_csv: Path) -> None:
    landed = json.loads(run_cli("ingest", str(wine_csv), "--table", "raw.wine", "--output", "json").stdout)
    snap = str((landed[0] if isinstance(landed, list) else landed)["snapshot_id"])
    run_cli("train", "wine_classifier")
    run_cli("lineage", "consume", "--once")

    up = json.loads(run_cli("lineage", "columns", "model:wine:1#alcohol", "--output", "json").stdout)
    edges = {(r["depth"], r["output_dataset"], r["output_field"], r["output_version"], r["input_dataset"], r["input_field"], r["input_version"]) for r in up}
    assert (1, "wine", "alcohol", "1", "raw.wine", "alcohol", snap) in edges
    assert any(d == 2 and o == "raw.wine" and f == "alcohol" and v == snap and i == str(wine_csv) and c == "alcohol" for d, o, f, v, i, c, _ in edges)
    # The target is a dependency of the whole model: an INDIRECT edge into every feature.
    assert any(r["input_field"] == "target" and r["transformation_type"] == "INDIRECT" for r in up)
    # Depth 1 stops at the table.
    assert {r["depth"] for r in json.loads(run_cli("lineage", "columns", "model:wine:1#alcohol", "--depth", "1", "--output", "json").stdout)} == {1}

    down = run_cli("lineage", "columns", f"raw.wine.alcohol@{snap}", "--downstream").stdout
    assert f"[1] raw.wine.alcohol @ {snap} -> wine.alcohol @ 1  DIRECT/IDENTITY" in down
    text = run_cli("lineage", "columns", "raw.wine.alcohol").stdout
    assert f"[1] raw.wine.alcohol @ {snap} <- {wine_csv}.alcohol @ " in text

    trace = json.loads(run_cli("trace", "wine:1", "--output", "json").stdout)
    assert [f["feature"] for f in trace["features"]] == sorted(WINE_FEATURES)  # by name
    alcohol = next(f for f in trace["features"] if f["feature"] == "alcohol")
    [col] = alcohol["columns"]
    assert [(c["column"], c["transformation"]["subtype"]) for c in alcohol["indirect"]] == [("target", "TARGET")]
    assert (col["dataset"], col["column"], col["version"]) == ("raw.wine", "alcohol", snap)
    assert [(s["dataset"], s["column"]) for s in col["from"]] == [(str(wine_csv), "alcohol")]
    trace_text = run_cli("trace", "wine:1").stdout
    assert f"    alcohol <- raw.wine.alcohol @ {snap}" in trace_text
    assert f"        <- {wine_csv}.alcohol (DIRECT/IDENTITY; run " in trace_text
    assert f"    every feature also depends on raw.wine.target @ {snap} (INDIRECT/TARGET)" in trace_text


def test_columns_errors_are_one_line(kafka_env: str) -> None:
    bad = run_cli("lineage", "columns", "raw.wine", check=False)
    assert bad.returncode != 0 and "'raw.wine' is not a column; write NS.TABLE.COLUMN" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    missing = run_cli("lineage", "columns", "raw.nothing.here", check=False)
    assert missing.returncode != 0 and "no column lineage in the store for table raw.nothing.here" in missing.stderr
    both = run_cli("lineage", "columns", "raw.a.b", "--upstream", "--downstream", check=False)
    assert both.returncode == 2
