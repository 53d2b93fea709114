"""The prediction log on a real trained model, real Iceberg tables, real DuckDB and the real broker."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.serving.trained import Trained, log_rows, served, trained, wine_rows  # noqa: F401  (fixtures)


def test_appended_rows_land_typed_with_a_landing_summary_and_lineage(served: Any, trained: Trained) -> None:
    from lakehouse.catalog import load_catalog
    from lakehouse.tables import JOB_NAME, RUN_ID, load_table, summary_properties
    from lineage.transport import InMemoryTransport
    from serving import predlog

    tr = InMemoryTransport()
    log = predlog.PredictionLog(served, "wine", start=False, transport=tr)
    rows = wine_rows(trained, 250)
    log.append(rows[:200])
    log.append(rows[200:])
    assert log.pending() == 250
    report = log.close()
    assert (report.committed, report.pending, report.rejected) == (250, 0, 0)

    got = log_rows(served)
    assert got.num_rows == 250 and sorted(got["prediction_id"].to_pylist()) == sorted(r["prediction_id"] for r in rows)
    # One column per feature, typed as the model was trained on (raw.wine's doubles), the target's type for the prediction.
    table = load_table(load_catalog(served), "serving.wine_predictions")
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert list(types)[:4] == ["prediction_id", "model", "version", "time"] and list(types)[-1] == "prediction"
    assert [c for c in types if c not in predlog.LOG_COLUMNS] == list(trained.features)
    assert types["alcohol"] == "double" and types["time"] == "timestamptz" and types["prediction"] == "long"
    first = next(r for r in got.to_pylist() if r["prediction_id"] == rows[0]["prediction_id"])
    assert (first["alcohol"], first["time"], first["prediction"]) == (rows[0]["features"]["alcohol"], rows[0]["time"], rows[0]["prediction"])

    snap = table.current_snapshot()
    props = summary_properties(snap)
    [complete] = [e for e in tr.events if e["eventType"] == "COMPLETE"]
    assert props[RUN_ID] == complete["run"]["runId"] and props[JOB_NAME] == "predlog.wine"
    assert (props[predlog.SEQ_FROM], props[predlog.SEQ_TO], props[predlog.ROWS], props[predlog.VERSIONS]) == ("1", "250", "250", str(trained.version))
    # The version that answered is the input, the table at the new snapshot the output.
    [model_in] = complete["inputs"]
    assert (model_in["name"], model_in["facets"]["version"]["datasetVersion"]) == ("wine", str(trained.version))
    [out] = complete["outputs"]
    assert out["facets"]["version"]["datasetVersion"] == str(snap.snapshot_id)
    assert out["outputFacets"]["outputStatistics"]["rowCount"] == 250


def test_the_background_flusher_commits_micro_batches(served: Any, trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from lakehouse.config import load_settings
    from serving.predlog import PredictionLog

    monkeypatch.setenv("TIDEMARK__SERVING__LOG_BATCH_ROWS", "50")
    monkeypatch.setenv("TIDEMARK__SERVING__LOG_INTERVAL_S", "0.5")
    log = PredictionLog(load_settings(), "wine")
    try:
        log.append(wine_rows(trained, 120))
        deadline = time.monotonic() + 30
        while log.pending() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.pending() == 0, "the flusher did not commit within 30 s"
        assert log_rows(served).num_rows == 120
    finally:
        log.close()


def test_concurrent_appends_share_commits_and_all_land(served: Any, trained: Trained) -> None:
    import threading

    from serving.predlog import PredictionLog

    log = PredictionLog(served, "wine", start=False)
    batches = [wine_rows(trained, 5, start=10 * k) for k in range(80)]
    threads = [threading.Thread(target=lambda rows=rows: log.append(rows)) for rows in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.pending() == 400
    assert log.close().committed == 400
    got = log_rows(served)["prediction_id"].to_pylist()
    assert sorted(got) == sorted(r["prediction_id"] for rows in batches for r in rows)


def test_bad_rows_are_refused_at_append_or_kept_aside_never_lost(served: Any, trained: Trained) -> None:
    from datetime import datetime

    from serving.exceptions import PredictionLogError
    from serving.predlog import PredictionLog

    log = PredictionLog(served, "wine", start=False)
    good = wine_rows(trained, 3)
    with pytest.raises(PredictionLogError, match="lacks prediction"):
        log.append([{k: v for k, v in good[0].items() if k != "prediction"}])
    with pytest.raises(PredictionLogError, match="timezone-aware"):
        log.append([{**good[0], "time": datetime(2026, 1, 1)}])
    with pytest.raises(PredictionLogError, match="model 'diabetes' given to the log of 'wine'"):
        log.append([{**good[0], "model": "diabetes"}])
    # A value the table cannot take (text for a double), and a version never registered: set aside with the reason.
    log.append([*good[:2], {**good[2], "features": {**good[2]["features"], "alcohol": "strong"}}, {**wine_rows(trained, 1)[0], "version": 99}])
    report = log.close()
    assert (report.committed, report.rejected, report.pending) == (2, 2, 0)
    assert log_rows(served).num_rows == 2
    reasons = {r["prediction_id"]: r["reason"] for r in log.buffer.__class__(log.buffer.path).rejected()}
    assert len(reasons) == 2 and any("no version 99" in r for r in reasons.values())


def test_catalog_down_appends_go_on_rows_stay_buffered_then_land(
    trained: Trained, postgres_catalog_uri: str, kafka_env: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The catalog on PostgreSQL behind a TCP forwarder that is taken down, then brought back."""
    import time
    from urllib.parse import urlsplit, urlunsplit

    from ingest.land import land
    from lakehouse.config import load_settings
    from models.jobs import get_job
    from models.train import train
    from serving.exceptions import CatalogUnavailableError
    from serving.predlog import PredictionLog
    from tests.serving.tcp_proxy import TcpProxy

    parts = urlsplit(postgres_catalog_uri)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxy.start()
    user = f"{parts.username}@" if parts.username else ""
    monkeypatch.setenv("TIDEMARK__CATALOG__URI", urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}")))
    monkeypatch.setenv("TIDEMARK__SERVING__LOG_INTERVAL_S", "0.2")
    settings = load_settings()
    land(settings, str(trained.wine_csv), "raw.wine", data_docs=False)
    version = train(settings, get_job("wine_classifier")).version.version

    def wait_empty(log: PredictionLog, within_s: float) -> None:
        deadline = time.monotonic() + within_s
        while log.pending() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.pending() == 0, f"{log.pending()} rows still buffered after {within_s} s"

    log = PredictionLog(settings, "wine")
    try:
        log.append(wine_rows(trained, 10, version=version))
        wait_empty(log, 20)
        proxy.stop()
        with caplog.at_level(logging.WARNING, logger="serving.predlog"):
            started = time.monotonic()
            log.append(wine_rows(trained, 40, version=version))
            log.append(wine_rows(trained, 5, version=version))
            assert time.monotonic() - started < 1.0, "append waited on the catalog"
            with pytest.raises(CatalogUnavailableError, match="stay in"):
                log.flush()
            time.sleep(1.0)  # the background flusher tries too, and fails
            assert log.pending() == 45
            assert "rows stay buffered" in caplog.text
            proxy.start()
            wait_empty(log, 30)  # the flusher's backoff is at most a few seconds at this interval
        assert "the catalog answers again" in caplog.text
        assert log.close().pending == 0
        assert log_rows(settings).num_rows == 55
    finally:
        log.close()
        proxy.stop()


