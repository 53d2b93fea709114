"""Tidemark's Airflow plugin, looked at: a real `airflow api-server` with the plugin loaded from its
entry point, real data (the demo plus a 20-run history), and Debian's chromium (headless) opening
every page. Screenshots go to test-artifacts/ (CI can upload them).

One API server (and one browser) serves the whole module: starting either costs seconds. A second
API server, whose catalog points at a port nobody listens on, shows the unreachable-store page.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.airflow_api import api_server, wait_healthy
from tests.conftest import ROOT
from tests.dags.test_dags import migrated_airflow_db  # noqa: F401  (session fixture)

pytestmark = pytest.mark.integration

ARTIFACTS = Path(os.environ.get("TIDEMARK_TEST_ARTIFACTS") or ROOT / "test-artifacts")
CHROMIUM = "/usr/bin/chromium"
EVIL = "x' OR '1'='1'; DROP TABLE lineage.events; --"


def _need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed: run `make sysdeps` (make test does)")


# -- the servers ----------------------------------------------------------------------------------------


def call(url: str, token: str | None = None, method: str = "GET", body: bytes | None = None, content_type: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One HTTP request; (status, parsed JSON or text)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            status, raw, ctype = r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        status, raw, ctype = exc.code, exc.read(), exc.headers.get("content-type", "")
    return status, json.loads(raw) if "json" in ctype else raw.decode()


def token(base: str, user: str, password: str) -> str:
    status, body = call(f"{base}/auth/token", method="POST", body=json.dumps({"username": user, "password": password}).encode(),
                        content_type="application/json")
    assert status == 201, body
    return str(body["access_token"])


@pytest.fixture(scope="module")
def ui(broker: str, migrated_airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:  # noqa: F811
    from lakehouse.config import load_settings
    from lineage.broker import free_port
    from tidemark import airflow_env
    from tests.tidemark import ui_history

    home = tmp_path_factory.mktemp("ui-home")
    tidemark_env = {"TIDEMARK_HOME": str(home), "TIDEMARK__KAFKA__BOOTSTRAP_SERVERS": broker,
                    "TIDEMARK__KAFKA__TOPIC": f"lineage-{uuid.uuid4().hex[:12]}", "GX_ANALYTICS_ENABLED": "false"}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEMARK")}
    base_env.update(tidemark_env, AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin,viewer:viewer")
    env = airflow_env.environ(load_settings(environ=tidemark_env), base_env)
    shutil.copy(migrated_airflow_db, Path(env["AIRFLOW_HOME"]) / "airflow.db")
    airflow_env.admin_password(env)
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    passwords.write_text(json.dumps({**json.loads(passwords.read_text()), "viewer": "viewer-" + uuid.uuid4().hex[:8]}))
    # The same Airflow, but its Tidemark catalog is a PostgreSQL nobody listens on.
    broken_home = tmp_path_factory.mktemp("ui-broken")
    broken_env = {**env, "TIDEMARK_HOME": str(broken_home), "AIRFLOW_HOME": str(broken_home / "airflow"),
                  "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(broken_home / "airflow" / airflow_env.PASSWORDS_FILE),
                  "TIDEMARK__CATALOG__URI": f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nowhere"}
    (broken_home / "airflow").mkdir()
    shutil.copy(migrated_airflow_db, broken_home / "airflow" / "airflow.db")
    shutil.copy(passwords, broken_home / "airflow" / airflow_env.PASSWORDS_FILE)
    logs = home / "api-server.log", broken_home / "api-server.log"
    # Both start at once; then both are waited for.
    with api_server(env, logs[0], wait=False) as base, api_server(broken_env, logs[1], wait=False) as broken:
        wait_healthy(base, logs[0])
        wait_healthy(broken, logs[1])
        pw = json.loads(passwords.read_text())
        admin = token(base, "admin", pw["admin"])
        state: dict[str, Any] = {"base": base, "broken": broken, "admin": admin, "viewer": token(base, "viewer", pw["viewer"]),
                                 "broken_admin": token(broken, "admin", pw["admin"]), "env": env, "home": home}
        # Before any data: what an empty lineage store looks like.
        state["empty"] = {p: call(f"{base}/tidemark/api/{p}", admin) for p in ("models", "lineage?q=wine")}
        state["empty_page"] = call(f"{base}/tidemark/models", admin)
        with mock.patch.dict(os.environ, tidemark_env), _cwd(home):
            ui_history.build(home)
        yield state


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def browser(ui: dict[str, Any]) -> Iterator[Any]:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


def signed_in(browser: Any, ui: dict[str, Any], user: str = "admin", base: str | None = None) -> Any:
    """A page whose browser holds the user's Airflow token cookie, as after signing in."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_cookies([{"name": "_token", "value": ui[user if base is None else "broken_admin"], "url": base or ui["base"]}])
    return context.new_page()


