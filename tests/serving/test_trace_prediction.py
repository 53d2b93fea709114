"""`tidemark trace prediction:ID`: one served answer -> the version that answered -> its training
run -> input snapshots -> ingest run -> source file, on real tables and the real lineage store."""

from __future__ import annotations

from typing import Any

import pytest

from tests.serving.trained import Trained, served, trained, wine_rows  # noqa: F401  (fixtures)


def test_a_prediction_traces_to_the_source_file_behind_its_training_data(served: Any, trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from lakehouse.catalog import load_catalog
    from lakehouse.tables import RUN_ID, summary_properties
    from lineage.consumer import consume
    from models.exceptions import PredictionNotFoundError
    from models.trace import trace_prediction
    from serving.predlog import PredictionLog
    from tidemark.cli import main

    rows = wine_rows(trained, 30)
    log = PredictionLog(served, "wine", start=False)
    log.append(rows[:10])
    log.flush()
    log.append(rows[10:])
    second = log.close().snapshot_id
    consume(served, once=True)  # the training and landing runs' events into the lineage store

    wanted = rows[17]
    assert main(["trace", f"prediction:{wanted['prediction_id']}", "--output", "json"]) == 0
    t = json.loads(capsys.readouterr().out)
    p = t["prediction"]
    assert (p["prediction_id"], p["model"], p["version"], p["prediction"]) == (wanted["prediction_id"], "wine", trained.version, wanted["prediction"])
    assert p["features"] == wanted["features"]
    log_table = load_catalog(served).load_table(("serving", "wine_predictions"))
    assert p["snapshot_id"] == second  # the second commit added it, not the first
    assert p["logged_by"] == {"run_id": summary_properties(log_table.snapshot_by_id(second))[RUN_ID], "job": "predlog.wine"}
    # From the version on: the training run, its input snapshot, the landing run and its source file.
    assert (t["model"], t["version"]) == ("wine", trained.version)
    [inp] = t["inputs"]
    assert inp["table"] == "raw.wine" and inp["ingest_run"]["source"] == "lineage" and inp["ingest_run"]["job"] == "ingest.raw.wine"
    assert [f["path"].rsplit("/", 1)[-1] for f in inp["source_files"]] == ["wine.csv"]

    assert main(["trace", f"prediction:{wanted['prediction_id']}"]) == 0
    text = capsys.readouterr().out
    assert f"prediction {wanted['prediction_id']}" in text and f"answered by wine version {trained.version}" in text and "from file" in text

    with pytest.raises(PredictionNotFoundError, match="no prediction nope in the prediction logs \\(serving.wine_predictions\\)"):
        trace_prediction(served, "prediction:nope")
    assert main(["trace", "prediction:nope"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no prediction nope" in err[0]


def test_an_answer_of_the_running_service_traces_back_by_its_prediction_id(served: Any, trained: Trained, tmp_path: Any) -> None:
    """End to end: `tidemark serve` answers, logs the answer under the id it returns, and
    `tidemark trace prediction:ID` leads from that id to the version, its run and its data."""
    import time

    from lineage.consumer import consume
    from models.exceptions import PredictionNotFoundError
    from models.trace import trace_prediction
    from tests.serving.conftest import serving

    record = wine_rows(trained, 1, start=42)[0]["features"]
    record = {k: (int(v) if k in ("magnesium", "proline") else v) for k, v in record.items()}  # as the table types them
    env = {**trained.env, "TIDEMARK__SERVING__LOG_INTERVAL_S": "0.5"}
    with serving("wine@production", env, tmp_path / "serve.log") as server, server.client() as c:
        answer = c.post("/predict", json=record)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        deadline = time.monotonic() + 30
        while True:
            try:
                found = trace_prediction(served, f"prediction:{body['prediction_id']}")
                break
            except PredictionNotFoundError:
                assert time.monotonic() < deadline, "the answer did not reach the prediction log within 30 s"
                time.sleep(0.5)
    p = found["prediction"]
    assert (p["model"], p["version"], p["prediction"]) == ("wine", body["version"], body["predictions"][0])
    assert (found["version"], found["run_id"]) == (body["version"], body["run_id"])
    assert p["features"]["alcohol"] == record["alcohol"] and p["logged_by"]["job"] == "predlog.wine"
    consume(served, once=True)
    [inp] = trace_prediction(served, body["prediction_id"])["inputs"]
    assert [f["path"].rsplit("/", 1)[-1] for f in inp["source_files"]] == ["wine.csv"]
