"""`tidemark lineage emit FILE`: send OpenLineage JSON Lines from another producer through the outbox."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.config import Settings
from lineage.decode import check_event
from lineage.exceptions import EmitError
from lineage.outbox import OutboxTransport


@dataclass
class EmitReport:
    sent: int = 0
    pending: int = 0
    rejected: list[str] = field(default_factory=list)


def emit_file(settings: Settings, path: Path, strict: bool = False) -> EmitReport:
    """Queue every valid line, then deliver. A bad line is named (file:line) and skipped, or with
    `strict` nothing is sent at all."""
    if not path.is_file():
        raise EmitError(f"{path}: no such file; check the path")
    events = []
    report = EmitReport()
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
                reason = check_event(event)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                reason = f"not a JSON object ({exc.__class__.__name__})"
            if reason:
                report.rejected.append(f"{path}:{n}: {reason}")
            else:
                events.append(event)
    if strict and report.rejected:
        raise EmitError(
            f"{report.rejected[0]}; nothing sent ({len(report.rejected)} bad lines; without strict they are skipped)", parameter="strict"
        )
    transport = OutboxTransport(settings)
    try:
        for event in events:
            transport.outbox.put(settings.kafka.topic, str(event["run"]["runId"]).encode(), json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode())
        flushed = transport.flush(force=True)
    finally:
        transport.close()
    report.sent = len(events)
    report.pending = flushed.pending
    return report