def shot(page: Any, name: str, full: bool = True) -> Path:
    path = ARTIFACTS / f"ui-{name}.png"
    page.screenshot(path=str(path), full_page=full)
    assert path.stat().st_size > 5_000
    return path


# -- security -------------------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/tidemark/"), ("GET", "/tidemark/models"), ("GET", "/tidemark/models/wine"), ("GET", "/tidemark/models/wine/versions/1"),
    ("GET", "/tidemark/models/wine/drift"), ("GET", "/tidemark/tables/raw.wine"), ("GET", "/tidemark/lineage?q=wine"),
    ("GET", "/tidemark/static/graph.js"), ("GET", "/tidemark/static/svg-pan-zoom.min.js"), ("GET", "/tidemark/api/openapi.json"),
    ("GET", "/tidemark/api/models"), ("GET", "/tidemark/api/models/wine"), ("GET", "/tidemark/api/models/wine/versions/1"),
    ("GET", "/tidemark/api/models/wine/drift"), ("GET", "/tidemark/api/tables/raw.wine"), ("GET", "/tidemark/api/lineage?node=raw.wine"),
    ("POST", "/tidemark/api/models/wine/versions/1/retrain"),
]


def test_every_page_and_endpoint_needs_a_signed_in_airflow_user(ui: dict[str, Any]) -> None:
    from tidemark.ui.app import create_app

    # Every route the app serves is in the list below.
    listed = {re.sub(r"\?.*", "", p).removeprefix("/tidemark") for _, p in ROUTES}
    for route in create_app().routes:
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", route.path)  # type: ignore[attr-defined]
        assert any(re.fullmatch(pattern, p) for p in listed), f"{route.path} is not checked"  # type: ignore[attr-defined]
    for method, path in ROUTES:
        body = b"{}" if method == "POST" else None
        status, answer = call(ui["base"] + path, method=method, body=body, content_type="application/json" if body else None)
        assert status == 401, (path, status, answer)
        status, answer = call(ui["base"] + path, "not-a-jwt", method=method, body=body, content_type="application/json" if body else None)
        assert status == 403, (path, status, answer)
    status, page = call(ui["base"] + "/tidemark/models")
    assert status == 401 and "/auth/login?next=" in page and "Traceback" not in page
    # A path that is no route at all is a plain 404 (routing comes before the user check), saying nothing.
    status, page = call(ui["base"] + "/tidemark/no/such/route")
    assert status == 404 and "wine" not in page


def test_retrain_only_for_users_allowed_to_trigger_dags(ui: dict[str, Any]) -> None:
    url = ui["base"] + "/tidemark/api/models/wine/versions/1/retrain"
    status, body = call(url, ui["viewer"], method="POST", body=b"{}", content_type="application/json")
    assert status == 403 and "retrain_model" in body["error"]["message"] and "'viewer'" in body["error"]["message"]
    status, page = call(ui["base"] + "/tidemark/models/wine/versions/1", ui["viewer"])
    assert status == 200 and "tm-retrain-button" not in page and "which you do not have" in page
    # A form post (what another site could send with the user's cookie) is refused.
    status, body = call(url, ui["admin"], method="POST", body=b"a=1", content_type="application/x-www-form-urlencoded")
    assert status == 415
    status, report = call(url, ui["admin"], method="POST", body=b"{}", content_type="application/json")
    assert status == 200 and report["identical"] is True and report["data"]["identical"] and report["model"] == "wine"


