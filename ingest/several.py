"""Landing several files into one table: each file its own landing, each file's outcome reported.

A glob or a list of files lands one file after the other, in name order. Without `keep_going` the
first failure stops the rest (reported as not tried; earlier files stay landed); with it every
file is tried. Either way no file's outcome hides another's: `raise_failures` says which failed,
which were not tried, and why, in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ingest import sources
from ingest.exceptions import LandingsFailedError
from ingest.land import land
from ingest.result import FAILED, LANDED, NOT_TRIED, SKIPPED, FileOutcome, LandingResult
from lakehouse.config import Settings
from lakehouse.exceptions import TidemarkError
from lakehouse.tables import TableName

__all__ = ["land_all", "land_each", "raise_failures"]


def land_all(settings: Settings, location: str, table: str, *, keep_going: bool = False, **kwargs: Any) -> list[LandingResult]:
    """Land every file a location names (a path, a URI, or a glob); each file is its own landing.

    Files land one after the other, in name order. Without `keep_going` the first failure stops
    the rest and is raised, saying which files were not tried (earlier ones stay landed). With it
    every file is tried and, if any failed, LandingsFailedError names them (`.outcomes`: each file's).
    """
    TableName.parse(table)
    locations = sources.expand(location, settings.catalog.properties)
    outcomes = land_each(locations, lambda loc: land(settings, loc, table, **kwargs), keep_going=keep_going)
    raise_failures(outcomes, table)
    return [o.result for o in outcomes if o.result is not None]


def land_each(locations: list[str], land_one: Callable[[str], LandingResult], *, keep_going: bool = False) -> list[FileOutcome]:
    """`land_one` for each location in turn; each file's outcome, never an exception of Tidemark's.

    Without `keep_going` the first failure stops the rest (reported as not tried).
    """
    outcomes: list[FileOutcome] = []
    for i, location in enumerate(locations):
        try:
            result = land_one(location)
        except TidemarkError as exc:
            outcomes.append(FileOutcome(location, FAILED, error=exc))
            if not keep_going:
                outcomes += [FileOutcome(rest, NOT_TRIED) for rest in locations[i + 1 :]]
                break
            continue
        outcomes.append(FileOutcome(location, SKIPPED if result.skipped else LANDED, result=result))
    return outcomes


def raise_failures(outcomes: list[FileOutcome], table: str) -> None:
    """Raise for the failed files, in one line: a lone failure as itself, several as LandingsFailedError."""
    failed = [o for o in outcomes if o.outcome == FAILED]
    if not failed:
        return
    untried = [o.source for o in outcomes if o.outcome == NOT_TRIED]
    first = failed[0].error
    assert first is not None
    if untried:
        names = ", ".join(untried[:3]) + (f" and {len(untried) - 3} more" if len(untried) > 3 else "")
        raise LandingsFailedError(
            f"{first}; {len(untried)} later file(s) not tried: {names} (--keep-going tries every file)", outcomes, parameter=first.parameter
        ) from first
    if len(failed) == 1:
        raise first
    landed = sum(1 for o in outcomes if o.outcome in (LANDED, SKIPPED))
    raise LandingsFailedError(
        f"{len(failed)} of {len(outcomes)} files failed to land into {table}: "
        f"{', '.join(o.source for o in failed)} (each one's reason is listed above); the other {landed} landed or were already in",
        outcomes,
    )
