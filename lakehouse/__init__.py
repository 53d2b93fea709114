"""Lakehouse: catalog and config, Iceberg tables, snapshots and branches, DuckDB queries.

Imports none of Tidemark's other packages; everything else builds on it.
"""
