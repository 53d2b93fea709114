"""The walking-skeleton scenario that `make demo` runs: each step is a real `tidemark` command."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lakehouse.config import load_settings


def _write_csv(frame: Any, path: Path, float_format: str) -> Path:
    """A bundled data set as a CSV with an `id` column; rewritten only if its bytes would change,
    so the same file keeps the same sha256 (and a second landing is a no-op)."""
    frame.insert(0, "id", range(1, len(frame) + 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    text = frame.to_csv(index=False, lineterminator="\n", float_format=float_format)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def write_wine_csv(path: Path) -> Path:
    """scikit-learn's bundled wine data set (classification); the same bytes every time."""
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True).frame
    data.columns = [c.replace("/", "_") for c in data.columns]
    return _write_csv(data, path, "%.6g")


def write_diabetes_csv(path: Path) -> Path:
    """scikit-learn's bundled diabetes data set (regression); the same bytes every time."""
    from sklearn.datasets import load_diabetes

    return _write_csv(load_diabetes(as_frame=True).frame, path, "%.8g")


def write_drifted_wine_csv(wine_csv: Path, path: Path, shift: float = 1.6, first_id: int = 2000) -> Path:
    """The same wines with new ids and `alcohol` moved by `shift` (about two standard deviations,
    still inside the gate's range): new data the production model never saw."""
    header, *rows = wine_csv.read_text().splitlines()
    col = header.split(",").index("alcohol")
    out = [header]
    for i, row in enumerate(rows):
        cells = row.split(",")
        cells[0], cells[col] = str(first_id + i), f"{float(cells[col]) + shift:.4f}"
        out.append(",".join(cells))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")
    return path


def write_landing_files(home: Path) -> list[Path]:
    """The demo's files where dags/sources.yaml looks for them: the ingest DAGs land them from there."""
    return [
        write_wine_csv(home / "landing" / "wine" / "wine.csv"),
        write_diabetes_csv(home / "landing" / "diabetes" / "diabetes.csv"),
    ]


def run_demo(cli: Callable[[Sequence[str]], int]) -> int:
    settings = load_settings()
    csv = write_wine_csv(settings.home / "demo" / "wine.csv")

    def step(title: str, *argv: str) -> int:
        print(f"\n== {title}\n$ tidemark {' '.join(shlex.quote(a) for a in argv)}", flush=True)
        code = cli(list(argv))
        if code != 0:
            raise SystemExit(code)
        return code

    # The catalog and Kafka are whatever the configuration names; the embedded defaults otherwise.
    step("Start the stack: the configured catalog and warehouse, a local Kafka-protocol broker unless Kafka is configured", "up")
    step("Land scikit-learn's wine data set through its Great Expectations gate", "ingest", str(csv), "--table", "raw.wine")
    step("Train a deterministic classifier on the pinned snapshot", "train", "wine_classifier")
    step("Store the lineage events from Kafka in the Iceberg lineage tables", "lineage", "consume", "--once")
    step("The registry", "models", "list", "wine")
    from models.registry import Registry

    latest = Registry(settings).resolve("wine").version
    step("Promote the newest version to production", "models", "promote", "wine", str(latest), "--alias", "production", "--reason", "demo")
    step("Store the alias event too", "lineage", "consume", "--once")
    step(
        "Ask the lineage store in SQL",
        "sql",
        "SELECT job_name, event_type, count(*) AS events FROM lineage.events GROUP BY ALL ORDER BY ALL",
    )
    step("Trace the production model to its data", "trace", "wine@production")
    step("Retrain the production model from its pinned snapshot, and compare", "retrain", "wine@production")
    step("Who held production, from when to when", "models", "history", "wine")
    print("\nThe stack is still running: try `tidemark trace wine@production --output json`; `tidemark down` stops it.")
    return 0
