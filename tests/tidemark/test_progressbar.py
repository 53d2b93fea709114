"""The landing progress bar draws on a terminal only."""

from __future__ import annotations

import io

from tidemark.progressbar import Bar


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_draws_on_a_terminal_and_stays_silent_otherwise() -> None:
    tty = _Tty()
    bar = Bar("landing into raw.x", stream=tty, min_interval_s=0)
    bar(500_000, 0.5)
    bar(1_000_000, None)
    bar.close()
    text = tty.getvalue()
    assert "\r  landing into raw.x [###############...............]  50.0%  500,000 rows" in text
    assert "1,000,000 rows" in text and text.endswith("\n")
    plain = io.StringIO()
    quiet = Bar("x", stream=plain)
    quiet(10, 1.0)
    quiet.close()
    assert plain.getvalue() == ""
