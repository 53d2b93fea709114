"""Shared helpers for the models tests: wine data in several landings, in-process stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def wine_part(
    path: Path,
    start: int,
    stop: int,
    id_offset: int = 0,
    extra_column: str | None = None,
    alcohol: float | None = None,
    alcohol_shift_sd: float = 0.0,
) -> Path:
    """Rows [start, stop) of scikit-learn's wine data as a CSV (ids shifted by `id_offset`);
    `alcohol_shift_sd` moves every alcohol value by that many standard deviations (drift)."""
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True).frame
    data.columns = [c.replace("/", "_") for c in data.columns]
    data.insert(0, "id", range(1 + id_offset, len(data) + 1 + id_offset))
    part = data.iloc[start:stop].copy()
    if alcohol is not None:
        part["alcohol"] = alcohol
    if alcohol_shift_sd:
        part["alcohol"] = part["alcohol"] + alcohol_shift_sd * data["alcohol"].std()
    if extra_column:
        part[extra_column] = "late"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(part.to_csv(index=False, lineterminator="\n", float_format="%.6g"))
    return path


@pytest.fixture
def local_settings() -> Any:
    from lakehouse.config import load_settings

    return load_settings()


@pytest.fixture
def transport() -> Any:
    from lineage.transport import InMemoryTransport

    return InMemoryTransport()


def land(settings: Any, path: Path, table: str, transport: Any) -> int:
    from ingest.land import land as _land

    result = _land(settings, str(path), table, transport=transport)
    assert result.snapshot_id is not None
    return int(result.snapshot_id)
