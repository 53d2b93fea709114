"""Library errors about a value the caller passed name the parameter as the function took it, set
`parameter`, and never a command-line flag: an Airflow task calling the library must not be told
to pass `--snapshot`. The CLI and the DAGs put the parameter in their words with `reword`.

The errors that need a catalog or a broker are checked where their function is tested
(tests/models/test_drift.py, tests/ingest/test_land.py, tests/models/test_promotion.py ...)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lakehouse.exceptions import TidemarkError, reword


def _emit_strict(tmp_path: Path) -> Any:
    from lineage.emit import emit_file

    bad = tmp_path / "events.jsonl"
    bad.write_text("not json\n")
    return emit_file(None, bad, strict=True)  # type: ignore[arg-type]  # refused before settings are needed


def _train_params(_: Path) -> Any:
    from models.jobs import get_job
    from models.train import parse_params

    return parse_params(get_job("wine_classifier"), ["C"])


def _train_param_type(_: Path) -> Any:
    from models.jobs import get_job
    from models.train import parse_params

    return parse_params(get_job("wine_classifier"), ["C=high"])


def _function_job(_: Path) -> Any:
    from models.jobs import resolve_job

    return resolve_job("models.jobs:train_wine_classifier")


def _function_job_without_inputs(_: Path) -> Any:
    from models.jobs import resolve_job

    return resolve_job("models.jobs:train_wine_classifier", model="wine")


def _force_without_reason(_: Path) -> Any:
    from models.promotion import promote

    return promote(None, "wine", 1, "production", force=True)  # type: ignore[arg-type]  # refused first


def _walk_depth(_: Path) -> Any:
    from lineage.graph import Node, walk

    return walk(None, Node.parse("run:r"), "upstream", 0)  # type: ignore[arg-type]  # refused before the query


def _format(_: Path) -> Any:
    from ingest.sources import detect_format

    return detect_format("data.csv", "xlsx")


def _no_extension(_: Path) -> Any:
    from ingest.sources import detect_format

    return detect_format("data.xyz", None)


def _missing_suite(tmp_path: Path) -> Any:
    from ingest.gate import suite_for
    from lakehouse.config import load_settings
    from lakehouse.tables import TableName

    return suite_for(load_settings(), TableName("raw", "t"), suite_file=str(tmp_path / "nope.yaml"))


def _strict_without_suite(_: Path) -> Any:
    from ingest.gate import suite_for
    from lakehouse.config import load_settings
    from lakehouse.tables import TableName

    return suite_for(load_settings(), TableName("raw", "nosuite"), strict=True)


def _age(_: Path) -> Any:
    from lakehouse.maintenance import parse_age

    return parse_age("a while")


def _retrain_as_of(_: Path) -> Any:
    from models.retrain import retrain

    return retrain(None, "wine", as_of="last tuesday")  # type: ignore[arg-type]  # parsed before the registry


def _retrain_nearest(_: Path) -> Any:
    from models.retrain import retrain

    return retrain(None, "wine", nearest=True)  # type: ignore[arg-type]  # refused before the registry


def _retrain_find_links(_: Path) -> Any:
    from models.retrain import retrain

    return retrain(None, "wine", find_links=["wheels"], environment="current")  # type: ignore[arg-type]  # refused first


def _retrain_no_index(_: Path) -> Any:
    from models.retrain import retrain

    return retrain(None, "wine", no_index=True, code="recorded")  # type: ignore[arg-type]  # refused first


def _reproducibility_find_links(_: Path) -> Any:
    from models.reproducibility import status

    return status(None, "wine", find_links=["wheels"])  # type: ignore[arg-type]  # refused before the catalog


def _holder_at(_: Path) -> Any:
    from models.history import holder_at

    return holder_at(None, "wine", "production", "noon")  # type: ignore[arg-type]  # parsed first


def _query_as_of(_: Path) -> Any:
    from lineage.query import connect

    return connect(None, as_of="2026-11-26")  # type: ignore[arg-type]  # parsed first


# (call, its parameter, a piece of the message)
CASES: list[tuple[Callable[[Path], Any], str, str]] = [
    (_emit_strict, "strict", "nothing sent (1 bad lines; without strict they are skipped)"),
    (_train_params, "pairs", "pairs 'C' must look like key=value"),
    (_train_param_type, "pairs", "pairs C=high: expected a float"),
    (_function_job, "model", "is a function: pass model (the name it registers) and inputs (the tables it reads)"),
    (_function_job_without_inputs, "inputs", "is a function: pass model"),
    (_force_without_reason, "reason", "force needs reason"),
    (_walk_depth, "depth", "depth must be at least 1, got 0"),
    (_format, "fmt", "fmt xlsx is not supported; use csv, parquet or jsonl"),
    (_no_extension, "fmt", "data.xyz: cannot tell the format from the extension; pass fmt: csv, parquet or jsonl"),
    (_missing_suite, "suite_file", "nope.yaml does not exist; check suite_file"),
    (_strict_without_suite, "suite_file", "no validation suite for raw.nosuite; add raw.nosuite.yaml to the suites folder or pass suite_file"),
    (_age, "older_than", "older_than 'a while' is not a duration"),
    (_retrain_as_of, "as_of", "as_of 'last tuesday' is not an ISO-8601 time"),
    (_retrain_nearest, "nearest", "nearest is for rebuilding the recorded environment: add environment recorded, or drop nearest"),
    (_retrain_find_links, "find_links", "find_links is for rebuilding the recorded environment"),
    (_retrain_no_index, "no_index", "no_index is for rebuilding the recorded environment"),
    (_reproducibility_find_links, "find_links", "find_links is where check_install asks pip: add check_install, or drop find_links"),
    (_holder_at, "at", "at 'noon' is not an ISO-8601 time"),
    (_query_as_of, "as_of", "as_of '2026-11-26' has no time zone"),
]


@pytest.mark.parametrize(("call", "parameter", "says"), CASES, ids=[c[0].__name__.strip("_") for c in CASES])
def test_the_error_names_the_parameter_not_a_flag(tmp_path: Path, call: Callable[[Path], Any], parameter: str, says: str) -> None:
    with pytest.raises(TidemarkError) as caught:
        call(tmp_path)
    message = str(caught.value)
    assert says in message
    assert caught.value.parameter == parameter
    assert not re.search(r"(?<![\w`])--[a-z]", message), message  # no flag (a command to run in backquotes is fine)
    # The CLI's translation names the flag where the parameter was.
    flag = "--" + parameter.replace("_", "-")
    assert flag in reword(caught.value, {parameter: flag})
