"""Shared pieces of the benchmarks: a scratch TIDEMARK_HOME, a local broker, timing, RSS."""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def scratch_home(name: str) -> Iterator[Path]:
    """A fresh TIDEMARK_HOME for one benchmark, removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix=f"tidemark-bench-{name}-"))
    old = os.environ.get("TIDEMARK_HOME")
    os.environ["TIDEMARK_HOME"] = str(home)
    try:
        yield home
    finally:
        if old is None:
            os.environ.pop("TIDEMARK_HOME", None)
        else:
            os.environ["TIDEMARK_HOME"] = old
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def local_broker(settings: Any) -> Iterator[str]:
    from lineage import broker

    state = broker.start(settings)
    try:
        yield state.bootstrap_servers
    finally:
        broker.stop(settings)


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def result(name: str, **values: Any) -> None:
    """The one line each benchmark ends with."""
    parts = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    print(f"RESULT {name} {parts}", flush=True)
