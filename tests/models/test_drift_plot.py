"""The drift picture agrees with the verdict: drifted features first, both statistics with their
thresholds, the statistic a check named ringed; SVG or PNG; bad file names refused."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from lakehouse.config import DriftThresholds
from models.drift_plot import DRIFT_COLOUR, figure, series, write_plot
from models.exceptions import DriftError

T = DriftThresholds()  # psi 0.2, ks 0.1 (p < 0.01), category shift 0.1


def _row(check: int, column: str, psi: float | None, ks: float | None, p: float | None, reasons: list[str], kind: str = "numeric", shift: float | None = None) -> dict[str, Any]:
    return {
        "event_time": datetime(2026, 11, 1, tzinfo=timezone.utc) + timedelta(days=check), "run_id": f"r{check}", "table_name": "raw.wine",
        "column_name": column, "kind": kind, "psi": psi, "ks_statistic": ks, "ks_pvalue": p, "category_shift": shift,
        "drifted": bool(reasons), "reasons": reasons,
    }


ROWS = [
    # `ash` drifts by KS only (PSI stays under its threshold): the case the old PSI-only chart contradicted.
    _row(0, "ash", 0.05, 0.04, 0.5, []),
    _row(1, "ash", 0.12, 0.18, 1e-6, ["ks 0.180 > 0.1 (p=1e-06 < 0.01)"]),
    _row(0, "alcohol", 0.01, 0.02, 0.9, []),
    _row(1, "alcohol", 0.02, 0.03, 0.8, []),
    _row(0, "hue", 0.5, 0.3, 1e-9, ["psi 0.500 > 0.2", "ks 0.300 > 0.1 (p=1e-09 < 0.01)"]),
    _row(1, "hue", 0.03, 0.02, 0.9, []),
    _row(0, "colour", None, None, None, [], kind="categorical", shift=0.02),
    _row(1, "colour", None, None, None, ["category shift 0.300 > 0.1"], kind="categorical", shift=0.3),
]


def _rings(ax: Any) -> list[tuple[float, float]]:
    return [(x, y) for line in ax.get_lines() if line.get_markeredgecolor() == DRIFT_COLOUR and line.get_linestyle() == "None"
            for x, y in zip(line.get_xdata(), line.get_ydata())]


def test_drifted_features_come_first_and_each_panel_says_its_verdict() -> None:
    assert [s.column for s in series(ROWS)] == ["ash", "colour", "hue", "alcohol"]  # drifted now, then drifted before
    fig = figure(ROWS, T, "wine")
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title(loc="left")]
    titles = [ax.get_title(loc="left") for ax in panels]
    assert titles[0].startswith("raw.wine.ash  DRIFTED\nks 0.180 > 0.1")
    assert titles[1].startswith("raw.wine.colour  DRIFTED\ncategory shift")
    assert titles[2].startswith("raw.wine.hue\nno drift in the latest check")
    assert "DRIFTED now: ash, colour" in fig._suptitle.get_text()


def test_both_statistics_and_their_thresholds_agree_with_the_verdict() -> None:
    fig = figure(ROWS, T, "wine")
    ash = next(ax for ax in fig.axes if ax.get_title(loc="left").startswith("raw.wine.ash"))
    ks_ax = next(ax for ax in fig.axes if ax is not ash and ax.bbox.bounds == ash.bbox.bounds)  # its twin (right axis)
    # One dashed line is both thresholds: PSI's on the left axis, KS's on the right at the same height.
    [threshold] = [line for line in ash.get_lines() if line.get_linestyle() == "--"]
    assert threshold.get_ydata()[0] == T.psi
    assert T.psi / ash.get_ylim()[1] == pytest.approx(T.ks_statistic / ks_ax.get_ylim()[1])
    # The verdict named KS: the KS point is ringed and above its threshold, PSI is not ringed and below its own.
    [(_, ks_value)] = _rings(ks_ax)
    assert ks_value == 0.18 > T.ks_statistic
    assert _rings(ash) == []
    psi_line = next(line for line in ash.get_lines() if line.get_marker() == "o" and line.get_linestyle() == "-")
    assert max(psi_line.get_ydata()) < T.psi
    # hue drifted in the first check by both: both rings there, none now.
    hue = next(ax for ax in fig.axes if ax.get_title(loc="left").startswith("raw.wine.hue"))
    assert len(_rings(hue)) == 1


def test_a_ks_statistic_over_its_line_with_too_large_a_p_value_is_hollow_not_ringed() -> None:
    """60 new rows can push KS over 0.1 with p far above 0.01: no drift. The square is hollow (the
    legend says why), so the picture does not seem to call drift the check did not."""
    rows = [_row(0, "proline", 0.05, 0.04, 0.6, []), _row(1, "proline", 0.09, 0.145, 0.2, []), _row(2, "proline", 0.02, 0.03, 0.9, [])]
    fig = figure(rows, T, "wine")
    panel = next(ax for ax in fig.axes if ax.get_title(loc="left").startswith("raw.wine.proline"))
    ks_ax = next(ax for ax in fig.axes if ax is not panel and ax.bbox.bounds == panel.bbox.bounds)
    hollow = [(x, y) for line in ks_ax.get_lines() if line.get_markerfacecolor() == "white" for x, y in zip(line.get_xdata(), line.get_ydata())]
    assert [y for _, y in hollow] == [0.04, 0.145, 0.03]  # every check's p >= 0.01, the one over the line included
    assert _rings(ks_ax) == [] and _rings(panel) == []
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "KS with p ≥ 0.01 (not drift by KS)" in labels
    # A significant one stays filled: ash's drifted check (p = 1e-6) is ringed, its first (p = 0.5) hollow.
    ash_fig = figure(ROWS, T, "wine")
    ash = next(ax for ax in ash_fig.axes if ax.get_title(loc="left").startswith("raw.wine.ash"))
    ash_ks = next(ax for ax in ash_fig.axes if ax is not ash and ax.bbox.bounds == ash.bbox.bounds)
    assert [y for line in ash_ks.get_lines() if line.get_markerfacecolor() == "white" for y in line.get_ydata()] == [0.04]


def test_written_as_svg_or_png_and_nothing_half_written(tmp_path: Path) -> None:
    svg = write_plot(ROWS, tmp_path / "d.svg", T, "wine").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    png = write_plot(ROWS, tmp_path / "d.png", T, "wine").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(DriftError, match="FILE.svg or FILE.png"):
        write_plot(ROWS, tmp_path / "d.pdf", T, "wine")
    with pytest.raises(DriftError, match="no drift checks of wine stored yet"):
        write_plot([], tmp_path / "e.svg", T, "wine")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "d.svg"]
