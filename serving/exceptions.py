"""Errors of the serving package; each message says what to do."""

from __future__ import annotations

from lakehouse.exceptions import TidemarkError


class PredictionLogError(TidemarkError):
    """A prediction row the log cannot take, or a log that cannot be committed now (its rows stay buffered)."""


class CatalogUnavailableError(PredictionLogError):
    """The catalog did not answer: the buffered rows stay on disk and are committed when it does."""
