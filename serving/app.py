"""The HTTP API (FastAPI): `POST /predict`, `GET /metadata`, `/healthz`, `/readyz`, `/metrics`, and
FastAPI's OpenAPI docs at `/docs` and `/openapi.json`.

`POST /predict` takes one record (a JSON object, feature -> value) or a batch `{"records": [...]}`,
checked against the served version's recorded input schema (`serving.validate`). The answer:

    {"predictions": [...], "model": "wine", "version": 3, "run_id": "...", "artifact_sha256": "...",
     "prediction_id": "<uuid7>"}

`prediction_id` names the request; for a batch `prediction_ids` adds one UUIDv7 per record, in order,
and those are the ids the prediction log stores (for one record, the request's id is the record's).
Refusals are JSON `{"detail": "...", "field": ..., "record": ...}`: 400 malformed JSON, 413 a body
over `serving.max_body_bytes`, 415 a content type other than application/json, 422 a record that
does not fit the schema (missing, extra or mistyped field, NaN or infinity), 503 before a model is
loaded or when the prediction log cannot take the rows (an answer is given only once it is logged).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from lakehouse.config import Settings
from lineage import events as ev
from serving import validate
from serving.exceptions import RequestError
from serving.flusher import FlusherProcess, flusher_pid
from serving.follow import Follower
from serving.loader import Served
from serving.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

_EXAMPLE = {"records": [{"alcohol": 13.2, "malic_acid": 1.78}]}


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


def prediction_log(settings: Settings, model: str) -> Any:
    """The model's prediction log as a worker holds it (`serving.predlog.PredictionLog`, append
    only: the service's flusher process commits), or None when `serving.log_predictions` is off."""
    if not settings.serving.log_predictions:
        return None
    from serving.predlog import PredictionLog

    return PredictionLog(settings, model, commit=False)


