"""The drift counts by Spark: for tables past what DuckDB in one process should scan.

The same reduction as the DuckDB path (`scan.DuckDBCounter`), so `scan._compare` scores both
alike: each snapshot is read at its id (Iceberg's `snapshot-id` read option) and reduced in one
pass to (column, bucket, count) for the numeric columns, with the same bucket key
`floor((value::DOUBLE - lo) / width)` over the same buckets (IEEE doubles in both engines, so the
counts are equal, not merely close), and to (column, value as text, count) for the others, from
which the category shift is computed here. Only those aggregates reach Python.

A category's text is Spark's cast to string: the same as DuckDB's for strings, booleans and dates;
a timestamp reads `2026-01-01 00:00:00` here and `2026-01-01 00:00:00+00` in DuckDB (the shift is
the same, the new/vanished names are spelled differently).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lakehouse import spark as lspark
from lakehouse.config import Settings
from models.drift.scan import Buckets, CategoricalScores, _kind

if TYPE_CHECKING:
    import numpy as np
    from pyspark.sql import Column, DataFrame


class SparkCounter:
    """The snapshots `baseline` and `current` of `table` as Spark DataFrames (sides `base` and `cur`)."""

    def __init__(self, settings: Settings, table: str, baseline: int, current: int, columns: Mapping[str, Any]) -> None:
        spark = lspark.session(settings)
        self.frames: dict[str, DataFrame] = {
            side: lspark.read_table(spark, settings, table, snapshot_id=sid) for side, sid in (("base", baseline), ("cur", current))
        }
        self.categorical_columns = [c for c, f in columns.items() if _kind(f) != "numeric"]
        self._values: dict[str, dict[str, dict[str, int]]] = {}  # side -> column -> category -> count

    def rows(self, side: str) -> int:
        return int(self.frames[side].count())

    def minmax(self, side: str, columns: Sequence[str]) -> dict[str, tuple[float, float] | None]:
        from pyspark.sql import functions as F

        aggs = [e for c in columns for e in (F.min(F.col(c).cast("double")), F.max(F.col(c).cast("double")))]
        row = self.frames[side].agg(*aggs).first()
        return {c: None if row is None or row[2 * i] is None else (float(row[2 * i]), float(row[2 * i + 1])) for i, c in enumerate(columns)}

    def bucket_counts(self, side: str, ranges: Mapping[str, Buckets], numeric: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Bucket counts of every numeric column and value counts of every other one, in one pass
        over the snapshot (the value counts are kept for `categorical`)."""
        import numpy as np
        from pyspark.sql import functions as F

        names = list(ranges)
        entries = [self._bucket_entry(i, c, ranges[c], numeric[c]) for i, c in enumerate(names)]
        entries += [self._value_entry(len(names) + j, c) for j, c in enumerate(self.categorical_columns)]
        counts: dict[str, dict[Any, int]] = {c: {} for c in [*names, *self.categorical_columns]}
        if entries:
            cells = self.frames[side].select(F.explode(F.array(*entries)).alias("e")).select("e.*")
            grouped = cells.where(F.col("k").isNotNull() | F.col("v").isNotNull()).groupBy("c", "k", "v").count()
            order = [*names, *self.categorical_columns]
            for c, k, v, n in grouped.collect():
                counts[order[c]][k if c < len(names) else v] = int(n)
        self._values[side] = {c: counts[c] for c in self.categorical_columns}
        out = {}
        for c, b in ranges.items():
            keys = np.array(list(counts[c]), dtype="int64")
            weights = np.array(list(counts[c].values()), dtype="float64")
            # As in DuckDB: only the maximum lands one past the last bucket; fold it back.
            out[c] = np.bincount(np.clip(keys, 0, b.count - 1), weights=weights, minlength=b.count)
        return out

    @staticmethod
    def _bucket_entry(index: int, column: str, b: Buckets, field: Any) -> Column:
        from pyspark.sql import functions as F

        value = F.col(column)
        key = F.floor((value.cast("double") - F.lit(b.lo)) / F.lit(b.width)).cast("long") if b.width else F.lit(0).cast("long")
        present = value.isNotNull()
        if str(field.field_type) in ("float", "double"):
            present = present & ~F.isnan(value)  # NaN is missing, as in DuckDB's path
        return F.struct(F.lit(index).alias("c"), F.when(present, key).alias("k"), F.lit(None).cast("string").alias("v"))

    @staticmethod
    def _value_entry(index: int, column: str) -> Column:
        from pyspark.sql import functions as F

        return F.struct(F.lit(index).alias("c"), F.lit(None).cast("long").alias("k"), F.col(column).cast("string").alias("v"))

    def categorical(self, column: str) -> CategoricalScores:
        if not self._values:  # no numeric column asked for the pass that also counts categories
            for side in ("base", "cur"):
                self.bucket_counts(side, {}, {})
        base, cur = self._values["base"][column], self._values["cur"][column]
        nb, nc = sum(base.values()), sum(cur.values())
        shift = None
        if nb and nc:
            shift = 0.5 * sum(abs(base.get(v, 0) / nb - cur.get(v, 0) / nc) for v in set(base) | set(cur))
        # The 10 most frequent new (vanished) categories; ties by name, so the list is the same every run.
        new = sorted((v for v in cur if v not in base), key=lambda v: (-cur[v], v))[:10]
        vanished = sorted((v for v in base if v not in cur), key=lambda v: (-base[v], v))[:10]
        return CategoricalScores(
            shift=shift, new=new, vanished=vanished, distinct_current=len(cur), values_baseline=nb, values_current=nc
        )
