"""The OpenLineage datasets of a landing: the source file it read and the table snapshot it wrote."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingest import sources
from ingest.result import LandingResult
from lakehouse.config import Settings
from lineage import events as ev

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot


def source_dataset(settings: Settings, src: sources.Source) -> dict[str, Any]:
    """The source file, versioned by its content checksum."""
    return ev.file_dataset(producer=settings.lineage.producer, path=src.uri, sha256=src.sha256, size=src.size, fmt=src.fmt)


def output_dataset(
    settings: Settings, table: Table, name: str, snapshot: Snapshot, result: LandingResult, column_lineage: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The snapshot written, with the gate's assertions bound to it, the landing's row, file and byte
    counts, and `column_lineage` (the `columnLineage` facet: which file column filled each table column)."""
    return snapshot_dataset(
        settings, table, name, snapshot, rows=result.rows, size=result.bytes_written, files=result.data_files,
        checks=assertions(result), column_lineage=column_lineage,
    )


def assertions(result: LandingResult) -> list[dict[str, Any]] | None:
    """The gate's verdict as OpenLineage assertions (one per expectation); None for an ungated landing."""
    if result.gate is None:
        return None
    return [{"assertion": o.expectation, "success": o.success, **({"column": o.column} if o.column else {})} for o in result.gate.outcomes]


def snapshot_dataset(
    settings: Settings, table: Table, name: str, snapshot: Snapshot, *, rows: int, size: int, files: int,
    checks: list[dict[str, Any]] | None, column_lineage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`output_dataset` from plain values: what recovery rebuilds for a landing whose process died."""
    extra: dict[str, Any] = {}
    if column_lineage is not None:
        extra["columnLineage"] = column_lineage
    if checks is not None:
        extra["dataQualityAssertions"] = ev.facet(
            settings.lineage.producer,
            f"{ev.FACETS}/1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet",
            assertions=checks,
        )
    dataset = ev.table_dataset(
        settings,
        name,
        table,
        snapshot.snapshot_id,
        "output",
        sequence_number=snapshot.sequence_number,
        operation=str(snapshot.summary.operation.value) if snapshot.summary else None,
        row_count=rows,
        extra_facets=extra,
    )
    stats = dataset.get("outputFacets", {}).get("outputStatistics")
    if stats is not None:
        stats["size"] = size
        stats["fileCount"] = files
    return dataset
