"""The jobs the kill suite runs in child processes (forked from a forkserver that imported them once).

Each takes the environment to run in (TIDEMARK_HOME, the test's topic, TIDEMARK_FAILPOINT) and does
what the CLI command would, in-process: a forked child skips the interpreter and import start-up
(~5 s a command), so every named step can be killed five times within the suite's time budget.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

# Imported here so the forkserver loads them once (its preload) and every child starts warm.
import ingest.land  # noqa: F401
import lineage.consumer  # noqa: F401
import models.promotion  # noqa: F401
import models.train  # noqa: F401


def _settings(env: Mapping[str, str]) -> Any:
    for key in [k for k in os.environ if k.startswith("TIDEMARK")]:
        del os.environ[key]  # the forkserver's environment is the first test's
    os.environ.update(env)
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    logging.disable(logging.WARNING)
    from lakehouse.config import load_settings

    return load_settings()


def land(env: Mapping[str, str], path: str, table: str) -> None:
    from ingest.land import land as do

    do(_settings(env), path, table, data_docs=False)


def train(env: Mapping[str, str], job: str) -> None:
    from models.jobs import get_job
    from models.train import train as do

    do(_settings(env), get_job(job))


def promote(env: Mapping[str, str], model: str, version: int, alias: str) -> None:
    from models.promotion import promote as do

    do(_settings(env), model, version, alias, reason="kill suite")


def consume(env: Mapping[str, str]) -> None:
    from lineage.consumer import consume as do

    do(_settings(env), once=True)


def land_spark(env: Mapping[str, str], path: str, table: str) -> None:
    """`tidemark ingest --engine spark` in-process: the child starts its own local Spark (a JVM of its own,
    which exits when this process dies: pyspark's gateway ends on its stdin closing)."""
    from ingest.sparkland import land_spark as do

    do(_settings(env), path, table, data_docs=False)
