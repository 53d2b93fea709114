"""Every kind of event Tidemark emits conforms to the OpenLineage 2-0-2 JSON schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lineage import events as ev
from lineage.transport import InMemoryTransport
from tests.conftest import SPEC_DIR

needs_spec = pytest.mark.skipif(
    not (SPEC_DIR / "OpenLineage.json").is_file(), reason=f"OpenLineage spec not found at {SPEC_DIR}"
)


def _registry() -> Any:
    from referencing import Registry, Resource

    resources = []
    for path in SPEC_DIR.rglob("*.json"):
        doc = json.loads(path.read_text())
        if "$id" in doc:
            resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


def _facet_schemas() -> dict[str, tuple[str, dict[str, Any]]]:
    """facet key (e.g. "symlinks") -> ($id, schema) for every standard and Iceberg facet."""
    out = {}
    for path in list((SPEC_DIR / "facets").glob("*.json")) + list((SPEC_DIR / "registry").rglob("facets/*.json")):
        doc = json.loads(path.read_text())
        for key in doc.get("properties", {}):
            out[key] = (doc["$id"], doc)
    return out


def validate(event: dict[str, Any]) -> None:
    from jsonschema import Draft202012Validator

    registry = _registry()
    core = json.loads((SPEC_DIR / "OpenLineage.json").read_text())
    Draft202012Validator({"$ref": core["$id"] + "#/$defs/RunEvent"}, registry=registry).validate(event)
    facets = _facet_schemas()
    groups = [event["run"]["facets"], event["job"]["facets"]]
    for ds in event["inputs"] + event["outputs"]:
        groups += [ds.get("facets", {}), ds.get("inputFacets", {}), ds.get("outputFacets", {})]
    checked = 0
    for group in groups:
        for key, value in group.items():
            if key in facets:
                sid, schema = facets[key]
                Draft202012Validator(schema, registry=registry).validate({key: value})
                checked += 1
            else:
                assert key.startswith("tidemark_"), f"unknown facet {key} without our prefix"
                assert value["_producer"] and value["_schemaURL"]
    assert checked > 0


def _events_of_the_scenario(tmp_path: Path, wine_csv: Path) -> list[dict[str, Any]]:
    from ingest.land import land
    from lakehouse.config import load_settings
    from models.jobs import get_job
    from models.registry import Registry
    from models.train import train

    settings = load_settings()
    tr = InMemoryTransport()
    land(settings, str(wine_csv), "raw.wine", transport=tr)
    result = train(settings, get_job("wine_classifier"), transport=tr)
    Registry(settings).promote("wine", result.version.version, "production", reason="test", transport=tr)
    bad = tmp_path / "bad.csv"
    bad.write_text(wine_csv.read_text().replace("\n1,", "\n1,99", 1))  # alcohol far out of range: gate fails
    with pytest.raises(Exception, match="validation gate"):
        land(settings, str(bad), "raw.wine", transport=tr, force=True)
    return tr.events


@needs_spec
def test_every_event_kind_conforms(tmp_path: Path, wine_csv: Path) -> None:
    events = _events_of_the_scenario(tmp_path, wine_csv)
    kinds = {(e["job"]["name"], e["eventType"]) for e in events}
    assert kinds == {
        ("ingest.raw.wine", "START"),
        ("ingest.raw.wine", "COMPLETE"),
        ("ingest.raw.wine", "FAIL"),
        ("train.wine_classifier", "START"),
        ("train.wine_classifier", "COMPLETE"),
        ("models.promote", "COMPLETE"),
    }
    for event in events:
        validate(event)


def test_same_table_same_identity_whoever_emits(tmp_path: Path, wine_csv: Path) -> None:
    events = _events_of_the_scenario(tmp_path, wine_csv)
    ingest_out = next(e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"].startswith("ingest"))["outputs"][0]
    train_in = next(e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"].startswith("train"))["inputs"][0]
    assert (ingest_out["namespace"], ingest_out["name"]) == (train_in["namespace"], train_in["name"])
    assert ingest_out["facets"]["symlinks"] == train_in["facets"]["symlinks"]
    assert ingest_out["facets"]["version"]["datasetVersion"] == train_in["facets"]["version"]["datasetVersion"]
    assert ev.dataset_table(train_in) == "raw.wine"


def test_event_id_is_stable_and_content_based() -> None:
    e = ev.run_event(producer="p", event_type="START", run_id=ev.new_run_id(), job_namespace="n", job_name="j")
    assert ev.event_id(e) == ev.event_id(json.loads(json.dumps(e)))
    assert ev.event_id(e) != ev.event_id({**e, "eventType": "COMPLETE"})


def test_run_ids_are_uuid7_carrying_the_time() -> None:
    import time
    import uuid

    before = int(time.time() * 1000)
    ids = [uuid.UUID(ev.new_run_id()) for _ in range(50)]
    after = int(time.time() * 1000)
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    assert all(before <= u.int >> 80 <= after for u in ids)
    assert len(set(ids)) == 50
