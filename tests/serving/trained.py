"""What the prediction-log tests share: one home with wine landed and a wine model trained and
promoted to `production` (once per test module: training is the slow part), on the session's real
broker with a topic of its own. Each test gets that home with an empty prediction log."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class Trained:
    home: Path
    env: dict[str, str]
    version: int
    features: tuple[str, ...]
    wine_csv: Path


@pytest.fixture(scope="module")
def trained(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    from ingest.land import land
    from lakehouse.config import load_settings
    from models.jobs import WINE_FEATURES, get_job
    from models.registry import Registry
    from models.train import train
    from tidemark.demo import write_wine_csv

    root = tmp_path_factory.mktemp("serving")
    env = {
        "TIDEMARK_HOME": str(root / "home"),
        "TIDEMARK__KAFKA__BOOTSTRAP_SERVERS": broker,
        "TIDEMARK__KAFKA__TOPIC": f"lineage-{uuid.uuid4().hex[:12]}",
        "GX_ANALYTICS_ENABLED": "false",
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        settings = load_settings()
        csv = write_wine_csv(root / "data" / "wine.csv")
        land(settings, str(csv), "raw.wine", data_docs=False)
        mv = train(settings, get_job("wine_classifier")).version
        Registry(settings).promote("wine", mv.version, "production", reason="serving tests")
        yield Trained(root / "home", env, mv.version, WINE_FEATURES, csv)


@pytest.fixture
def served(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The trained home's settings, with no prediction log table and no buffer yet."""
    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings
    from models.signature import prediction_table

    for k, v in trained.env.items():
        monkeypatch.setenv(k, v)
    settings = load_settings()
    catalog = load_catalog(settings)
    name = tuple(prediction_table("wine").split("."))
    if catalog.table_exists(name):
        catalog.purge_table(name)
    shutil.rmtree(settings.home / "serving", ignore_errors=True)
    return settings


def wine_rows(trained: Trained, n: int, start: int = 0, shift: float = 0.0, version: int | None = None) -> list[dict[str, Any]]:
    """`n` prediction rows with real wine measurements (cycling through the data set); `shift`
    moves alcohol by that many of its standard deviations."""
    from datetime import datetime, timezone

    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True).frame
    data.columns = [c.replace("/", "_") for c in data.columns]
    sd = float(data["alcohol"].std())
    out = []
    for i in range(start, start + n):
        rec = data.iloc[i % len(data)]
        features = {f: float(rec[f]) for f in trained.features}
        features["alcohol"] += shift * sd
        out.append(
            {
                "prediction_id": f"p-{uuid.uuid4().hex}",
                "model": "wine",
                "version": version or trained.version,
                "time": datetime.now(timezone.utc),
                "features": features,
                "prediction": int(rec["target"]),
            }
        )
    return out


def log_rows(settings: Any) -> Any:
    """The prediction log table's rows, read by DuckDB (a pyarrow table)."""
    from lakehouse import sql
    from lakehouse.catalog import load_catalog
    from lakehouse.tables import load_table
    from models.signature import prediction_table

    table = load_table(load_catalog(settings), prediction_table("wine"))
    con = sql.connect()
    snap = table.current_snapshot()
    sql.snapshot_view(con, "log", table, snap.snapshot_id if snap else None)
    return con.execute("SELECT * FROM log ORDER BY time").fetch_arrow_table()
