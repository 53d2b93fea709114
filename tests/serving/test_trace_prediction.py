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
