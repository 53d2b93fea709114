"""The plugin's FastAPI app: HTML pages and their JSON twins, mounted by Airflow at /tidemark.

Pages (`/tidemark/...`) and JSON (`/tidemark/api/...`) call the same function of `data` and differ
only in the rendering. Every route, the static files included, needs a signed-in Airflow user
(`auth`); retraining also needs the right to trigger DAG runs. Errors are pages (or JSON) that
name what was not found and link to the nearest thing that exists; never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from lakehouse.exceptions import CatalogError, TidemarkError
from tidemark.ui import auth, data
from tidemark.ui.exceptions import PageNotFoundError, StoreEmptyError, StoreUnavailableError

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
API = "/api"
# Files the pages load: ours, and the vendored graph library with its license (never fetched elsewhere).
STATIC = {
    "ui.css": (HERE / "static" / "ui.css", "text/css"),
    "ui.js": (HERE / "static" / "ui.js", "text/javascript"),
    "graph.css": (None, "text/css"),
    "graph.js": (None, "text/javascript"),
    "svg-pan-zoom.min.js": (None, "text/javascript"),
    "svg-pan-zoom.LICENSE": (None, "text/plain"),
}


def _templates() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=jinja2.select_autoescape(["html"]))
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.filters["short"] = lambda v, n=19: (str(v)[:n].replace("T", " ") if v else "")
    env.filters["ms"] = lambda ms: datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return env


def create_app() -> FastAPI:
    """The FastAPI app Airflow mounts (see `plugin.py`)."""
    get_user = auth.user_dependency()
    # FastAPI's own OpenAPI route would bypass the app's dependencies: ours below needs a user too.
    app = FastAPI(title="Tidemark", docs_url=None, redoc_url=None, openapi_url=None, dependencies=[Depends(get_user)])
    env = _templates()

    def base(request: Request) -> str:
        return str(request.scope.get("root_path") or "")

    def page(request: Request, name: str, http_status: int = 200, **context: Any) -> HTMLResponse:
        user = getattr(request.state, "tm_user", None)
        html = env.get_template(name).render(base=base(request), user=auth.user_name(user) if user else None, **context)
        return HTMLResponse(html, status_code=http_status)

    def as_json(value: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(jsonable_encoder(value, custom_encoder={bytes: lambda b: b.decode()}), status_code=status)

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith(base(request) + API + "/") or request.url.path.startswith(API + "/")

    def error(request: Request, status: int, message: str, nearest: tuple[str, str] | None = None, hint: str | None = None) -> Response:
        if wants_json(request):
            body: dict[str, Any] = {"error": {"status": status, "message": message}}
            if nearest:
                body["error"]["nearest"] = {"text": nearest[0], "href": base(request) + nearest[1], "api": base(request) + API + nearest[1]}
            if hint:
                body["error"]["hint"] = hint
            return as_json(body, status)
        return page(request, "error.html", http_status=status, status_code=status, message=message, nearest=nearest, hint=hint)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code in (401, 403):
            message = f"{exc.detail}: Tidemark's pages need a signed-in Airflow user"
            if wants_json(request):
                return error(request, exc.status_code, message, hint="send a JWT from Airflow's POST /auth/token as 'Authorization: Bearer TOKEN'")
            login = "/auth/login?" + urlencode({"next": str(request.url)})
            return page(request, "error.html", http_status=exc.status_code, status_code=exc.status_code, message=message, nearest=None,
                        hint=None, login=login)
        return error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}" for e in exc.errors())
        return error(request, 400, f"bad request: {problems}")

    @app.exception_handler(PageNotFoundError)
    async def not_found(request: Request, exc: PageNotFoundError) -> Response:
        return error(request, 404, str(exc), exc.nearest)

    @app.exception_handler(StoreEmptyError)
    async def empty(request: Request, exc: StoreEmptyError) -> Response:
        if wants_json(request):
            return as_json({"empty": True, "message": str(exc)})
        return page(request, "error.html", http_status=200, status_code=200, title="The lineage store is empty", message=str(exc), nearest=None, hint=None)

    @app.exception_handler(StoreUnavailableError)
    @app.exception_handler(CatalogError)
    async def unavailable(request: Request, exc: TidemarkError) -> Response:
        return error(request, 503, f"the lineage store cannot be reached: {exc}",
                     hint="fix the catalog settings of the API server's environment (TIDEMARK__CATALOG__URI, TIDEMARK_HOME) or start the database it names, then reload")

    @app.exception_handler(TidemarkError)
    async def refused(request: Request, exc: TidemarkError) -> Response:
        return error(request, 409, str(exc))

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> Response:
        log.exception("Tidemark page %s failed", request.url.path)
        return error(request, 500, f"Tidemark could not answer ({exc.__class__.__name__}); the API server's log has the details")

    async def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        """The packages block (Iceberg, DuckDB, dot): off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    def who(request: Request, user: Any) -> Any:
        request.state.tm_user = user
        return user

    # -- static ---------------------------------------------------------------------------------------

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in STATIC:
            raise PageNotFoundError(f"no static file {name!r}", ("all models", "/models"))
        path, media = STATIC[name]
        from lineage.draw import asset

        body = path.read_text(encoding="utf-8") if path else asset(name)
        return Response(body, media_type=media, headers={"Cache-Control": "private, max-age=300"})

    @app.get(API + "/openapi.json", include_in_schema=False)
    async def openapi() -> Response:
        return as_json(app.openapi())

    # -- pages and their JSON twins -------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        return RedirectResponse(base(request) + "/models", status_code=307)

    @app.get(API + "/models")
    async def api_models() -> Response:
        return as_json(await run(data.models, data.settings()))

    @app.get("/models", include_in_schema=False)
    async def models_page(request: Request, user: Any = Depends(get_user)) -> Response:
        who(request, user)
        return page(request, "models.html", title="Models", **await run(data.models, data.settings()))

    @app.get(API + "/models/{name}")
    async def api_model(name: str) -> Response:
        return as_json(await run(data.model, data.settings(), name))

    @app.get("/models/{name}", include_in_schema=False)
    async def model_page(request: Request, name: str, user: Any = Depends(get_user)) -> Response:
        who(request, user)
        return page(request, "model.html", title=f"Model {name}", **await run(data.model, data.settings(), name))

    @app.get(API + "/models/{name}/versions/{version}")
    async def api_version(name: str, version: str) -> Response:
        body, _ = await run(data.version, data.settings(), name, version)
        return as_json(body)

    @app.get("/models/{name}/versions/{version}", include_in_schema=False)
    async def version_page(request: Request, name: str, version: str, user: Any = Depends(get_user)) -> Response:
        who(request, user)
        body, graph = await run(data.version, data.settings(), name, version)
        svg = await run(data.graph_svg, graph)
        from lineage.draw import graph_data

        return page(request, "version.html", title=f"{name} version {version}", trace=body["trace"], svg=svg,
                    graph_json=graph_data(graph), may_retrain=auth.may_trigger(user), retrain_dag=auth.RETRAIN_DAG)

    @app.post(API + "/models/{name}/versions/{version}/retrain")
    async def api_retrain(request: Request, name: str, version: str, user: Any = Depends(get_user)) -> Response:
        if not auth.may_trigger(user):
            return error(request, 403, f"retraining needs the right to trigger runs of the {auth.RETRAIN_DAG} DAG, which user {auth.user_name(user)!r} does not have")
        # A JSON body only: a cross-site form cannot send one without the browser asking first (CORS).
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return error(request, 415, "send the retrain request as JSON (Content-Type: application/json)")
        return as_json(await run(data.retrain, data.settings(), name, version))

    @app.get(API + "/models/{name}/drift")
    async def api_drift(name: str) -> Response:
        body, _ = await run(data.drift, data.settings(), name)
        return as_json(body)

    @app.get("/models/{name}/drift", include_in_schema=False)
    async def drift_page(request: Request, name: str, user: Any = Depends(get_user)) -> Response:
        who(request, user)
        body, svg = await run(data.drift, data.settings(), name)
        return page(request, "drift.html", title=f"Drift of {name}", svg=svg.decode() if svg else None, **body)

    @app.get(API + "/tables/{name}")
    async def api_table(name: str, snapshot: str | None = None) -> Response:
        return as_json(await run(data.table, data.settings(), name, snapshot))

    @app.get("/tables/{name}", include_in_schema=False)
    async def table_page(request: Request, name: str, snapshot: str | None = None, user: Any = Depends(get_user)) -> Response:
        who(request, user)
        body = await run(data.table, data.settings(), name, snapshot)
        from tidemark.ui.charts import table_svg

        return page(request, "table.html", title=f"Table {name}", svg=await run(table_svg, body), **body)

    @app.get(API + "/lineage")
    async def api_lineage(q: str | None = None, node: str | None = None, direction: str = "both", depth: int = 3, as_of: str | None = None) -> Response:
        body, _ = await run(data.lineage, data.settings(), q, node, direction, depth, as_of)
        return as_json(body)

    @app.get("/lineage", include_in_schema=False)
    async def lineage_page(
        request: Request, q: str | None = None, node: str | None = None, direction: str = "both", depth: int = 3,
        as_of: str | None = None, user: Any = Depends(get_user),
    ) -> Response:
        who(request, user)
        body, graph = await run(data.lineage, data.settings(), q, node, direction, depth, as_of)
        svg = await run(data.graph_svg, graph) if graph is not None else None
        from lineage.draw import graph_data

        def walk_url(n: str) -> str:
            return base(request) + "/lineage?" + urlencode({"node": n, "direction": direction, "depth": depth, **({"as_of": as_of} if as_of else {})})

        return page(request, "lineage.html", title="Lineage search", svg=svg, graph_json=graph_data(graph) if graph else None,
                    walk_url=walk_url, directions=data.DIRECTIONS, **body)

    return app
