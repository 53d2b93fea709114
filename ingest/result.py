"""What a landing (or a publish of an audited landing) reports back: rows, snapshot, verdict, timings;
and for an ingest of several files, each file's outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ingest import gate as gates
from lakehouse.exceptions import TidemarkError

# A file's outcome in an ingest of several files.
LANDED, SKIPPED, FAILED, NOT_TRIED = "landed", "skipped", "failed", "not tried"


@dataclass
class LandingResult:
    table: str
    source: str
    sha256: str
    run_id: str | None
    snapshot_id: int | None
    rows: int
    skipped: bool = False
    gate: gates.GateResult | None = None
    warnings: list[str] = field(default_factory=list)
    data_docs: str | None = None
    data_files: int = 0
    bytes_written: int = 0
    reapplied: int = 0  # times main moved under this landing and its validated files were re-applied
    audit_branch: str | None = None  # set when land(publish=False) left the audited snapshot unpublished
    seconds: dict[str, float] = field(default_factory=dict)  # gate, read_write_validate, commit, total

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "source": self.source,
            "sha256": self.sha256,
            "run_id": self.run_id,
            "snapshot_id": self.snapshot_id,
            "rows": self.rows,
            "skipped": self.skipped,
            "gate": None
            if self.gate is None
            else {
                "suite": self.gate.suite,
                "success": self.gate.success,
                "expectations": len(self.gate.outcomes),
                "failures": [o.to_json() for o in self.gate.failures()],
            },
            "data_docs": self.data_docs,
            "data_files": self.data_files,
            "reapplied": self.reapplied,
            "audit_branch": self.audit_branch,
            "warnings": self.warnings,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


@dataclass
class FileOutcome:
    """One file of a multi-file ingest: landed, skipped (already in the table), failed, or not tried."""

    source: str
    outcome: str
    result: LandingResult | None = None
    error: TidemarkError | None = None

    def to_json(self) -> dict[str, Any]:
        out = self.result.to_json() if self.result is not None else {"source": self.source}
        return {**out, "outcome": self.outcome, "error": None if self.error is None else str(self.error)}
