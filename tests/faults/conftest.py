from __future__ import annotations

import pytest

from tests.faults.report import FaultReport


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> FaultReport:
    """Record rows of the fault table (see tests/faults/report.py); assert the invariants as well."""
    return FaultReport(request.node.nodeid)
