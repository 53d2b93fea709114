"""Quarantine management through the Python API, including audit branches a killed landing left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingest import quarantine
from ingest.exceptions import GateFailedError, QuarantineError
from ingest.land import land
from lakehouse.catalog import load_catalog
from lineage.transport import InMemoryTransport


@pytest.fixture
def local(tmp_path: Path):  # type: ignore[no-untyped-def]
    from lakehouse.config import load_settings

    return load_settings()


def test_quarantined_and_abandoned_branches_are_listed_shown_and_dropped(local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("- expect_column_values_to_be_between: {column: x, min_value: 0, max_value: 9}\n")
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("x\n1\n")
    bad.write_text("x\n1\n50\n")
    land(local, str(good), "raw.q", suite_file=str(suite), transport=InMemoryTransport())
    with pytest.raises(GateFailedError):
        land(local, str(bad), "raw.q", suite_file=str(suite), transport=InMemoryTransport())
    (q,) = quarantine.list_quarantined(local)
    assert q.kind == "quarantine" and q.rows == 2 and q.source == str(bad) and q.failures[0]["unexpected_count"] == 1
    shown = quarantine.show(local, "raw.q", q.branch)
    assert sorted(r["x"] for r in shown.sample_rows) == [1, 50]

    # A landing killed between its audit commit and its publish leaves `audit-<run>` behind.
    t = load_catalog(local).load_table("raw.q")
    with t.manage_snapshots() as ms:
        ms.create_branch(t.snapshot_by_name(q.branch).snapshot_id, "audit-killed")
    assert [x.branch for x in quarantine.list_quarantined(local, "raw.q")] == [q.branch]  # still fresh
    with pytest.raises(QuarantineError, match="still publishing"):
        quarantine.drop(local, "raw.q", "audit-killed")
    monkeypatch.setattr(quarantine, "ABANDONED_AFTER_S", -1)
    kinds = {x.branch: x.kind for x in quarantine.list_quarantined(local, "raw.q")}
    assert kinds == {q.branch: "quarantine", "audit-killed": "abandoned"}
    quarantine.drop(local, "raw.q", "audit-killed")
    quarantine.drop(local, "raw.q", q.branch)
    assert quarantine.list_quarantined(local) == []
    assert set(load_catalog(local).load_table("raw.q").metadata.refs) == {"main"}
    with pytest.raises(QuarantineError, match="has no branch"):
        quarantine.show(local, "raw.q", q.branch)
