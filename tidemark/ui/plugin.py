"""The Airflow plugin: the FastAPI app mounted at /tidemark and an entry in the UI's navigation.

Found through the `airflow.plugins` entry point (pyproject.toml), so any environment that installs
Tidemark next to Airflow (`make airflow`, the compose image) has it. The navigation entry is an
external view with a `url_route`: Airflow shows the pages inside its own UI, in a frame on the
same origin, so the browser sends the signed-in user's token cookie with every request.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from tidemark.ui.app import PREFIX, create_app


class TidemarkPlugin(AirflowPlugin):
    name = "tidemark"
    fastapi_apps = [{"app": create_app(), "url_prefix": PREFIX, "name": "Tidemark"}]
    external_views = [
        {
            "name": "Tidemark",
            "href": f"{PREFIX}/models",
            "url_route": "tidemark",
            "destination": "nav",
            "category": "browse",
        }
    ]
