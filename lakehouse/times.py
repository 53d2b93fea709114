"""Points in time given as text: one syntax for every time a caller or an event hands Tidemark.

`retrain(as_of=...)`, `holder_at(at=...)`, `lineage.query.connect(as_of=...)`, the CLI's `--as-of`
and `--at`, the retrain DAG's `as_of` param and every event's `eventTime` all go through
`parse_time`, so they accept and refuse the same things.
"""

from __future__ import annotations

from datetime import datetime, timezone

from lakehouse.exceptions import InvalidTimeError

EXAMPLE = "2026-11-26T18:00:00Z"


def parse_time(value: str | datetime, *, parameter: str) -> datetime:
    """The instant `value` names, in UTC.

    Accepted: ISO 8601 with a time zone, as Python's `datetime.fromisoformat` reads it:
    `2026-11-26T18:00:00Z`, `2026-11-26T19:00:00+01:00`, `2026-11-26 18:00Z`, fractions of a
    second (`…T18:00:00.123456Z`; digits past microseconds are dropped), the basic format
    (`20261126T180000Z`); surrounding spaces are ignored. A timezone-aware `datetime` passes as it is.

    Refused, with an `InvalidTimeError` whose `parameter` is `parameter` (the caller's name for the
    value, so the CLI and the DAGs can put it in their words):
    - a time without a zone (`2026-11-26T18:00:00`, a date alone, a naive `datetime`): UTC and
      local time differ by hours, and a guess would pick the wrong snapshot silently;
    - numbers (epoch seconds or milliseconds): which unit is meant cannot be told; the message
      shows the number read both ways in ISO 8601;
    - anything else that is not ISO 8601 (`yesterday`, `2026-13-45`).
    """
    if isinstance(value, datetime):
        parsed = value
        if parsed.utcoffset() is None:
            raise InvalidTimeError(
                f"{parameter} {value.isoformat()!r} is a datetime without a time zone; pass an aware one, "
                "e.g. datetime.now(timezone.utc)",
                parameter=parameter,
            )
        return parsed.astimezone(timezone.utc)
    if not isinstance(value, str):
        raise InvalidTimeError(f"{parameter} {value!r} is not an ISO-8601 time; write it like {EXAMPLE}", parameter=parameter)
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidTimeError(_not_a_time(parameter, value), parameter=parameter) from None
    if parsed.utcoffset() is None:
        utc = _utc_text(parsed.replace(tzinfo=timezone.utc))
        raise InvalidTimeError(
            f"{parameter} {value!r} has no time zone; add one, e.g. {utc} (UTC) or an offset such as +01:00",
            parameter=parameter,
        )
    return parsed.astimezone(timezone.utc)


def _not_a_time(parameter: str, value: str) -> str:
    message = f"{parameter} {value!r} is not an ISO-8601 time; write it like {EXAMPLE}"
    text = value.strip()
    if not text.isdigit():
        return message
    readings = []
    for unit, per_second in (("seconds", 1), ("milliseconds", 1000)):
        try:
            readings.append(f"as {unit} {_utc_text(datetime.fromtimestamp(int(text) / per_second, tz=timezone.utc))}")
        except (OverflowError, ValueError, OSError):
            pass
    return message + f" (an epoch number is not accepted: its unit cannot be told{'; ' + ', '.join(readings) if readings else ''})"


def _utc_text(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
