"""Registration and alias moves are events: a registry fed only through Kafka ends up complete."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from lakehouse.config import load_settings
from lineage.consumer import consume
from lineage.transport import KafkaTransport
from models.jobs import get_job
from models.pinning import archive
from models.registry import Registry
from models.train import train
from tests.models.conftest import land, wine_part

pytestmark = pytest.mark.integration


def _strip(mv: Any) -> dict[str, Any]:
    return {k: v for k, v in mv.to_json().items() if k not in ("created_at",)}


def test_a_registry_fed_only_by_events_matches_the_producers(tmp_path: Path, settings: Any) -> None:
    tr = KafkaTransport(settings)
    try:
        land(settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", tr)
        train(settings, get_job("wine_classifier"), transport=tr)
        train(settings, get_job("wine_classifier"), transport=tr)
        producer = Registry(settings)
        producer.promote("wine", 1, "production", reason="first", transport=tr)
        producer.promote("wine", 2, "production", reason="second", transport=tr)
        archive(settings, "wine", 1, reason="old", transport=tr)
    finally:
        tr.close()

    # Another catalog that never saw the direct writes, reading the same topic. It trusts this
    # producer's alias moves because it holds the same registry key (lineage.signing); their gate
    # could not be re-checked there (the input tables are in the producer's catalog only).
    (tmp_path / "other-home").mkdir()
    shutil.copy(settings.home / "registry.key", tmp_path / "other-home" / "registry.key")
    other = load_settings(environ={**os.environ, "TIDEMARK_HOME": str(tmp_path / "other-home")})
    report = consume(other, once=True)
    assert report.registry_rows == 2 + 3  # two versions; two alias moves and one archive
    replica = Registry(other)
    assert [_strip(v) for v in replica.versions("wine")] == [_strip(v) for v in producer.versions("wine")]
    assert replica.resolve("wine@production").version == 2
    assert replica.versions("wine")[0].archived is not None
    keys = ("model", "alias", "version", "previous_version", "action", "reason", "run_id", "forced")
    assert [{k: h[k] for k in keys} for h in replica.alias_history("wine")] == [
        {k: h[k] for k in keys} for h in producer.alias_history("wine")
    ]

    # Replays add nothing, and the producer's own registry (written directly) gets no duplicates.
    again = load_settings(environ={**os.environ, "TIDEMARK_HOME": str(tmp_path / "other-home"), "TIDEMARK__LINEAGE__CONSUMER_GROUP": "g2"})
    from lakehouse.catalog import load_catalog
    from lineage import model_store

    model_store.upsert_from_events(load_catalog(again), again, _all_events(settings))
    assert len(Registry(other).versions("wine")) == 2 and len(Registry(other).alias_history("wine")) == 3
    assert consume(settings, once=True).registry_rows == 0
    assert len(producer.versions("wine")) == 2 and len(producer.alias_history("wine")) == 3


def _all_events(settings: Any) -> list[dict[str, Any]]:
    import json

    from lineage.query import run_sql

    consume(settings, once=True)
    return [json.loads(r["payload"]) for r in run_sql(settings, "SELECT payload FROM lineage.events").to_pylist()]


def test_a_registry_made_by_an_older_tidemark_gains_the_new_columns() -> None:
    from pyiceberg.schema import Schema

    from lakehouse.catalog import load_catalog
    from lakehouse.tables import NO_REBASE, TableName, ensure_table
    from lineage import model_store
    from models.registry import InputSnapshot

    settings = load_settings()
    catalog = load_catalog(settings)
    full = model_store.schemas()
    for short, keep in ((model_store.VERSIONS, 11), (model_store.ALIAS_EVENTS, 8)):
        old = Schema(*full[short].fields[:keep])
        ensure_table(catalog, TableName("lineage", short), old, properties={"format-version": "2", **NO_REBASE})
    reg = Registry(settings)
    mv = reg.register(
        model="m", run_id="r", job_name="j", entry_point="x:y", artifact_uri="u", sha256="s", metrics={"a": 1.0},
        inputs=[InputSnapshot("raw.t", 1, 2, "f")], parameters={}, code={"source_sha256": "c"}, primary_metric="a", metric_goal="max",
    )
    assert reg.get("m", mv.version).code == {"source_sha256": "c"} and reg.get("m", 1).metric_goal == "max"
    names = catalog.load_table(("lineage", model_store.VERSIONS)).schema().column_names
    assert names[11:] == ["code", "environment", "primary_metric", "metric_goal", "card_uri", "verified", "actor", "actor_kind", "triggered_by", "owner"]


def test_a_registry_from_before_actors_loads_and_its_signed_moves_still_verify() -> None:
    """Rows written before the actor and owner columns existed read as "not recorded"; a move
    signed then (no actor among the signed fields) still verifies; new moves record their actor."""
    from datetime import datetime, timezone

    import pyarrow as pa
    from pyiceberg.schema import Schema

    from lakehouse.catalog import load_catalog
    from lakehouse.tables import NO_REBASE, TableName, ensure_table
    from lineage import model_store, signing
    from models.history import alias_tenures

    settings = load_settings()
    catalog = load_catalog(settings)
    full = model_store.schemas()
    now = datetime.now(timezone.utc)
    old_rows = {
        model_store.VERSIONS: {"model": "m", "version": 1, "run_id": "r1", "job_name": "j", "entry_point": "x:y", "artifact_uri": "u",
                               "sha256": "s", "metrics": '{"a": 1.0}', "inputs": "[]", "parameters": "{}", "created_at": now,
                               "code": None, "environment": None, "primary_metric": "a", "metric_goal": "max", "card_uri": None,
                               "verified": True},
        model_store.ALIAS_EVENTS: {"event_time": now, "model": "m", "alias": "production", "version": 1, "previous_version": None,
                                   "action": "set", "reason": "old", "run_id": "r2", "forced": False, "overridden": None},
    }
    for short, row in old_rows.items():
        old = Schema(*[f for f in full[short].fields if f.name in row])
        table = ensure_table(catalog, TableName("lineage", short), old, properties={"format-version": "2", **NO_REBASE})
        table.append(pa.Table.from_pylist([row], schema=old.as_arrow()))
    old_signature = signing.sign(settings, model_store.signed_move(old_rows[model_store.ALIAS_EVENTS]))

    reg = Registry(settings)
    (mv,) = reg.versions("m")
    assert (mv.actor, mv.owner, mv.aliases) == (None, None, ["production"])
    (move,) = reg.alias_history("m")
    assert move["actor"] is None and signing.verify(settings, model_store.signed_move(move), old_signature)
    mv2 = reg.register(model="m", run_id="r3", job_name="j", entry_point="x:y", artifact_uri="u", sha256="s", metrics={"a": 1.0},
                       inputs=[], parameters={})
    reg.promote("m", mv2.version, "production", reason="new")
    tenures = alias_tenures(settings, "m")
    assert [(t["version"], t["actor"]) for t in tenures] == [(1, None), (2, mv2.actor.name)]
    assert mv2.owner == mv2.actor.name  # the old version recorded no owner: the registering actor owns it
