"""The embedded SQLite catalog."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings


def test_the_embedded_catalog_uses_write_ahead_logging(isolated_env: Path) -> None:
    catalog = load_catalog(load_settings())
    catalog.create_namespace("raw")
    mode = sqlite3.connect(isolated_env / "catalog.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert load_catalog(load_settings()).list_namespaces() == [("raw",)]
