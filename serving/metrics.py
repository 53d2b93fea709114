"""The service's Prometheus metrics (`GET /metrics`), in a registry of their own per app, so two apps
in one process (the tests) never share counters.

With `--workers N` (`PROMETHEUS_MULTIPROC_DIR` set by `serving.server`) prometheus_client's
multiprocess mode: each worker writes its values to files in that directory, and a scrape of any
worker reads and sums them all.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE

__all__ = ["CONTENT_TYPE", "MULTIPROC_ENV", "Metrics"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

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
        # Several workers: the one that swapped last says what is served (they all follow one alias).
        self.version = Gauge(
            "tidemark_serve_model_version", "The version served", ("model", "alias"), registry=self.registry, multiprocess_mode="mostrecent"
        )
        self.swaps = Counter(
            "tidemark_serve_swaps", "Version changes tried, by outcome (swapped, refused)", ("model", "alias", "outcome"), registry=self.registry
        )

    def served(self, version: int) -> None:
        self.version.labels(self.model, self.alias).set(version)

    def render(self) -> bytes:
        if MULTIPROC_ENV not in os.environ:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        every = CollectorRegistry()
        multiprocess.MultiProcessCollector(every)
        return generate_latest(every)
