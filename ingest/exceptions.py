"""Errors of the ingest package; each names the file or table and what to do."""

from __future__ import annotations

from lakehouse.exceptions import TidemarkError


class SourceError(TidemarkError):
    """A source file is missing, empty or unreadable."""


class SuiteError(TidemarkError):
    """A validation suite file does not parse or names an unknown expectation."""


class GateFailedError(TidemarkError):
    """Rows failed the table's validation gate; main is untouched and the audit branch is kept."""


class SchemaMismatchError(TidemarkError):
    """A landing's columns cannot be reconciled with the table's schema."""
