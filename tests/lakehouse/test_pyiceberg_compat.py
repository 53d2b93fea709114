"""lakehouse.pyiceberg_compat is the one place that uses pyiceberg's internals.

The pinned pyiceberg still has each internal with the signature the module was written for (a
pyiceberg upgrade that changes one fails here, naming it), the behaviour it relies on still holds,
and no other module of the project imports a pyiceberg private name or touches a private attribute
of a pyiceberg object (checked over the AST of every module).
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import re
from functools import cache
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse import pyiceberg_compat as compat
from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
from lakehouse.tables import TableName, ensure_table

ROOT = Path(__file__).resolve().parents[2]
COMPAT = ROOT / "lakehouse" / "pyiceberg_compat.py"
SCANNED = ("lakehouse", "ingest", "lineage", "models", "tidemark", "dags", "benchmarks", "tests")

# (module, qualified name, signature) of every pyiceberg internal the compat module calls, as in 0.12.0.
INTERNALS = [
    ("pyiceberg.io.pyarrow", "_dataframe_to_data_files",
     "(table_metadata: 'TableMetadata', df: 'pa.Table | pa.RecordBatchReader', io: 'FileIO', write_uuid: 'uuid.UUID | None' = None, counter: 'itertools.count[int] | None' = None) -> 'Iterable[DataFile]'"),
    ("pyiceberg.io.pyarrow", "_check_pyarrow_schema_compatible",
     "(requested_schema: 'Schema', provided_schema: 'pa.Schema', downcast_ns_timestamp_to_us: 'bool' = False, format_version: 'TableVersion' = 2) -> 'None'"),
    ("pyiceberg.io.pyarrow", "_get_parquet_writer_kwargs", "(table_properties: 'Properties') -> 'dict[str, Any]'"),
    ("pyiceberg.io.pyarrow", "compute_statistics_plan", "(schema: 'Schema', table_properties: 'dict[str, str]') -> 'dict[int, StatisticsCollector]'"),
    ("pyiceberg.io.pyarrow", "data_file_statistics_from_parquet_metadata",
     "(parquet_metadata: 'pq.FileMetaData', stats_columns: 'dict[int, StatisticsCollector]', parquet_column_mapping: 'dict[str, int]') -> 'DataFileStatistics'"),
    ("pyiceberg.io.pyarrow", "parquet_path_to_id_mapping", "(schema: 'Schema') -> 'dict[str, int]'"),
    ("pyiceberg.io.pyarrow", "ArrowScan.__init__",
     "(self, table_metadata: 'TableMetadata', io: 'FileIO', projected_schema: 'Schema', row_filter: 'BooleanExpression', case_sensitive: 'bool' = True, limit: 'int | None' = None, *, dictionary_columns: 'tuple[str, ...]' = ()) -> 'None'"),
    ("pyiceberg.catalog", "Catalog._convert_schema_if_needed", "(schema: 'Schema | pa.Schema', format_version: 'TableVersion' = 2) -> 'Schema'"),
    ("pyiceberg.catalog", "Catalog._load_file_io", "(self, properties: 'Properties' = {}, location: 'str | None' = None) -> 'FileIO'"),
    ("pyiceberg.catalog", "MetastoreCatalog._parse_metadata_version", "(metadata_location: 'str') -> 'int'"),
    ("pyiceberg.catalog", "MetastoreCatalog._write_metadata", "(metadata: 'TableMetadata', io: 'FileIO', metadata_path: 'str') -> 'None'"),
    ("pyiceberg.catalog.sql", "SqlCatalog._convert_orm_to_iceberg", "(self, orm_table: 'IcebergTables') -> 'Table'"),
    ("pyiceberg.table.update", "_apply_table_update",
     "(update: 'TableUpdate', base_metadata: 'TableMetadata', context: '_TableMetadataUpdateContext') -> 'TableMetadata'"),
    ("pyiceberg.table.update", "_update_table_metadata_log", "(base_metadata: 'TableMetadata', metadata_location: 'str', last_updated_ms: 'int') -> 'TableMetadata'"),
    ("pyiceberg.table.update", "_TableMetadataUpdateContext", "() -> 'None'"),
    ("pyiceberg.table", "Transaction.__init__", "(self, table: 'Table', autocommit: 'bool' = False)"),
    ("pyiceberg.table", "Transaction._apply",
     "(self, updates: 'tuple[TableUpdate, ...]', requirements: 'tuple[TableRequirement, ...]' = ()) -> 'Transaction'"),
    ("pyiceberg.table", "Transaction._rebuild_snapshot_updates", "(self) -> 'None'"),
]


def _resolve(module: str, qualname: str) -> object:
    obj: object = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def test_the_pinned_pyiceberg_is_the_version_the_module_was_written_against() -> None:
    assert importlib.metadata.version("pyiceberg") == compat.PYICEBERG_VERSION
    pins = (ROOT / "constraints.txt").read_text()
    assert f"pyiceberg=={compat.PYICEBERG_VERSION}\n" in pins
    assert f"Written against pyiceberg {compat.PYICEBERG_VERSION}." in (compat.__doc__ or "")


@pytest.mark.parametrize(("module", "qualname", "signature"), INTERNALS, ids=[f"{m}.{q}" for m, q, _ in INTERNALS])
def test_each_internal_has_the_signature_the_module_was_written_for(module: str, qualname: str, signature: str) -> None:
    assert str(inspect.signature(_resolve(module, qualname))) == signature


def test_every_internal_the_module_uses_is_in_the_signature_list_and_its_docstring() -> None:
    """A new internal used in pyiceberg_compat must be listed here (and so checked) and explained there."""
    used = set()
    for node in ast.walk(ast.parse(COMPAT.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pyiceberg"):
            used.update(a.name for a in node.names if a.name.startswith("_"))
        if isinstance(node, ast.Attribute) and _private(node.attr) and not _is_self(node.value):
            used.add(node.attr)
    listed = {q.split(".")[-1] for _, q, _ in INTERNALS}
    assert used - {"_table", "_updates"} <= listed, used - listed  # those two: test_staged
    for name in used:
        assert name in (compat.__doc__ or ""), f"{name} is used but not explained in the module docstring"


def _table(name: str) -> object:
    catalog = load_catalog(load_settings())
    return ensure_table(catalog, TableName("raw", name), pa.schema([pa.field("id", pa.int64())]))


def test_staged_is_what_a_transaction_started_from_and_has_staged() -> None:
    table = _table("staged")
    tx = table.transaction()  # type: ignore[attr-defined]
    base, updates = compat.staged(tx)
    assert base is table.metadata and updates == ()  # type: ignore[attr-defined]
    tx.set_properties({"k": "v"})
    assert [type(u).__name__ for u in compat.staged(tx)[1]] == ["SetPropertiesUpdate"]


def test_a_branch_commit_on_moved_metadata_still_fails_with_the_value_error_stale_is_conflict_turns_into_a_conflict() -> None:
    """The behaviour compat.stale_is_conflict exists for: if pyiceberg starts raising a
    CommitFailedException itself, or words the error otherwise, this fails."""
    from pyiceberg.exceptions import CommitFailedException

    table = _table("stale")
    rows = pa.table({"id": pa.array([1], pa.int64())})
    table.append(rows)  # type: ignore[attr-defined]
    catalog = load_catalog(load_settings())
    with catalog.load_table(("raw", "stale")).manage_snapshots() as ms:
        ms.create_branch(table.current_snapshot().snapshot_id, "b")  # type: ignore[attr-defined]
    stale = catalog.load_table(("raw", "stale"))
    catalog.load_table(("raw", "stale")).append(rows)  # main moves; `stale` does not know
    with pytest.raises(ValueError, match="sequence number"):
        stale.append(rows, branch="b")
    stale = catalog.load_table(("raw", "stale"))
    catalog.load_table(("raw", "stale")).append(rows)
    with pytest.raises(CommitFailedException, match="sequence number"):
        with compat.stale_is_conflict():
            stale.append(rows, branch="b")
    with pytest.raises(ValueError, match="other"):  # any other ValueError passes through unchanged
        with compat.stale_is_conflict():
            raise ValueError("other")


def test_read_data_files_reads_exactly_those_files_up_to_the_limit() -> None:
    table = _table("read")
    table.append(pa.table({"id": pa.array([1, 2, 3], pa.int64())}))  # type: ignore[attr-defined]
    table.append(pa.table({"id": pa.array([4], pa.int64())}))  # type: ignore[attr-defined]
    files = sorted((t.file for t in table.scan().plan_files()), key=lambda f: f.record_count)  # type: ignore[attr-defined]
    assert compat.read_data_files(table, files[1:]).column("id").to_pylist() == [1, 2, 3]  # type: ignore[arg-type]
    assert compat.read_data_files(table, files[1:], limit=2).num_rows == 2  # type: ignore[arg-type]


# -- no other module uses a pyiceberg internal --------------------------------------------------------


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


@cache
def _pyiceberg_private_names() -> frozenset[str]:
    """Every private name pyiceberg defines: functions, classes, methods, module and instance attributes."""
    import pyiceberg

    names: set[str] = set()
    for path in Path(pyiceberg.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _is_self(node.value):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return frozenset(n for n in names if _private(n))


def _defined_here(tree: ast.AST) -> set[str]:
    """Private names a module of ours defines itself (its own functions, classes, attributes)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return {n for n in names if _private(n)}


