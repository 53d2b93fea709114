"""The lineage SDK: wrap any job in `with lineage.run(...)` to emit START and COMPLETE or FAIL.

    with lineage.run("churn.train", inputs=[...]) as run:
        ...
        run.add_output(dataset)

Nothing in here knows about ingest or models: callers hand over OpenLineage datasets built with
`lineage.events`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lakehouse.config import Settings, load_settings
from lakehouse.exceptions import TidemarkError
from lakehouse.failpoints import step
from lineage import actors
from lineage import code as code_info
from lineage import events as ev
from lineage.outbox import OutboxTransport
from lineage.transport import Transport

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """A job run in progress: its id, and the datasets and facets its COMPLETE event will carry."""

    settings: Settings
    transport: Transport
    job_name: str
    run_id: str
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    run_facets: dict[str, Any] = field(default_factory=dict)
    job_facets: dict[str, Any] = field(default_factory=dict)

    @property
    def producer(self) -> str:
        return self.settings.lineage.producer

    def add_input(self, dataset: Mapping[str, Any]) -> None:
        self.inputs.append(dict(dataset))

    def add_output(self, dataset: Mapping[str, Any]) -> None:
        self.outputs.append(dict(dataset))

    def add_run_facet(self, name: str, value: Mapping[str, Any]) -> None:
        self.run_facets[name] = dict(value)

    def recoverable(self, resolver: str, **context: Any) -> None:
        """Call before the commit this run describes: if the process dies from here on, recovery
        (`lineage.recovery`) finishes the run with `resolver` ("module:function") reading `context`
        (merged with what earlier calls gave), instead of a plain FAIL "interrupted"."""
        note = getattr(self.transport, "note_run", None)
        if note is not None:
            note(self.run_id, resolver, context)

    def emit_start(self, recoverable: tuple[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """START; with `recoverable` (resolver, context), as if `recoverable` were called with them
        right after it, in the same durable write where the transport can (the outbox's)."""
        if recoverable is None:
            return self.emit("START")
        emit_with_note = getattr(self.transport, "emit_recoverable", None)
        if emit_with_note is None:
            event = self.emit("START")
            self.recoverable(recoverable[0], **recoverable[1])
            return event
        event = self._event("START")
        emit_with_note(event, recoverable[0], dict(recoverable[1]))
        return event

    def emit(self, event_type: ev.EventType, extra_run_facets: Mapping[str, Any] | None = None) -> dict[str, Any]:
        event = self._event(event_type, extra_run_facets)
        self.transport.emit(event)
        return event

    def _event(self, event_type: ev.EventType, extra_run_facets: Mapping[str, Any] | None = None) -> dict[str, Any]:
        event = ev.run_event(
            producer=self.producer,
            event_type=event_type,
            run_id=self.run_id,
            job_namespace=self.settings.lineage.job_namespace,
            job_name=self.job_name,
            inputs=self.inputs,
            outputs=self.outputs if event_type != "START" else [],
            run_facets={**self.run_facets, **(extra_run_facets or {})},
            job_facets=self.job_facets,
        )
        return event


@contextmanager
def run(
    job_name: str,
    *,
    inputs: Sequence[Mapping[str, Any]] = (),
    parameters: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    transport: Transport | None = None,
    run_id: str | None = None,
    code: Any = None,
    parent: Mapping[str, Any] | None = None,
    steps: str | None = None,
    recoverable: tuple[str, Mapping[str, Any]] | None = None,
) -> Iterator[RunContext]:
    """Emit START now, COMPLETE when the block ends, FAIL (with the error message facet) if it raises.

    Records the actor (`lineage.actors`: who ran it), the parameters, the code identity of `code` (a function or module: git commit, dirty
    flag, source hash), the environment (Python and every installed distribution's version), and the parent run:
    `parent` if given (an OpenLineage parent facet), else the Airflow task when run under Airflow.
    `recoverable` (resolver, context): `RunContext.recoverable` from the START on, written with it.
    """
    settings = settings or load_settings()
    own_transport = transport is None
    tr: Transport = transport if transport is not None else OutboxTransport(settings)
    ctx = RunContext(settings=settings, transport=tr, job_name=job_name, run_id=run_id or ev.new_run_id())
    for dataset in inputs:
        ctx.add_input(dataset)
    ctx.add_run_facet(
        "tidemark_environment", ev.facet(ctx.producer, f"{ev.TIDEMARK_FACETS}/EnvironmentRunFacet.json", **code_info.environment())
    )
    ctx.add_run_facet(
        "tidemark_code", ev.facet(ctx.producer, f"{ev.TIDEMARK_FACETS}/CodeRunFacet.json", **code_info.code_identity(code).facet_fields())
    )
    # Who ran it, on every run of every job (serve swaps included), so no caller can forget it.
    ctx.add_run_facet(actors.FACET, actors.current_actor(settings).as_facet(ctx.producer))
    parent_facet = dict(parent) if parent else code_info.airflow_parent(ctx.producer)
    if parent_facet:
        ctx.add_run_facet("parent", parent_facet)
    airflow_facet = code_info.airflow_run(ctx.producer)
    if airflow_facet:
        ctx.add_run_facet("tidemark_airflow", airflow_facet)
    if parameters:
        ctx.add_run_facet(
            "tidemark_parameters",
            ev.facet(ctx.producer, f"{ev.TIDEMARK_FACETS}/ParametersRunFacet.json", parameters=dict(parameters)),
        )
    try:
        ctx.emit_start(recoverable)
        if steps:
            step(f"{steps}.start")
        try:
            yield ctx
        except BaseException as exc:
            try:
                ctx.emit("FAIL", {"errorMessage": ev.error_facet(ctx.producer, exc)})
            except TidemarkError as emit_error:
                # The run's own error is the one to report (a full disk fails both, and the first
                # names the cause); the lost FAIL event is said once, as a warning.
                log.warning("the FAIL event of run %s was not recorded: %s", ctx.run_id, emit_error)
            raise
        ctx.emit("COMPLETE")
        if steps:
            step(f"{steps}.emitted")
    finally:
        if own_transport:
            tr.close()
