"""Drift checks on real data (scikit-learn's wine), real Iceberg snapshots and real DuckDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lineage.transport import InMemoryTransport
from tests.models.conftest import land, wine_part


def _trained(tmp_path: Path, settings: Any, tr: Any) -> int:
    from models.jobs import get_job
    from models.train import train

    baseline = land(settings, wine_part(tmp_path / "base.csv", 0, 178), "raw.wine", tr)
    train(settings, get_job("wine_classifier"), transport=tr)
    return baseline


def test_a_shifted_feature_is_detected_on_exactly_that_feature(tmp_path: Path, local_settings: Any) -> None:
    from models.drift import check_model

    tr = InMemoryTransport()
    baseline = _trained(tmp_path, local_settings, tr)
    # The same rows landed again with new ids, alcohol moved by two standard deviations.
    current = land(local_settings, wine_part(tmp_path / "shifted.csv", 0, 178, id_offset=178, alcohol_shift_sd=2), "raw.wine", tr)
    check = check_model(local_settings, "wine", transport=tr)
    [td] = check.tables
    assert (td.baseline_snapshot_id, td.current_snapshot_id, td.rows_baseline, td.rows_current) == (baseline, current, 178, 356)
    assert check.drifted and td.drifted_features == ["alcohol"]
    alcohol = td.feature("alcohol")
    assert alcohol.psi is not None and alcohol.psi > 0.2
    assert alcohol.ks_statistic is not None and alcohol.ks_statistic > 0.3 and alcohol.ks_pvalue is not None and alcohol.ks_pvalue < 1e-6
    # Every other column is the same values twice over: identical distributions.
    assert all(f.psi == 0 and f.ks_statistic == 0 for f in td.features if f.column != "alcohol")
    assert "id" not in {f.column for f in td.features}


def test_a_reshuffle_of_the_same_rows_is_not_drift(tmp_path: Path, local_settings: Any) -> None:
    from lakehouse.catalog import load_catalog
    from models.drift import check_model

    tr = InMemoryTransport()
    _trained(tmp_path, local_settings, tr)
    table = load_catalog(local_settings).load_table(("raw", "wine"))
    rows = table.scan().to_arrow()
    # Rows in another order, as a new snapshot of the same table (Iceberg overwrite).
    table.overwrite(rows.take(list(reversed(range(rows.num_rows)))[::2] + list(reversed(range(rows.num_rows)))[1::2]))
    check = check_model(local_settings, "wine", transport=tr)
    [td] = check.tables
    assert td.current_snapshot_id != td.baseline_snapshot_id
    assert not check.drifted and td.reasons == [] and td.drifted_features == []
    assert all(f.psi == 0 and f.ks_statistic == 0 and f.ks_pvalue == 1.0 for f in td.features)


def test_category_shift_new_categories_and_missing_rate(local_settings: Any) -> None:
    import pyarrow as pa

    from lakehouse.catalog import load_catalog
    from lakehouse.tables import TableName, ensure_table
    from models.drift import compute_drift

    catalog = load_catalog(local_settings)
    data = pa.table(
        {
            "id": pa.array(range(1000), pa.int64()),
            "color": pa.array(["red", "green", "blue", "blue"] * 250),
            "size": pa.array([float(i % 50) for i in range(1000)]),
        }
    )
    table = ensure_table(catalog, TableName("raw", "things"), data.schema)
    table.append(data)
    baseline = table.current_snapshot().snapshot_id
    later = data.set_column(1, "color", pa.array(["red", "purple", "blue", None] * 250))
    table.overwrite(later)
    td = compute_drift(local_settings, "raw.things", baseline, table.current_snapshot().snapshot_id)
    color, size = td.feature("color"), td.feature("size")
    assert color.kind == "categorical" and size.kind == "numeric"
    # Shares of the non-null values: red 1/4 -> 1/3, green 1/4 -> 0, purple 0 -> 1/3, blue 1/2 -> 1/3.
    assert color.category_shift == pytest.approx(0.5 * (1 / 12 + 1 / 4 + 1 / 3 + 1 / 6))
    assert color.new_categories == ["purple"] and color.vanished_categories == ["green"]
    assert (color.missing_rate_baseline, color.missing_rate_current) == (0.0, 0.25)
    assert color.drifted and not size.drifted and td.drifted_features == ["color"]
    only = compute_drift(local_settings, "raw.things", baseline, table.current_snapshot().snapshot_id, columns=["size"])
    assert [f.column for f in only.features] == ["size"] and not only.drifted


def test_thresholds_come_from_config_and_per_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse.config import load_settings
    from lakehouse.exceptions import ConfigError
    from models.drift import DriftThresholds, thresholds_for

    (tmp_path / "tidemark.yaml").write_text("drift:\n  ks_statistic: 0.05\n  models:\n    wine: {psi: 0.3}\n")
    monkeypatch.setenv("TIDEMARK__DRIFT__ROW_COUNT_CHANGE", "2")
    settings = load_settings()
    assert thresholds_for(settings, "wine") == DriftThresholds(psi=0.3, ks_statistic=0.05, row_count_change=2.0)
    assert thresholds_for(settings, "other") == DriftThresholds(ks_statistic=0.05, row_count_change=2.0)
    monkeypatch.setenv("TIDEMARK__DRIFT__MODELS__WINE__PSI", "lots")
    with pytest.raises(ConfigError, match="drift.models.wine.psi must be a number"):
        load_settings()


def test_bad_input_errors_name_the_fix(tmp_path: Path, local_settings: Any) -> None:
    from lakehouse.catalog import load_catalog
    from lakehouse.tables import expire_snapshots
    from models.drift import check_model, compute_drift
    from models.exceptions import DriftError, ModelNotFoundError, SnapshotExpiredError
    from models.pinning import archive
    from models.registry import Registry

    tr = InMemoryTransport()
    baseline = _trained(tmp_path, local_settings, tr)
    with pytest.raises(ModelNotFoundError, match="not registered"):
        check_model(local_settings, "nosuch", transport=tr)
    with pytest.raises(ModelNotFoundError, match="no alias 'production'; set it with"):
        check_model(local_settings, "wine@production", transport=tr)
    # Errors about a value the caller passed name its parameter (the CLI says --snapshot instead).
    with pytest.raises(DriftError, match="raw.wine has no snapshot 123") as err:
        check_model(local_settings, "wine", {"raw.wine": 123}, transport=tr)
    assert err.value.parameter == "snapshots"
    with pytest.raises(DriftError, match="snapshots raw.other: not an input of wine:1") as err:
        check_model(local_settings, "wine", {"raw.other": 1}, transport=tr)
    assert err.value.parameter == "snapshots"
    with pytest.raises(DriftError, match="no column nope") as err:
        compute_drift(local_settings, "raw.wine", baseline, baseline, columns=["nope"])
    assert err.value.parameter == "columns"
    with pytest.raises(DriftError, match="raw.wine has no snapshot 7 \\(the current snapshot\\)") as err:
        compute_drift(local_settings, "raw.wine", baseline, 7)
    assert err.value.parameter == "current_snapshot_id"
    # Version 2 takes the alias; version 1 is archived (its pin released) and its baseline expired.
    land(local_settings, wine_part(tmp_path / "more.csv", 0, 178, id_offset=178), "raw.wine", tr)
    from models.jobs import get_job
    from models.train import train

    train(local_settings, get_job("wine_classifier"), transport=tr)
    Registry(local_settings).promote("wine", 2, "production", transport=tr)
    archive(local_settings, "wine", 1, transport=tr)
    table = load_catalog(local_settings).load_table(("raw", "wine"))
    import time

    expire_snapshots(table, int(time.time() * 1000) + 1)
    with pytest.raises(SnapshotExpiredError, match="was expired; pinning keeps it"):
        check_model(local_settings, "wine:1", transport=tr)


def test_consumer_fills_lineage_drift_from_drift_check_events(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A drift check's events alone (consumed into another home) rebuild its `lineage.drift` rows."""
    from lakehouse.config import load_settings
    from lineage.query import run_sql
    from models.drift import check_model
    from models.jobs import get_job
    from models.train import train
    from lineage.consumer import consume

    land(settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", None)
    train(settings, get_job("wine_classifier"))
    land(settings, wine_part(tmp_path / "b.csv", 0, 178, id_offset=178, alcohol_shift_sd=2), "raw.wine", None)
    check = check_model(settings, "wine")
    monkeypatch.setenv("TIDEMARK_HOME", str(tmp_path / "other-home"))
    elsewhere = load_settings()
    report = consume(elsewhere, once=True)
    assert report.drift_rows == 14  # the 14 wine columns but id
    rows = run_sql(
        elsewhere, "SELECT column_name, drifted, run_id, current_snapshot_id FROM lineage.drift WHERE drifted ORDER BY 1"
    ).to_pylist()
    assert rows == [{"column_name": "alcohol", "drifted": True, "run_id": check.run_id, "current_snapshot_id": check.tables[0].current_snapshot_id}]
    assert consume(elsewhere, once=True).drift_rows == 0  # replay adds nothing


def test_status_shows_a_check_at_once_and_row_count_and_schema_changes_are_drift(tmp_path: Path, local_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`models status` right after a check, with no consumer run: the check is there. The same rows
    landed again (178 -> 356) is drift by row count alone; a new column is drift by schema."""
    from models.drift import check_model
    from models.promotion import promote
    from models.status import status

    tr = InMemoryTransport()
    _trained(tmp_path, local_settings, tr)
    promote(local_settings, "wine", 1, "production", reason="first", force=True, transport=tr)
    land(local_settings, wine_part(tmp_path / "again.csv", 0, 178, id_offset=178), "raw.wine", tr)
    check = check_model(local_settings, "wine@production", transport=tr)
    [td] = check.tables
    assert check.drifted and td.drifted_features == [] and td.reasons == ["row count 178 -> 356 (+100%, threshold 50%)"]
    st = status(local_settings, "wine")["last_drift_check"]
    assert st is not None and st["run_id"] == check.run_id and st["drifted"] is True
    [t] = st["tables"]
    assert (t["rows_baseline"], t["rows_current"], t["drifted"]) == (178, 356, True)
    assert t["reasons"] == ["row count 178 -> 356 (+100%, threshold 50%)"]

    # A new column, with a row-count threshold that lets the growth pass: drift by schema alone.
    monkeypatch.setenv("TIDEMARK__DRIFT__ROW_COUNT_CHANGE", "5")
    from lakehouse.config import load_settings

    settings = load_settings()
    land(settings, wine_part(tmp_path / "wider.csv", 0, 10, id_offset=400, extra_column="region"), "raw.wine", tr)
    check = check_model(settings, "wine@production", transport=tr)
    [td] = check.tables
    assert check.drifted and td.drifted_features == ["region"] and td.feature("region").kind == "schema"
    assert td.reasons == ["region: column added (1 schema change(s), threshold 0)"]
    t = status(settings, "wine")["last_drift_check"]["tables"][0]
    assert t["schema_changes"] == ["region"] and t["drifted"] and t["reasons"] == td.reasons
    # Its own threshold: one changed column allowed, no drift.
    monkeypatch.setenv("TIDEMARK__DRIFT__SCHEMA_CHANGES", "1")
    check = check_model(load_settings(), "wine@production", transport=tr)
    assert not check.drifted and check.tables[0].feature("region").reasons
