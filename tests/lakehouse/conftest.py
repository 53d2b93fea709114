"""Fixtures of the lakehouse tests that run Spark beside Tidemark."""

from __future__ import annotations

from typing import Any

import pytest

from lakehouse import spark as lspark
from lakehouse.config import Settings, load_settings


@pytest.fixture(params=["sqlite", "postgres"])
def shared(request: pytest.FixtureRequest, spark: Any, kafka_env: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Settings]:
    """Spark and Tidemark on one catalog of this test's own (SQLite file, or a PostgreSQL database).

    Each test runs on both, unless it narrows the choice with
    `@pytest.mark.parametrize("shared", ["postgres"], indirect=True)` (a test costs 1-2 minutes).
    """
    if request.param == "postgres":
        monkeypatch.setenv("TIDEMARK__CATALOG__URI", request.getfixturevalue("postgres_catalog_uri"))
    settings = load_settings()
    lspark.use_catalog(spark, settings)
    return spark, settings
