"""The DAG files' shared helper, without a scheduler: asset URIs and events, DAG param errors.
(That Airflow does not take it for a DAG file: tests/dags/test_dags.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from dag_support import DagConfigError, asset_event_extras, asset_uri, params_named, scheduled_jobs, snapshots_from_asset_events
from lakehouse.exceptions import TidemarkError


def test_training_uses_the_newest_asset_event_of_each_input_and_refuses_a_missing_one() -> None:
    events = {asset_uri("raw.a"): [{"snapshot_id": 1}, {"snapshot_id": 2}], asset_uri("raw.b"): [{"snapshot_id": 9}]}
    assert snapshots_from_asset_events(["raw.a", "raw.b"], events) == {"raw.a": 2, "raw.b": 9}
    with pytest.raises(DagConfigError, match=r"no asset event with a snapshot id for raw.c; run its ingest DAG first"):
        snapshots_from_asset_events(["raw.a", "raw.c"], {**events, asset_uri("raw.c"): [{}]})


@dataclass(frozen=True)
class _Asset:  # what the helper reads of an airflow.sdk.Asset: hashable, with a uri
    uri: str


@dataclass
class _Event:  # ...and of an asset event: its extra
    extra: dict[str, Any] | None = field(default_factory=dict)


def test_asset_events_that_triggered_the_run_win_over_the_newest_known_one() -> None:
    a, b, c = _Asset(asset_uri("raw.a")), _Asset(asset_uri("raw.b")), _Asset(asset_uri("raw.c"))
    context = {
        "triggering_asset_events": {a: [_Event({"snapshot_id": 1}), _Event({"snapshot_id": 2})]},
        "inlet_events": {a: [_Event({"snapshot_id": 0})], b: [_Event({"snapshot_id": 7}), _Event(None)], c: []},
    }
    # a: the triggering events; b: its newest event only (extra None reads as empty); c: none yet.
    assert asset_event_extras(context, [a, b, c]) == {a.uri: [{"snapshot_id": 1}, {"snapshot_id": 2}], b.uri: [{}], c.uri: []}


def test_a_library_error_about_a_param_names_the_dag_param_and_others_pass_unchanged() -> None:
    from models.exceptions import ModelNotFoundError
    from models.registry import ModelRef

    with pytest.raises(DagConfigError) as err, params_named({"model": "model", "alias": "alias"}):
        ModelRef.of("wine", version=2, alias="production")
    assert str(err.value) == "param `alias` cannot be given with a version; leave one of them empty"
    assert err.value.parameter == "alias" and isinstance(err.value.__cause__, ModelNotFoundError)

    with pytest.raises(DagConfigError, match=r"^param `as_of` 'last tuesday' is not a time"), params_named({"as_of": "as_of"}):
        raise TidemarkError("as_of 'last tuesday' is not a time", parameter="as_of")

    unrelated = TidemarkError("model 'x' is not registered", parameter=None)
    with pytest.raises(TidemarkError) as err, params_named({"model": "model"}):
        raise unrelated
    assert err.value is unrelated



def test_bad_input_fails_the_task_in_one_line_for_good_and_other_errors_pass_through() -> None:
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from dag_support import nothing_new, one_line_failure

    with pytest.raises(AirflowFailException) as err, one_line_failure():
        raise DagConfigError("param `model`: 'x' is not registered; see `tidemark models list`\nmore detail")
    assert str(err.value) == "param `model`: 'x' is not registered; see `tidemark models list`"
    with pytest.raises(OSError), one_line_failure():  # a service down: Airflow's retries may help
        raise OSError("connection refused")
    skip = nothing_new("nothing new in /landing/*.csv")
    assert isinstance(skip, AirflowSkipException) and str(skip) == "nothing new in /landing/*.csv"


def test_the_train_and_monitor_dags_schedule_the_python_jobs_only() -> None:
    from models.jobs import JOBS

    scheduled = {job.name for job in scheduled_jobs()}
    assert scheduled == {job.name for job in JOBS.values() if job.engine == "python"}
    assert any(job.engine == "spark" for job in JOBS.values())  # there is one to leave out
