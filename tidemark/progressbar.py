"""A one-line progress bar on a terminal (stderr); silent when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Bar:
    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30, min_interval_s: float = 0.2) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.label = label
        self.width = width
        self.min_interval_s = min_interval_s
        self._start = time.monotonic()
        self._last = 0.0
        self._drawn = False

    def __call__(self, rows: int, fraction: float | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.min_interval_s and (fraction or 0) < 1:
            return
        self._last = now
        rate = rows / max(now - self._start, 1e-6)
        if fraction is None:
            bar = f"{rows:,} rows"
        else:
            filled = int(self.width * fraction)
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {fraction * 100:5.1f}%  {rows:,} rows"
        self.stream.write(f"\r  {self.label} {bar}  {rate:,.0f} rows/s ")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
