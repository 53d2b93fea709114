"""An SVG chart of drift over time: each feature's PSI across the checked snapshots, and the threshold.

Hand-made SVG (no plotting library): one polyline per feature, checks in time order along x,
a dashed line at the PSI threshold; features above it are named in the legend in red.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from models.exceptions import DriftError

WIDTH, HEIGHT = 900, 460
LEFT, RIGHT, TOP, BOTTOM = 60, 230, 40, 70
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def psi_series(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], dict[str, list[float | None]]]:
    """Check labels (oldest first) and per `table.column` the PSI at each check (None: not scored)."""
    checks: dict[str, str] = {}
    for r in sorted(rows, key=lambda r: r["event_time"]):
        checks.setdefault(r["run_id"], f"{str(r['current_snapshot_id'])[-6:]} v{r['version']}")
    order = list(checks)
    series: dict[str, list[float | None]] = {}
    for r in rows:
        if r.get("psi") is None:
            continue
        key = f"{r['table_name']}.{r['column_name']}"
        series.setdefault(key, [None] * len(order))[order.index(r["run_id"])] = float(r["psi"])
    return [checks[k] for k in order], series


def write_svg(rows: Sequence[Mapping[str, Any]], path: Path, threshold: float, title: str) -> Path:
    labels, series = psi_series(rows)
    if not series:
        raise DriftError(f"no numeric drift scores to plot for {title}; run `tidemark models drift NAME --check` first")
    top = max([threshold * 1.2] + [v for vals in series.values() for v in vals if v is not None])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (len(labels) - 1) if len(labels) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="14">{escape(title)}: population stability index per feature</text>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="black"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="black"/>',
    ]
    for k in range(5):
        v = top * k / 4
        out.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    for i, label in enumerate(labels):
        out.append(
            f'<text x="{x(i):.1f}" y="{TOP + plot_h + 16}" text-anchor="end" transform="rotate(-30 {x(i):.1f} {TOP + plot_h + 16})">'
            f"{escape(label)}</text>"
        )
    out.append(
        f'<line class="threshold" x1="{LEFT}" y1="{y(threshold):.1f}" x2="{LEFT + plot_w}" y2="{y(threshold):.1f}" '
        'stroke="red" stroke-dasharray="6 4"/>'
    )
    out.append(f'<text x="{LEFT + plot_w}" y="{y(threshold) - 4:.1f}" text-anchor="end" fill="red">threshold {threshold}</text>')
    for n, (name, values) in enumerate(sorted(series.items())):
        color = COLORS[n % len(COLORS)]
        pts = [(x(i), y(v)) for i, v in enumerate(values) if v is not None]
        out.append(
            f'<polyline class="feature" data-feature="{escape(name)}" fill="none" stroke="{color}" stroke-width="1.5" '
            f'points="{" ".join(f"{px:.1f},{py:.1f}" for px, py in pts)}"/>'
        )
        out += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{color}"/>' for px, py in pts]
        over = ' fill="red"' if any(v is not None and v > threshold for v in values) else ""
        ly = TOP + 14 * n
        out.append(f'<rect x="{WIDTH - RIGHT + 12}" y="{ly - 8}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{WIDTH - RIGHT + 26}" y="{ly + 1}"{over}>{escape(name)}</text>')
    out.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path
