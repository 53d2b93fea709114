"""Failpoints: `step` SIGKILLs at a named step (its N-th time with `@N`); `armed` only answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from lakehouse import failpoints
from tests.conftest import ROOT


def test_armed_matches_the_full_or_the_short_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(failpoints.ENV, raising=False)
    assert not failpoints.armed("ingest.spark-write")
    monkeypatch.setenv(failpoints.ENV, "train.pinned, ingest.spark-write")
    assert failpoints.armed("ingest.spark-write") and failpoints.armed("train.pinned") and not failpoints.armed("ingest.published")
    monkeypatch.setenv(failpoints.ENV, "spark-write@3")
    assert failpoints.armed("ingest.spark-write")


def test_step_kills_at_the_nth_time() -> None:
    code = "from lakehouse.failpoints import step\nfor i in range(5):\n    step('ingest.x')\n    print(i, flush=True)\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT), failpoints.ENV: "x@3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == -signal.SIGKILL and proc.stdout.split() == ["0", "1"]
