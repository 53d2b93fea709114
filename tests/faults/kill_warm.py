"""Imported once by the kill suite's forkserver (never by the tests themselves): one landing and one
training in a throw-away home with an in-memory transport, so every lazy import (Great
Expectations alone takes ~30 s here under load), cache and registry is in place before the
forkserver forks the children that are killed, and each child starts in well under a second."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def _warm() -> None:
    home = Path(tempfile.mkdtemp(prefix="tidemark-kill-warm-"))
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("TIDEMARK")]:
            del os.environ[key]
        os.environ.update({"TIDEMARK_HOME": str(home), "GX_ANALYTICS_ENABLED": "false"})
        from ingest.land import land
        from lakehouse.config import load_settings
        from lineage.transport import InMemoryTransport
        from models.jobs import get_job
        from models.train import train
        from tidemark.demo import write_wine_csv

        settings = load_settings()
        land(settings, str(write_wine_csv(home / "wine.csv")), "raw.wine", transport=InMemoryTransport(), data_docs=False)
        train(settings, get_job("wine_classifier"), transport=InMemoryTransport())
        import duckdb  # noqa: F401  (the promotion gate's lineage queries)
        import kafka  # noqa: F401
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(home, ignore_errors=True)


_warm()
