"""Lineage: OpenLineage events, Kafka delivery, the consumer into Iceberg lineage tables, trace queries.

Knows nothing of ingest or models: they describe their datasets with the builders in `lineage.events`.

Public surface: `RunContext` and `run` (a job's lineage run), and the modules in `__all__` with every
name in them that does not start with an underscore. `decode`, `fetch` and `partition` are the
consumer's and the producers' own; tests/test_architecture.py fails when another package imports
them or an underscored name.
"""

from lineage.run import RunContext, run

__all__ = [
    "RunContext",
    "run",
    "actors",
    "alias_requests",
    "broker",
    "code",
    "column_graph",
    "columns",
    "consumer",
    "draw",
    "drift_store",
    "emit",
    "events",
    "exceptions",
    "gate",
    "graph",
    "kafka",
    "lag",
    "model_store",
    "notifications",
    "outbox",
    "query",
    "recovery",
    "search",
    "signing",
    "store",
    "trace",
    "transport",
    "watch",
    "webhook",
]
