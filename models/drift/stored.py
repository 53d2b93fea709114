"""The drift checks stored in `lineage.drift`: what `models drift NAME` lists and plots."""

from __future__ import annotations

import json
from typing import Any

from lakehouse import sql
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lineage import drift_store
from models.registry import ModelRef, Registry


def stored_checks(settings: Settings, ref: str) -> list[dict[str, Any]]:
    """Stored drift results of a model (NAME: every version; NAME@ALIAS or NAME:VERSION: only those
    checks), one row per check x table x column, latest check first."""
    r = ModelRef.parse(ref)
    catalog = load_catalog(settings)
    registry = Registry(settings, catalog)
    # An unknown model, version, or an alias that never existed: the registry's own error. An
    # alias that has moved on still shows the checks made through it.
    if (
        not registry.versions(r.name)
        or r.version is not None
        or (r.alias is not None and not any(h["alias"] == r.alias for h in registry.alias_history(r.name)))
    ):
        registry.resolve(r)
    drift_store.ensure(catalog, settings)
    con = sql.connect(iceberg=False)
    ns = settings.lineage.namespace
    sql.attach_tables(con, catalog, [ns], only=[f"{ns}.{drift_store.DRIFT}"])
    where: list[str] = ["model = ?"]
    params: list[Any] = [r.name]
    if r.alias is not None:
        where.append("alias = ?")
        params.append(r.alias)
    if r.version is not None:
        where.append("version = ?")
        params.append(r.version)
    rows = sql.query(
        con,
        f"SELECT * FROM {sql.quote_ident(ns)}.{drift_store.DRIFT} WHERE {' AND '.join(where)} "
        "ORDER BY event_time DESC, table_name, column_name",
        params,
    ).to_pylist()
    for row in rows:
        row["reasons"] = json.loads(row["reasons"] or "[]")
    return rows
