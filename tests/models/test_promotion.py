"""Promotion refuses incomplete lineage and worse metrics, with the reason; --force records why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lineage.consumer import consume
from lineage.transport import KafkaTransport
from models.exceptions import PromotionRefusedError
from models.jobs import Trained, _features, get_job, resolve_job
from models.promotion import lineage_problems, promote
from models.registry import InputSnapshot, Registry
from models.train import train
from tests.models.conftest import land, wine_part

pytestmark = pytest.mark.integration


def train_any(inputs: dict[str, Any], params: dict[str, Any]) -> Trained:
    """A user job reading whichever single table it is given."""
    from sklearn.dummy import DummyClassifier

    X, y = _features(next(iter(inputs.values())), "target")
    model = DummyClassifier(strategy="most_frequent").fit(X, y)
    return Trained(model, {"accuracy": float(model.score(X, y))})


def test_gate_on_lineage_and_metric_with_a_recorded_override(tmp_path: Path, settings: Any) -> None:
    tr = KafkaTransport(settings)
    try:
        land(settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", tr)
        job = get_job("wine_classifier")
        good = train(settings, job, transport=tr).version
        worse = train(settings, job, params={**job.params, "C": 0.0001}, transport=tr).version
        assert worse.metrics["accuracy"] < good.metrics["accuracy"] - 0.01

        # The landing's validation is not in the lineage store yet: lineage incomplete.
        with pytest.raises(PromotionRefusedError, match="is not in the lineage store; run `tidemark lineage consume --once`"):
            promote(settings, "wine", good.version, "production", transport=tr)
        consume(settings, once=True)
        move = promote(settings, "wine", good.version, "production", reason="first", transport=tr)
        assert move["forced"] is False and move["checks"]["problems"] == []

        with pytest.raises(PromotionRefusedError) as err:
            promote(settings, "wine", worse.version, "production", transport=tr)
        assert "accuracy" in str(err.value) and "more than the threshold 0.01" in str(err.value)
        assert "Fix that, or pass force with a reason" in str(err.value) and err.value.parameter == "force"
        with pytest.raises(PromotionRefusedError, match="force needs reason") as err:
            promote(settings, "wine", worse.version, "production", force=True, transport=tr)
        assert err.value.parameter == "reason"
        forced = promote(settings, "wine", worse.version, "production", force=True, reason="rollback drill", transport=tr)
        assert forced["forced"] is True and "accuracy" in forced["overridden"]
    finally:
        tr.close()
    reg = Registry(settings)
    last = reg.alias_history("wine")[-1]
    assert (last["version"], last["forced"], last["reason"]) == (worse.version, True, "rollback drill")
    assert "accuracy" in last["overridden"]
    assert reg.resolve("wine@production").version == worse.version


def test_quarantined_and_ungated_snapshots_and_missing_snapshot_ids_are_refused(tmp_path: Path, settings: Any) -> None:
    from ingest.exceptions import GateFailedError
    from ingest.land import land as land_file
    from lakehouse.catalog import load_catalog

    tr = KafkaTransport(settings)
    try:
        land(settings, wine_part(tmp_path / "a.csv", 0, 100), "raw.wine", tr)
        bad = wine_part(tmp_path / "bad.csv", 100, 178, id_offset=500, alcohol=99.5)  # out of range: the gate fails
        with pytest.raises(GateFailedError):
            land_file(settings, str(bad), "raw.wine", transport=tr)
        table = load_catalog(settings).load_table(("raw", "wine"))
        (quarantine,) = [r.snapshot_id for n, r in table.metadata.refs.items() if n.startswith("quarantine-")]
        q = train(settings, get_job("wine_classifier"), snapshots={"raw.wine": quarantine}, transport=tr).version

        land_file(settings, str(wine_part(tmp_path / "plain.csv", 0, 178)), "raw.plain", transport=tr)  # no suite
        plain_job = resolve_job(f"{__name__}:train_any", model="plain", inputs=["raw.plain"])
        plain = train(settings, plain_job, transport=tr).version
        consume(settings, once=True)

        with pytest.raises(PromotionRefusedError, match=f"snapshot {quarantine} of raw.wine never passed its gate"):
            promote(settings, "wine", q.version, "production", transport=tr)
        with pytest.raises(PromotionRefusedError, match="of raw.plain was landed without a validation gate"):
            promote(settings, "plain", plain.version, "production", transport=tr)
    finally:
        tr.close()
    reg = Registry(settings)
    nosnap = reg.register(
        model="m", run_id="r", job_name="j", entry_point="x:y", artifact_uri="u", sha256="s", metrics={},
        inputs=[InputSnapshot("raw.wine", None)], parameters={},
    )
    assert lineage_problems(settings, nosnap) == ["input raw.wine has no snapshot id"]
