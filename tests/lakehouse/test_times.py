"""One time syntax for every `as_of`, `at` and `eventTime`: ISO 8601 with a time zone, nothing else."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from lakehouse.exceptions import InvalidTimeError, TidemarkError, reword
from lakehouse.times import parse_time

UTC = timezone.utc
SIX_PM = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T18:00:00Z", SIX_PM),
        ("2026-11-26T18:00:00+00:00", SIX_PM),
        ("2026-11-26T19:00:00+01:00", SIX_PM),
        ("2026-11-26T13:00:00-05:00", SIX_PM),
        ("2026-11-26T19:00:00+0100", SIX_PM),  # offset without the colon
        ("2026-11-26 18:00:00Z", SIX_PM),  # a space for the T
        ("2026-11-26T18:00Z", SIX_PM),  # no seconds
        ("2026-11-26T18Z", SIX_PM),  # hours only
        ("20261126T180000Z", SIX_PM),  # the basic format
        ("  2026-11-26T18:00:00Z\n", SIX_PM),  # surrounding spaces
        ("2026-11-26T18:00:00.123Z", SIX_PM + timedelta(microseconds=123000)),
        ("2026-11-26T18:00:00.123456Z", SIX_PM + timedelta(microseconds=123456)),
        ("2026-11-26T18:00:00.123456789Z", SIX_PM + timedelta(microseconds=123456)),  # nanoseconds dropped
    ],
)
def test_iso_8601_with_a_zone_is_read_as_that_instant_in_utc(text: str, expected: datetime) -> None:
    got = parse_time(text, parameter="as_of")
    assert got == expected and got.utcoffset() == timedelta(0)


def test_an_aware_datetime_passes_in_utc() -> None:
    berlin = timezone(timedelta(hours=1))
    got = parse_time(datetime(2026, 11, 26, 19, 0, tzinfo=berlin), parameter="as_of")
    assert got == SIX_PM and got.tzinfo == UTC


@pytest.mark.parametrize(
    ("value", "says"),
    [
        # No zone: which hour is meant cannot be told.
        ("2026-11-26T18:00:00", "as_of '2026-11-26T18:00:00' has no time zone; add one, e.g. 2026-11-26T18:00:00Z (UTC) or an offset"),
        ("2026-11-26", "as_of '2026-11-26' has no time zone; add one, e.g. 2026-11-26T00:00:00Z"),
        ("20261126", "as_of '20261126' has no time zone; add one, e.g. 2026-11-26T00:00:00Z"),
        (datetime(2026, 11, 26, 18, 0), "as_of '2026-11-26T18:00:00' is a datetime without a time zone; pass an aware one"),
        # Epoch numbers: seconds or milliseconds cannot be told apart, so both readings are shown.
        ("1795716000000", "as_of '1795716000000' is not an ISO-8601 time; write it like 2026-11-26T18:00:00Z (an epoch number is "
                          "not accepted: its unit cannot be told; as milliseconds 2026-11-26T18:00:00Z)"),
        ("1795716000", "as seconds 2026-11-26T18:00:00Z, as milliseconds 1970-01-21T18:48:36Z"),
        ("9" * 30, "(an epoch number is not accepted: its unit cannot be told)"),
        # Not a time at all.
        ("yesterday", "as_of 'yesterday' is not an ISO-8601 time; write it like 2026-11-26T18:00:00Z"),
        ("2026-13-45", "as_of '2026-13-45' is not an ISO-8601 time"),
        ("2026-11-26T24:00:00Z", "is not an ISO-8601 time"),
        ("2026-11-26T18:00:00z", "is not an ISO-8601 time"),  # Python reads only an upper-case Z
        ("26/11/2026 18:00", "is not an ISO-8601 time"),
        ("", "as_of '' is not an ISO-8601 time"),
        (1795716000000, "as_of 1795716000000 is not an ISO-8601 time"),  # not text
        (None, "as_of None is not an ISO-8601 time"),
    ],
)
def test_everything_else_is_refused_naming_the_parameter_and_the_fix(value: object, says: str) -> None:
    with pytest.raises(InvalidTimeError) as caught:
        parse_time(value, parameter="as_of")  # type: ignore[arg-type]
    assert says in str(caught.value)
    assert caught.value.parameter == "as_of"
    assert "\n" not in str(caught.value)


def test_the_error_is_a_tidemark_error_and_a_value_error_in_the_callers_words() -> None:
    with pytest.raises(InvalidTimeError) as caught:
        parse_time("soon", parameter="at")
    assert isinstance(caught.value, TidemarkError) and isinstance(caught.value, ValueError)
    assert reword(caught.value, {"at": "--at"}) == "--at 'soon' is not an ISO-8601 time; write it like 2026-11-26T18:00:00Z"
    assert reword(caught.value, {"as_of": "--as-of"}).startswith("at 'soon'")  # only its own parameter
