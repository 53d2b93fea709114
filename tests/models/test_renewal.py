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
