"""A content fingerprint of a table: sha256 over its rows in a canonical order.

Independent of how the rows are split into files, batches or chunks and of the order a scan
returns them (compaction rewrites files; a scan promises no order), so the same rows always give
the same fingerprint. Column names and types are part of it: a retyped column is different data.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa



def _sortable(t: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_string(t)
        or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_timestamp(t) or pa.types.is_date(t)
        or pa.types.is_decimal(t)
    )


def fingerprint(table: pa.Table) -> str:
    """sha256 of `table`'s schema and rows, rows sorted by every (sortable) column, columns by name."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = sorted(table.column_names)
    t = table.select(cols)
    keys = [(c, "ascending", "at_end") for c in cols if _sortable(t.schema.field(c).type)]
    if t.num_rows and keys:
        t = t.take(pc.sort_indices(t, sort_keys=keys))
    h = hashlib.sha256()
    h.update(json.dumps([[f.name, str(f.type)] for f in t.schema]).encode())
    h.update(t.num_rows.to_bytes(8, "little"))
    for name in cols:
        col = t.column(name)
        arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        h.update(name.encode() + b"\0")
        h.update(np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), dtype=np.bool_).tobytes())
        typ = arr.type
        if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ):
            values = pc.fill_null(arr, pa.scalar(0, typ) if not pa.types.is_boolean(typ) else False)
            h.update(np.ascontiguousarray(values.to_numpy(zero_copy_only=False)).tobytes())
        elif pa.types.is_timestamp(typ) or pa.types.is_date(typ):
            as_int = arr.cast(pa.int64() if pa.types.is_timestamp(typ) or typ == pa.date64() else pa.int32())
            h.update(np.ascontiguousarray(pc.fill_null(as_int, 0).to_numpy(zero_copy_only=False)).tobytes())
        else:
            # Strings, binaries, decimals, nested values: length-prefixed canonical text per row.
            for v in arr.to_pylist():
                b = v if isinstance(v, bytes) else json.dumps(v, sort_keys=True, default=str).encode()
                h.update(len(b).to_bytes(8, "little") + b)
    return h.hexdigest()
