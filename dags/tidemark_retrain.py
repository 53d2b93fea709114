"""`retrain_model`: retrain a registered model from its recorded snapshots, by hand from the UI.

Params: `model` (required), `version` or `alias` (neither: the latest version), `as_of` (train on the
snapshots current at that time instead). The report (data / code / environment / metrics / artifact
identical?) is the task's return value and log.
"""

from __future__ import annotations

import logging
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from dag_support import one_line_failure, params_named, settings
from lakehouse import names

log = logging.getLogger(__name__)
# The library's parameter -> this DAG's param, for errors about a value given here.
PARAMS = {"model": "model", "version": "version", "alias": "alias", "as_of": "as_of"}


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["tidemark", "training"],
    doc_md=__doc__,
    params={
        # The trigger form checks the names by the same rule the library does (lakehouse.names).
        "model": Param("wine", type="string", pattern=names.json_pattern("model"), description="registered model name"),
        "version": Param(None, type=["null", "integer"], minimum=1, description="a version number, or empty"),
        "alias": Param(None, type=["null", "string"], pattern=names.json_pattern("alias", optional=True), description="an alias such as production, or empty"),
        "as_of": Param(None, type=["null", "string"], description="ISO time: train on the snapshots current then"),
    },
)
def retrain_model() -> None:
    @task
    def retrain(**context: Any) -> dict[str, Any]:
        from models.registry import ModelRef
        from models.retrain import retrain as run

        p = context["params"]
        with one_line_failure(), params_named(PARAMS):
            ref = str(ModelRef.of(p.get("model"), version=p.get("version"), alias=p.get("alias") or None))
            report = run(settings(), ref, as_of=p.get("as_of") or None, progress=log.info).to_json()
        log.info("retrained %s: %s (identical=%s)", ref, report["verdict"], report["identical"])
        return report

    retrain()


retrain_model()
