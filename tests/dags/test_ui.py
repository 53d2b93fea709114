"""The Airflow UI in a real browser: Debian's chromium (headless) against `airflow api-server`.

`make test` installs chromium first (`make sysdeps`); run alone without it, the test skips and says
so. The screenshot is kept in test-artifacts/ (CI can upload it).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_api import api_server as airflow_api_server
from tests.conftest import ROOT
from tests.dags.test_dags import airflow_home, migrated_airflow_db  # noqa: F401  (fixtures)

ARTIFACTS = Path(os.environ.get("TIDEMARK_TEST_ARTIFACTS") or ROOT / "test-artifacts")
CHROMIUM = "/usr/bin/chromium"


def ensure_chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed: run `make sysdeps` (make test does)")
    return CHROMIUM


@pytest.fixture
def api_server(settings: Any, airflow_home: Path) -> Iterator[str]:  # noqa: F811
    from tidemark import airflow_env

    env = airflow_env.environ(settings)
    subprocess.run(["airflow", "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=300)
    # What `airflow dags list-import-errors` prints, read from where reserialize put it: nothing, the
    # DAG folder's helper module (not a DAG file, see dags/.airflowignore) included.
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        assert db.execute("SELECT filename, stacktrace FROM import_error").fetchall() == []
    with airflow_api_server(env, settings.home / "api-server.log") as url:
        yield url


@pytest.mark.integration
def test_the_ui_lists_the_dags_and_draws_the_asset_graph(settings: Any, api_server: str) -> None:
    from playwright.sync_api import sync_playwright

    from tidemark import airflow_env

    chromium = ensure_chromium()
    password = airflow_env.admin_password(airflow_env.environ(settings))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{api_server}/", wait_until="networkidle")
            page.wait_for_url("**/auth/login**", timeout=30_000)  # not logged in yet: the login form
            page.fill("input[name=username]", airflow_env.ADMIN)
            page.fill("input[name=password]", password)
            page.click("button:has-text('Sign in')")
            page.wait_for_url(lambda u: "/auth/login" not in u, timeout=30_000)

            page.goto(f"{api_server}/dags", wait_until="networkidle")
            page.wait_for_selector("text=train_wine_classifier", timeout=30_000)
            for dag_id in ("ingest_wine", "ingest_diabetes", "train_wine_classifier", "retrain_model", "lakehouse_maintenance"):
                assert page.get_by_text(dag_id, exact=True).count() >= 1, dag_id
            page.screenshot(path=str(ARTIFACTS / "airflow-dags.png"), full_page=True)

            page.goto(f"{api_server}/assets", wait_until="networkidle")
            page.click("text=x-iceberg://tidemark/raw.wine", timeout=30_000)
            page.wait_for_selector(".react-flow__node", timeout=30_000)
            nodes = page.locator(".react-flow__node").all_inner_texts()
            # The asset graph: the ingest DAG produces the asset, the training DAG is scheduled on it.
            assert any("ingest_wine" in n for n in nodes), nodes
            assert any("x-iceberg://tidemark/raw.wine" in n for n in nodes), nodes
            assert any("train_wine_classifier" in n for n in nodes), nodes
            page.screenshot(path=str(ARTIFACTS / "airflow-asset-graph.png"))
        finally:
            browser.close()
    assert (ARTIFACTS / "airflow-asset-graph.png").stat().st_size > 10_000
