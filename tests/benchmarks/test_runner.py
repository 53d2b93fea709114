"""`python -m benchmarks`: each benchmark's time, the total, and a warning line over the budget
(printed, not failed: the measured time is what the run reports)."""

from __future__ import annotations

import pytest

from benchmarks.__main__ import budget_lines, main


def test_total_and_no_warning_within_budget() -> None:
    lines = budget_lines([("bench_a", 600.0, 300.0), ("bench_b", 1200.0, 90.0)], 45)
    assert lines[0] == "== bench_a: 10.0 min (600 s, 300 CPU s)"
    assert lines[2].startswith("== total: 30.0 min (1800 s) for 2 benchmarks; load average now ")
    assert not any(line.startswith("WARNING") for line in lines)


def test_warning_over_budget_names_the_measured_total() -> None:
    lines = budget_lines([("bench_a", 2000.0, 1.0), ("bench_b", 800.0, 1.0)], 45)
    assert lines[-1] == "WARNING: the benchmarks took 46.7 min, over the budget of 45 min"


def test_no_budget_no_warning() -> None:
    assert not any(line.startswith("WARNING") for line in budget_lines([("bench_a", 9999.0, 1.0)], None))


def test_unknown_name_is_one_line_naming_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no_such_bench"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("no benchmark named no_such_bench; choose from ") and "drift_engines" in err[0]
