"""Errors of the plugin's pages: each names what was asked for and where to go instead."""

from __future__ import annotations

from lakehouse.exceptions import TidemarkError


class PageNotFoundError(TidemarkError):
    """A model, version, table, snapshot, run or node in a URL that the store does not hold.

    `nearest`: (text, path under the plugin) of the closest thing that does exist.
    """

    def __init__(self, message: str, nearest: tuple[str, str] | None = None) -> None:
        super().__init__(message)
        self.nearest = nearest


class StoreUnavailableError(TidemarkError):
    """The catalog (and so the lineage store) cannot be opened; the message says how to fix it."""


class StoreEmptyError(TidemarkError):
    """The lineage store holds nothing to show yet; the message says which command fills it."""
