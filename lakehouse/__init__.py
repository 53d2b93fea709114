"""Lakehouse: catalog and config, Iceberg tables, snapshots and branches, DuckDB queries.

Imports none of Tidemark's other packages; everything else builds on it.

Public surface: the modules in `__all__`, and in each of them every name that does not start with an
underscore. The others (`sqlcatalog`, the catalog implementation `catalog` loads) are this package's
own; tests/test_architecture.py fails when another package imports them or an underscored name.
`branches` holds the write-audit-publish protocol; `pyiceberg_compat` is the one module that uses
pyiceberg's internals (tests/lakehouse/test_pyiceberg_compat.py keeps it that way). `spark` gives a
SparkSession over the same catalog (the `spark` extra; `make spark`).
"""

__all__ = [
    "branches",
    "catalog",
    "config",
    "datafiles",
    "exceptions",
    "failpoints",
    "identity",
    "maintenance",
    "names",
    "pyiceberg_compat",
    "redact",
    "spark",
    "sql",
    "tables",
    "timeline",
    "times",
]
