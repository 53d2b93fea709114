"""A landing reports which file column filled each table column, with its renames and casts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingest.exceptions import SourceError
from ingest.land import land
from ingest.staged import publish_audited
from lakehouse.catalog import load_catalog
from lineage.transport import InMemoryTransport


@pytest.fixture
def local(tmp_path: Path):  # type: ignore[no-untyped-def]
    from lakehouse.config import load_settings

    return load_settings()


def _facet(tr: InMemoryTransport) -> dict[str, Any]:
    out = tr.events[-1]["outputs"][0]
    return out["facets"]["columnLineage"]  # type: ignore[no-any-return]


def test_identity_cast_and_rename_are_reported(local: Any, tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    first.write_text("id,amount,label\n1,1.5,x\n2,2.5,y\n")
    land(local, str(first), "raw.things", transport=InMemoryTransport())
    # Whole numbers for a double column (a cast) and a header that names `label` otherwise.
    second = tmp_path / "b.csv"
    second.write_text("id,amount,tag\n3,3,z\n")
    tr = InMemoryTransport()
    land(local, str(second), "raw.things", transport=tr, rename={"tag": "label"})
    facet = _facet(tr)
    src = tr.events[-1]["inputs"][0]
    fields = {name: spec["inputFields"] for name, spec in facet["fields"].items()}
    assert set(fields) == {"id", "amount", "label"}
    assert all(f[0]["namespace"] == src["namespace"] and f[0]["name"] == src["name"] for f in fields.values())
    how = {name: (f[0]["field"], f[0]["transformations"][0]["subtype"], f[0]["transformations"][0].get("description")) for name, f in fields.items()}
    assert how == {
        "id": ("id", "IDENTITY", None),
        "amount": ("amount", "TRANSFORMATION", "CAST(amount AS double)"),
        "label": ("tag", "IDENTITY", "RENAME tag TO label"),
    }
    rows = load_catalog(local).load_table("raw.things").scan().to_arrow().sort_by("id").to_pylist()
    assert rows[-1] == {"id": 3, "amount": 3.0, "label": "z"}
    assert tr.events[-1]["run"]["facets"]["tidemark_parameters"]["parameters"]["rename"] == {"tag": "label"}


def test_a_rename_of_a_missing_column_is_refused_before_anything_is_written(local: Any, tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("id,x\n1,2\n")
    tr = InMemoryTransport()
    with pytest.raises(SourceError, match=r"--rename names column\(s\) nope, which the file does not have \(its columns: id, x\); fix rename"):
        land(local, str(f), "raw.things", transport=tr, rename={"nope": "y"})
    with pytest.raises(SourceError, match="would give two columns the name"):
        land(local, str(f), "raw.things", transport=tr, rename={"x": "id"})
    assert tr.events == [] and not load_catalog(local).table_exists(("raw", "things"))


def test_publish_reports_every_column_copied(local: Any, wine_csv: Path) -> None:
    audited = land(local, str(wine_csv), "raw.wine", transport=InMemoryTransport(), publish=False)
    assert audited.audit_branch
    tr = InMemoryTransport()
    publish_audited(local, "raw.wine", audited.audit_branch, transport=tr)
    event = tr.events[-1]
    fields = _facet(tr)["fields"]
    assert "alcohol" in fields and len(fields) == len(load_catalog(local).load_table("raw.wine").schema().fields)
    inp = fields["alcohol"]["inputFields"][0]
    assert (inp["name"], inp["field"]) == (event["inputs"][0]["name"], "alcohol")
    assert inp["transformations"][0]["subtype"] == "IDENTITY"


def test_cli_rename(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    f = tmp_path / "a.csv"
    f.write_text("id,tag\n1,x\n")
    bad = run_cli("ingest", str(f), "--table", "raw.things", "--rename", "tag", check=False)
    assert bad.returncode != 0 and "--rename 'tag' must look like SOURCE_COLUMN=TABLE_COLUMN" in bad.stderr
    run_cli("ingest", str(f), "--table", "raw.things", "--rename", "tag=label")
    from lakehouse.config import load_settings

    assert load_catalog(load_settings()).load_table("raw.things").schema().find_field("label")
