"""Ingest: source files -> Iceberg through write-audit-publish and Great Expectations gates.

Public surface: the modules in `__all__`, and in each of them every name that does not start with an
underscore. `gate` (suites and their checks) and `schema` (reconciling columns) serve `land`; tests/
test_architecture.py fails when another package imports them or an underscored name.
"""

__all__ = ["exceptions", "feeds", "land", "quarantine", "sources"]
