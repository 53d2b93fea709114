"""Tidemark in the browser: an Airflow 3 plugin (pages and JSON under /tidemark in the API server).

`plugin.TidemarkPlugin` registers the FastAPI app of `app` and a navigation entry; Airflow finds it
through the `airflow.plugins` entry point in pyproject.toml. The pages read through the packages'
Python API (`data`), the same calls the CLI makes, and draw with the packages' renderers.
"""
