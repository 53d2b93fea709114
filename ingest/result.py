"""What a landing (or a publish of an audited landing) reports back: rows, snapshot, verdict, timings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ingest import gate as gates


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
