"""The Airflow plugin: the FastAPI app mounted at /tidemark and an entry in the UI's navigation.

Found through the `airflow.plugins` entry point (pyproject.toml), so any environment that installs
Tidemark next to Airflow (`make airflow`, the compose image) has it. The navigation entry is an
external view with a `url_route`: Airflow shows the pages inside its own UI, in a frame on the
same origin, so the browser sends the signed-in user's token cookie with every request.

Airflow loads plugins in every process that uses listeners or macros: each task process and each
`airflow dags test`, not only the API server. So this module imports nothing heavy at its top, and
the app (FastAPI, the pages' data layer, Jinja) is built only when Airflow asks for `fastapi_apps`,
which only the API server (and `airflow plugins`) does.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.plugins_manager import AirflowPlugin

PREFIX = "/tidemark"


class TidemarkPlugin(AirflowPlugin):
    name = "tidemark"
    external_views = [
        {
            "name": "Tidemark",
            "href": f"{PREFIX}/models",
            "url_route": "tidemark",
            "destination": "nav",
            "category": "browse",
        }
    ]

    # Airflow reads `fastapi_apps` on the plugin instance it creates, so a cached property keeps the
    # attribute's meaning (a list, built once) while deferring the build to its first reader. (mypy
    # objects to a property in place of the base class's plain attribute; Airflow only reads it.)
    @cached_property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from tidemark.ui.app import create_app

        return [{"app": create_app(), "url_prefix": PREFIX, "name": "Tidemark"}]
