"""Consumer lag against the real broker: events waiting in the topic, then stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lineage.exceptions import LineageStalledError
from lineage.lag import consumer_lag
from tests.conftest import run_cli


@pytest.mark.integration
def test_consumer_lag_fails_loudly_when_events_wait_and_passes_once_stored(settings: Any, wine_csv: Path) -> None:
    from lineage.consumer import consume

    run_cli("up")
    run_cli("ingest", str(wine_csv), "--table", "raw.wine")  # START and COMPLETE wait in the topic
    with pytest.raises(LineageStalledError, match=r"lineage consumer stalled: 2 record\(s\) in topic"):
        consumer_lag(settings, max_age_s=0)
    assert consumer_lag(settings, max_age_s=3600)["lag"] == 2  # waiting, but not for long
    consume(settings, once=True)
    report = consumer_lag(settings, max_age_s=0)
    assert report["lag"] == 0 and report["outbox_pending"] == 0
