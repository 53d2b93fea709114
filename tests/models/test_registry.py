"""The registry allocates versions atomically and keeps the whole alias history."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from lakehouse.config import load_settings
from lineage.transport import InMemoryTransport
from models.exceptions import ModelNotFoundError
from models.registry import InputSnapshot, ModelRef, Registry

_REGISTER = """
import json, sys
from lakehouse.config import load_settings
from models.registry import InputSnapshot, Registry
reg = Registry(load_settings())
out = [reg.register(model="m", run_id=f"run-{sys.argv[1]}-{i}", job_name="j", entry_point="x:y", artifact_uri="u",
                    sha256="s", metrics={"a": 1.0}, inputs=[InputSnapshot("raw.t", 1, 10)], parameters={}).version
       for i in range(5)]
print(json.dumps(out))
"""


def _register(reg: Registry, model: str = "m") -> int:
    return reg.register(
        model=model, run_id="r", job_name="j", entry_point="x:y", artifact_uri="u", sha256="s",
        metrics={"acc": 0.5}, inputs=[InputSnapshot("raw.t", 123, 10)], parameters={"p": 1},
    ).version


def test_concurrent_registrations_never_share_a_version() -> None:
    Registry(load_settings())  # create the tables once, before the race
    procs = [subprocess.Popen([sys.executable, "-c", _REGISTER, str(n)], stdout=subprocess.PIPE, text=True) for n in range(3)]
    got = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        got += json.loads(out)
    assert sorted(got) == list(range(1, 16))
    assert [v.version for v in Registry(load_settings()).versions("m")] == list(range(1, 16))


def test_alias_history_and_resolution() -> None:
    reg = Registry(load_settings())
    v1, v2 = _register(reg), _register(reg)
    tr = InMemoryTransport()
    reg.promote("m", v1, "production", reason="first", transport=tr)
    move = reg.promote("m", v2, "production", reason="better", transport=tr)
    assert move["previous_version"] == v1
    assert reg.resolve("m@production").version == v2
    assert reg.resolve("m").version == v2 and reg.resolve("m:1").version == v1
    history = reg.alias_history("m")
    assert [(h["version"], h["previous_version"], h["reason"]) for h in history] == [(1, None, "first"), (2, 1, "better")]
    facets = [e["inputs"][0]["facets"]["tidemark_modelAlias"] for e in tr.events]
    assert [(f["alias"], f["previousVersion"]) for f in facets] == [("production", None), ("production", 1)]
    assert reg.versions("m")[1].aliases == ["production"]


@pytest.mark.parametrize(
    ("ref", "message"),
    [("nope@production", "model 'nope' is not registered"), ("m@staging", "has no alias 'staging'"), ("m:7", "has no version 7"), ("bad ref!", "model name 'bad ref!' is not allowed: 1 to 64 ASCII letters")],
)
def test_unknown_refs_are_clear_errors(ref: str, message: str) -> None:
    reg = Registry(load_settings())
    _register(reg)
    with pytest.raises(ModelNotFoundError, match=None) as err:
        reg.resolve(ref)
    assert message in str(err.value)


def test_model_ref_parsing() -> None:
    assert ModelRef.parse("churn@production") == ModelRef("churn", "production", None)
    assert ModelRef.parse("churn:12") == ModelRef("churn", None, 12)
    assert ModelRef.parse("churn") == ModelRef("churn", None, None)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ({"model": "wine"}, "wine"),
        ({"model": " wine ", "version": 3}, "wine:3"),
        ({"model": "wine", "version": "3", "alias": ""}, "wine:3"),
        ({"model": "wine", "version": "", "alias": "production"}, "wine@production"),
    ],
)
def test_a_reference_from_its_parts(parts: dict[str, Any], expected: str) -> None:
    assert str(ModelRef.of(parts.pop("model"), **parts)) == expected


@pytest.mark.parametrize(
    ("parts", "parameter", "message"),
    [
        ({"model": ""}, "model", "model is required"),
        ({"model": None}, "model", "model is required"),
        ({"model": "wine", "version": 2, "alias": "production"}, "alias", "alias cannot be given with a version"),
        ({"model": "wine", "version": "two"}, "version", "version must be a whole number, got 'two'"),
        ({"model": "wine!"}, "model", "model name 'wine!' is not allowed"),
    ],
)
def test_bad_reference_parts_name_the_parameter(parts: dict[str, Any], parameter: str | None, message: str) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        ModelRef.of(parts.pop("model"), **parts)
    assert message in str(err.value) and err.value.parameter == parameter


def test_version_numbers_come_from_the_last_registration_or_else_a_scan() -> None:
    """A registration records every model's highest version in its snapshot; rows another writer
    added (the lineage consumer, from events) are counted by a scan before the next allocation."""
    import pyarrow as pa

    from lakehouse.tables import summary_properties
    from lineage import model_store
    from models.registry import VERSION_MAX, version_row

    reg = Registry(load_settings())
    assert [_register(reg), _register(reg), _register(reg, "n")] == [1, 2, 1]
    table = reg.catalog.load_table((reg.ns, model_store.VERSIONS))
    assert json.loads(summary_properties(table.current_snapshot())[VERSION_MAX]) == {"m": 2, "n": 1}

    foreign = reg.versions("m")[-1]
    foreign.version = 7
    table.append(pa.Table.from_pylist([version_row(foreign)], schema=model_store.arrow_schema(model_store.VERSIONS)))
    assert VERSION_MAX not in summary_properties(reg.catalog.load_table((reg.ns, model_store.VERSIONS)).current_snapshot())
    assert [_register(reg), _register(reg, "n")] == [8, 2]


def test_owners_come_from_the_last_registration_or_else_a_scan() -> None:
    """A registration records each model's owner in its snapshot (no scan of every version per
    training); after rows another writer added, the newest version's owner comes from a scan."""
    import pyarrow as pa

    from lakehouse.tables import summary_properties
    from lineage import model_store
    from lineage.actors import Actor
    from models.registry import OWNERS, version_row

    reg = Registry(load_settings())
    alice, bob = Actor(name="alice", kind="user"), Actor(name="bob", kind="user")
    common: dict[str, Any] = {
        "run_id": "r", "job_name": "j", "entry_point": "x:y", "artifact_uri": "u", "sha256": "s",
        "metrics": {"acc": 0.5}, "inputs": [InputSnapshot("raw.t", 123, 10)], "parameters": {"p": 1},
    }
    assert reg.register(model="m", actor=alice, **common).owner == "alice"
    assert reg.register(model="n", actor=bob, owner="team:n", **common).owner == "team:n"
    assert reg.register(model="m", actor=bob, **common).owner == "alice"  # kept when someone else trains
    table = reg.catalog.load_table((reg.ns, model_store.VERSIONS))
    assert json.loads(summary_properties(table.current_snapshot())[OWNERS]) == {"m": "alice", "n": "team:n"}

    foreign = reg.versions("m")[-1]
    foreign.version, foreign.owner = 7, "team:m"
    table.append(pa.Table.from_pylist([version_row(foreign)], schema=model_store.arrow_schema(model_store.VERSIONS)))
    assert OWNERS not in summary_properties(reg.catalog.load_table((reg.ns, model_store.VERSIONS)).current_snapshot())
    assert reg.register(model="m", actor=bob, **common).owner == "team:m"
    assert reg.register(model="n", actor=alice, **common).owner == "team:n"
