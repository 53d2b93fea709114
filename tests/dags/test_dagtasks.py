"""The functions the DAG tasks call, without a scheduler: config errors, params, asset events, lag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lakehouse.exceptions import TidemarkError
from tests.conftest import ROOT, run_cli
from tidemark import dagtasks
from tidemark.exceptions import DagConfigError, LineageStalledError


def test_the_shipped_sources_file_names_one_dag_per_source() -> None:
    sources = dagtasks.load_sources(ROOT / "dags" / "sources.yaml")
    assert {(s.dag_id, s.table) for s in sources} == {("ingest_wine", "raw.wine"), ("ingest_diabetes", "raw.diabetes")}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: [a, b]", "expected a top-level `sources:` mapping"),
        ("sources:\n  Bad-Name: {table: raw.x, location: /x}", "must be lower-case letters"),
        ("sources:\n  x: {table: raw.x}", "needs `table: NS.TABLE` and `location: PATH_OR_GLOB`"),
        ("sources:\n  x: {table: raw.x, location: /x, scheduel: '@daily'}", "unknown key(s) scheduel"),
        ("sources:\n  x: {table: 'raw', location: /x}", "source 'x'"),
        ("sources: {x: [", "not valid YAML"),
    ],
)
def test_a_bad_sources_file_is_named_with_the_fix(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "sources.yaml"
    f.write_text(text)
    with pytest.raises(DagConfigError) as err:
        dagtasks.load_sources(f)
    assert message in str(err.value) and str(f) in str(err.value)


def test_a_missing_sources_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(DagConfigError, match="no sources file"):
        dagtasks.load_sources(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"model": "wine"}, ("wine", None)),
        ({"model": "wine", "version": 3}, ("wine:3", None)),
        ({"model": "wine", "alias": "production", "as_of": "2026-03-01T00:00:00Z"}, ("wine@production", "2026-03-01T00:00:00Z")),
    ],
)
def test_retrain_params_become_a_model_reference(params: dict[str, Any], expected: tuple[str, Any]) -> None:
    assert dagtasks.retrain_ref(params) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "param `model` is required"),
        ({"model": "wine", "version": 2, "alias": "production"}, "either param `version` or param `alias`"),
        ({"model": "wine", "version": "two"}, "must be a whole number"),
        ({"model": "wine", "as_of": "last tuesday"}, "last tuesday"),
    ],
)
def test_bad_retrain_params_fail_with_the_reason(params: dict[str, Any], message: str) -> None:
    with pytest.raises(TidemarkError, match=message):
        dagtasks.retrain_ref(params)


def test_training_uses_the_newest_asset_event_of_each_input_and_refuses_a_missing_one() -> None:
    events = {dagtasks.asset_uri("raw.a"): [{"snapshot_id": 1}, {"snapshot_id": 2}], dagtasks.asset_uri("raw.b"): [{"snapshot_id": 9}]}
    assert dagtasks.snapshots_from_asset_events(["raw.a", "raw.b"], events) == {"raw.a": 2, "raw.b": 9}
    with pytest.raises(DagConfigError, match=r"no asset event with a snapshot id for raw.c; run its ingest DAG first"):
        dagtasks.snapshots_from_asset_events(["raw.a", "raw.c"], {**events, dagtasks.asset_uri("raw.c"): [{}]})


@pytest.mark.integration
def test_a_failed_gate_cannot_be_published_and_quarantine_keeps_main(settings: Any, wine_csv: Path) -> None:
    from ingest.exceptions import GateFailedError
    from ingest.land import land, publish_audited
    from lakehouse.catalog import load_catalog

    land(settings, str(wine_csv), "raw.wine")
    main = load_catalog(settings).load_table(("raw", "wine")).current_snapshot().snapshot_id
    bad = wine_csv.with_name("bad.csv")
    header, *rows = wine_csv.read_text().splitlines()
    # New ids, and a target outside the suite's value set {0, 1, 2}.
    bad.write_text("\n".join([header, *(f"{5000 + i}," + r.split(",", 1)[1].rsplit(",", 1)[0] + ",7" for i, r in enumerate(rows))]) + "\n")
    staged = dagtasks.land_source(settings, dagtasks.SourceConfig(name="w", table="raw.wine", location=str(bad)))
    decision = dagtasks.validate_staged(settings, "raw.wine", staged)
    assert decision["publish"] == [] and decision["quarantine"] == [staged[0]["branch"]]
    with pytest.raises(TidemarkError, match="the gate failed"):
        publish_audited(settings, "raw.wine", staged[0]["branch"])
    assert dagtasks.publish_staged(settings, decision) is None
    with pytest.raises(GateFailedError, match="validation gate failed for raw.wine"):
        dagtasks.quarantine_staged(settings, decision)
    table = load_catalog(settings).load_table(("raw", "wine"))
    assert table.current_snapshot().snapshot_id == main
    assert staged[0]["branch"] not in table.metadata.refs
    assert "quarantine-" + staged[0]["branch"].removeprefix("audit-") in table.metadata.refs


@pytest.mark.integration
def test_consumer_lag_fails_loudly_when_events_wait_and_passes_once_stored(settings: Any, wine_csv: Path) -> None:
    from lineage.consumer import consume

    run_cli("up")
    run_cli("ingest", str(wine_csv), "--table", "raw.wine")  # START and COMPLETE wait in the topic
    with pytest.raises(LineageStalledError, match=r"lineage consumer stalled: 2 record\(s\) in topic"):
        dagtasks.consumer_lag(settings, max_age_s=0)
    assert dagtasks.consumer_lag(settings, max_age_s=3600)["lag"] == 2  # waiting, but not for long
    consume(settings, once=True)
    report = dagtasks.consumer_lag(settings, max_age_s=0)
    assert report["lag"] == 0 and report["outbox_pending"] == 0
