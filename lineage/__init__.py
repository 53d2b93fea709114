"""Lineage: OpenLineage events, Kafka delivery, the consumer into Iceberg lineage tables, trace queries.

Knows nothing of ingest or models: they describe their datasets with the builders in `lineage.events`.
"""

from lineage.run import RunContext, run

__all__ = ["RunContext", "run"]
