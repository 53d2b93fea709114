"""Errors of the ingest package; each names the file or table and what to do."""

from __future__ import annotations

from typing import Any

from lakehouse.exceptions import TidemarkError


class SourceError(TidemarkError):
    """A source file is missing, empty or unreadable."""


class LandingsFailedError(TidemarkError):
    """Some files of a multi-file ingest failed (each file's outcome is in `outcomes`); the others landed."""

    def __init__(self, message: str, outcomes: list[Any] | None = None, *, parameter: str | None = None) -> None:
        super().__init__(message, parameter=parameter)
        self.outcomes = outcomes or []


class SuiteError(TidemarkError):
    """A validation suite file does not parse or names an unknown expectation."""


class GateFailedError(TidemarkError):
    """Rows failed the table's validation gate; main is untouched and the audit branch is kept."""

    def __init__(self, message: str, result: Any = None, *, parameter: str | None = None) -> None:
        super().__init__(message, parameter=parameter)
        self.result = result  # the ingest.gate.GateResult, for callers that show more than one line


class SchemaMismatchError(TidemarkError):
    """A landing's columns cannot be reconciled with the table's schema."""


class PublishError(TidemarkError):
    """A validated landing could not be published to main; nothing was published."""


class QuarantineError(TidemarkError):
    """A quarantine branch that does not exist, or a table that has none."""


class FeedConfigError(TidemarkError):
    """The feeds file (`dags/sources.yaml`) does not parse or an entry in it is incomplete."""


class SparkLandingError(TidemarkError):
    """A Spark job landing a file failed; main is untouched and the landing is kept as a quarantine branch."""


class LandingOutOfMemoryError(TidemarkError):
    """A landing ran out of memory (a process memory limit); nothing was published."""
