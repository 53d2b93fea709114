"""Errors of the models package; each says what to do."""

from __future__ import annotations

from lakehouse.exceptions import TidemarkError


class UnknownJobError(TidemarkError):
    """A training job name or entry point that does not resolve."""


class ModelNotFoundError(TidemarkError):
    """A model, version or alias that the registry does not hold."""


class TrainingInputError(TidemarkError):
    """A training input table or pinned snapshot is missing or unusable."""
