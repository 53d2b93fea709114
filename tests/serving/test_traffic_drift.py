"""Drift on production traffic: the prediction log's rows against the training snapshot, with the
same statistics as data drift, on a real trained model, real Iceberg tables and real DuckDB."""

from __future__ import annotations

from typing import Any

import pytest

from tests.dags.test_dags import airflow_home, migrated_airflow_db  # noqa: F401  (fixtures)
from tests.serving.trained import Trained, served, trained, wine_rows  # noqa: F401  (fixtures)


def logged(settings: Any, rows: list[dict[str, Any]]) -> int:
    from serving.predlog import PredictionLog

    log = PredictionLog(settings, "wine", start=False)
    log.append(rows)
    report = log.close()
    assert report.snapshot_id is not None
    return report.snapshot_id


def test_traffic_like_the_training_data_is_no_drift_and_status_shows_it_beside_data_drift(served: Any, trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    from models.drift import check_traffic
    from models.status import status
    from tidemark.cli import main

    snap = logged(served, wine_rows(trained, 178))
    check = check_traffic(served, "wine@production", window="1h")
    [td] = check.tables
    assert not check.drifted, td.reasons
    assert (td.table, td.baseline_table, td.current_snapshot_id, td.rows_baseline, td.rows_current) == (
        "serving.wine_predictions", "raw.wine", snap, 178, 178,
    )
    assert sorted(f.column for f in td.features) == sorted(trained.features)
    assert all(f.psi is not None and f.psi < 0.05 for f in td.features)

    st = status(served, "wine")
    traffic = st["last_traffic_drift_check"]
    assert traffic["run_id"] == check.run_id and traffic["drifted"] is False
    assert [t["table"] for t in traffic["tables"]] == ["serving.wine_predictions"]
    assert st["last_drift_check"] is None or st["last_drift_check"]["run_id"] != check.run_id
    assert main(["models", "status", "wine"]) == 0
    out = capsys.readouterr().out
    assert f"last traffic drift check: {traffic['time']} (run {check.run_id}): no drift" in out
    assert "last drift check: never" in out


def test_shifted_traffic_drifts_on_exactly_that_feature(served: Any, trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from tidemark.cli import main

    logged(served, wine_rows(trained, 178))
    snap = logged(served, wine_rows(trained, 178, shift=2.0))
    # The second snapshot holds both batches; the window of the last hour too: half the traffic moved.
    assert main(["models", "drift", "wine@production", "--check", "--against", "serving", "--snapshot", str(snap), "--output", "json"]) == 0
    check = json.loads(capsys.readouterr().out)
    [td] = check["tables"]
    assert check["drifted"] and td["drifted_features"] == ["alcohol"], td["reasons"]
    assert td["current_snapshot_id"] == snap and td["rows_current"] == 356
    assert not any(r.startswith("row count") for r in td["reasons"])  # traffic volume is not drift
    # The stored checks of the traffic only (the data checks would be listed without --against serving).
    assert main(["models", "drift", "wine", "--against", "serving", "--output", "json"]) == 0
    stored = json.loads(capsys.readouterr().out)
    assert {r["table_name"] for r in stored} == {"serving.wine_predictions"} and stored[0]["run_id"] == check["run_id"]
    assert main(["models", "drift", "wine", "--against", "data", "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_bad_input_is_one_line(served: Any, trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    from models.drift import check_traffic
    from models.exceptions import DriftError
    from tidemark.cli import main

    with pytest.raises(DriftError, match="no prediction log"):
        check_traffic(served, "wine@production")
    snap = logged(served, wine_rows(trained, 20))
    cases = {
        ("--check", "--against", "serving", "--window", "5x"): "--window '5x' is not a duration like 30m, 1h or 7d",
        ("--check", "--window", "1h"): "--window is the span of production traffic to check; add --against serving",
        ("--against", "serving", "--window", "1h"): "add --check --against serving",
        ("--check", "--against", "serving", "--snapshot", "12"): "has no snapshot 12",
        ("--check", "--against", "serving", "--snapshot", f"x={snap}", "--snapshot", "1"): "give --snapshot once",
    }
    for flags, message in cases.items():
        assert main(["models", "drift", "wine@production", *flags]) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (flags, err)


def test_the_monitor_reports_the_alias_holders_traffic_drift(served: Any, trained: Trained) -> None:
    from lakehouse.catalog import load_catalog
    from models.exceptions import DriftError
    from models.monitor import check_traffic_of_alias_holders

    assert check_traffic_of_alias_holders(served, "wine") is None  # no prediction log yet: nothing to compare, no drift
    snap = logged(served, wine_rows(trained, 178, shift=2.0))
    found = check_traffic_of_alias_holders(served, "wine", "1h")
    assert found is not None
    current = load_catalog(served).load_table(("raw", "wine")).current_snapshot().snapshot_id
    assert (found["alias"], found["version"], found["drifted_features"]) == ("production", trained.version, ["alcohol"])
    assert (found["snapshots"], found["traffic_snapshot_id"]) == ({"raw.wine": current}, snap)
    with pytest.raises(DriftError, match="'soon' is not a duration"):
        check_traffic_of_alias_holders(served, "wine", "soon")


@pytest.mark.integration
def test_the_traffic_monitor_dag_finds_drift_and_updates_the_drift_asset(settings: Any, airflow_home: Any, wine_csv: Any) -> None:  # noqa: F811
    """The real DAG under `airflow dags test`, on a home of its own (trained, promoted, shifted traffic logged)."""
    from ingest.land import land
    from models.jobs import WINE_FEATURES, get_job
    from models.registry import Registry
    from models.train import train
    from serving.predlog import PredictionLog
    from tests.dags.test_dags import asset_events, dags_test, task_states

    land(settings, str(wine_csv), "raw.wine", data_docs=False)
    version = train(settings, get_job("wine_classifier")).version.version
    Registry(settings).promote("wine", version, "production", reason="traffic monitor test")
    # (No traffic logged is a skip: `check_traffic_of_alias_holders` returns None, tested above; one
    # `dags test` here, since each costs about a minute on this machine.)

    log = PredictionLog(settings, "wine", start=False)
    log.append(wine_rows(Trained(settings.home, {}, version, WINE_FEATURES, wine_csv), 178, shift=2.0))
    snap = log.close().snapshot_id
    run = dags_test("monitor_traffic_wine")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert task_states(airflow_home, "monitor_traffic_wine") == {"check_traffic_drift": "success"}
    [drift] = [e for e in asset_events(airflow_home) if e["uri"] == "x-tidemark://models/wine/drift"]
    assert (drift["extra"]["drifted_features"], drift["extra"]["traffic_snapshot_id"], drift["dag_id"]) == (["alcohol"], snap, "monitor_traffic_wine")
