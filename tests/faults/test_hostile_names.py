"""Hostile names (issue 16 items 8 and 9): refused once, by `lakehouse.names`, at every entry point.

Each is tried at the library entry point (ingest, train, promote, archive, trace, retrain, the DAG
params) and, for a few, through the real `tidemark` command: one line naming the thing and the
rule, and the catalog and registry exactly as they were.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pytest

from lakehouse import names
from lakehouse.catalog import load_catalog
from lakehouse.exceptions import InvalidNameError, TidemarkError
from lineage.transport import InMemoryTransport
from models.registry import Registry
from tests.conftest import run_cli
from tests.faults.report import FaultReport
from tests.models.conftest import land, wine_part

HOSTILE = {
    "double quote": 'prod"uction',
    "single quote": "prod'uction",
    "path traversal": "../../../etc",
    "5,000 characters": "a" * 5000,
    "newline": "prod\nuction",
    "space": "prod uction",
    "slash": "a/b",
    "leading dash": "-rf",
    "leading dot": ".hidden",
    "non-ASCII": "prodúction",
    "NUL byte": "prod\x00",
    "SQL": "x'; DROP TABLE lineage.events; --",
}


def _state(settings: Any) -> dict[str, int]:
    catalog = load_catalog(settings)
    reg = Registry(settings, catalog)
    counts = {"versions": len(reg.versions()), "alias moves": len(reg.alias_history())}  # (these make the registry tables)
    return {"tables": sum(len(catalog.list_tables(ns)) for ns in catalog.list_namespaces()), **counts}


def test_the_rules_accept_ordinary_names_and_refuse_hostile_ones() -> None:
    for kind, good in (("namespace", "raw"), ("table", "wine_2026"), ("model", "wine-v2.1"), ("alias", "production")):
        assert names.check(kind, good) == good  # type: ignore[arg-type]
    assert names.check_table("raw.wine") == ("raw", "wine")
    assert names.is_valid("table", "t" * 64) and not names.is_valid("table", "t" * 65)
    for kind in ("namespace", "table", "model", "alias"):
        for bad in HOSTILE.values():
            with pytest.raises(InvalidNameError) as err:
                names.check(kind, bad)  # type: ignore[arg-type]
            message = str(err.value)
            assert "\n" not in message and len(message) < 200 and message.startswith(f"{kind} name ")
            assert err.value.parameter == kind


def test_hostile_names_are_refused_at_every_entry_point(tmp_path: Path, fault_report: FaultReport) -> None:
    from dag_support import DagConfigError, params_named
    from ingest.land import land as land_file
    from lakehouse.config import load_settings
    from models.jobs import get_job
    from models.pinning import archive
    from models.promotion import promote
    from models.registry import ModelRef
    from models.retrain import retrain
    from models.trace import trace
    from models.train import train

    settings = load_settings()
    tr = InMemoryTransport()
    land(settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", tr)
    job = get_job("wine_classifier")
    train(settings, job, transport=tr)
    src = wine_part(tmp_path / "b.csv", 0, 10)
    before = _state(settings)
    events = len(tr.events)

    def dag_retrain(bad: str) -> Any:
        with params_named({"model": "model", "version": "version", "alias": "alias"}):
            return ModelRef.of("wine", alias=bad)

    entry_points: dict[str, Callable[[str], Any]] = {
        "ingest --table NS.<name>": lambda bad: land_file(settings, str(src), f"raw.{bad}", transport=tr),
        "ingest --table <name>.t": lambda bad: land_file(settings, str(src), f"{bad}.t", transport=tr),
        "train with model <name>": lambda bad: train(settings, replace(job, model=bad), transport=tr),
        "train reading table raw.<name>": lambda bad: train(settings, replace(job, inputs=(f"raw.{bad}",)), transport=tr),
        "promote --alias <name>": lambda bad: promote(settings, "wine", 1, bad, reason="r", transport=tr),
        "promote model <name>": lambda bad: promote(settings, bad, 1, "production", reason="r", transport=tr),
        "promote --force --alias <name>": lambda bad: promote(settings, "wine", 1, bad, force=True, reason="r", transport=tr),
        "archive model <name>": lambda bad: archive(settings, bad, 1, reason="r", transport=tr),
        "trace wine@<name>": lambda bad: trace(settings, f"wine@{bad}"),
        "retrain wine@<name>": lambda bad: retrain(settings, f"wine@{bad}", transport=tr),
        "retrain DAG param alias": dag_retrain,
    }
    for entry, call in entry_points.items():
        failures = []
        for label, bad in HOSTILE.items():
            try:
                call(bad)
                failures.append(f"{label}: accepted")
            except TidemarkError as exc:
                message = str(exc)
                # (The DAG names its param: "param `alias` name '...' is not allowed".)
                kind_named = any(f"{k} name " in message or f"{k}` name " in message for k in ("namespace", "table", "model", "alias"))
                if "\n" in message or len(message) > 300 or not kind_named or "allowed" not in message and "form" not in message:
                    failures.append(f"{label}: {message[:120]!r}")
                if entry == "retrain DAG param alias" and not (isinstance(exc, DagConfigError) and exc.parameter == "alias"):
                    failures.append(f"{label}: not named as the DAG param")
        after = _state(settings)
        held = not failures and after == before and len(tr.events) == events
        fault_report.record(
            "names", f"{entry}: {len(HOSTILE)} hostile names", trials=len(HOSTILE), held=held, before=before, after=after,
            note="; ".join(failures)[:120] or "one line naming the thing and the rule",
        )
        assert held, (entry, failures, before, after)

    # Through the real command: one line on stderr, exit 1, nothing written.
    commands = {
        "tidemark models promote --alias '\"x'": ["models", "promote", "wine", "1", "--alias", '"x', "--reason", "r"],
        "tidemark models promote --alias ../../../etc": ["models", "promote", "wine", "1", "--alias", "../../../etc", "--reason", "r"],
        "tidemark models promote --alias <5,000 characters>": ["models", "promote", "wine", "1", "--alias", "a" * 5000, "--reason", "r"],
        "tidemark ingest --table <300-character name>": ["ingest", str(src), "--table", "raw." + "t" * 300],
        "tidemark trace wine@../x": ["trace", "wine@../x"],
        "tidemark models archive ../x 1": ["models", "archive", "../x", "1"],
    }
    for fault, argv in commands.items():
        proc = run_cli(*argv, check=False)
        lines = proc.stderr.strip().splitlines()
        held = proc.returncode == 1 and len(lines) == 1 and "name" in lines[0] and "not" in lines[0] and _state(settings) == before
        fault_report.record("names", fault, trials=1, held=held, before=before, after=_state(settings), note=lines[-1][17:130] if lines else "")
        assert held, (fault, proc.returncode, proc.stderr)