def test_values_from_urls_are_bound_never_sql(ui: dict[str, Any]) -> None:
    base, admin = ui["base"] + "/tidemark/api", ui["admin"]
    from urllib.parse import quote, urlencode

    before = call(f"{base}/lineage?{urlencode({'q': 'ingest'})}", admin)[1]["hits"]
    for path in (f"/models/{quote(EVIL, safe='')}", f"/models/wine/versions/{quote(EVIL, safe='')}", f"/models/{quote(EVIL, safe='')}/drift",
                 f"/tables/{quote(EVIL, safe='')}", f"/tables/raw.wine?{urlencode({'snapshot': EVIL})}",
                 f"/lineage?{urlencode({'node': 'dataset:file:' + EVIL})}", f"/lineage?{urlencode({'node': 'run:' + EVIL, 'as_of': EVIL})}"):
        status, body = call(base + path, admin)
        assert status == 404 and "error" in body, (path, status, body)
    status, body = call(f"{base}/lineage?{urlencode({'q': EVIL})}", admin)
    assert status == 200 and body["hits"] == []  # the quote and the OR matched nothing
    status, body = call(f"{base}/lineage?{urlencode({'q': '%'})}", admin)
    assert status == 200 and body["hits"] == []  # no LIKE wildcard either
    # Everything is still there.
    assert call(f"{base}/lineage?{urlencode({'q': 'ingest'})}", admin)[1]["hits"] == before
    assert {m["model"] for m in call(f"{base}/models", admin)[1]["models"]} == {"wine", "diabetes"}
    from lineage.query import run_sql
    from lakehouse.config import load_settings

    with mock.patch.dict(os.environ, {"TIDEMARK_HOME": str(ui["home"])}):
        assert run_sql(load_settings(), "SELECT count(*) AS n FROM lineage.events").to_pylist()[0]["n"] > 20


# -- bad input ------------------------------------------------------------------------------------------

BAD = [
    ("/models/winee", "model 'winee' is not registered", "/models/wine"),
    ("/models/wine/versions/99", "model wine has no version '99'", "/models/wine/versions/4"),
    ("/models/wine/versions/one", "model wine has no version 'one'", "/models/wine/versions/4"),
    ("/models/winee/drift", "model 'winee' is not registered", "/models/wine"),
    ("/tables/raw.wines", "table 'raw.wines' does not exist", "/tables/raw.wine"),
    ("/tables/raw.wine?snapshot=123", "table raw.wine has no snapshot '123'", "/tables/raw.wine"),
    ("/lineage?node=run:0000-nope", "nothing in the lineage store matches 'run:0000-nope'", "/lineage?q=0000-nope"),
    ("/lineage?node=raw.wine&as_of=yesterday", "as_of 'yesterday' is not an ISO-8601 time", "/lineage"),
]


@pytest.mark.parametrize(("path", "message", "nearest"), BAD)
def test_unknown_things_in_urls_are_404s_that_name_them_and_link_the_nearest(ui: dict[str, Any], path: str, message: str, nearest: str) -> None:
    status, body = call(ui["base"] + "/tidemark/api" + path, ui["admin"])
    assert status == 404 and message in body["error"]["message"], body
    assert body["error"]["nearest"]["href"] == "/tidemark" + nearest
    assert call(ui["base"] + body["error"]["nearest"]["href"], ui["admin"])[0] == 200  # the link leads somewhere real
    status, page = call(ui["base"] + "/tidemark" + path, ui["admin"])
    assert status == 404 and message.replace("'", "&#39;") in page and f'href="/tidemark{nearest.replace("&", "&amp;")}"' in page
    assert "Traceback" not in page


def test_an_empty_store_says_so_and_how_to_fill_it(ui: dict[str, Any]) -> None:
    status, body = ui["empty"]["models"]
    assert status == 200 and body["empty"] and "tidemark demo" in body["message"]
    status, body = ui["empty"]["lineage?q=wine"]
    assert status == 200 and body["empty"] and "tidemark lineage consume --once" in body["message"]
    status, page = ui["empty_page"]
    assert status == 200 and "The lineage store is empty" in page and "Traceback" not in page


def test_an_unreachable_store_is_a_page_that_says_how_to_fix_it(ui: dict[str, Any], browser: Any) -> None:
    for path in ("/models", "/models/wine", "/models/wine/versions/1", "/tables/raw.wine", "/models/wine/drift", "/lineage?q=wine"):
        status, body = call(ui["broken"] + "/tidemark/api" + path, ui["broken_admin"])
        assert status == 503 and "cannot be reached" in body["error"]["message"] and "TIDEMARK__CATALOG__URI" in body["error"]["hint"], (path, body)
    page = signed_in(browser, ui, base=ui["broken"])
    response = page.goto(ui["broken"] + "/tidemark/models")
    assert response.status == 503
    text = page.inner_text("main")
    assert "The lineage store cannot be reached" in text and "TIDEMARK__CATALOG__URI" in text and "Traceback" not in text
    shot(page, "store-unreachable")
    page.context.close()


