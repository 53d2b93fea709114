"""The registry and reproduce commands through the real CLI, broker, catalog and DuckDB."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.tidemark.test_cli import _one_line_error

pytestmark = pytest.mark.integration


def test_train_promote_history_sql_and_retrain(kafka_env: str, wine_csv: Path) -> None:
    landed = json.loads(run_cli("ingest", str(wine_csv), "--table", "raw.wine", "--output", "json").stdout)
    run_cli("train", "wine_classifier")
    run_cli("train", "wine_classifier", "--param", "C=0.5")
    run_cli("lineage", "consume", "--once")
    run_cli("models", "promote", "wine", "1", "--alias", "production", "--reason", "first")
    between = datetime.now(timezone.utc).isoformat()
    time.sleep(0.05)
    run_cli("models", "promote", "wine", "2", "--alias", "production", "--reason", "second")
    run_cli("lineage", "consume", "--once")

    hist = json.loads(run_cli("models", "history", "wine", "--output", "json").stdout)
    assert [(h["alias"], h["version"], h["reason"], h["valid_to"] is None) for h in hist] == [
        ("production", 1, "first", False),
        ("production", 2, "second", True),
    ]
    assert hist[0]["valid_to"] == hist[1]["valid_from"]
    text = run_cli("models", "history", "wine").stdout
    assert "production" in text and "(now)" in text

    at = json.loads(run_cli("models", "history", "wine", "--alias", "production", "--at", between, "--output", "json").stdout)
    assert [(r["version"], r["input_table"], r["snapshot_id"], r["rows"]) for r in at] == [
        (1, "raw.wine", str(landed["snapshot_id"]), 178)
    ]
    # The same question in plain SQL over the registry tables, as the README shows it.
    sql = f"""
        WITH spans AS (
          SELECT model, alias, version, event_time AS valid_from,
                 lead(event_time) OVER (PARTITION BY model, alias ORDER BY event_time) AS valid_to
          FROM lineage.model_alias_events WHERE action = 'set')
        SELECT s.version, json_extract_string(i.value, '$.table') AS input_table,
               json_extract_string(i.value, '$.snapshot_id') AS snapshot_id
        FROM spans s JOIN lineage.model_versions v USING (model, version), json_each(v.inputs) AS i
        WHERE s.model = 'wine' AND s.alias = 'production'
          AND s.valid_from <= TIMESTAMPTZ '{between}' AND (s.valid_to IS NULL OR s.valid_to > TIMESTAMPTZ '{between}')
    """
    rows = json.loads(run_cli("sql", sql, "--output", "json").stdout)
    assert rows == [{"version": 1, "input_table": "raw.wine", "snapshot_id": str(landed["snapshot_id"])}]

    report = json.loads(run_cli("retrain", "wine@production", "--output", "json").stdout)
    assert report["identical"] is True and report["version"] == 2
    assert report["verdict"] == "reproduced" and report["causes"] == [] and report["environment"]["ran"] == {"kind": "current"}
    assert report["data"]["inputs"][0]["snapshot_id"] == landed["snapshot_id"]
    assert all(m["delta"] == 0 for m in report["metrics"]["values"].values())
    text = run_cli("retrain", "wine:1").stdout
    for line in (
        "data         identical", "code         identical", "packages     identical", "platform     identical",
        "metrics      identical", "verdict: reproduced", "identical: yes",
    ):
        assert line in text

    # The retrain runs are in lineage, linked to the run they reproduce and to the same snapshot.
    run_cli("lineage", "consume", "--once")
    linked = json.loads(
        run_cli(
            "sql",
            "SELECT e.payload::JSON->'run'->'facets'->'tidemark_reproduces'->>'runId' AS reproduces, d.version "
            "FROM lineage.events e JOIN lineage.run_datasets d USING (event_id) "
            "WHERE e.job_name = 'retrain.wine_classifier' AND e.event_type = 'COMPLETE' AND d.direction = 'input' ORDER BY e.event_time",
            "--output",
            "json",
        ).stdout
    )
    versions = json.loads(run_cli("models", "list", "wine", "--output", "json").stdout)
    assert [r["reproduces"] for r in linked] == [versions[1]["run_id"], versions[0]["run_id"]]
    assert {r["version"] for r in linked} == {str(landed["snapshot_id"])}


def test_models_and_retrain_errors_are_one_line(kafka_env: str, wine_csv: Path, tmp_path: Path) -> None:
    assert "model 'ghost' is not registered" in _one_line_error(run_cli("retrain", "ghost", check=False))
    run_cli("ingest", str(wine_csv), "--table", "raw.wine")
    run_cli("train", "wine_classifier")
    assert "model wine has no version 3; versions: 1" in _one_line_error(run_cli("retrain", "wine:3", check=False))
    assert "has no alias 'staging'" in _one_line_error(run_cli("retrain", "wine@staging", check=False))
    assert "--as-of 'yesterday-ish' is not an ISO-8601 time" in _one_line_error(run_cli("retrain", "wine", "--as-of", "yesterday-ish", check=False))
    line = _one_line_error(run_cli("models", "promote", "wine", "1", "--alias", "production", check=False))
    assert "refusing to promote wine:1 to production" in line and "tidemark lineage consume --once" in line
    line = _one_line_error(run_cli("train", "nosuchpkg.mod:fn", "--model", "x", "--input", "raw.wine", check=False))
    assert "entry point nosuchpkg.mod:fn does not import" in line
    line = _one_line_error(run_cli("train", "models.jobs:train_wine_classifier", check=False))
    assert "models.jobs:train_wine_classifier is a function: pass --model (the name it registers) and inputs" in line
    archived = json.loads(run_cli("models", "archive", "wine", "1", "--reason", "gone", "--output", "json").stdout)
    assert archived["released"] == ["raw.wine:model/wine/1"]
    assert "archived" in run_cli("models", "list", "wine").stdout


def test_models_drift_check_history_plot_and_errors(kafka_env: str, wine_csv: Path, tmp_path: Path) -> None:
    from tests.models.conftest import wine_part

    run_cli("ingest", str(wine_csv), "--table", "raw.wine")
    run_cli("train", "wine_classifier")
    run_cli("lineage", "consume", "--once")
    run_cli("models", "promote", "wine", "1", "--alias", "production", "--reason", "first")
    shifted = wine_part(tmp_path / "shifted.csv", 0, 178, id_offset=178, alcohol_shift_sd=2)
    landed = json.loads(run_cli("ingest", str(shifted), "--table", "raw.wine", "--output", "json").stdout)
    check = json.loads(run_cli("models", "drift", "wine@production", "--check", "--output", "json").stdout)
    assert check["drifted"] and check["alias"] == "production" and check["version"] == 1
    [table] = check["tables"]
    assert table["current_snapshot_id"] == landed["snapshot_id"] and table["drifted_features"] == ["alcohol"]

    plot = tmp_path / "drift.svg"
    text = run_cli("models", "drift", "wine@production", "--plot", str(plot)).stdout
    [flagged] = [line for line in text.splitlines() if "DRIFTED" in line]
    assert " alcohol " in flagged and str(landed["snapshot_id"]) in flagged
    svg = plot.read_text()
    # One panel per feature, titled with its name; the drifted one first (panel order is text order).
    assert "<svg" in svg and svg.count("raw.wine.") >= 14
    assert svg.index("raw.wine.alcohol  DRIFTED") < min(svg.index(f"raw.wine.{c}") for c in ("ash", "hue", "proline"))
    png = tmp_path / "drift.png"
    run_cli("models", "drift", "wine@production", "--plot", str(png))
    assert png.read_bytes()[:4] == b"\x89PNG"
    rows = json.loads(run_cli("models", "drift", "wine", "--output", "json").stdout)
    assert len(rows) == 14 and [r["column_name"] for r in rows if r["drifted"]] == ["alcohol"]
    assert {r["run_id"] for r in rows} == {check["run_id"]}

    for argv, expected in (
        (("models", "drift", "nosuch", "--check"), "model 'nosuch' is not registered"),
        (("models", "drift", "wine@staging"), "model wine has no alias 'staging'"),
        (("models", "drift", "wine", "--check", "--snapshot", "raw.wine=42"), "raw.wine has no snapshot 42"),
        (("models", "drift", "wine", "--plot", "x.pdf"), "name the file FILE.svg or FILE.png"),
    ):
        assert expected in _one_line_error(run_cli(*argv, check=False))
