"""Real data for the plugin's pages: the demo, then a 20-run history on top of it, each step a real
`tidemark` command run in this process (as `tidemark demo` runs its steps).

After it: wine versions 1-3 (production moved 1 -> 2 -> 1, the last move forced; staging on 3), a
quarantined landing, four landings (raw.wine owned by team:wine from the second on) of which two shift `alcohol` (drift), four drift checks, a
renewal decision, a second model (diabetes) in production, and a forged (refused) move of wine to version 99. Usable from a test fixture or by
hand: `TIDEMARK_HOME=/tmp/x python -m tests.tidemark.ui_history`.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any
from unittest import mock

from tests.models.conftest import wine_part


def _cli(*argv: str) -> None:
    from tidemark.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    if code != 0:
        raise AssertionError(f"tidemark {' '.join(argv)} exited {code}:\n{out.getvalue()}\n{err.getvalue()}")


def _cli_fails(*argv: str) -> None:
    from tidemark.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(argv))
    assert code != 0, f"tidemark {' '.join(argv)} was expected to fail"


def build(home: Path) -> dict[str, Any]:
    """The demo plus the history, in the TIDEMARK_HOME the environment names (`home`)."""
    from tidemark.cli import main
    from tidemark.demo import run_demo, write_diabetes_csv

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        run_demo(main)  # land wine, train wine:1, promote production, consume, trace, retrain
    data = home / "history"
    # Landing 2: new wines, slightly shifted; a check; version 2 trained on it takes production.
    _cli("ingest", str(wine_part(data / "wine-feb.csv", 0, 60, id_offset=178, alcohol_shift_sd=0.2)), "--table", "raw.wine", "--owner", "team:wine")
    _cli("models", "drift", "wine@production", "--check")
    _cli("train", "wine_classifier")
    _cli("lineage", "consume", "--once")
    _cli("models", "promote", "wine", "2", "--alias", "production", "--reason", "retrained on February data", "--force")
    # Landing 3 refused by the gate (alcohol out of range): quarantined, main untouched.
    _cli_fails("ingest", str(wine_part(data / "wine-bad.csv", 0, 10, id_offset=900, alcohol=99.0)), "--table", "raw.wine")
    # Landings 4 and 5 move alcohol by two standard deviations: drift.
    _cli("ingest", str(wine_part(data / "wine-mar.csv", 60, 120, id_offset=356, alcohol_shift_sd=2.0)), "--table", "raw.wine")
    _cli("models", "drift", "wine@production", "--check")
    _cli("train", "wine_classifier")
    _cli("lineage", "consume", "--once")
    _cli("models", "promote", "wine", "3", "--alias", "staging", "--reason", "candidate on March data", "--force")
    _cli("models", "promote", "wine", "1", "--alias", "production", "--reason", "rollback: version 2 misread March", "--force")
    _cli("ingest", str(wine_part(data / "wine-apr.csv", 120, 178, id_offset=534, alcohol_shift_sd=2.5)), "--table", "raw.wine")
    _cli("models", "drift", "wine@production", "--check")
    # The April landing is not consumed yet: the renewal's gate refuses (the model page shows that
    # decision). At once: the default bound waits 120 s for a consumer that this history never runs.
    with mock.patch.dict(os.environ, {"TIDEMARK__MODELS__LINEAGE_WAIT_S": "0"}):
        _cli("models", "renew", "wine@production")
    _cli("models", "drift", "wine@production", "--check")
    # A second model.
    _cli("ingest", str(write_diabetes_csv(data / "diabetes.csv")), "--table", "raw.diabetes")
    _cli("train", "diabetes_regressor")
    _cli("lineage", "consume", "--once")
    _cli("models", "promote", "diabetes", "1", "--alias", "production", "--reason", "first diabetes model")
    _cli("lineage", "consume", "--once")
    # A forged move (issue 16's reproduction): wine's promote event, unsigned, pointed at version 99.
    _cli("lineage", "emit", str(_forged_promote(home, data / "forged.jsonl", version=99)))
    _cli("lineage", "consume", "--once")
    return {"home": home}


def _forged_promote(home: Path, path: Path, version: int) -> Path:
    """A copy of wine's first promote event with a new run, its signature dropped, naming `version`."""
    import json
    import uuid

    from lakehouse.config import load_settings
    from lineage import model_store
    from lineage.query import run_sql

    rows = run_sql(load_settings(), "SELECT payload FROM lineage.events WHERE job_name = 'models.promote' ORDER BY event_time LIMIT 1").to_pylist()
    event = json.loads(rows[0]["payload"])
    event["run"]["runId"] = str(uuid.uuid4())
    (ds,) = event["inputs"]
    ds["facets"]["version"]["datasetVersion"] = str(version)
    ds["facets"][model_store.ALIAS_FACET].pop("signature", None)
    path.write_text(json.dumps(event) + "\n")
    return path


if __name__ == "__main__":
    build(Path(os.environ["TIDEMARK_HOME"]))
    print("built", file=sys.stderr)
