"""The root of Tidemark's errors. Every message says what to do about it.

Library code speaks the caller's language of Python: when an error is about a value the caller
passed, it names that parameter as the function took it (`as_of`, `snapshots`) and sets
`parameter`. The CLI and the DAGs put it in their own words with `reword` (`--as-of`, the DAG
param), so a library never tells an Airflow task to pass a command-line flag.
"""

from __future__ import annotations

import re
from collections.abc import Mapping


class TidemarkError(Exception):
    """Base of every error Tidemark raises on purpose; the CLI prints it as one line and exits 1.

    `parameter`: the name of the argument the error is about, as the raising function took it.
    """

    def __init__(self, message: str = "", *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


def reword(exc: BaseException, names: Mapping[str, str]) -> str:
    """The error's message with its parameter named as the caller knows it (`names`: parameter -> word).

    Only whole words are replaced (`as_of` but not `was_of`), never a part of a dotted name (`table`
    but not `namespace.table`), and only the error's own parameter.
    """
    message = str(exc)
    parameter = getattr(exc, "parameter", None)
    if parameter and parameter in names:
        message = re.sub(rf"(?<![\w.-]){re.escape(parameter)}(?![\w-]|\.\w)", names[parameter], message)
    return message


class ConfigError(TidemarkError):
    """The configuration file or a TIDEMARK__... variable is wrong."""


class CatalogError(TidemarkError):
    """The Iceberg catalog cannot be reached or answered an error."""


class TableNotFoundError(TidemarkError):
    """A table that was asked for does not exist."""


class InvalidNameError(TidemarkError, ValueError):
    """A namespace, table, model or alias name breaks its rule (`lakehouse.names`)."""


class InvalidTableNameError(InvalidNameError):
    """A table name is not of the form namespace.table."""


class CommitConflictError(TidemarkError):
    """An Iceberg commit kept conflicting with other writers after every retry."""


class QueryError(TidemarkError):
    """DuckDB refused or failed a query."""


class BranchError(TidemarkError):
    """A branch is missing, or its snapshot could not be published to main; main is unchanged."""


class InvalidTimeError(TidemarkError, ValueError):
    """A time that is not ISO 8601 with a time zone (see `lakehouse.times.parse_time`).

    Also a `ValueError`: code reading times out of data (an event's `eventTime`) treats it as any
    other malformed value.
    """


class SparkUnavailableError(TidemarkError):
    """Spark cannot start here: pyspark, Java or a jar it needs is missing, or the catalog cannot be shared with it."""


class CatalogIdentityError(CatalogError):
    """A catalog and its warehouse do not belong together (an emptied, replaced or foreign catalog);
    `tidemark catalog recover` re-registers the warehouse's tables."""


class BrokenTableError(TidemarkError):
    """One table's current metadata file is missing or unreadable. Only that table is affected:
    code that goes over every table reports it and carries on with the others.

    `table`: its `namespace.table`; `location`: the metadata file the catalog points at.
    """

    def __init__(self, message: str, *, table: str, location: str) -> None:
        super().__init__(message)
        self.table = table
        self.location = location


class MissingDataFileError(BrokenTableError):
    """A data file a snapshot needs is gone; `snapshot_id` cannot be read (`location`: the file)."""

    def __init__(self, message: str, *, table: str, location: str, snapshot_id: int) -> None:
        super().__init__(message, table=table, location=location)
        self.snapshot_id = snapshot_id


class StorageFullError(TidemarkError):
    """The device under `path` ran out of space while Tidemark wrote there; nothing was committed."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


# errno 28; SQLite says it in words.
_NO_SPACE = ("no space left on device", "database or disk is full", "errno 28")


def no_space(exc: BaseException) -> bool:
    """Whether `exc` says the device ran out of space (ENOSPC, from the OS, pyarrow or SQLite)."""
    import errno

    return getattr(exc, "errno", None) == errno.ENOSPC or any(words in str(exc).lower() for words in _NO_SPACE)


def storage_full(path: str, what: str) -> StorageFullError:
    """The one line for a full device: which path is full, what was being written, what to do."""
    return StorageFullError(
        f"no space left on the device holding {path} ({what}); free space there, or move it to a larger disk, "
        "then run the command again (nothing was committed)",
        path=path,
    )
