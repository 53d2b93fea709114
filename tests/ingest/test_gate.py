"""Validation gates (ingest.gate): suites found and loaded from YAML or Python, refused with the
file and the fix named, and batch results merged into one verdict over the whole landing
(real Great Expectations, real Arrow batches)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from ingest import gate as gates
from ingest.exceptions import SuiteError
from lakehouse.config import load_settings
from lakehouse.tables import TableName


def _suite(tmp_path: Path, text: str, name: str = "raw.t.yaml") -> gates.Suite:
    path = tmp_path / name
    path.write_text(text)
    return gates.load_suite(path)


def test_a_table_suite_is_found_in_the_configured_folder_before_the_built_in_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wine = TableName("raw", "wine")
    assert gates.suite_path(load_settings(), wine) == gates.BUILTIN_SUITES / "raw.wine.yaml"
    assert gates.suite_path(load_settings(), TableName("raw", "nothing")) is None
    mine = tmp_path / "suites"
    mine.mkdir()
    (mine / "raw.wine.py").write_text("EXPECTATIONS = []\n")
    (mine / "raw.other.yml").write_text("- expect_table_row_count_to_be_between: {min_value: 1}\n")
    monkeypatch.setenv("TIDEMARK__INGEST__SUITES_DIR", str(mine))
    settings = load_settings()
    assert gates.suite_path(settings, wine) == mine / "raw.wine.py"
    assert gates.suite_path(settings, TableName("raw", "other")) == mine / "raw.other.yml"


def test_suite_for_takes_an_explicit_file_and_refuses_no_suite_only_when_strict(tmp_path: Path) -> None:
    settings = load_settings()
    assert gates.suite_for(settings, TableName("raw", "nothing")) is None
    with pytest.raises(SuiteError, match="no validation suite for raw.nothing; add raw.nothing.yaml"):
        gates.suite_for(settings, TableName("raw", "nothing"), strict=True)
    path = tmp_path / "mine.yaml"
    path.write_text("- expect_column_values_to_not_be_null: {column: id}\n")
    suite = gates.suite_for(settings, TableName("raw", "wine"), suite_file=str(path), strict=True)
    assert suite is not None and suite.name == "mine" and suite.expectations == (("expect_column_values_to_not_be_null", {"column": "id"}),)


def test_yaml_and_python_suites_load_to_the_same_expectations(tmp_path: Path) -> None:
    from_yaml = _suite(tmp_path, "expectations:\n  - expect_column_values_to_be_in_set: {column: c, value_set: [0, 1, 2]}\n  - expect_table_row_count_to_be_between:\n")
    from_py = _suite(tmp_path, "EXPECTATIONS = [('expect_column_values_to_be_in_set', {'column': 'c', 'value_set': list(range(3))}),\n"
                     "                {'expect_table_row_count_to_be_between': {}}]\n", name="raw.t.py")
    assert from_yaml.expectations == from_py.expectations == (
        ("expect_column_values_to_be_in_set", {"column": "c", "value_set": [0, 1, 2]}),
        ("expect_table_row_count_to_be_between", {}),
    )


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        ("{}\n", "s.yaml", "must be a non-empty list"),
        ("- just_a_string\n", "s.yaml", "item 1: write it as `- expectation_name: {arg: value}`"),
        ("- expect_column_values_to_not_be_null: [id]\n", "s.yaml", "arguments of 'expect_column_values_to_not_be_null' must be a mapping"),
        ("- expect_column_values_to_not_be_null: {column: [\n", "s.yaml", "does not parse as YAML"),
        ("- expect_column_to_be_wonderful: {column: id}\n", "s.yaml", "expectation expect_column_to_be_wonderful is not valid"),
        ("NOT_IT = []\n", "s.py", "must define EXPECTATIONS"),
        ("import no_such_module_here\n", "s.py", "does not run as Python: ModuleNotFoundError"),
    ],
)
def test_a_bad_suite_is_refused_naming_the_file_and_the_fix(tmp_path: Path, text: str, name: str, message: str) -> None:
    with pytest.raises(SuiteError) as err:
        _suite(tmp_path, text, name=name)
    assert name in str(err.value) and message in str(err.value)


def test_a_missing_suite_file_is_named() -> None:
    with pytest.raises(SuiteError, match="suite file /no/such/suite.yaml does not exist"):
        gates.load_suite(Path("/no/such/suite.yaml"))


def test_batch_results_merge_into_one_verdict_over_every_row(tmp_path: Path) -> None:
    suite = _suite(
        tmp_path,
        "- expect_column_values_to_be_unique: {column: id}\n"
        "- expect_column_values_to_be_between: {column: x, min_value: 0, max_value: 9, mostly: 0.7}\n"
        "- expect_table_row_count_to_be_between: {min_value: 5, max_value: 6}\n",
    )
    gate = gates.StreamingGate(suite)
    # Each batch on its own: unique ids, 1 of 3 x out of range (fails mostly 0.7), 3 rows (< 5).
    gate.check(pa.table({"id": [1, 2, 3], "x": [1, 2, 50]}))
    gate.check(pa.table({"id": [4, 3, 6], "x": [1, 2, 3]}))  # id 3 again: only across batches
    verdict = gate.finish()
    unique, between, count = verdict.outcomes
    assert not unique.success and unique.unexpected_count == 2 and unique.sample == [3]  # both rows with id 3
    assert between.success and between.unexpected_count == 1 and between.element_count == 6  # 5/6 >= 0.7
    assert count.success and count.observed_value == 6
    assert not verdict.success and verdict.failures() == [unique]
    assert unique.to_json() == {
        "expectation": "expect_column_values_to_be_unique", "column": "id", "unexpected_count": 2,
        "element_count": 6, "observed_value": None, "sample": [3], "rows": [],
    }


def test_a_failing_map_expectation_shows_the_values_and_rows_that_failed(tmp_path: Path) -> None:
    suite = _suite(tmp_path, "- expect_column_values_to_be_in_set: {column: target, value_set: [0, 1, 2]}\n")
    verdict = gates.validate(suite, pa.table({"id": [1, 2, 3], "target": [0, 7, 1]}))
    (outcome,) = verdict.failures()
    assert outcome.unexpected_count == 1 and outcome.element_count == 3 and outcome.sample == [7]
    assert outcome.rows == [{"id": 2, "target": 7}]
    assert outcome.column == "target"


def test_uniqueness_over_strings_and_an_empty_landing(tmp_path: Path) -> None:
    suite = _suite(tmp_path, "- expect_column_values_to_be_unique: {column: k}\n")
    gate = gates.StreamingGate(suite)
    gate.check(pa.table({"k": ["a", "b", None]}))
    gate.check(pa.table({"k": ["c", "b", None]}))  # nulls are not duplicates
    (outcome,) = gate.finish().outcomes
    assert not outcome.success and outcome.unexpected_count == 2 and outcome.sample == ["b"]
    # No batch at all: nothing was checked, nothing passes.
    assert gates.StreamingGate(suite).finish().success is False
