"""Ingest: source files -> Iceberg through write-audit-publish and Great Expectations gates."""
