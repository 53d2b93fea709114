"""Drift on production traffic: what the model was asked recently against what it was trained on.

The serving package logs every request's features to `serving.<model>_predictions` (see
`models.signature.prediction_table`). A traffic check compares, feature by feature, the rows of
that log answered by the version (`version` column) in a time window (or all of them at a given
log snapshot) with the version's training snapshot of each input table, with the same statistics
and thresholds as a data drift check (`scan.compare_relations`: PSI, KS, category shift, missing
rates), except the row count: how many requests came is not how big the training set was.

It is recorded like a data drift check (`check.record_check`: a lineage run `drift.<model>` and
rows of `lineage.drift`), with the log table as the checked table, so `models drift NAME` lists
it and `models status` shows it as the traffic drift.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from lakehouse import sql
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.exceptions import TableNotFoundError
from lakehouse.tables import TableName, load_table
from lineage.transport import Transport
from models.drift.check import DriftCheck, baseline_table, record_check, thresholds_for
from models.drift.scan import KEY_COLUMNS, TableDrift, check_snapshot, compare_relations
from models.exceptions import DriftError
from models.registry import ModelRef, Registry
from models.signature import input_schema, prediction_table

DEFAULT_WINDOW = "1h"
_WINDOW = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|d)\s*")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_window(text: str) -> timedelta:
    """`90s`, `30m`, `1h`, `7d` as a duration; DriftError (parameter `window`) otherwise."""
    found = _WINDOW.fullmatch(text or "")
    if not found or float(found.group(1)) <= 0:
        raise DriftError(f"window {text!r} is not a duration like 30m, 1h or 7d", parameter="window")
    return timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])


def check_traffic(
    settings: Settings,
    ref: str,
    *,
    window: str | None = None,
    snapshot_id: int | None = None,
    transport: Transport | None = None,
    now: datetime | None = None,
) -> DriftCheck:
    """Compare the traffic the version `ref` answered with its training snapshots (module docstring).

    `window` (default DEFAULT_WINDOW when no `snapshot_id`): the rows logged in that span up to now,
    or up to the commit of `snapshot_id`; `snapshot_id` alone: every row of the version the log held
    at that snapshot.
    """
    catalog = load_catalog(settings)
    registry = Registry(settings, catalog)
    r = ModelRef.parse(ref)
    mv = registry.resolve(r)
    span = parse_window(window) if window else (None if snapshot_id is not None else parse_window(DEFAULT_WINDOW))
    name = prediction_table(mv.model)
    try:
        log_table = load_table(catalog, TableName.parse(name))
    except TableNotFoundError as exc:
        raise DriftError(f"{mv.model} has no prediction log ({name}) yet: serve it (`tidemark serve {mv.model}@ALIAS`) so requests are logged") from exc
    if snapshot_id is None:
        snap = log_table.current_snapshot()
        if snap is None:
            raise DriftError(f"{name} holds no predictions yet")
        snapshot_id, end = snap.snapshot_id, now or datetime.now(timezone.utc)
    else:
        check_snapshot(log_table, name, snapshot_id, "the prediction log snapshot to check", parameter="snapshot_id")
        end = datetime.fromtimestamp(log_table.snapshot_by_id(snapshot_id).timestamp_ms / 1000, tz=timezone.utc)  # type: ignore[union-attr]
    logged = {f.name for f in log_table.scan(snapshot_id=snapshot_id).projection().fields}
    features = [c for c in input_schema(settings, mv, catalog).names if c in logged and c not in KEY_COLUMNS]
    t = thresholds_for(settings, mv.model)

    con = sql.connect(iceberg=False)
    con.execute("SET enable_progress_bar = false")
    sql.snapshot_view(con, "log", log_table, snapshot_id)
    where = [f"version = {int(mv.version)}"]
    if span is not None:
        # Epoch microseconds as integers: no time-zone or text-format question in the SQL.
        where.append(f"epoch_us(time) BETWEEN {int((end - span).timestamp() * 1e6)} AND {int(end.timestamp() * 1e6)}")
    results: list[tuple[TableDrift, Any]] = []
    for inp in mv.inputs:
        table = baseline_table(catalog, mv, inp.table, inp.snapshot_id)
        fields = {f.name: f for f in table.scan(snapshot_id=inp.snapshot_id).projection().fields}
        columns = {c: fields[c] for c in features if c in fields}
        if not columns:
            continue
        select = ", ".join(sql.quote_ident(c) for c in columns)
        sql.snapshot_view(con, "train", table, inp.snapshot_id)
        con.execute(f"CREATE OR REPLACE VIEW base AS SELECT {select} FROM train")
        con.execute(f"CREATE OR REPLACE VIEW cur AS SELECT {select} FROM log WHERE {' AND '.join(where)}")
        td = compare_relations(con, name, inp.snapshot_id, snapshot_id, columns, t, row_counts=False)  # type: ignore[arg-type]
        if td.rows_current == 0:
            what = f"between {(end - span).isoformat(timespec='seconds')} and {end.isoformat(timespec='seconds')}" if span else f"at snapshot {snapshot_id}"
            raise DriftError(
                f"{name} has no predictions of {mv.model}:{mv.version} {what}; widen the window or pick another snapshot",
                parameter="window" if span else "snapshot_id",
            )
        td.baseline_table = inp.table
        results.append((td, log_table))
    if not results:
        raise DriftError(f"{name} logs none of the features {mv.model}:{mv.version} was trained on; nothing to compare")
    return record_check(settings, catalog, registry, mv, r.alias, t, results, transport=transport, code=check_traffic)