# -- the pages, looked at -------------------------------------------------------------------------------


def test_models_page_and_a_models_alias_timeline(ui: dict[str, Any], browser: Any) -> None:
    page = signed_in(browser, ui)
    page.goto(ui["base"] + "/tidemark/models")
    rows = page.locator("#tm-models tbody tr").all_inner_texts()
    assert [r.split("\t")[0] for r in rows] == ["diabetes", "wine"]
    assert all(getpass.getuser() in r for r in rows)  # the owner column
    assert "production → v1" in rows[1] and "staging → v3" in rows[1]
    # The forged move to version 99 (ui_history): listed as refused, with the consumer's reason, in the page and its JSON twin.
    refused = page.locator("#tm-rejected-moves tbody tr").all_inner_texts()
    assert len(refused) == 1 and "wine" in refused[0] and "move production" in refused[0] and "v99" in refused[0], refused
    assert "no version 99" in refused[0], refused
    status, body = call(ui["base"] + "/tidemark/api/models", ui["admin"])
    assert status == 200 and [(r["model"], r["alias"], r["version"]) for r in body["rejected_moves"]] == [("wine", "production", 99)]
    assert body["rejected_moves"][0]["rejected_because"] in refused[0]
    shot(page, "models")
    page.click("text=wine >> nth=0")
    page.wait_for_url("**/tidemark/models/wine")
    timeline = [r.split("\t") for r in page.locator("#tm-alias-timeline tbody tr").all_inner_texts()]
    # Who held production from when to when: 1, then 2, then 1 again (forced, with its reason), and staging on 3.
    assert [(r[0], r[1]) for r in timeline] == [("production", "v1"), ("production", "v2"), ("production", "v1"), ("staging", "v3")]
    assert timeline[2][3] == "now" and timeline[2][4] == "forced" and "rollback" in timeline[2][5]
    assert timeline[0][3] != "now" and "retrained on February data" in timeline[1][5]
    # Who moved each alias (the OS user running the history), and who owns the model (its first registering actor).
    assert {r[6] for r in timeline} == {getpass.getuser()}
    assert page.inner_text("#tm-owner") == getpass.getuser()
    versions = page.locator("#tm-versions tbody tr").all_inner_texts()
    assert len(versions) == 4 and "candidate" in versions[0] and "production" in versions[3]
    assert page.get_by_text("last automatic renewal decision").is_visible()
    shot(page, "model-wine")
    page.context.close()


def test_model_version_trace_graph_details_search_and_retrain(ui: dict[str, Any], browser: Any) -> None:
    status, body = call(ui["base"] + "/tidemark/api/models/wine/versions/4", ui["admin"])
    trace = body["trace"]
    [inp] = trace["inputs"]
    page = signed_in(browser, ui)
    page.goto(ui["base"] + "/tidemark/models/wine/versions/4")
    page.wait_for_selector(".tm-graph-view[data-tm-ready]")
    # The box of the pinned snapshot, as drawn by Graphviz, with the id in full.
    pinned = page.locator("g.node", has_text=f"@ {inp['snapshot_id']}  (trained on)")
    assert pinned.count() == 1 and pinned.is_visible()
    # Every landing whose rows that snapshot holds is drawn, each with its own file.
    assert page.locator("g.node.tm-file").count() == len(inp["landings"]) == 4
    assert page.locator("g.edge", has_text="gate passed 5/5").count() == 1
    shot(page, "version-wine-4", full=False)
    pinned.click()
    details = page.inner_text(".tm-details")
    assert str(inp["snapshot_id"]) in details and inp["fingerprint"] in details and "raw.wine" in details
    assert f"rows\n{inp['rows']}" in details and "suite\nraw.wine" in details
    page.fill(".tm-search", "wine-feb")
    assert page.inner_text(".tm-hits").startswith("1 match")
    page.press(".tm-search", "Enter")
    assert "wine-feb.csv" in page.inner_text(".tm-details")
    shot(page, "version-wine-4-details", full=False)
    page.click("#tm-retrain-button")
    page.wait_for_selector("#tm-retrain-verdict", timeout=180_000)
    assert page.inner_text("#tm-retrain-verdict").startswith("identical")
    # The snapshot id in full: a 64-bit id read as a JS number would end in 000.
    assert f"raw.wine @ {inp['snapshot_id']}: {inp['rows']} rows" in page.inner_text("#tm-retrain-report")
    shot(page, "version-wine-4-retrained")
    page.context.close()


