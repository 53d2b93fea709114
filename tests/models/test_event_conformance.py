"""The events the models package adds (retrain, archive, forced promotion) conform to OpenLineage 2-0-2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lineage.transport import InMemoryTransport
from tests.lineage.test_events import needs_spec, validate
from tests.models.conftest import land, wine_part


@needs_spec
def test_retrain_archive_and_forced_promotion_events_conform(tmp_path: Path, local_settings: Any) -> None:
    from models.jobs import get_job
    from models.pinning import archive
    from models.registry import Registry
    from models.retrain import retrain
    from models.train import train

    tr = InMemoryTransport()
    land(local_settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", tr)
    train(local_settings, get_job("wine_classifier"), transport=tr)
    train(local_settings, get_job("wine_classifier"), transport=tr)
    Registry(local_settings).promote("wine", 2, "production", reason="r", forced=True, overridden="x", transport=tr)
    archive(local_settings, "wine", 1, reason="old", transport=tr)
    retrain(local_settings, "wine@production", transport=tr)
    kinds = {(e["job"]["name"], e["eventType"]) for e in tr.events}
    assert {("retrain.wine_classifier", "COMPLETE"), ("models.archive", "COMPLETE"), ("models.promote", "COMPLETE")} <= kinds
    for event in tr.events:
        validate(event)


@needs_spec
def test_drift_check_events_conform_and_carry_quality_metrics(tmp_path: Path, local_settings: Any) -> None:
    from models.drift import check_model
    from models.jobs import get_job
    from models.train import train

    tr = InMemoryTransport()
    baseline = land(local_settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", tr)
    train(local_settings, get_job("wine_classifier"), transport=tr)
    current = land(local_settings, wine_part(tmp_path / "b.csv", 0, 178, id_offset=178, alcohol_shift_sd=2), "raw.wine", tr)
    check = check_model(local_settings, "wine", transport=tr)
    drift_events = [e for e in tr.events if e["job"]["name"] == "drift.wine"]
    assert [e["eventType"] for e in drift_events] == ["START", "COMPLETE"]
    for event in drift_events:
        validate(event)
    [table_input] = [d for d in drift_events[-1]["inputs"] if d["facets"]["datasetType"]["datasetType"] == "TABLE"]
    assert table_input["facets"]["version"]["datasetVersion"] == str(current)
    metrics = table_input["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 356 and metrics["columnMetrics"]["alcohol"]["nullCount"] == 0
    facet = table_input["inputFacets"]["tidemark_drift"]
    assert (facet["baselineSnapshotId"], facet["model"], facet["version"]) == (baseline, "wine", 1)
    assert [f["column"] for f in facet["features"] if f["drifted"]] == ["alcohol"] == check.tables[0].drifted_features


@needs_spec
def test_request_approval_and_rejection_events_conform_and_notify(tmp_path: Path, local_settings: Any) -> None:
    from lakehouse.config import load_settings
    from lineage import notifications
    from models import approvals
    from models.jobs import get_job
    from models.train import train

    alice = load_settings(overrides={"actor": {"name": "alice"}, "models": {"protected_aliases": ["production"]}})
    bob = load_settings(overrides={"actor": {"name": "bob"}, "models": {"protected_aliases": ["production"]}})
    tr = InMemoryTransport()
    land(local_settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", tr)
    train(local_settings, get_job("wine_classifier"), transport=tr)
    # Forced: the landing's validation is not in a lineage store here (no consumer runs).
    first = approvals.request(alice, "wine", 1, "production", force=True, reason="drill", transport=tr)["request_id"]
    second = approvals.request(alice, "wine", 1, "production", force=True, reason="again", transport=tr)["request_id"]
    approvals.approve(bob, "wine", first, transport=tr)
    approvals.reject(bob, "wine", second, reason="one is enough", transport=tr)
    steps = [e for e in tr.events if e["job"]["name"] in ("models.request", "models.approve", "models.reject")]
    assert [e["job"]["name"] for e in steps] == ["models.request", "models.request", "models.approve", "models.reject"]
    for event in steps:
        validate(event)
    kinds = [(n["kind"], n["actor"]) for n in map(notifications.from_event, steps) if n]
    assert kinds == [("alias_request", "alice"), ("alias_request", "alice"), ("alias_approved", "bob"), ("alias_rejected", "bob")]
    approve = steps[2]["inputs"][0]["facets"]
    assert approve["tidemark_modelAlias"]["approval"] == first and approve["tidemark_aliasRequest"]["action"] == "approve"
