"""Drift over time as small multiples: one panel per feature, drifted first (matplotlib).

Each numeric feature's panel draws both statistics the verdict uses, each with its threshold: the
population stability index on the left axis, the Kolmogorov-Smirnov statistic on the right. A
categorical feature's panel draws the category shift. Checks a stored verdict called drifted are
ringed in red, a KS statistic whose p-value is too large to count is hollow, and the panel's
subtitle is that verdict's reason, so the picture cannot say something the check did not. `tidemark models drift --plot FILE.svg|FILE.png` and the Airflow
plugin's drift page draw through `figure`.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from models.exceptions import DriftError

PSI_COLOUR, KS_COLOUR, SHIFT_COLOUR, DRIFT_COLOUR = "#1f77b4", "#e6750a", "#2e7d32", "#c62828"
COLUMNS = 3
PANEL_W, PANEL_H = 4.6, 2.5  # inches
# ConciseDateFormatter's tick formats (years, months, days, hours, minutes, seconds): whole clock times at
# seconds resolution, where its default shows bare seconds ("30", "40") that read as values, not times.
CLOCK = ["%Y", "%b", "%b %d", "%H:%M", "%H:%M", "%H:%M:%S"]


@dataclass
class FeatureSeries:
    """One feature's scores across the checks, oldest first."""

    table: str
    column: str
    kind: str
    times: list[datetime] = field(default_factory=list)
    psi: list[float | None] = field(default_factory=list)
    ks: list[float | None] = field(default_factory=list)
    ks_pvalue: list[float | None] = field(default_factory=list)
    shift: list[float | None] = field(default_factory=list)
    drifted: list[bool] = field(default_factory=list)
    reasons: list[list[str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"

    @property
    def drifted_now(self) -> bool:
        return bool(self.drifted and self.drifted[-1])


def series(rows: Sequence[Mapping[str, Any]]) -> list[FeatureSeries]:
    """Per feature, the stored checks in time order; drifted in the latest check first, then drifted
    in any check, then by how close the latest scores came to their thresholds' side."""
    out: dict[str, FeatureSeries] = {}
    for r in sorted(rows, key=lambda r: (r["event_time"], r["run_id"])):
        key = f"{r['table_name']}.{r['column_name']}"
        s = out.setdefault(key, FeatureSeries(r["table_name"], r["column_name"], r.get("kind") or "numeric"))
        s.times.append(r["event_time"])
        s.psi.append(r.get("psi"))
        s.ks.append(r.get("ks_statistic"))
        s.ks_pvalue.append(r.get("ks_pvalue"))
        s.shift.append(r.get("category_shift"))
        s.drifted.append(bool(r.get("drifted")))
        s.reasons.append(list(r.get("reasons") or []))
    return sorted(out.values(), key=lambda s: (not s.drifted_now, not any(s.drifted), s.name))


def _values(xs: list[datetime], ys: list[float | None]) -> tuple[list[datetime], list[float]]:
    pairs = [(x, y) for x, y in zip(xs, ys) if y is not None and not math.isnan(y)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def figure(rows: Sequence[Mapping[str, Any]], thresholds: Any, title: str) -> Any:
    """The small multiples as a matplotlib Figure (not yet saved). `thresholds`: a DriftThresholds."""
    import matplotlib

    matplotlib.use("Agg")  # no display; safe in the API server's threads
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    features = series(rows)
    if not features:
        raise DriftError(f"no drift checks of {title} stored yet; run `tidemark models drift {title} --check` first")
    n = len(features)
    cols = min(COLUMNS, n)
    nrows = math.ceil(n / cols)
    fig = Figure(figsize=(PANEL_W * cols, PANEL_H * nrows + 1.1), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False, sharex=True)
    checks = len({t for s in features for t in s.times})
    drifted = [s.name for s in features if s.drifted_now]
    fig.suptitle(
        f"{title}: drift per feature over {checks} check{'s' if checks != 1 else ''} — "
        + (f"DRIFTED now: {', '.join(s.split('.')[-1] for s in drifted)}" if drifted else "no drift in the latest check"),
        fontsize=12, color=DRIFT_COLOUR if drifted else "#222222",
    )
    for ax, s in zip(axes.flat, features):
        _panel(ax, s, thresholds)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    locator = mdates.AutoDateLocator(minticks=2, maxticks=4)
    for i, ax in enumerate(axes.flat[:n]):
        # The lowest panel of each column carries the time axis (the one below may be empty).
        if i + cols >= n:
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, formats=CLOCK))
            ax.tick_params(axis="x", labelsize=8, labelbottom=True)
    kinds = {s.kind for s in features}
    handles = [
        Line2D([], [], color=PSI_COLOUR, marker="o", markersize=4, label="PSI (left axis)"),
        Line2D([], [], color=KS_COLOUR, marker="s", markersize=4, label="KS statistic (right axis)"),
        Line2D([], [], color=KS_COLOUR, marker="s", markersize=4, markerfacecolor="white", linestyle="none",
               label=f"KS with p ≥ {thresholds.ks_pvalue:g} (not drift by KS)"),
        Line2D([], [], color="#555555", linestyle="--",
               label=f"threshold: PSI {thresholds.psi:g} | KS {thresholds.ks_statistic:g} (and p < {thresholds.ks_pvalue:g})"),
        Line2D([], [], color=DRIFT_COLOUR, marker="o", markersize=10, markerfacecolor="none", linestyle="none", label="the statistic a check called drifted"),
    ]
    if "categorical" in kinds:
        handles.insert(2, Line2D([], [], color=SHIFT_COLOUR, marker="^", markersize=4, label=f"category shift (threshold {thresholds.category_shift:g})"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3 if cols < 3 else 5), fontsize=8, frameon=False)
    return fig


def _panel(ax: Any, s: FeatureSeries, t: Any) -> None:
    reason = "; ".join(s.reasons[-1]) if s.drifted_now else "no drift in the latest check"
    colour = DRIFT_COLOUR if s.drifted_now else "#222222"
    ax.set_title(
        f"{s.name}{'  DRIFTED' if s.drifted_now else ''}\n{textwrap.shorten(reason, 72, placeholder='…')}",
        fontsize=8.5, loc="left", color=colour, fontweight="bold" if s.drifted_now else "normal",
    )
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(True, axis="y", color="#eeeeee")
    # Which statistic a check's verdict named: its point gets the red ring.
    named = [{r.split(" ")[0] for r in reasons} for reasons in s.reasons]
    if s.kind == "categorical" or all(v is None for v in s.psi):
        xs, ys = _values(s.times, s.shift)
        ax.plot(xs, ys, color=SHIFT_COLOUR, marker="^", markersize=4, linewidth=1.3)
        ax.axhline(t.category_shift, color="#555555", linestyle="--", linewidth=1)
        ax.set_ylim(0, max([t.category_shift * 1.5, *ys]) * 1.1)
        ax.set_ylabel("category shift", fontsize=7, color=SHIFT_COLOUR)
        _rings(ax, s, xs, ys, named, ("category", "missing"))
        return
    # Both axes are scaled so their thresholds sit at the same height: one line is both thresholds,
    # and a point above it is over the threshold of its own statistic.
    px, py = _values(s.times, s.psi)
    kx, ky = _values(s.times, s.ks)
    k = max([1.5, *(v / t.psi * 1.1 for v in py), *(v / t.ks_statistic * 1.1 for v in ky)])
    ax.axhline(t.psi, color="#555555", linestyle="--", linewidth=1)
    ax.plot(px, py, color=PSI_COLOUR, marker="o", markersize=4, linewidth=1.3)
    ax.set_ylim(0, t.psi * k)
    ax.set_ylabel("PSI", fontsize=7, color=PSI_COLOUR)
    _rings(ax, s, px, py, named, ("psi", "missing"))
    ks_ax = ax.twinx()
    ks_ax.plot(kx, ky, color=KS_COLOUR, marker="s", markersize=4, linewidth=1.3)
    # KS counts only with a small p-value: a point with too large a p is hollow, so a square over the
    # line that no check called drifted (a small sample) does not seem to contradict the verdict.
    p_at = dict(zip(s.times, s.ks_pvalue))
    weak = [(x, y) for x, y in zip(kx, ky) if (p_at.get(x) is not None and p_at[x] >= t.ks_pvalue)]
    if weak:
        ks_ax.plot([w[0] for w in weak], [w[1] for w in weak], linestyle="none", marker="s", markersize=4,
                   markerfacecolor="white", markeredgecolor=KS_COLOUR)
    ks_ax.set_ylim(0, t.ks_statistic * k)
    ks_ax.set_ylabel("KS", fontsize=7, color=KS_COLOUR)
    ks_ax.tick_params(axis="y", labelsize=7)
    _rings(ks_ax, s, kx, ky, named, ("ks",))


def _rings(ax: Any, s: FeatureSeries, xs: list[datetime], ys: list[float], named: list[set[str]], words: tuple[str, ...]) -> None:
    at = {x: n for x, n in zip(s.times, named)}
    points = [(x, y) for x, y in zip(xs, ys) if at.get(x, set()) & set(words)]
    if points:
        ax.plot([p[0] for p in points], [p[1] for p in points], linestyle="none", marker="o", markersize=10,
                markerfacecolor="none", markeredgecolor=DRIFT_COLOUR, markeredgewidth=1.5)


def render(rows: Sequence[Mapping[str, Any]], thresholds: Any, title: str, fmt: str = "svg") -> bytes:
    """The picture as SVG or PNG bytes."""
    import matplotlib

    fig = figure(rows, thresholds, title)
    buf = io.BytesIO()
    # SVG text stays text (not glyph outlines): searchable, selectable, and readable by tests.
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format=fmt, dpi=110 if fmt == "png" else None, metadata={"Date": None} if fmt == "svg" else None)
    return buf.getvalue()


def write_plot(rows: Sequence[Mapping[str, Any]], path: Path, thresholds: Any, title: str) -> Path:
    """`--plot FILE.svg|FILE.png`: written whole or not at all."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("svg", "png"):
        raise DriftError(f"{path}: the drift picture is written as SVG or PNG; name the file FILE.svg or FILE.png", parameter="path")
    data = render(rows, thresholds, title, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