def test_service_appends_share_transactions_one_entry_each_and_land_by_columns(served: Any, trained: Trained) -> None:
    """`append_answered` (the service's path): concurrent requests on one event loop, each one
    buffer entry holding its rows' features as columns, numbered a row at a time."""
    import asyncio
    import sqlite3

    import numpy as np

    from lakehouse.catalog import load_catalog
    from lakehouse.tables import load_table, summary_properties
    from serving import predlog

    log = predlog.PredictionLog(served, "wine", start=False)
    requests = [wine_rows(trained, 5, start=5 * k) for k in range(30)]
    names = tuple(trained.features)

    async def answer_all() -> None:
        await asyncio.gather(
            *(
                log.append_answered(
                    [r["prediction_id"] for r in rows], trained.version, rows[0]["time"], names,
                    np.asarray([[r["features"][n] for n in names] for r in rows], dtype="float64"), [r["prediction"] for r in rows],
                )
                for rows in requests
            )
        )

    asyncio.run(answer_all())
    with sqlite3.connect(log.buffer.path) as db:
        assert db.execute("SELECT count(*), sum(n), min(seq), max(seq) FROM rows").fetchone() == (30, 150, 5, 150)
    assert log.pending() == 150
    assert log.close().committed == 150
    got = {r["prediction_id"]: r for r in log_rows(served).to_pylist()}
    for rows in requests:
        for r in rows:
            assert got[r["prediction_id"]]["alcohol"] == r["features"]["alcohol"] and got[r["prediction_id"]]["prediction"] == r["prediction"]
    props = summary_properties(load_table(load_catalog(served), "serving.wine_predictions").current_snapshot())
    assert (props[predlog.SEQ_FROM], props[predlog.SEQ_TO]) == ("1", "150")


