"""Validation gates: a table's Great Expectations suite, loaded from YAML, run on the rows a landing wrote.

A suite file is a YAML list of GX expectation names with their arguments:

    - expect_column_values_to_not_be_null: {column: id}
    - expect_table_row_count_to_be_between: {min_value: 1}
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.exceptions import SuiteError
from lakehouse.config import Settings
from lakehouse.tables import TableName

if TYPE_CHECKING:
    import pyarrow as pa

BUILTIN_SUITES = Path(__file__).resolve().parent / "suites"


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    expectations: tuple[tuple[str, dict[str, Any]], ...]


@dataclass
class ExpectationOutcome:
    expectation: str
    kwargs: dict[str, Any]
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    sample: list[Any] = field(default_factory=list)

    @property
    def column(self) -> str | None:
        col = self.kwargs.get("column")
        return str(col) if col is not None else None


@dataclass
class GateResult:
    suite: str
    success: bool
    outcomes: list[ExpectationOutcome]

    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]


def suite_path(settings: Settings, table: TableName) -> Path | None:
    """`<suites_dir>/<namespace>.<table>.yaml` in the configured folder, then in the built-in one."""
    folders = [d for d in (settings.ingest.suites_dir, BUILTIN_SUITES) if d is not None]
    for folder in folders:
        for ext in (".yaml", ".yml"):
            candidate = folder / f"{table}{ext}"
            if candidate.is_file():
                return candidate
    return None


def load_suite(path: Path) -> Suite:
    import yaml

    if not path.is_file():
        raise SuiteError(f"suite file {path} does not exist; check --suite")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SuiteError(f"suite file {path} does not parse as YAML: {str(exc).splitlines()[0]}") from exc
    if isinstance(data, dict) and "expectations" in data:
        data = data["expectations"]
    if not isinstance(data, list) or not data:
        raise SuiteError(f"suite file {path} must be a non-empty list of `- expect_...: {{args}}` items")
    items: list[tuple[str, dict[str, Any]]] = []
    for i, item in enumerate(data, 1):
        if not isinstance(item, dict) or len(item) != 1:
            raise SuiteError(f"suite file {path}, item {i}: write it as `- expectation_name: {{arg: value}}`")
        (name, kwargs), = item.items()
        if kwargs is None:
            kwargs = {}
        if not isinstance(name, str) or not isinstance(kwargs, dict):
            raise SuiteError(f"suite file {path}, item {i}: arguments of {name!r} must be a mapping")
        items.append((name, dict(kwargs)))
    suite = Suite(name=path.stem, path=path, expectations=tuple(items))
    _build(suite)  # fail now, naming the bad expectation, rather than after data is written
    return suite


def _quiet_gx() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    # GX logs at INFO on every ephemeral context it makes (and sets some loggers' levels itself);
    # a gate's result is what matters.
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.ERROR)

    return gx


def _build(suite: Suite) -> tuple[Any, Any]:
    gx = _quiet_gx()
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    context = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # older/newer GX without this config: bars are cosmetic
        pass
    gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.name))
    for name, kwargs in suite.expectations:
        try:
            gx_suite.add_expectation_configuration(ExpectationConfiguration(type=name, kwargs=kwargs))
        except Exception as exc:
            raise SuiteError(f"suite file {suite.path}: expectation {name} is not valid: {exc}") from exc
    gx_suite.save()
    return context, gx_suite


def validate(suite: Suite, data: pa.Table) -> GateResult:
    """Run the suite over exactly these rows."""
    gx = _quiet_gx()
    context, gx_suite = _build(suite)
    source = context.data_sources.add_pandas("tidemark")
    batch = source.add_dataframe_asset("landing").add_batch_definition_whole_dataframe("rows")
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=f"{suite.name}-gate", data=batch, suite=gx_suite))
    result = definition.run(batch_parameters={"dataframe": data.to_pandas()})
    outcomes = []
    for r in result.results:
        kwargs = {k: v for k, v in dict(r.expectation_config.kwargs).items() if k != "batch_id"}
        details = r.result or {}
        outcomes.append(
            ExpectationOutcome(
                expectation=r.expectation_config.type,
                kwargs=kwargs,
                success=bool(r.success),
                element_count=details.get("element_count"),
                unexpected_count=details.get("unexpected_count"),
                sample=[_plain(v) for v in (details.get("partial_unexpected_list") or [])[:5]],
            )
        )
    return GateResult(suite=suite.name, success=bool(result.success), outcomes=outcomes)


def _plain(value: Any) -> Any:
    try:
        import math

        if isinstance(value, float) and math.isnan(value):
            return None
    except TypeError:
        pass
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
