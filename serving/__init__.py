"""Serving: `tidemark serve NAME@ALIAS` answers predictions over HTTP with the alias holder, checks
every request against the version's recorded input schema, and follows the alias (lineage events,
and the registry polled as a safety net), swapping versions atomically; every answered record is
logged to the lakehouse (`predlog`).

Imports `lakehouse`, `lineage` and `models`; nothing imports it but `tidemark/` (the CLI) and `dags/`.
Public surface: the modules in `__all__`.
"""

__all__ = ["app", "exceptions", "follow", "loader", "metrics", "predlog", "server", "validate"]
