"""A source's record batches regrouped into the batches a landing writes and validates, and how far along it is.

A reader hands out record batches of whatever size its format makes (a CSV block, a Parquet row
group's slice); a landing wants tables of about BATCH_ROWS rows: the unit of writing and of
validation. Memory holds about two batches at once (one being written, one being validated), so
~1M rows keeps a 100-byte-wide row well under 1 GB, and BATCH_BYTES caps a batch of wide rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ingest import sources

if TYPE_CHECKING:
    import pyarrow as pa

BATCH_ROWS = 1_000_000
BATCH_BYTES = 256 << 20


class Rebatcher:
    """Source record batches regrouped into tables of about `rows` rows (and at most BATCH_BYTES)."""

    def __init__(self, batches: Iterator[pa.RecordBatch], rows: int) -> None:
        self._batches = batches
        self._rows = rows
        self._peeked: list[pa.RecordBatch] = []
        self.rows_read = 0
        self.first_rows = 0

    def peek(self) -> pa.RecordBatch | None:
        """The first non-empty record batch (still handed out by iteration); None if there is none."""
        for batch in self._batches:
            if batch.num_rows:
                self._peeked.append(batch)
                self.first_rows = batch.num_rows
                return batch
        return None

    def __iter__(self) -> Iterator[pa.Table]:
        import pyarrow as pa

        pending: list[pa.RecordBatch] = []
        rows = size = 0
        for whole in itertools.chain(self._peeked, self._batches):
            # A reader may hand out more rows at once than a batch holds (a whole CSV block).
            for off in range(0, whole.num_rows, self._rows):
                batch = whole.slice(off, self._rows)
                if rows + batch.num_rows > self._rows:
                    cut = self._rows - rows
                    pending.append(batch.slice(0, cut))
                    self.rows_read += self._rows
                    yield pa.Table.from_batches(pending)
                    batch = batch.slice(cut)
                    pending, rows, size = [], 0, 0
                pending.append(batch)
                rows += batch.num_rows
                size += batch.nbytes
                if rows >= self._rows or size >= BATCH_BYTES:
                    self.rows_read += rows
                    yield pa.Table.from_batches(pending)
                    pending, rows, size = [], 0, 0
        self._peeked = []
        if pending:
            self.rows_read += rows
            yield pa.Table.from_batches(pending)


def total_rows(src: sources.Source) -> int | None:
    """The file's row count when its format records one (Parquet); None otherwise."""
    if src.fmt != "parquet":
        return None
    try:
        import pyarrow.parquet as pq

        with src.filesystem.open_input_file(src.path) as fh:
            return int(pq.ParquetFile(fh).metadata.num_rows)
    except Exception:
        return None


def fraction_done(stream: Rebatcher, src: sources.Source, rows: int, total: int | None) -> float | None:
    """Share of the file landed after `rows` rows (None: unknown), for a progress bar.

    With a row count (Parquet) exact. A CSV / JSON Lines file's share is estimated from rows: the
    parser reads ahead of the rows handed out, so bytes read overstate progress. Each parse block
    is one record batch, so the first batch gives the rows per block.
    """
    if total:
        return min(1.0, rows / total)
    first = stream.first_rows
    if not first or not src.size:
        return None
    blocks = max(1.0, src.size / sources.TEXT_BLOCK_BYTES)
    return min(0.99, rows / (first * blocks))
