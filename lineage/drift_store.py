"""The drift lineage table, and how drift-check events become its rows.

`lineage.drift` holds one row per check x input table x column: the model version checked, the
baseline (trained-on) and current snapshot, the column's scores and verdict. A drift check carries
all of it in the `tidemark_drift` input facet of each table it read; the checker writes the rows
directly (so `models drift` answers at once) and the lineage consumer upserts the same rows from
the events, so a store fed only through Kafka, by any producer, is complete too.

Like `model_store`, this module knows the facet, never the `models` package.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from lakehouse.config import Settings
from lakehouse.tables import NO_REBASE, TableName, append_missing, ensure_table
from lakehouse.times import parse_time

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

DRIFT = "drift"
DRIFT_FACET = "tidemark_drift"
SYNC_JOB = "tidemark.lineage.drift-sync"


def schema() -> Any:
    from pyiceberg.schema import Schema
    from pyiceberg.types import BooleanType, DoubleType, IntegerType, LongType, TimestamptzType

    from lineage.store import column as s

    return Schema(
        s(1, "event_time", TimestamptzType(), required=True),
        s(2, "model", required=True),
        s(3, "version", IntegerType()),
        s(4, "alias"),
        s(5, "run_id", required=True),
        s(6, "table_name", required=True),
        s(7, "baseline_snapshot_id", LongType()),
        s(8, "current_snapshot_id", LongType()),
        s(9, "rows_baseline", LongType()),
        s(10, "rows_current", LongType()),
        s(11, "column_name", required=True),
        s(12, "kind"),  # numeric | categorical
        s(13, "psi", DoubleType()),
        s(14, "ks_statistic", DoubleType()),
        s(15, "ks_pvalue", DoubleType()),
        s(16, "category_shift", DoubleType()),
        s(17, "missing_rate_baseline", DoubleType()),
        s(18, "missing_rate_current", DoubleType()),
        s(19, "drifted", BooleanType()),
        s(20, "reasons"),  # JSON list of strings
        s(21, "table_drifted", BooleanType()),
        # False: carried by a drift facet without a valid signature (`lineage.signing`), i.e. not
        # from Tidemark's own checker; `models status` ignores such rows. None: a row from before.
        s(22, "verified", BooleanType()),
    )


def arrow_schema() -> pa.Schema:
    return schema().as_arrow()


def ensure(catalog: Catalog, settings: Settings) -> Table:
    from lineage.store import add_new_columns

    table = ensure_table(catalog, TableName(settings.lineage.namespace, DRIFT), schema(), properties={"format-version": "2", **NO_REBASE})
    return add_new_columns(table, schema())  # `verified` into a drift table an older Tidemark made


def rows_from_event(event: Mapping[str, Any], settings: Settings | None = None) -> list[dict[str, Any]]:
    """`lineage.drift` rows carried by a COMPLETE event's inputs with a `tidemark_drift` facet.

    `verified`: the facet's signature verifies with `settings`' registry key (never without settings).
    """
    from lineage import signing

    if event.get("eventType") != "COMPLETE":
        return []
    rows = []
    for ds in event.get("inputs") or []:
        facet = (ds.get("inputFacets") or {}).get(DRIFT_FACET)
        if not isinstance(facet, dict):
            continue
        try:
            base = {
                "event_time": parse_time(str(event["eventTime"]), parameter="eventTime"),
                "model": str(facet["model"]),
                "version": int(facet["version"]) if facet.get("version") is not None else None,
                "alias": facet.get("alias"),
                "run_id": str(event["run"]["runId"]),
                "table_name": str(facet["table"]),
                "baseline_snapshot_id": _int(facet.get("baselineSnapshotId")),
                "current_snapshot_id": _int(facet.get("currentSnapshotId")),
                "rows_baseline": _int(facet.get("rowsBaseline")),
                "rows_current": _int(facet.get("rowsCurrent")),
                "table_drifted": bool(facet.get("drifted", False)),
                "verified": signing.facet_verifies(settings, facet),
            }
            for f in facet.get("features") or []:
                rows.append(
                    {
                        **base,
                        "column_name": str(f["column"]),
                        "kind": f.get("kind"),
                        "psi": _float(f.get("psi")),
                        "ks_statistic": _float(f.get("ksStatistic")),
                        "ks_pvalue": _float(f.get("ksPvalue")),
                        "category_shift": _float(f.get("categoryShift")),
                        "missing_rate_baseline": _float(f.get("missingRateBaseline")),
                        "missing_rate_current": _float(f.get("missingRateCurrent")),
                        "drifted": bool(f.get("drifted", False)),
                        "reasons": json.dumps(list(f.get("reasons") or [])),
                    }
                )
        except (KeyError, TypeError, ValueError):
            continue  # a malformed facet from some producer: the event itself is still stored
    return rows


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def upsert_from_events(catalog: Catalog, settings: Settings, events: Iterable[Mapping[str, Any]]) -> int:
    """Add the drift rows these events carry and the table lacks; returns how many were added.

    Idempotent: a row is keyed by (run id, table, column), so a replay, or an event whose rows the
    checker already wrote directly, adds nothing.
    """
    rows = [r for e in events for r in rows_from_event(e, settings)]
    if not rows:
        return 0
    from pyiceberg.expressions import In

    ensure(catalog, settings)
    return append_missing(
        catalog,
        (settings.lineage.namespace, DRIFT),
        rows,
        ("run_id", "table_name", "column_name"),
        arrow_schema(),
        job_name=SYNC_JOB,
        row_filter=In(term="run_id", literals=sorted({r["run_id"] for r in rows})),
    )
