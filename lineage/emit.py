"""`tidemark lineage emit FILE`: send OpenLineage JSON Lines from another producer through the outbox."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.config import Settings
from lineage.decode import load_event
from lineage.exceptions import EmitError
from lineage.outbox import OutboxTransport


@dataclass
class EmitReport:
    sent: int = 0
    pending: int = 0
    rejected: list[str] = field(default_factory=list)


def message_key(event: dict[str, Any]) -> bytes:
    """The Kafka key: the run id; a JobEvent's job or a DatasetEvent's dataset (static lineage has no run)."""
    run = event.get("run")
    if isinstance(run, dict) and run.get("runId"):
        return str(run["runId"]).encode()
    for key in ("job", "dataset"):
        part = event.get(key)
        if isinstance(part, dict):
            return f"{key}:{part.get('namespace') or ''}:{part.get('name') or ''}".encode()
    return b""


def emit_file(settings: Settings, path: Path, strict: bool = False) -> EmitReport:
    """Queue every valid line, then deliver. A bad line is named (file:line) and skipped, or with
    `strict` nothing is sent at all."""
    if not path.is_file():
        raise EmitError(f"{path}: no such file; check the path")
    events: list[dict[str, Any]] = []
    report = EmitReport()
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            # The consumer's own checks (static events, placeholders and times included), so what
            # is sent is what will be stored.
            _, reason, _ = load_event(raw.strip())
            if reason:
                report.rejected.append(f"{path}:{n}: {reason}")
            else:
                events.append(json.loads(raw))
    if strict and report.rejected:
        raise EmitError(
            f"{report.rejected[0]}; nothing sent ({len(report.rejected)} bad lines; without strict they are skipped)", parameter="strict"
        )
    transport = OutboxTransport(settings)
    try:
        for event in events:
            transport.outbox.put(settings.kafka.topic, message_key(event), json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode())
        flushed = transport.flush(force=True)
    finally:
        transport.close()
    report.sent = len(events)
    report.pending = flushed.pending
    return report
