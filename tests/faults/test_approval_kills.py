"""Kill `tidemark models approve` at each of its named steps (`lakehouse.failpoints.STEPS["approve"]`).

The real CLI process SIGKILLs itself at the step (`TIDEMARK_FAILPOINT`): after the approval is
decided, after the alias move is committed, after the approve row, after the event. Then a second
`models approve` of the same request, `tidemark lineage recover` and a consume, and the test checks
that the alias moved exactly once, the request reads approved by the approver (one approve row), the
consumer refused nothing, the move has one terminal event, and a store rebuilt from the topic alone
agrees (it takes the move only with its signed approval step, so a recovered event without it fails here).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from lakehouse.failpoints import STEPS
from tests.conftest import run_cli
from tests.models.test_approvals import ALICE, BOB, protected  # noqa: F401 (`protected` is a fixture)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("step", STEPS["approve"])
def test_approve_killed_at_each_step_is_finished_by_recovery_with_its_approval(
    step: str, protected: Any, wine_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest.land import land
    from lineage.consumer import consume
    from lineage.query import connect
    from models.jobs import get_job
    from models.registry import Registry
    from models.train import train

    s = protected
    land(s, str(wine_csv), "raw.wine")
    job = get_job("wine_classifier")
    assert train(s, job, params=dict(job.params)).version.version == 1
    consume(s, once=True)
    rid = json.loads(run_cli("models", "promote", "wine", "1", "--alias", "production", "--output", "json", env=ALICE).stdout)["request_id"]

    proc = run_cli("models", "approve", "wine", rid, check=False, env={**BOB, "TIDEMARK_FAILPOINT": f"approve.{step}"})
    assert proc.returncode == -signal.SIGKILL, f"approve was to die at approve.{step}, exited {proc.returncode}: {proc.stderr}"

    # A second approval of the same request: one line, and nothing moves twice.
    again = run_cli("models", "approve", "wine", rid, check=False, env=BOB)
    if step == "decided":  # nothing had moved: this approval is the one that applies it
        assert again.returncode == 0, again.stderr
    else:
        lines = [line for line in again.stderr.splitlines() if line.strip()]
        assert again.returncode != 0 and len(lines) == 1, again.stderr
        print(f"second approve after a kill at {step}: {lines[0]}")
        if step == "moved":  # moved, approve row missing: refused as applied, naming what finishes it
            assert f"request {rid} is already applied" in lines[0] and "tidemark lineage recover" in lines[0], lines[0]
        else:
            assert f"request {rid} is already closed: approved by bob" in lines[0], lines[0]

    run_cli("lineage", "recover")
    consume(s, once=True)
    run_cli("lineage", "recover")  # acknowledge what the consume stored

    registry = Registry(s)
    assert registry.current_aliases() == {("wine", "production"): 1}
    moves = [m for m in registry.alias_history("wine") if m["alias"] == "production"]
    assert [(m["version"], m["approval"]) for m in moves] == [(1, rid)]
    assert registry.rejected_moves("wine") == []
    rows = json.loads(run_cli(
        "sql", f"SELECT action, actor, run_id FROM lineage.alias_requests WHERE request_id = '{rid}' ORDER BY event_time", "--output", "json"
    ).stdout)
    assert [(r["action"], r["actor"]) for r in rows] == [("request", "alice"), ("approve", "bob")]
    assert rows[1]["run_id"] == moves[0]["run_id"]
    terminal = connect(s).execute(
        "SELECT event_type FROM lineage.events WHERE run_id = ? AND event_type IN ('COMPLETE', 'FAIL', 'ABORT')", [moves[0]["run_id"]]
    ).fetchall()
    assert terminal == [("COMPLETE",)]

    # A store fed only by the topic takes the move because its event carries the signed approval.
    from lakehouse.config import load_settings
    from lineage import signing
    from models import approvals

    key = signing.key_path(s).read_text().strip()
    monkeypatch.setenv("TIDEMARK_HOME", str(tmp_path / "second"))
    monkeypatch.setenv("TIDEMARK__LINEAGE__REGISTRY_KEY", key)
    monkeypatch.setenv("TIDEMARK__LINEAGE__CONSUMER_GROUP", "second-store")
    second = load_settings()
    consume(second, once=True)
    assert Registry(second).current_aliases() == {("wine", "production"): 1}
    assert Registry(second).rejected_moves("wine") == []
    assert [(r["request_id"], r["status"], r["closed_by"]["actor"]) for r in approvals.listing(second, "wine", include_closed=True)] == [
        (rid, "approved", "bob"),
    ]
