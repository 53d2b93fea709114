"""The walking-skeleton scenario that `make demo` runs: each step is a real `tidemark` command."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

from lakehouse.config import load_settings


def write_wine_csv(path: Path) -> Path:
    """scikit-learn's bundled wine data set as a CSV with an `id` column; the same bytes every time."""
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True).frame
    data.columns = [c.replace("/", "_") for c in data.columns]
    data.insert(0, "id", range(1, len(data) + 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    text = data.to_csv(index=False, lineterminator="\n", float_format="%.6g")
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def write_diabetes_csv(path: Path) -> Path:
    """scikit-learn's bundled diabetes data set (regression) as a CSV with an `id` column; stable bytes."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True).frame
    data.insert(0, "id", range(1, len(data) + 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    text = data.to_csv(index=False, lineterminator="\n", float_format="%.8g")
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def run_demo(cli: Callable[[Sequence[str]], int]) -> int:
    settings = load_settings()
    csv = write_wine_csv(settings.home / "demo" / "wine.csv")

    def step(title: str, *argv: str) -> int:
        print(f"\n== {title}\n$ tidemark {' '.join(shlex.quote(a) for a in argv)}", flush=True)
        code = cli(list(argv))
        if code != 0:
            raise SystemExit(code)
        return code

    step("Start the embedded stack: SQLite catalog, local warehouse, local Kafka-protocol broker", "up")
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