@cache
def _ours() -> tuple[tuple[Path, ast.Module], ...]:
    files = [p for d in SCANNED for p in sorted((ROOT / d).rglob("*.py")) if p != COMPAT and p != Path(__file__).resolve()]
    return tuple((p, ast.parse(p.read_text(encoding="utf-8"), filename=str(p))) for p in files)


def violations(tree: ast.Module, own: set[str]) -> list[str]:
    """Uses of a pyiceberg internal in one module: a private name imported from pyiceberg, a
    private attribute of a pyiceberg module or class, a private method of a pyiceberg class
    overridden or called on `self`/`super()` in a subclass, or a pyiceberg private attribute read
    from any object (unless the project defines a private of that name itself)."""
    private = _pyiceberg_private_names()
    found = []
    pyiceberg_names: set[str] = set()  # local names bound to a pyiceberg module or class
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "pyiceberg":
                    pyiceberg_names.add((a.asname or a.name).split(".")[0])
                    if any(_private(p) for p in a.name.split(".")):
                        found.append(f"line {node.lineno}: import {a.name}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pyiceberg":
            if any(_private(p) for p in (node.module or "").split(".")):
                found.append(f"line {node.lineno}: from {node.module} import ...")
            for a in node.names:
                pyiceberg_names.add(a.asname or a.name)
                if _private(a.name):
                    found.append(f"line {node.lineno}: from {node.module} import {a.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(isinstance(b, ast.Name) and b.id in pyiceberg_names for b in node.bases):
            for item in ast.walk(node):
                if isinstance(item, ast.FunctionDef) and item.name in private:
                    found.append(f"line {item.lineno}: {node.name} overrides pyiceberg's {item.name}")
                if isinstance(item, ast.Attribute) and item.attr in private and (
                    _is_self(item.value) or (isinstance(item.value, ast.Call) and getattr(item.value.func, "id", "") == "super")
                ):
                    found.append(f"line {item.lineno}: {node.name} uses pyiceberg's {item.attr}")
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if isinstance(node.value, ast.Name) and node.value.id in pyiceberg_names:
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
            elif node.attr in private and node.attr not in own and not _is_self(node.value):
                found.append(f"line {node.lineno}: .{node.attr} (a pyiceberg private attribute)")
    return sorted(set(found))


def test_no_module_but_pyiceberg_compat_uses_a_pyiceberg_internal() -> None:
    own = set().union(*(_defined_here(tree) for _, tree in _ours()))
    bad = {str(p.relative_to(ROOT)): v for p, tree in _ours() if (v := violations(tree, own))}
    assert bad == {}, "use lakehouse.pyiceberg_compat instead:\n" + "\n".join(f"{p}: {v}" for p, v in bad.items())


@pytest.mark.parametrize(
    "source",
    [
        "from pyiceberg.io.pyarrow import _dataframe_to_data_files",
        "import pyiceberg._private",
        "from pyiceberg.table import update as u\nu._apply_table_update(1, 2, 3)",
        "from pyiceberg.catalog import Catalog\nCatalog._convert_schema_if_needed(s)",
        "from pyiceberg.catalog.sql import SqlCatalog\nclass C(SqlCatalog):\n    def _convert_orm_to_iceberg(self, row): ...",
        "from pyiceberg.table import Transaction\nclass T(Transaction):\n    def f(self): return self._updates",
        "def f(tx): return tx._updates",
    ],
)
def test_the_check_finds_each_kind_of_use(source: str) -> None:
    assert violations(ast.parse(source), own=set()), source


def test_the_check_leaves_private_names_of_our_own_alone() -> None:
    source = "class W:\n    def __init__(self):\n        self._updates = 1\n    def f(self):\n        return self._updates\n"
    assert violations(ast.parse(source), own=set()) == []
    assert violations(ast.parse("def f(w): return w._commit_rows"), own={"_commit_rows"}) == []
    assert re.match(r"\d+\.\d+\.\d+", compat.PYICEBERG_VERSION)
