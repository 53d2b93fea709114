"""Reconciling a source's columns with a table's schema (ingest.schema): what is added, widened,
cast on write or refused (naming every column), on real Iceberg schemas and a real table."""

from __future__ import annotations

import pyarrow as pa
import pytest

from ingest import schema as schemas
from ingest.exceptions import SchemaMismatchError
from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
from lakehouse.tables import TableName, ensure_table, load_table


def _iceberg(**fields: pa.DataType):  # type: ignore[no-untyped-def]
    return schemas.to_iceberg(pa.schema([pa.field(n, t) for n, t in fields.items()]))


def test_an_arrow_schema_becomes_the_iceberg_types_a_new_table_would_get() -> None:
    s = _iceberg(id=pa.int64(), name=pa.string(), x=pa.float32(), t=pa.timestamp("us", tz="UTC"))
    assert [(f.name, str(f.field_type), f.required) for f in s.fields] == [
        ("id", "long", False), ("name", "string", False), ("x", "float", False), ("t", "timestamptz", False),
    ]


def test_new_columns_are_added_and_wider_source_types_widen_the_table() -> None:
    table = _iceberg(id=pa.int32(), x=pa.float32())
    source = pa.schema([("id", pa.int64()), ("x", pa.float64()), ("new", pa.string()), ("blank", pa.null())])
    plan = schemas.plan(table, source, "raw.t", "a.csv")
    assert [(n, str(t)) for n, t in plan.add] == [("new", "string")]
    assert [(n, str(t)) for n, t in plan.widen] == [("id", "long"), ("x", "double")]
    assert plan.ignored_empty == ["blank"] and plan.changes


def test_narrower_source_types_and_whole_numbers_for_floats_are_cast_on_write() -> None:
    table = _iceberg(id=pa.int64(), x=pa.float64(), y=pa.float32())
    source = pa.schema([("id", pa.int32()), ("x", pa.float32()), ("y", pa.int64())])
    plan = schemas.plan(table, source, "raw.t", "a.csv")
    assert not plan.changes and plan.ignored_empty == []


def test_every_column_that_cannot_be_reconciled_is_named() -> None:
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, StringType

    table = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "name", StringType(), required=False),
        NestedField(3, "n", LongType(), required=False),
    )
    source = pa.schema([("name", pa.int64()), ("n", pa.string())])
    with pytest.raises(SchemaMismatchError) as err:
        schemas.plan(table, source, "raw.t", "a.csv")
    msg = str(err.value)
    assert msg.startswith("a.csv: cannot land into raw.t: column types differ and cannot be widened: ")
    assert "name (string in the table, long in the file)" in msg and "n (long in the table, string in the file)" in msg
    assert "required column(s) missing from the file: id" in msg and msg.endswith("Fix the file, or land it into a new table")


def test_conform_orders_casts_and_fills_the_columns_of_the_table() -> None:
    table = _iceberg(id=pa.int64(), name=pa.large_string(), x=pa.float64(), extra=pa.string())
    batch = pa.table({"x": pa.array([1.5, None], pa.float32()), "id": pa.array([1, 2], pa.int32()), "name": ["a", "b"]})
    out = schemas.conform(batch, table, "a.csv")
    assert out.column_names == ["id", "name", "x", "extra"]
    assert out.schema.field("id").type == pa.int64() and out.schema.field("x").type == pa.float64()
    assert out.schema.field("name").type == pa.string()  # same values as large_string: not copied
    assert out.column("extra").to_pylist() == [None, None]
    assert out.to_pylist()[0] == {"id": 1, "name": "a", "x": 1.5, "extra": None}


def test_conform_refuses_empty_values_in_a_required_column() -> None:
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    table = Schema(NestedField(1, "id", LongType(), required=True))
    with pytest.raises(SchemaMismatchError, match="a.csv: column id is required in the table but has 1 empty value\\(s\\); nothing was written"):
        schemas.conform(pa.table({"id": pa.array([1, None], pa.int64())}), table, "a.csv")


def test_apply_adds_the_evolved_schema_in_one_commit_without_making_it_current() -> None:
    catalog = load_catalog(load_settings())
    name = TableName("raw", "evolving")
    ensure_table(catalog, name, pa.schema([("id", pa.int32())]))
    table = load_table(catalog, name)
    before = len(table.metadata.metadata_log)
    new = schemas.apply(table, schemas.plan(table.schema(), pa.schema([("id", pa.int64()), ("tag", pa.string())]), "raw.evolving", "a.csv"))
    assert [(f.name, str(f.field_type), f.required) for f in new.fields] == [("id", "long", False), ("tag", "string", False)]
    fresh = load_table(catalog, name)
    assert fresh.schema().schema_id != new.schema_id  # current until a landing in it is published: unchanged
    assert [(f.name, str(f.field_type)) for f in fresh.schema().fields] == [("id", "int")]
    assert fresh.metadata.schema_by_id(new.schema_id) == new and fresh.metadata.last_column_id == 2  # the new column's id is reserved
    assert len(fresh.metadata.metadata_log) == before + 1
    assert schemas.apply(fresh, schemas.SchemaPlan()) == fresh.schema()  # nothing to change: no commit
    assert load_table(catalog, name).metadata_location == fresh.metadata_location


def test_all_null_columns_are_the_ones_a_table_cannot_take() -> None:
    assert schemas.droppable_empty_columns(pa.schema([("a", pa.null()), ("b", pa.int64()), ("c", pa.null())])) == ["a", "c"]
