"""Automatic renewal: a candidate on new data, scored with the alias holder on one holdout, promoted or kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli, shifted_wine

pytestmark = pytest.mark.integration


# Setup runs in-process (the CLI's own tests cover those commands); the commands under test run as a user would.
def _land(settings: Any, path: Path) -> None:
    from ingest.land import land

    land(settings, str(path), "raw.wine")


def _train(settings: Any) -> None:
    from models.jobs import get_job
    from models.train import train

    train(settings, get_job("wine_classifier"))


def _consume(settings: Any) -> None:
    from lineage.consumer import consume

    consume(settings, once=True)


@pytest.fixture
def production(settings: Any, wine_csv: Path) -> Any:
    from models.promotion import promote

    _land(settings, wine_csv)
    _train(settings)
    _consume(settings)
    promote(settings, "wine", 1, "production", reason="first")
    return settings


def test_a_better_candidate_on_new_data_is_promoted_and_the_decision_is_in_lineage(production: Any, wine_csv: Path) -> None:
    _land(production, shifted_wine(wine_csv, 1.5))
    _consume(production)  # the promotion gate asks the lineage store about the landing's gate
    d = json.loads(run_cli("models", "renew", "wine@production", "--output", "json").stdout)
    assert d["promoted"] and d["holder_version"] == 1 and d["candidate_version"] == 2 and not d["reused_candidate"]
    assert d["candidate_metrics"]["accuracy"] >= d["holder_metrics"]["accuracy"] - d["threshold"]
    assert d["reason"].startswith("manual: accuracy on the shared holdout")
    _consume(production)
    st = json.loads(run_cli("models", "status", "wine", "--output", "json").stdout)
    assert st["aliases"] == {"production": 2} and st["candidates"] == []
    last = st["last_decision"]
    assert (last["candidate_version"], last["promoted"], last["run_id"]) == (2, True, d["run_id"])
    history = json.loads(run_cli("models", "history", "wine", "--alias", "production", "--output", "json").stdout)
    assert [h["version"] for h in history] == [1, 2] and "automatic renewal" in history[-1]["reason"]


def test_a_candidate_that_does_not_beat_the_holder_stays_a_candidate_with_the_reason(production: Any, wine_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _land(production, shifted_wine(wine_csv, 0.5))
    _train(production)  # e.g. the training DAG already trained on exactly this snapshot
    _consume(production)
    # Demand a candidate better by more than any accuracy can be: it must be kept, not promoted.
    monkeypatch.setenv("TIDEMARK__MODELS__PROMOTION_THRESHOLD", "-2")
    d = json.loads(run_cli("models", "renew", "wine@production", "--output", "json").stdout)
    assert not d["promoted"] and d["reused_candidate"] and d["candidate_version"] == 2
    assert "kept as a candidate" in d["reason"] and "more than the threshold -2" in d["reason"]
    _consume(production)
    st = json.loads(run_cli("models", "status", "wine", "--output", "json").stdout)
    assert st["aliases"] == {"production": 1}
    assert [c["version"] for c in st["candidates"]] == [2]
    assert st["last_decision"]["promoted"] is False and "kept as a candidate" in st["last_decision"]["reason"]
    text = run_cli("models", "status", "wine").stdout
    assert "candidate version 2" in text and "not promoted to production" in text


def test_renewal_needs_an_alias_and_a_known_model(production: Any) -> None:
    bad = run_cli("models", "renew", "wine", check=False)
    assert bad.returncode == 1 and "give NAME@ALIAS, e.g. wine@production" in bad.stderr
    unknown = run_cli("models", "renew", "nope@production", check=False)
    assert unknown.returncode == 1 and "model 'nope' is not registered" in unknown.stderr
    snap = run_cli("models", "renew", "wine@production", "--snapshot", "raw.wine=12345", check=False)
    assert snap.returncode == 1 and "raw.wine has no snapshot 12345" in snap.stderr


def test_renewal_with_nothing_new_does_nothing_and_says_so(production: Any) -> None:
    d = json.loads(run_cli("models", "renew", "wine@production", "--output", "json").stdout)
    assert d["nothing_new"] is True and d["promoted"] is False and d["candidate_version"] is None
    assert "nothing new" in d["reason"] and d["run_id"] is None
    text = run_cli("models", "renew", "wine@production").stdout
    assert text.startswith("wine@production: nothing to renew;")
    versions = json.loads(run_cli("models", "list", "wine", "--output", "json").stdout)
    assert [v["version"] for v in versions] == [1]  # no identical version trained


USER_JOBS = '''
from models.jobs import TrainingJob, holdout_wine_classifier, train_wine_classifier

def train(inputs, params):
    return train_wine_classifier(inputs, {"seed": 7, "test_size": 0.25, "C": 1.0, "max_iter": 1000, **params})

def score(estimator, inputs, params):
    return holdout_wine_classifier(estimator, inputs, {"seed": 7, "test_size": 0.25, **params})

JOB = TrainingJob(name="user_wine", model="userwine", inputs=("raw.wine",), entry_point="userjobs_r18:train",
                  params={"seed": 7, "test_size": 0.25}, primary_metric="accuracy", holdout_entry_point="userjobs_r18:score")
'''


@pytest.mark.parametrize(
    "train_args, model",
    [
        (["userjobs_r18:JOB"], "userwine"),
        (["userjobs_r18:train", "--model", "userfn", "--input", "raw.wine", "--primary-metric", "accuracy", "--holdout", "userjobs_r18:score"], "userfn"),
    ],
    ids=["job-object", "function-with-holdout"],
)
def test_a_users_job_with_a_holdout_scorer_can_be_renewed(settings: Any, wine_csv: Path, tmp_path: Path, train_args: list[str], model: str) -> None:
    import os

    (tmp_path / "userjobs_r18.py").write_text(USER_JOBS)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    _land(settings, wine_csv)
    run_cli("train", *train_args, env=env)
    _consume(settings)
    run_cli("models", "promote", model, "1", "--alias", "production", "--reason", "first", env=env)
    _land(settings, shifted_wine(wine_csv, 0.5))
    _consume(settings)
    d = json.loads(run_cli("models", "renew", f"{model}@production", "--output", "json", env=env).stdout)
    assert d["holder_version"] == 1 and d["candidate_version"] == 2 and d["primary_metric"] == "accuracy"
    assert set(d["holder_metrics"]) == {"accuracy", "f1_macro"} and d["reason"]
    mv = json.loads(run_cli("models", "show", f"{model}:2", "--output", "json", env=env).stdout)
    assert mv["entry_point"] == "userjobs_r18:train" and mv["code"]["holdout_entry_point"] == "userjobs_r18:score"


def test_a_users_function_without_a_holdout_scorer_is_refused_naming_the_flag(settings: Any, wine_csv: Path, tmp_path: Path) -> None:
    import os

    (tmp_path / "userjobs_r18.py").write_text(USER_JOBS)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    _land(settings, wine_csv)
    run_cli("train", "userjobs_r18:train", "--model", "nohold", "--input", "raw.wine", "--primary-metric", "accuracy", env=env)
    _consume(settings)
    run_cli("models", "promote", "nohold", "1", "--alias", "production", env=env)
    bad = run_cli("models", "renew", "nohold@production", check=False, env=env)
    assert bad.returncode == 1 and "no holdout scorer recorded" in bad.stderr and "--holdout module:function" in bad.stderr
    missing = run_cli("train", "userjobs_r18:train", "--model", "x", "--input", "raw.wine", "--holdout", "userjobs_r18:nope", check=False, env=env)
    assert missing.returncode == 1 and "entry point userjobs_r18:nope does not import" in missing.stderr


def test_the_gate_waits_bounded_for_the_consumer_instead_of_failing_on_a_race(production: Any, wine_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from lakehouse.config import load_settings
    from models.renewal import renew

    _land(production, shifted_wine(wine_csv, 1.5))  # its validation is still in Kafka: not consumed
    monkeypatch.setenv("TIDEMARK__MODELS__LINEAGE_WAIT_S", "1")
    short = renew(load_settings(), "wine@production")  # nobody consumes within 1 s: refused, naming the fix
    assert not short.promoted and "is not in the lineage store; run `tidemark lineage consume --once`" in short.reason

    monkeypatch.setenv("TIDEMARK__MODELS__LINEAGE_WAIT_S", "120")
    said: list[str] = []
    late = threading.Thread(target=lambda: (time.sleep(4), _consume(production)))
    late.start()
    try:
        d = renew(load_settings(), "wine@production", progress=said.append)
    finally:
        late.join()
    assert any(m.startswith("waiting up to 120 s for the lineage consumer") for m in said)
    assert not any("lineage store" in p for p in d.problems), d.problems
    assert d.reused_candidate and d.candidate_version == 2
