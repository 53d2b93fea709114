"""Retrain reads exactly the recorded snapshots, whatever happened to the table since, and says what differs."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from lakehouse.catalog import load_catalog
from lineage import events as ev
from models.exceptions import ModelNotFoundError, ReproduceError, TableDroppedError
from models.jobs import get_job, resolve_job
from models.retrain import retrain
from models.train import train
from tests.models.conftest import land, wine_part


def test_retrain_after_new_data_schema_evolution_and_compaction(tmp_path: Path, local_settings: Any, transport: Any) -> None:
    s = local_settings
    s1 = land(s, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", transport)
    mv = train(s, get_job("wine_classifier"), transport=transport).version
    after_v1 = datetime.now(timezone.utc)
    time.sleep(0.01)
    # Newer rows with a new column (the schema evolves), then a compaction rewrites every data file.
    land(s, wine_part(tmp_path / "b.csv", 0, 50, id_offset=1000, extra_column="batch"), "raw.wine", transport)
    table = load_catalog(s).load_table(("raw", "wine"))
    assert "batch" in table.schema().column_names
    table.overwrite(table.scan().to_arrow())
    table = load_catalog(s).load_table(("raw", "wine"))
    assert table.scan().to_arrow().num_rows == 228

    transport.events.clear()
    report = retrain(s, "wine", transport=transport)
    assert report.identical, report.to_json()
    (inp,) = report.inputs
    assert (inp.snapshot_id, inp.rows, inp.fingerprint) == (s1, 178, mv.inputs[0].fingerprint)
    assert report.metrics == {
        k: {"old": v, "new": v, "delta": 0.0, "tolerance": 0.01, "within_tolerance": True} for k, v in mv.metrics.items()
    }
    assert report.verdict == "reproduced" and report.causes == []
    assert report.to_json()["identical"] is True and report.new_sha256 == mv.sha256

    # The retrain is a run of its own: the same snapshot as input, and a link to the run it reproduces.
    complete = [e for e in transport.events if e["eventType"] == "COMPLETE"][-1]
    assert complete["job"]["name"] == "retrain.wine_classifier"
    assert [ev.dataset_version(d) for d in complete["inputs"]] == [str(s1)]
    assert complete["run"]["facets"]["tidemark_reproduces"]["runId"] == mv.run_id
    assert complete["run"]["facets"]["tidemark_retrainResult"]["identical"] is True

    # --as-of: the snapshot current then is the recorded one; now it is the compacted one, other data.
    assert retrain(s, "wine:1", as_of=after_v1, transport=transport).identical
    now = retrain(s, "wine:1", as_of=datetime.now(timezone.utc), transport=transport)
    assert now.inputs[0].snapshot_id == table.current_snapshot().snapshot_id
    assert now.inputs[0].rows == 228 and not now.data_identical and not now.identical
    assert now.to_json()["identical"] is False
    with pytest.raises(ReproduceError, match="raw.wine had no snapshot at 2000-01-01"):
        retrain(s, "wine:1", as_of="2000-01-01T00:00:00Z", transport=transport)


def test_regressor_is_deterministic_and_declares_a_lower_is_better_metric(
    tmp_path: Path, local_settings: Any, transport: Any
) -> None:
    from tidemark.demo import write_diabetes_csv

    land(local_settings, write_diabetes_csv(tmp_path / "diabetes.csv"), "raw.diabetes", transport)
    job = get_job("diabetes_regressor")
    a = train(local_settings, job, transport=transport).version
    b = train(local_settings, job, transport=transport).version
    assert (a.metric_goal, a.primary_metric) == ("min", "rmse")
    assert a.metrics == b.metrics and a.sha256 == b.sha256 and a.metrics["r2"] > 0.3
    assert retrain(local_settings, "diabetes:1", transport=transport).identical


_USER_JOB = '''
from models.jobs import Trained, _features


def train(inputs, params):
    from sklearn.tree import DecisionTreeClassifier

    X, y = _features(inputs["raw.wine"], "target")
    model = DecisionTreeClassifier(max_depth=int(params["depth"]), random_state=0).fit(X, y)
    return Trained(estimator=model, metrics={"train_accuracy": float(model.score(X, y))})
'''


def test_user_entry_point_code_change_and_removal(
    tmp_path: Path, local_settings: Any, transport: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "userjobs_a1"
    pkg.mkdir()
    module = pkg / "myjob.py"
    module.write_text(_USER_JOB)
    (pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    land(local_settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", transport)
    job = resolve_job("userjobs_a1.myjob:train", model="tree", inputs=["raw.wine"])
    mv = train(local_settings, job, params={"depth": 3}, transport=transport).version
    assert mv.code and mv.code["entry_point"] == "userjobs_a1.myjob:train" and mv.code["git_commit"] is None  # not in a repo
    assert len(mv.code["source_sha256"]) == 64
    assert retrain(local_settings, "tree", transport=transport).identical

    # Same data, changed source: the report names the code difference; data and metrics still match.
    module.write_text(_USER_JOB + "\n# tuned nothing, but the source differs\n")
    sys.modules.pop("userjobs_a1.myjob", None)
    report = retrain(local_settings, "tree:1", transport=transport)
    assert report.data_identical and report.metrics_identical and report.artifact_identical
    assert not report.code_identical and not report.identical
    assert any("source of userjobs_a1.myjob changed" in d for d in report.code_differences)

    module.unlink()
    sys.modules.pop("userjobs_a1.myjob", None)
    with pytest.raises(ReproduceError, match=r"cannot retrain tree:1: entry point userjobs_a1.myjob:train does not import"):
        retrain(local_settings, "tree:1", transport=transport)


def test_clear_errors_for_unknown_refs_and_a_dropped_table(tmp_path: Path, local_settings: Any, transport: Any) -> None:
    with pytest.raises(ModelNotFoundError, match="model 'nope' is not registered"):
        retrain(local_settings, "nope", transport=transport)
    land(local_settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", transport)
    train(local_settings, get_job("wine_classifier"), transport=transport)
    with pytest.raises(ModelNotFoundError, match="model wine has no version 4; versions: 1"):
        retrain(local_settings, "wine:4", transport=transport)
    with pytest.raises(ModelNotFoundError, match="model wine has no alias 'production'"):
        retrain(local_settings, "wine@production", transport=transport)
    load_catalog(local_settings).drop_table(("raw", "wine"))
    with pytest.raises(TableDroppedError, match="table raw.wine, an input of wine:1, no longer exists \\(dropped\\)"):
        retrain(local_settings, "wine", transport=transport)
