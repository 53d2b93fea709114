"""Reconciling a source's columns with a table's schema, before anything is written.

- A new column is added to the table (always optional: older rows have no value for it), but only
  with the data it came with: the evolved schema becomes current when the landing is published.
- A column narrower in the source than in the table (int -> long, float -> double) is widened on write.
- A column wider in the source, where Iceberg allows the promotion (int -> long, float -> double,
  decimal precision), widens the table's column.
- Anything else (long -> string, double -> long, ...) is refused, naming every such column; so is a
  source that lacks a column the table requires. Nothing is written in either case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ingest.exceptions import SchemaMismatchError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table


@dataclass
class SchemaPlan:
    add: list[tuple[str, Any]] = field(default_factory=list)  # (column, iceberg type)
    widen: list[tuple[str, Any]] = field(default_factory=list)
    ignored_empty: list[str] = field(default_factory=list)  # all-null source columns the table lacks

    @property
    def changes(self) -> bool:
        return bool(self.add or self.widen)


def to_iceberg(schema: pa.Schema) -> Schema:
    """The Iceberg schema a table created from these Arrow columns would get."""
    from lakehouse.pyiceberg_compat import arrow_to_iceberg_schema

    return arrow_to_iceberg_schema(schema)


def droppable_empty_columns(schema: pa.Schema) -> list[str]:
    """Columns of Arrow type null (a CSV column with no value in the first block): Iceberg has no such type."""
    import pyarrow as pa

    return [f.name for f in schema if pa.types.is_null(f.type)]


def plan(table_schema: Schema, source: pa.Schema, table: str, source_name: str) -> SchemaPlan:
    """What the table needs to accept the source; SchemaMismatchError naming the columns if it cannot."""
    import pyarrow as pa
    from pyiceberg.exceptions import ResolveError
    from pyiceberg.schema import promote
    from pyiceberg.types import DoubleType, FloatType, IntegerType, LongType

    result = SchemaPlan()
    empty = set(droppable_empty_columns(source))
    known = {f.name: f for f in table_schema.fields}
    incoming = to_iceberg(pa.schema([f for f in source if f.name not in empty]))
    refused: list[str] = []
    for sf in incoming.fields:
        tf = known.get(sf.name)
        if tf is None:
            result.add.append((sf.name, sf.field_type))
            continue
        if sf.field_type == tf.field_type or _same_nested(sf.field_type, tf.field_type):
            continue
        try:
            promote(sf.field_type, tf.field_type)  # source narrower: cast on write
            continue
        except ResolveError:
            pass
        if isinstance(sf.field_type, (IntegerType, LongType)) and isinstance(tf.field_type, (FloatType, DoubleType)):
            # Whole numbers in a file for a floating-point column (e.g. `99` for a measure): cast on write.
            continue
        try:
            promote(tf.field_type, sf.field_type)  # table narrower, and Iceberg allows widening it
            result.widen.append((sf.name, sf.field_type))
        except ResolveError:
            refused.append(f"{sf.name} ({tf.field_type} in the table, {sf.field_type} in the file)")
    result.ignored_empty = sorted(n for n in empty if n not in known)
    missing = [f.name for f in table_schema.fields if f.required and f.name not in source.names]
    problems = []
    if refused:
        problems.append(f"column types differ and cannot be widened: {', '.join(refused)}")
    if missing:
        problems.append(f"required column(s) missing from the file: {', '.join(missing)}")
    if problems:
        raise SchemaMismatchError(
            f"{source_name}: cannot land into {table}: {'; '.join(problems)}; nothing was written. "
            "Fix the file, or land it into a new table"
        )
    return result


def _same_nested(a: Any, b: Any) -> bool:
    """The same struct / list / map type but for field ids (a file's nested fields have none yet)."""
    from pyiceberg.io.pyarrow import schema_to_pyarrow

    return not a.is_primitive and not b.is_primitive and bool(schema_to_pyarrow(a).equals(schema_to_pyarrow(b)))


def apply(table: Table, changes: SchemaPlan) -> Schema:
    """The schema a landing writes in: the table's, evolved by `changes` (new columns optional).

    A changed schema is added to the table without becoming current (one metadata commit,
    `lakehouse.branches.add_schema`): the landing's audit snapshot is written in it, and main's
    readers get it only when that snapshot is published. A refused landing leaves the schema as it was.
    """
    from lakehouse import branches

    if not changes.changes:
        return table.schema()

    def change(update: Any) -> None:
        for name, typ in changes.add:
            update.add_column(name, typ, required=False)
        for name, typ in changes.widen:
            update.update_column(name, field_type=typ)

    return branches.add_schema(table, change)


def conform(data: pa.Table, table_schema: Schema, source_name: str) -> pa.Table:
    """The batch in the table's column order and types; absent optional columns become nulls."""
    import pyarrow as pa

    target = table_schema.as_arrow()
    columns = []
    fields = []
    for f, tf in zip(target, table_schema.fields):
        if f.name in data.column_names:
            col = data.column(f.name)
            if needs_cast(col.type, f.type):
                col = col.cast(f.type)
            if tf.required and col.null_count:
                raise SchemaMismatchError(
                    f"{source_name}: column {f.name} is required in the table but has {col.null_count} empty value(s); "
                    "nothing was written"
                )
            columns.append(col)
            fields.append(pa.field(f.name, col.type, nullable=not tf.required, metadata=f.metadata))
        else:
            columns.append(pa.nulls(data.num_rows, f.type))
            fields.append(f)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def needs_cast(read: pa.DataType, stored: pa.DataType) -> bool:
    """Whether a column read as `read` is cast to be stored as `stored` (what `conform` does)."""
    return read != stored and not _same_family(read, stored)


def _same_family(a: pa.DataType, b: pa.DataType) -> bool:
    """string vs large_string (and binary) hold the same values: the writer converts, no copy here."""
    import pyarrow as pa

    strings = (pa.types.is_string(a) or pa.types.is_large_string(a)) and (pa.types.is_string(b) or pa.types.is_large_string(b))
    binaries = (pa.types.is_binary(a) or pa.types.is_large_binary(a)) and (pa.types.is_binary(b) or pa.types.is_large_binary(b))
    return strings or binaries