def test_table_page_shows_landings_quarantine_pins_and_expiry(ui: dict[str, Any], browser: Any) -> None:
    status, body = call(ui["base"] + "/tidemark/api/tables/raw.wine", ui["admin"])
    kinds = [s["kind"] for s in body["snapshots"]]
    assert kinds.count("landing") == 4 and kinds.count("quarantine") == 1
    pinned = {p["version"]: s["snapshot_id"] for s in body["snapshots"] for p in s["pinned_by"] if p["model"] == "wine"}
    assert sorted(pinned) == [1, 2, 3, 4]
    page = signed_in(browser, ui)
    page.goto(ui["base"] + f"/tidemark/tables/raw.wine?snapshot={pinned[1]}")
    selected = page.locator("tr.tm-selected-row")
    assert selected.count() == 1 and str(pinned[1]) in selected.inner_text() and "wine:1" in selected.inner_text()
    quarantined = page.locator("tr.tm-kind-quarantine").inner_text()
    assert "wine-bad.csv" in quarantined and "expect_column_values_to_be_between (alcohol): 10 rows" in quarantined
    assert "next maintenance expires unpinned snapshots older than" in page.inner_text("main")
    assert body["owner"] == "team:wine" and page.inner_text("#tm-owner") == "team:wine"
    svg = page.locator(".tm-figure svg")
    assert svg.is_visible() and "pin wine:1" in svg.text_content() and "quarantined" in svg.text_content()
    shot(page, "table-raw-wine")
    page.context.close()


def test_drift_page_puts_the_drifted_feature_first(ui: dict[str, Any], browser: Any) -> None:
    page = signed_in(browser, ui)
    page.goto(ui["base"] + "/tidemark/models/wine/drift")
    first = page.locator("#tm-drift-features tbody tr").first.inner_text()
    assert first.startswith("raw.wine.alcohol") and "DRIFTED" in first and "psi" in first and "ks" in first
    titles = [t for t in page.locator("#tm-drift-plot svg text").all_text_contents() if t.startswith("raw.wine.")]
    assert titles[0].startswith("raw.wine.alcohol") and "DRIFTED" in titles[0] and len(titles) == 14
    assert all("DRIFTED" not in t for t in titles[1:])
    legend = page.locator("#tm-drift-plot svg").text_content()
    assert "threshold: PSI 0.2 | KS 0.1" in legend
    # The legend stays inside the picture.
    box = page.locator("#tm-drift-plot svg").bounding_box()
    for t in page.locator("#tm-drift-plot svg text").all():
        b = t.bounding_box()
        assert b["x"] >= box["x"] - 1 and b["x"] + b["width"] <= box["x"] + box["width"] + 1 and b["y"] + b["height"] <= box["y"] + box["height"] + 1
    shot(page, "drift-wine")
    page.context.close()


