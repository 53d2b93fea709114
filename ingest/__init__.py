"""Ingest: source files -> Iceberg through write-audit-publish and Great Expectations gates.

Public surface: the modules in `__all__`, and in each of them every name that does not start with an
underscore. The modules that serve `land`, one step of a landing each, are this package's own:
`batches` (rebatching the stream), `target` and `schema` (the table and its columns), `write` (data
files written while `gate` validates them), `verdict` (the gate's verdict in the snapshot summary and
its messages), `datasets` (lineage), `result` (what a landing reports; `land` re-exports it),
`content` (a text file's compression and encoding, or why it is not text) and `inference` (column
types settled over the whole file).
tests/test_architecture.py fails when another package imports them or an underscored name.
"""

__all__ = ["columns", "exceptions", "feeds", "land", "quarantine", "recovery", "several", "sources", "sparkland", "staged"]
