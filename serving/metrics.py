"""The service's Prometheus metrics (`GET /metrics`), in a registry of their own per app, so two apps
in one process (the tests) never share counters.

With `--workers N` each worker process keeps its own: a scrape reads the worker that answered it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE

__all__ = ["CONTENT_TYPE", "Metrics"]

# Seconds: sub-millisecond answers of a small model up to a slow batch.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, model: str, alias: str) -> None:
        self.registry = CollectorRegistry()
        self.model, self.alias = model, alias
        self.requests = Counter(
            "tidemark_serve_requests", "HTTP requests answered, by path and status", ("path", "status"), registry=self.registry
        )
        self.latency = Histogram(
            "tidemark_serve_request_seconds", "Time to answer a request, by path", ("path",), buckets=_BUCKETS, registry=self.registry
        )
        self.records = Counter("tidemark_serve_predicted_records", "Records predicted", ("model", "version"), registry=self.registry)
        self.version = Gauge("tidemark_serve_model_version", "The version served", ("model", "alias"), registry=self.registry)
        self.swaps = Counter(
            "tidemark_serve_swaps", "Version changes tried, by outcome (swapped, refused)", ("model", "alias", "outcome"), registry=self.registry
        )

    def served(self, version: int) -> None:
        self.version.labels(self.model, self.alias).set(version)

    def render(self) -> bytes:
        return generate_latest(self.registry)