def test_a_buffer_of_the_row_per_row_format_is_committed_and_numbering_goes_on(served: Any, trained: Trained) -> None:
    """A buffer left by a version that stored one SQLite row per prediction row: its rows commit,
    and the entries appended after them are numbered after them."""
    import json
    import sqlite3

    from lakehouse.catalog import load_catalog
    from lakehouse.tables import load_table, summary_properties
    from serving import predlog

    path = predlog.buffer_path(served, "wine")
    path.parent.mkdir(parents=True, exist_ok=True)
    old = wine_rows(trained, 3)
    with sqlite3.connect(path) as db:
        db.execute(
            """CREATE TABLE rows (seq INTEGER PRIMARY KEY AUTOINCREMENT, prediction_id TEXT NOT NULL, model TEXT NOT NULL,
            version INTEGER NOT NULL, time_us INTEGER NOT NULL, features TEXT NOT NULL, prediction TEXT NOT NULL)"""
        )
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('buffer_id', 'old-buffer')")
        db.executemany(
            "INSERT INTO rows (prediction_id, model, version, time_us, features, prediction) VALUES (?, ?, ?, ?, ?, ?)",
            [(r["prediction_id"], "wine", r["version"], int(r["time"].timestamp() * 1e6), json.dumps(r["features"]), json.dumps(r["prediction"])) for r in old],
        )
    log = predlog.PredictionLog(served, "wine", start=False)
    new = wine_rows(trained, 4, start=3)
    log.append(new)
    assert log.pending() == 7
    assert log.close().committed == 7
    assert sorted(log_rows(served)["prediction_id"].to_pylist()) == sorted(r["prediction_id"] for r in old + new)
    props = summary_properties(load_table(load_catalog(served), "serving.wine_predictions").current_snapshot())
    assert (props[predlog.BUFFER_ID], props[predlog.SEQ_FROM], props[predlog.SEQ_TO]) == ("old-buffer", "1", "7")


def test_rows_of_an_entry_the_table_cannot_take_are_set_aside_and_the_rest_commit(served: Any, trained: Trained) -> None:
    """One request's entry with a feature the model never had: its rows go to the rejected table with
    the reason, the entry leaves the buffer, and the next request's rows commit."""
    import asyncio

    from serving import predlog

    log = predlog.PredictionLog(served, "wine", start=False)
    odd, fine = wine_rows(trained, 3), wine_rows(trained, 2, start=3)
    names = tuple(trained.features)

    async def answer(rows: list[dict[str, Any]], extra: tuple[str, ...]) -> None:
        matrix = [[*(r["features"][n] for n in names), *(1.0 for _ in extra)] for r in rows]
        await log.append_answered([r["prediction_id"] for r in rows], trained.version, rows[0]["time"], (*names, *extra), matrix, [r["prediction"] for r in rows])

    asyncio.run(answer(odd, ("bogus",)))
    asyncio.run(answer(fine, ()))
    report = log.close()
    assert (report.committed, report.rejected, report.pending) == (2, 3, 0)
    assert sorted(log_rows(served)["prediction_id"].to_pylist()) == sorted(r["prediction_id"] for r in fine)
    rejected = predlog.Buffer(log.buffer.path).rejected()
    assert sorted(r["prediction_id"] for r in rejected) == sorted(r["prediction_id"] for r in odd)
    assert all("bogus" in r["reason"] for r in rejected) and [r["seq"] for r in rejected] == [1, 2, 3]
