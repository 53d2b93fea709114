"""Feeds: the feeds file's errors, and a feed landed step by step as the ingest DAG's tasks do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingest import feeds
from ingest.exceptions import FeedConfigError
from lakehouse.exceptions import TidemarkError
from tests.conftest import ROOT


def test_the_shipped_sources_file_names_one_feed_per_table() -> None:
    loaded = feeds.load_feeds(ROOT / "dags" / "sources.yaml")
    assert {(f.name, f.table) for f in loaded} == {("wine", "raw.wine"), ("diabetes", "raw.diabetes")}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: [a, b]", "expected a top-level `sources:` mapping"),
        ("sources:\n  Bad-Name: {table: raw.x, location: /x}", "must be lower-case letters"),
        ("sources:\n  x: {table: raw.x}", "needs `table: NS.TABLE` and `location: PATH_OR_GLOB`"),
        ("sources:\n  x: {table: raw.x, location: /x, scheduel: '@daily'}", "unknown key(s) scheduel"),
        ("sources:\n  x: {table: 'raw', location: /x}", "source 'x'"),
        ("sources: {x: [", "not valid YAML"),
        ("sources:\n  x: {table: raw.x, location: /x, owner: 'team wine'}", "owner name 'team wine' is not allowed"),
    ],
)
def test_a_bad_sources_file_is_named_with_the_fix(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "sources.yaml"
    f.write_text(text)
    with pytest.raises(FeedConfigError) as err:
        feeds.load_feeds(f)
    assert message in str(err.value) and str(f) in str(err.value)


def test_a_feeds_owner_owns_the_table_it_lands(settings: Any, wine_csv: Path) -> None:
    from lakehouse.catalog import load_catalog
    from lakehouse.tables import OWNER

    f = wine_csv.with_name("sources.yaml")
    f.write_text(f"sources:\n  w: {{table: raw.wine, location: '{wine_csv}', owner: 'team:wine'}}\n")
    (feed,) = feeds.load_feeds(f)
    assert feed.owner == "team:wine"
    staged = feeds.land_feed(settings, feed)
    assert staged and "error" not in staged[0]
    assert load_catalog(settings).load_table(("raw", "wine")).properties[OWNER] == "team:wine"


def test_a_missing_sources_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(FeedConfigError, match="no sources file"):
        feeds.load_feeds(tmp_path / "nope.yaml")


def test_home_in_a_location_is_tidemark_home_and_a_glob_matching_nothing_lands_nothing(tmp_path: Path) -> None:
    from lakehouse.config import load_settings

    settings = load_settings()
    feed = feeds.Feed(name="w", table="raw.wine", location="{home}/landing/wine/*.csv")
    assert feed.resolved_location(settings) == f"{settings.home}/landing/wine/*.csv"
    assert feeds.land_feed(settings, feed) == []  # a scheduled run with nothing new is no error


@pytest.mark.integration
def test_a_failed_gate_cannot_be_published_and_quarantine_keeps_main(settings: Any, wine_csv: Path) -> None:
    from ingest.exceptions import GateFailedError
    from ingest.land import land
    from ingest.staged import publish_audited
    from lakehouse.catalog import load_catalog

    land(settings, str(wine_csv), "raw.wine")
    main = load_catalog(settings).load_table(("raw", "wine")).current_snapshot().snapshot_id
    bad = wine_csv.with_name("bad.csv")
    header, *rows = wine_csv.read_text().splitlines()
    # New ids, and a target outside the suite's value set {0, 1, 2}.
    bad.write_text("\n".join([header, *(f"{5000 + i}," + r.split(",", 1)[1].rsplit(",", 1)[0] + ",7" for i, r in enumerate(rows))]) + "\n")
    staged = feeds.land_feed(settings, feeds.Feed(name="w", table="raw.wine", location=str(bad)))
    decision = feeds.validate_staged(settings, "raw.wine", staged)
    assert decision["publish"] == [] and decision["quarantine"] == [staged[0]["branch"]]
    with pytest.raises(TidemarkError, match="the gate failed"):
        publish_audited(settings, "raw.wine", staged[0]["branch"])
    assert feeds.publish_staged(settings, decision) is None
    with pytest.raises(GateFailedError, match="validation gate failed for raw.wine"):
        feeds.quarantine_staged(settings, decision)
    table = load_catalog(settings).load_table(("raw", "wine"))
    assert table.current_snapshot().snapshot_id == main
    assert staged[0]["branch"] not in table.metadata.refs
    assert "quarantine-" + staged[0]["branch"].removeprefix("audit-") in table.metadata.refs


@pytest.mark.integration
def test_a_bad_file_in_a_feed_does_not_stop_the_good_ones_and_fails_the_run_named(settings: Any, tmp_path: Path) -> None:
    from ingest.exceptions import SourceError
    from lakehouse.catalog import load_catalog

    d = tmp_path / "landing"
    d.mkdir()
    (d / "a.csv").write_text("id,x\n1,10\n")
    (d / "b.csv").write_bytes(b"id,x,x\n2,20,21\n")  # a header that repeats a column
    (d / "c.csv").write_text("id,x\n3,30\n")
    staged = feeds.land_feed(settings, feeds.Feed(name="m", table="raw.feedmix", location=str(d / "*.csv")))
    assert [s["file"].rsplit("/", 1)[1] for s in staged] == ["a.csv", "b.csv", "c.csv"]
    assert "repeats column name 'x'" in staged[1]["error"] and staged[0]["branch"] and staged[2]["branch"]
    decision = feeds.validate_staged(settings, "raw.feedmix", staged)
    assert len(decision["publish"]) == 2 and decision["failed"][0]["file"].endswith("b.csv")
    assert feeds.publish_staged(settings, decision)["rows"] == 2
    with pytest.raises(SourceError, match=r"1 file\(s\) could not be landed into raw.feedmix \(the others were\): .*b.csv: the header repeats"):
        feeds.quarantine_staged(settings, decision)
    ids = load_catalog(settings).load_table(("raw", "feedmix")).scan().to_arrow().column("id").to_pylist()
    assert sorted(ids) == [1, 3]
