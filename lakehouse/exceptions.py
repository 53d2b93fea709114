"""The root of Tidemark's errors. Every message says what to do about it."""

from __future__ import annotations


class TidemarkError(Exception):
    """Base of every error Tidemark raises on purpose; the CLI prints it as one line and exits 1."""


class ConfigError(TidemarkError):
    """The configuration file or a TIDEMARK__... variable is wrong."""


class CatalogError(TidemarkError):
    """The Iceberg catalog cannot be reached or answered an error."""


class TableNotFoundError(TidemarkError):
    """A table that was asked for does not exist."""


class InvalidTableNameError(TidemarkError):
    """A table name is not of the form namespace.table."""


class CommitConflictError(TidemarkError):
    """An Iceberg commit kept conflicting with other writers after every retry."""


class QueryError(TidemarkError):
    """DuckDB refused or failed a query."""
