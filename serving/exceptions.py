"""Errors of the serving package; each message says what to do."""

from __future__ import annotations

from lakehouse.exceptions import TidemarkError


class ServingError(TidemarkError):
    """The service cannot start or cannot load a version."""


class ArtifactRefusedError(ServingError):
    """A version's artifact is missing, unreadable, or not the bytes the registry recorded (sha256)."""


class RequestError(TidemarkError):
    """A request the service refuses: `status` is its HTTP status, `field` and `record` say where."""

    def __init__(self, status: int, message: str, *, field: str | None = None, record: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.record = record

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"detail": str(self)}
        if self.field is not None:
            out["field"] = self.field
        if self.record is not None:
            out["record"] = self.record
        return out


class PredictionLogError(TidemarkError):
    """A prediction row the log cannot take, or a log that cannot be committed now (its rows stay buffered)."""


class CatalogUnavailableError(PredictionLogError):
    """The catalog did not answer: the buffered rows stay on disk and are committed when it does."""
