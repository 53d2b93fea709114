"""The fault table itself: rows from several workers merge into one Markdown table."""

from __future__ import annotations

import json

from tests.faults import report


def test_rows_from_two_workers_merge_into_one_table(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(report, "ROWS_DIR", tmp_path / "faults")
    report.FaultReport("t1").record("ingest", "SIGKILL at `published`", trials=5, held=True, before={"rows": 178}, after={"rows": 356})
    (tmp_path / "faults" / "other.jsonl").write_text(
        json.dumps({"area": "catalog", "fault": "empty catalog.db", "trials": 1, "held": False, "before": {}, "after": {}, "note": "", "test": "t2"}) + "\n"
    )
    table = report.render()
    assert table is not None
    lines = table.splitlines()
    assert lines[2].startswith("| catalog | empty catalog.db | 1 | **NO** |")
    assert lines[3] == "| ingest | SIGKILL at `published` | 5 | yes | rows 178 | rows 356 |  |"
    assert lines[-1] == "1 of 2 faults held; 6 injections in all."


def test_no_rows_no_table(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(report, "ROWS_DIR", tmp_path / "none")
    assert report.render() is None
