"""Registering pins every input snapshot with a tag; expiry keeps pinned data; archiving releases it."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from lakehouse.catalog import load_catalog
from models import pinning
from models.exceptions import SnapshotExpiredError
from models.fingerprint import fingerprint
from models.inputs import read_at
from models.jobs import get_job
from models.retrain import retrain
from models.train import train
from tests.models.conftest import land, wine_part


def _expire_everything_unprotected(settings: Any, table: str) -> list[int]:
    t = load_catalog(settings).load_table(tuple(table.split(".")))
    before = {s.snapshot_id for s in t.snapshots()}
    time.sleep(0.01)
    t.maintenance.expire_snapshots().older_than(datetime.now(timezone.utc)).commit()
    t = load_catalog(settings).load_table(tuple(table.split(".")))
    return sorted(before - {s.snapshot_id for s in t.snapshots()})


def test_pinned_snapshots_survive_expiry_and_retrain_bit_identically(
    tmp_path: Path, local_settings: Any, transport: Any
) -> None:
    s = local_settings
    s1 = land(s, wine_part(tmp_path / "a.csv", 0, 60), "raw.wine", transport)
    s2 = land(s, wine_part(tmp_path / "b.csv", 60, 120), "raw.wine", transport)
    v1 = train(s, get_job("wine_classifier"), snapshots={"raw.wine": s2}, transport=transport).version
    s3 = land(s, wine_part(tmp_path / "c.csv", 120, 178), "raw.wine", transport)
    v2 = train(s, get_job("wine_classifier"), transport=transport).version
    land(s, wine_part(tmp_path / "d.csv", 0, 178, id_offset=1000), "raw.wine", transport)  # main moves on

    catalog = load_catalog(s)
    assert pinning.pins(catalog, "raw.wine") == {"model/wine/1": s2, "model/wine/2": s3}
    expired = _expire_everything_unprotected(s, "raw.wine")
    assert s1 in expired and s2 not in expired and s3 not in expired

    table = catalog.load_table(("raw", "wine"))
    for mv, sid in ((v1, s2), (v2, s3)):
        assert fingerprint(read_at(table, sid)) == mv.inputs[0].fingerprint
        report = retrain(s, f"wine:{mv.version}", transport=transport)
        assert report.identical, report.to_json()
        assert all(m["old"] == m["new"] and m["delta"] == 0 for m in report.metrics.values())
        assert report.new_sha256 == mv.sha256

    # Archiving v1 releases its pin; the next expiry removes its snapshot; retrain says so clearly.
    from models.pinning import archive

    record = archive(s, "wine", 1, reason="superseded", transport=transport)
    assert record["released"] == ["raw.wine:model/wine/1"]
    assert "model/wine/1" not in pinning.pins(catalog, "raw.wine")
    assert s2 in _expire_everything_unprotected(s, "raw.wine")
    with pytest.raises(SnapshotExpiredError) as err:
        retrain(s, "wine:1", transport=transport)
    msg = str(err.value)
    assert f"snapshot {s2} of raw.wine" in msg and "expired" in msg
    assert "archived" in msg and "released its pin model/wine/1" in msg and "Pinning would have kept it" in msg
    # v2 is untouched by v1's archive.
    assert retrain(s, "wine:2", transport=transport).identical


def test_archive_refuses_a_version_holding_an_alias(tmp_path: Path, local_settings: Any, transport: Any) -> None:
    from models.exceptions import ModelNotFoundError
    from models.pinning import archive
    from models.registry import Registry

    land(local_settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", transport)
    train(local_settings, get_job("wine_classifier"), transport=transport)
    Registry(local_settings).promote("wine", 1, "production", transport=transport)
    with pytest.raises(ModelNotFoundError, match="holds alias production; promote another version to it first"):
        archive(local_settings, "wine", 1, transport=transport)
