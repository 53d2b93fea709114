"""The table page's time axis (matplotlib): snapshots in lanes, pins, and the expiry horizon.

Lanes, top to bottom: main (landings, other commits), quarantined landings, then one lane per model
version pinning a snapshot. Names and ids are in the table under the picture, so the picture
carries no per-point text to collide.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

STYLE = {
    "landing": ("#2e7d32", "o", "landing on main"),
    "commit": ("#607d8b", "s", "other commit on main"),
    "quarantine": ("#c62828", "X", "quarantined landing"),
    "audit": ("#ff8f00", "D", "audit branch (publishing)"),
    "off main": ("#9e9e9e", "o", "not on main"),
}
# ConciseDateFormatter's tick formats (years, months, days, hours, minutes, seconds): whole clock times at
# seconds resolution, where its default shows bare seconds ("30", "40") that read as values, not times.
CLOCK = ["%Y", "%b", "%b %d", "%H:%M", "%H:%M", "%H:%M:%S"]


def _t(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def table_svg(data: dict[str, Any]) -> str:
    """The snapshot history of `tidemark.ui.data.table` as an SVG document."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    snaps = data["snapshots"]
    pins = sorted({(p["model"], p["version"]) for s in snaps for p in s["pinned_by"]})
    lanes = ["main", "quarantined"] + [f"pin {m}:{v}" for m, v in pins]
    y = {name: len(lanes) - 1 - i for i, name in enumerate(lanes)}
    fig = Figure(figsize=(11, 1.2 + 0.42 * len(lanes)), layout="constrained")
    ax = fig.subplots()
    seen: set[str] = set()
    # The x values are datetimes: matplotlib converts them (its date units) where its type stubs say float,
    # hence the arg-type ignores below.
    for s in snaps:
        kind = s["kind"]
        colour, marker, _ = STYLE[kind]
        lane = "quarantined" if kind in ("quarantine", "audit") else "main"
        ax.plot([_t(s["timestamp_ms"])], [y[lane]], marker=marker, color=colour, markersize=9 if s["snapshot_id"] == data.get("selected") else 7,  # type: ignore[arg-type]
                markeredgecolor="#1565c0" if s["snapshot_id"] == data.get("selected") else colour, markeredgewidth=2.5 if s["snapshot_id"] == data.get("selected") else 1)
        seen.add(kind)
        for p in s["pinned_by"]:
            ax.plot([_t(s["timestamp_ms"])], [y[f"pin {p['model']}:{p['version']}"]], marker="v", color="#e65100", markersize=8)  # type: ignore[arg-type]
            ax.plot([_t(s["timestamp_ms"])] * 2, [y["main"], y[f"pin {p['model']}:{p['version']}"]], color="#e65100", linewidth=0.8, linestyle=":")  # type: ignore[arg-type]
    main = [s for s in snaps if s["on_main"]]
    if len(main) > 1:
        ax.plot([_t(s["timestamp_ms"]) for s in main], [y["main"]] * len(main), color="#2e7d32", linewidth=1, alpha=0.5, zorder=0)  # type: ignore[arg-type]
    times = [_t(s["timestamp_ms"]) for s in snaps] or [datetime.now(timezone.utc)]
    lo, hi = min(times), max(times)
    span = max((hi - lo).total_seconds(), 60.0)
    pad = span * 0.05
    from datetime import timedelta

    ax.set_xlim(lo - timedelta(seconds=pad), hi + timedelta(seconds=pad))  # type: ignore[arg-type]
    handles = [Line2D([], [], marker=STYLE[k][1], color=STYLE[k][0], linestyle="none", label=STYLE[k][2]) for k in STYLE if k in seen]
    if pins:
        handles.append(Line2D([], [], marker="v", color="#e65100", linestyle="none", label="pinned by a model version (kept by expiry)"))
    horizon = _t(data["next_expiry_before_ms"])
    if lo - timedelta(seconds=pad) <= horizon <= hi + timedelta(seconds=pad):
        ax.axvline(horizon, color="#6a1b9a", linestyle="--", linewidth=1.2)  # type: ignore[arg-type]
        ax.axvspan(lo - timedelta(seconds=pad), horizon, color="#6a1b9a", alpha=0.06)  # type: ignore[arg-type]
        handles.append(Line2D([], [], color="#6a1b9a", linestyle="--", label="expiry horizon: unpinned snapshots left of it go at the next maintenance"))
    if data.get("expired_before_ms"):
        gone = _t(data["expired_before_ms"])
        if lo - timedelta(seconds=pad) <= gone <= hi + timedelta(seconds=pad):
            ax.axvline(gone, color="#424242", linewidth=1.2)  # type: ignore[arg-type]
            handles.append(Line2D([], [], color="#424242", label="already expired before this"))
    ax.set_yticks([y[n] for n in lanes], lanes, fontsize=9)
    ax.set_ylim(-0.7, len(lanes) - 0.3)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, formats=CLOCK))
    ax.grid(True, axis="x", color="#eeeeee")
    ax.set_title(f"{data['table']}: {len(snaps)} snapshots (UTC)", fontsize=11, loc="left")
    fig.legend(handles=handles, loc="outside lower center", ncol=min(3, len(handles)) or 1, fontsize=8, frameon=False)
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]
