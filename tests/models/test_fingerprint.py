"""The content fingerprint depends on the rows and their types, not on their order or chunking."""

from __future__ import annotations

import pyarrow as pa

from models.fingerprint import fingerprint


def test_same_rows_in_any_order_and_chunking_give_the_same_fingerprint() -> None:
    t = pa.table({"id": [3, 1, 2, 4], "x": [1.5, None, 2.0, 0.0], "s": ["a", "b", None, "d"]})
    shuffled = pa.concat_tables([t.slice(2), t.slice(0, 2)])
    reordered_columns = t.select(["s", "x", "id"])
    assert fingerprint(t) == fingerprint(shuffled) == fingerprint(reordered_columns)


def test_any_change_of_value_row_or_type_changes_it() -> None:
    t = pa.table({"id": [1, 2, 3], "x": [1.0, 2.0, 3.0]})
    base = fingerprint(t)
    assert fingerprint(t.slice(1)) != base
    assert fingerprint(pa.table({"id": [1, 2, 3], "x": [1.0, 2.0, 3.5]})) != base
    assert fingerprint(pa.table({"id": [1, 2, 3], "x": pa.array([1.0, 2.0, 3.0], pa.float32())})) != base
    assert fingerprint(pa.table({"id": [1, 2, 3], "x": [1.0, None, 3.0]})) != base
    assert fingerprint(pa.table({"id": [1, 2, 3], "y": [1.0, 2.0, 3.0]})) != base
