"""Which version held which alias from when to when, and which snapshots trained it: SQL over the registry.

Both questions are DuckDB queries over the Iceberg registry tables, so they can be asked from
`tidemark sql` (or any DuckDB) just as well; the queries here are the reference.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lakehouse import times
from lakehouse.config import Settings
from lakehouse.sql import query
from lineage import alias_requests
from lineage import query as lineage_query
from models.registry import Registry

# One row per alias tenure: the version, from when (the move) until when (the next move, or NULL: still).
SPANS = """
WITH moves AS (
    SELECT model, alias, version, previous_version, action, reason, forced, run_id, event_time, actor, actor_kind, triggered_by, approval,
           lead(event_time) OVER (PARTITION BY model, alias ORDER BY event_time) AS valid_to
    FROM {ns}.model_alias_events
    WHERE action IN ('set', 'remove')
)
SELECT model, alias, version, previous_version, event_time AS valid_from, valid_to, reason, forced, run_id, actor, actor_kind, triggered_by, approval
FROM moves WHERE action = 'set'
"""

HISTORY_SQL = f"""
SELECT model, alias, version, previous_version,
       CAST(valid_from AS VARCHAR) AS valid_from, CAST(valid_to AS VARCHAR) AS valid_to, reason, forced, run_id,
       actor, actor_kind, triggered_by, approval
FROM ({SPANS}) WHERE model = ? AND (? IS NULL OR alias = ?)
ORDER BY alias, valid_from
"""

# "Which version was ALIAS at time T, and which snapshots trained it?" One row per input table.
AT_SQL = f"""
SELECT s.model, s.alias, s.version, CAST(s.valid_from AS VARCHAR) AS valid_from, CAST(s.valid_to AS VARCHAR) AS valid_to,
       s.actor AS promoted_by, v.run_id, u.i."table" AS input_table, u.i.snapshot_id AS snapshot_id, u.i.rows AS rows, u.i.fingerprint AS fingerprint
FROM ({SPANS}) s
JOIN {{ns}}.model_versions v ON v.model = s.model AND v.version = s.version,
     unnest(from_json(v.inputs, '[{{"table": "VARCHAR", "snapshot_id": "VARCHAR", "rows": "BIGINT", "fingerprint": "VARCHAR"}}]')) AS u(i)
WHERE s.model = ? AND s.alias = ?
  AND s.valid_from <= CAST(? AS TIMESTAMPTZ) AND (s.valid_to IS NULL OR s.valid_to > CAST(? AS TIMESTAMPTZ))
ORDER BY input_table
"""


def _sql(text: str, settings: Settings) -> str:
    return text.replace("{ns}", f'"{settings.lineage.namespace}"')


def alias_tenures(settings: Settings, model: str, alias: str | None = None) -> list[dict[str, Any]]:
    """Every tenure of every alias of `model` (or of one alias), oldest first; valid_to None = holds it now.

    A tenure that began with an approved request (`approval`, a protected alias) names who asked
    (`requested_by`) and who approved (`approved_by`), from `lineage.alias_requests`."""
    registry = Registry(settings)
    registry.resolve(model)  # a clear error for an unknown model
    con = lineage_query.connect(settings)
    rows = query(con, _sql(HISTORY_SQL, settings), [model, alias, alias]).to_pylist()
    requests = alias_requests.requests(alias_requests.rows(registry.catalog, settings, model)) if any(r["approval"] for r in rows) else {}
    for r in rows:
        req = requests.get(r["approval"] or "")
        closed = (req or {}).get("closed_by") or {}
        r["requested_by"] = req["actor"] if req else None
        r["approved_by"] = closed.get("actor") if closed.get("action") == alias_requests.APPROVE else None
    return rows


def holder_at(settings: Settings, model: str, alias: str, at: str | datetime) -> list[dict[str, Any]]:
    """The version that held `model@alias` at time `at`, one row per input table with its snapshot.

    `at`: ISO 8601 with a time zone, or an aware datetime (`lakehouse.times.parse_time`).
    """
    when = times.parse_time(at, parameter="at")
    Registry(settings).alias_history(model)  # brings an older registry's columns up to date first
    con = lineage_query.connect(settings)
    t = when.isoformat()
    return query(con, _sql(AT_SQL, settings), [model, alias, t, t]).to_pylist()
