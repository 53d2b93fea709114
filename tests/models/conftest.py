"""Shared helpers for the models tests: wine data in several landings, in-process stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

# A scikit-learn other than the installed one, for the tests that change the job's packages.
OTHER_SKLEARN = "scikit-learn==1.8.0"


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


def pip(*args: str) -> Any:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], capture_output=True, text=True)


@pytest.fixture(scope="session")
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A --find-links directory with the wine job's wheels at the installed versions, and one
    other scikit-learn; filled through pip (the registry client: pip's HTTP cache makes it a local
    copy after the first time), or the tests that need it skip saying why."""
    from lineage.code import installed_distributions

    installed = installed_distributions()
    wanted = [f"{n}=={installed[n]}" for n in
              ("cloudpickle", "joblib", "narwhals", "numpy", "pandas", "psutil", "pyarrow", "python-dateutil", "scikit-learn",
               "scipy", "six", "threadpoolctl") if n in installed]
    target = tmp_path_factory.mktemp("wheels")
    for batch in (wanted, [OTHER_SKLEARN]):  # one version of a name per pip call
        done = pip("download", "-q", "--no-deps", "-d", str(target), *batch)
        if done.returncode != 0:
            pytest.skip(f"cannot fill a local wheel directory with pip download: {done.stderr.strip().splitlines()[-1:]}")
    return target


def fill(wheels: Path, pins: list[str]) -> None:
    """Add the wheels of `pins` (a version's recorded requirements) to the directory, as a user would
    with `pip download` when the version is registered; whatever is there already is kept."""
    done = pip("download", "-q", "--no-deps", "-d", str(wheels), *pins)
    if done.returncode != 0:
        pytest.skip(f"cannot download {' '.join(pins)} into the wheel directory: {done.stderr.strip().splitlines()[-1:]}")
