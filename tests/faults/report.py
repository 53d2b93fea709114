"""The fault-injection suite's own table: each fault test records what it did and whether it held.

A row says which fault was injected how many times, what was counted before and after (rows,
events, versions, files), and whether every invariant held ("nothing lost, nothing duplicated, no
traceback"). Tests record a row *and* assert: a row with held=False is also a failed test.

Rows go to `test-artifacts/faults/<pid>.jsonl` (one file per pytest worker); at the end of the
session `tests/conftest.py` merges them into `test-artifacts/faults.md` and prints the table, which
the README's reliability section quotes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
ROWS_DIR = ARTIFACTS / "faults"
TABLE = ARTIFACTS / "faults.md"


@dataclass
class FaultRow:
    area: str  # ingest, train, promote, consume, broker, catalog, disk, names, sql, ...
    fault: str  # what was injected, e.g. "SIGKILL at step `published`"
    trials: int
    held: bool
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""
    test: str = ""


class FaultReport:
    """What a fault test hands its rows to (the `fault_report` fixture)."""

    def __init__(self, test: str) -> None:
        self.test = test
        self.rows: list[FaultRow] = []

    def record(
        self,
        area: str,
        fault: str,
        *,
        trials: int,
        held: bool,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
        note: str = "",
    ) -> FaultRow:
        row = FaultRow(area, fault, trials, bool(held), dict(before or {}), dict(after or {}), note, self.test)
        self.rows.append(row)
        ROWS_DIR.mkdir(parents=True, exist_ok=True)
        with open(ROWS_DIR / f"{os.getpid()}.jsonl", "a") as fh:
            fh.write(json.dumps(asdict(row), default=str) + "\n")
        return row


def _counts(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items()) or "-"


def render() -> str | None:
    """The merged table of every row recorded this session, as Markdown; None when there are none."""
    rows: list[dict[str, Any]] = []
    for path in sorted(ROWS_DIR.glob("*.jsonl")) if ROWS_DIR.exists() else []:
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return None
    rows.sort(key=lambda r: (r["area"], r["fault"]))
    lines = [
        "| area | fault injected | trials | held | before | after | note |",
        "|---|---|---:|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['area']} | {r['fault']} | {r['trials']} | {'yes' if r['held'] else '**NO**'} | "
            f"{_counts(r['before'])} | {_counts(r['after'])} | {r['note']} |"
        )
    held = sum(1 for r in rows if r["held"])
    lines.append("")
    lines.append(f"{held} of {len(rows)} faults held; {sum(int(r['trials']) for r in rows)} injections in all.")
    return "\n".join(lines) + "\n"


def reset() -> None:
    """Forget the rows of an earlier session (called once, at the start of the controlling process)."""
    if ROWS_DIR.exists():
        for path in ROWS_DIR.glob("*.jsonl"):
            path.unlink()