def test_lineage_search_then_walk_with_depth_and_as_of(ui: dict[str, Any], browser: Any) -> None:
    page = signed_in(browser, ui)
    page.goto(ui["base"] + "/tidemark/lineage?q=wine")
    hits = page.locator(".tm-hit-list li").all_inner_texts()
    assert hits[0].startswith("MODEL") and any(h.startswith("TABLE raw.wine") for h in hits)
    shot(page, "lineage-search")
    page.click(".tm-hit-list a:text-is('raw.wine')")
    page.wait_for_selector(".tm-graph-view[data-tm-ready]")
    deep = call(ui["base"] + "/tidemark/api/lineage?node=raw.wine&depth=3", ui["admin"])[1]
    shallow = call(ui["base"] + "/tidemark/api/lineage?node=raw.wine&depth=1&direction=upstream", ui["admin"])[1]
    assert {r["job_name"] for r in shallow["rows"]} == {"ingest.raw.wine"}
    assert len({r["run_id"] for r in deep["rows"]}) > len({r["run_id"] for r in shallow["rows"]})
    assert page.locator("g.node.tm-run").count() == len({r["run_id"] for r in deep["rows"]})
    shot(page, "lineage-walk", full=False)
    # As of the moment version 2 was registered, only the demo's landing had reached the store
    # (the February landing's events were consumed after that training).
    from urllib.parse import urlencode

    v2 = call(ui["base"] + "/tidemark/api/models/wine/versions/2", ui["admin"])[1]["trace"]["trained_at"]
    then = call(ui["base"] + "/tidemark/api/lineage?" + urlencode({"node": "raw.wine", "depth": 1, "direction": "upstream", "as_of": v2}), ui["admin"])[1]
    assert len({r["run_id"] for r in then["rows"]}) == 1 < len({r["run_id"] for r in shallow["rows"]})
    page.goto(ui["base"] + "/tidemark/lineage?" + urlencode({"node": "raw.wine", "depth": 1, "direction": "upstream", "as_of": v2}))
    page.wait_for_selector(".tm-graph-view[data-tm-ready]")
    assert page.locator("g.node.tm-run").count() == 1 and f"as of {v2}" in page.inner_text("#tm-walk h2")
    shot(page, "lineage-walk-as-of", full=False)
    page.context.close()


def test_the_plugin_is_in_airflows_navigation(ui: dict[str, Any], browser: Any) -> None:
    status, plugins = call(ui["base"] + "/api/v2/plugins", ui["admin"])
    [ours] = [p for p in plugins["plugins"] if p["name"] == "tidemark"]
    assert ours["fastapi_apps"][0]["url_prefix"] == "/tidemark" and ours["external_views"][0]["url_route"] == "tidemark"
    page = signed_in(browser, ui)
    page.goto(ui["base"] + "/plugin/tidemark")
    frame = page.frame_locator("iframe")
    frame.locator("#tm-models").wait_for(timeout=60_000)
    assert frame.locator("#tm-models tbody tr").count() == 2
    shot(page, "airflow-nav", full=False)
    page.context.close()


def test_cli_graph_page_zooms_searches_and_shows_details(ui: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    from tests.conftest import run_cli

    out = tmp_path / "wine.html"
    env = {k: v for k, v in ui["env"].items() if k.startswith(("TIDEMARK", "GX"))}
    run_cli("lineage", "graph", "model:wine", "--depth", "3", "-o", str(out), env=env)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(out.as_uri())
    page.wait_for_selector(".tm-graph-view[data-tm-ready]")
    transform = page.locator(".svg-pan-zoom_viewport").get_attribute("transform")
    page.click("[data-tm=zoom-in]")
    # svg-pan-zoom applies a zoom on the next animation frame: wait for it (fails after 10 s).
    page.wait_for_function(
        "t => document.querySelector('.svg-pan-zoom_viewport').getAttribute('transform') !== t", arg=transform, timeout=10_000
    )
    page.fill(".tm-search", "train.wine_classifier")
    assert re.match(r"\d+ match", page.inner_text(".tm-hits"))
    page.press(".tm-search", "Enter")
    assert "run_id" in page.inner_text(".tm-details")
    shot(page, "cli-graph-html", full=False)
    page.close()


def test_a_kept_answer_gives_way_to_a_new_commit(ui: dict[str, Any], tmp_path: Path) -> None:
    """Runs last: it lands one more file. The walk asked twice is the same answer; after the landing
    is consumed (a new commit of the lineage tables) the same URL shows the new run."""
    from tests.models.conftest import wine_part
    from tests.tidemark.ui_history import _cli

    url = ui["base"] + "/tidemark/api/lineage?node=raw.wine&depth=1&direction=upstream"
    before = {r["run_id"] for r in call(url, ui["admin"])[1]["rows"]}
    assert {r["run_id"] for r in call(url, ui["admin"])[1]["rows"]} == before
    env = {k: v for k, v in ui["env"].items() if k.startswith(("TIDEMARK", "GX"))}
    with mock.patch.dict(os.environ, env), _cwd(ui["home"]):
        _cli("ingest", str(wine_part(tmp_path / "wine-may.csv", 0, 20, id_offset=900)), "--table", "raw.wine")
        _cli("lineage", "consume", "--once")
    after = {r["run_id"] for r in call(url, ui["admin"])[1]["rows"]}
    assert before < after and len(after - before) == 1
