"""Printing results: JSON for machines, aligned text for people, progress on stderr."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

_START = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr, with seconds since the command began."""
    print(f"  [{time.monotonic() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)


def emit_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False, default=str))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, max_width: int = 60) -> str:
    if not rows and not columns:
        return "(no rows)"
    cols = list(columns or rows[0].keys())

    def cell(v: Any) -> str:
        text = "" if v is None else str(v)
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    body = [[cell(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(b[i]) for b in body]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def metrics_text(metrics: Mapping[str, float]) -> str:
    """A model's metrics on one line, sorted by name: `accuracy=0.9444 f1_macro=0.9430`."""
    return " ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))


def pins_text(inputs: Sequence[Any]) -> str:
    """The input snapshots a model version was trained on: `raw.wine@123, raw.extra@456`."""
    return ", ".join(f"{i.table}@{i.snapshot_id}" for i in inputs)


def actor_text(value: Mapping[str, Any] | None) -> str:
    """Who, for text output: "alice", "airflow:team (triggered by bob)"; "" when not recorded.
    `value`: an actor's JSON (`Actor.to_json`, a facet) or a row with `actor`/`actor_kind` columns."""
    from lineage.actors import from_columns, from_facet

    actor = from_facet(value) or from_columns(value or {})
    return actor.describe() if actor else ""