def create_app(settings: Settings, follower: Follower, *, follow: bool = True, flusher: bool = True) -> FastAPI:
    """The app serving `follower.current`. `follow`: start the follower's threads with the app
    (and stop them when it shuts down). `flusher`: this app is the whole service, so it runs the
    prediction log's flusher process (`serving.flusher`) and stops it, committing everything, when it
    shuts down; False for a worker of `--workers N`, whose parent runs it."""
    metrics = Metrics(follower.model, follower.alias)
    previous_swap = follower.on_swap

    def swapped(served: Served) -> None:
        metrics.served(served.version.version)
        metrics.swaps.labels(follower.model, follower.alias, "swapped").inc()
        previous_swap(served)

    follower.on_swap = swapped
    follower.on_refused = lambda _why: metrics.swaps.labels(follower.model, follower.alias, "refused").inc()
    if follower.current is not None:
        metrics.served(follower.current.version.version)
    state: dict[str, Any] = {"log": None}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if follower.current is None:
            # A worker of `--workers N`: each process loads for itself (off the event loop).
            await asyncio.to_thread(follower.start_serving)
        state["log"] = _app.state.prediction_log = prediction_log(settings, follower.model)
        flushing = None
        if flusher and state["log"] is not None:
            flushing = _app.state.flusher = FlusherProcess(settings, follower.model)
            flushing.start()
        if follow:
            follower.start()
        try:
            yield
        finally:
            if follow:
                await asyncio.to_thread(follower.stop)
            if state["log"] is not None:
                await asyncio.to_thread(state["log"].close)
            if flushing is not None:
                await asyncio.to_thread(flushing.stop)

    app = FastAPI(
        title=f"tidemark serve {follower.model}@{follower.alias}",
        description="Predictions by the version that holds the alias, each traceable to its training snapshots.",
        lifespan=lifespan,
    )
    limit = settings.serving.max_body_bytes

    app.add_middleware(_Counted, metrics=metrics)

    @app.post("/predict", summary="Predict one record or a batch", openapi_extra=_PREDICT_BODY,
              responses={400: {}, 413: {}, 415: {}, 422: {}, 503: {}})
    async def predict(request: Request) -> Response:
        # The body is read by hand: the size limit holds while reading, and FastAPI's own parsing
        # would refuse NaN/inf as malformed JSON instead of naming the field.
        served = follower.current  # taken once: this request is answered by this version, whatever swaps
        if served is None:
            return _json({"detail": "no model is loaded yet; retry shortly (GET /readyz says when)"}, 503)
        try:
            body = await _read(request, limit)
            value = validate.parse(body)
            recs, batch = validate.records(value, served.schema)
            rows = validate.matrix(recs, served.schema, batch)
        except RequestError as exc:
            return _json(exc.to_json(), exc.status)
        predictions = _predict(served, rows)
        mv = served.version
        metrics.records.labels(mv.model, str(mv.version)).inc(len(rows))
        ids = ev.new_run_ids(len(rows) + 1 if batch else 1)
        request_id = ids.pop() if batch else ids[0]
        answer: dict[str, Any] = {"predictions": predictions, **served.identity(), "prediction_id": request_id}
        if batch:
            answer["prediction_ids"] = ids
        plog = state["log"]
        if plog is not None:
            try:
                # Durable before the answer leaves (an fsync): the buffer's writer thread commits the
                # requests waiting together, one transaction and one fsync for all of them.
                await plog.append_answered(ids, mv.version, datetime.now(timezone.utc), served.names, rows, predictions)
            except Exception as exc:
                # An answer nobody can trace is not given: the client retries, nothing is half-logged.
                log.warning("the prediction log refused %d row(s) (%s); answered 503", len(ids), exc)
                return _json({"detail": f"the prediction could not be logged ({exc}); retry, or see the service's log"}, 503)
        return _json(answer)

    @app.get("/metadata", summary="The model card of the version served")
    async def metadata() -> Response:
        served = follower.current
        if served is None:
            return _json({"detail": "no model is loaded yet"}, 503)
        return _json(
            {
                **served.identity(),
                "alias": served.alias,
                "loaded_at": served.loaded_at.isoformat(),
                "input_schema": served.schema.to_json(),
                "card": served.card,
            }
        )

    @app.get("/healthz", summary="The process answers")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz", summary="A model is loaded and answering")
    async def readyz() -> Response:
        served = follower.current
        if served is None:
            return _json({"status": "loading"}, 503)
        answer = {"status": "ready", **served.identity(), "events": follower.subscribed.is_set()}
        if state["log"] is not None:
            # Predictions are answered either way (their rows wait in the buffer); this says
            # whether they reach the table.
            pid = flusher_pid(settings, follower.model)
            answer["prediction_log"] = {"flusher": pid is not None, "flusher_pid": pid, "buffer": str(state["log"].buffer.path)}
        return _json(answer)

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return app


_PATHS = frozenset({"/predict", "/metadata", "/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"})

_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"type": "object", "description": "one record: feature -> value (GET /metadata `input_schema`)"},
                        {"type": "object", "properties": {"records": {"type": "array", "items": {"type": "object"}}}, "required": ["records"]},
                    ]
                },
                "example": _EXAMPLE,
            }
        },
    }
}


class _Counted:
    """Counts and times every request by path and status (a plain ASGI middleware: Starlette's
    BaseHTTPMiddleware costs more per request than a small model's prediction)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = scope["path"] if scope["path"] in _PATHS else "other"
            self.metrics.requests.labels(path, str(status[0])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)


async def _read(request: Request, limit: int) -> bytes:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise RequestError(415, f"content type {kind or '(none)'} is not accepted; send Content-Type: application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the body is {declared} bytes, over the limit of {limit} bytes (serving.max_body_bytes); send smaller batches")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(413, f"the body is over the limit of {limit} bytes (serving.max_body_bytes); send smaller batches")
    return bytes(body)


def _predict(served: Served, rows: Any) -> list[Any]:
    import numpy as np

    kinds = {f.kind for f in served.schema.fields}
    # The reference jobs train on float64 matrices (models.jobs._features): give the model the same.
    X = np.asarray(rows, dtype="float64") if kinds <= {"number", "integer"} else np.asarray(rows, dtype=object)
    return list(served.estimator.predict(X).tolist())

