"""Finishing the runs a dead process left in flight, so a commit never stays without its event.

A run's START and its row in the outbox's `runs_in_flight` are written together; its COMPLETE or
FAIL and the row's removal too (`lineage.outbox`). The process running it holds an flock on
`$TIDEMARK_HOME/runs/<run>.lock`. A row whose lock nobody holds is a run whose process died
(SIGKILL, OOM, power cut) somewhere between START and its terminal event. Recovery asks the run's
*resolver* what happened: the job noted, before its commit, a `module:function` that reads the
tables for the commit the run describes (every Tidemark commit names its run in the snapshot
summary, `tidemark.run-id`) and answers COMPLETE with the real outputs (the published snapshot
with its validation results, the registered model version) or FAIL. A run with no resolver, or
whose resolver finds no commit, gets FAIL with the reason "interrupted". The terminal event and
the row's removal are again one transaction, so each run gets exactly one terminal event.

Recovery runs by itself when a process first opens the outbox (`recover_once`, from
`OutboxTransport`), and as `tidemark lineage recover`. Resolvers are named by string so that this
package needs no import of the packages that own them (ingest, models).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lakehouse.config import Settings
from lakehouse.exceptions import TidemarkError
from lineage import events as ev
from lineage.outbox import InFlight, Outbox, hold_run_lock, release_run_lock

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"
_RECOVERED: set[str] = set()


@dataclass
class Resolution:
    """What a resolver found: the run's terminal event type, its outputs, and why."""

    event_type: str  # COMPLETE or FAIL
    outputs: list[dict[str, Any]] = field(default_factory=list)
    inputs: list[dict[str, Any]] | None = None  # None: the START's inputs
    reason: str = INTERRUPTED  # for FAIL: the error message
    note: str = ""  # what recovery did besides the event (pins, card, dropped branch)
    event_time: str | None = None  # None: now
    run_facets: dict[str, Any] = field(default_factory=dict)  # added to the START's (a move has no START: its actor)


Resolver = Callable[[Settings, InFlight], Resolution]


@dataclass
class RecoveryReport:
    completed: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    running: list[str] = field(default_factory=list)  # still held by a live process: left alone
    errors: list[str] = field(default_factory=list)  # a resolver that failed: tried again next time
    acknowledged: int = 0  # sent events found in the lineage store and removed from the outbox
    resent: int = 0  # sent events the store lacks, queued again

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def raise_for_errors(self) -> None:
        """Raise when a run could not be recovered (it stays in flight and is tried again next time)."""
        if self.errors:
            raise TidemarkError(f"{len(self.errors)} runs could not be recovered (tried again next time): {self.errors[0]}")


def interrupted(_settings: Settings, _run: InFlight) -> Resolution:
    """The resolver of a run that noted none: it never committed anything recovery can find."""
    return Resolution("FAIL")


def _resolver(name: str | None) -> Resolver:
    if not name:
        return interrupted
    module, _, func = name.partition(":")
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


def terminal_event(settings: Settings, run: InFlight, resolution: Resolution) -> dict[str, Any]:
    """The event recovery writes for `run`: the START's job, inputs and facets, with the outcome."""
    start = run.start_event or {}
    producer = start.get("producer") or settings.lineage.producer
    facets = {**resolution.run_facets, **((start.get("run") or {}).get("facets") or {})}
    if resolution.event_type != "COMPLETE":
        facets["errorMessage"] = ev.facet(
            producer,
            f"{ev.FACETS}/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
            message=resolution.reason,
            programmingLanguage="python",
        )
    facets["tidemark_recovered"] = ev.facet(
        producer, f"{ev.TIDEMARK_FACETS}/RecoveredRunFacet.json", reason="the process running it died", note=resolution.note
    )
    job = start.get("job") or {}
    return ev.run_event(
        producer=producer,
        event_type=resolution.event_type,  # type: ignore[arg-type]
        run_id=run.run_id,
        job_namespace=job.get("namespace") or settings.lineage.job_namespace,
        job_name=job.get("name") or run.job_name,
        inputs=(start.get("inputs") or []) if resolution.inputs is None else resolution.inputs,
        outputs=resolution.outputs,
        run_facets=facets,
        job_facets=job.get("facets") or {},
        event_time=resolution.event_time,
    )


def recover(settings: Settings, *, reconcile_store: bool = False) -> RecoveryReport:
    """Finish every run in flight whose process is gone; with `reconcile_store`, also acknowledge
    the sent events the lineage store holds and queue again the ones it lacks (see `reconcile`)."""
    outbox = Outbox(settings)
    report = RecoveryReport()
    for run in outbox.runs_in_flight():
        fd = hold_run_lock(settings.home, run.run_id)
        if fd is None:
            report.running.append(run.run_id)
            continue
        try:
            if not outbox.in_flight(run.run_id):
                continue  # it ended (or another recovery finished it) between the listing and the lock
            resolution = _resolver(run.resolver)(settings, run)
            event = terminal_event(settings, run, resolution)
            outbox.finish_run(run.topic, run.run_id, ev.serialize(event))
            entry = {"run_id": run.run_id, "job": run.job_name, "event": resolution.event_type, "outputs": [_describe(d) for d in resolution.outputs]}
            if resolution.note:
                entry["note"] = resolution.note
            if resolution.event_type != "COMPLETE":
                entry["reason"] = resolution.reason
            (report.completed if resolution.event_type == "COMPLETE" else report.failed).append(entry)
            log.warning("recovered run %s of %s: %s %s", run.run_id, run.job_name, resolution.event_type, resolution.note)
        except Exception as exc:  # left in flight: the next recovery tries again
            report.errors.append(f"run {run.run_id} of {run.job_name}: {exc.__class__.__name__}: {exc}")
            log.warning("could not recover run %s of %s: %s", run.run_id, run.job_name, exc)
        finally:
            release_run_lock(settings.home, run.run_id, fd)
    if reconcile_store:
        report.acknowledged, report.resent = reconcile(settings)
    return report


def recover_once(settings: Settings) -> RecoveryReport | None:
    """`recover`, the first time this process opens this outbox; never raises (a job must not fail
    because an older run could not be finished: that run stays in flight and is tried again)."""
    key = str(settings.home.resolve())
    if key in _RECOVERED:
        return None
    _RECOVERED.add(key)
    try:
        return recover(settings)
    except Exception as exc:
        log.warning("recovering interrupted runs in %s failed: %s; run `tidemark lineage recover`", settings.home, exc)
        return None


def reconcile(settings: Settings, resend_after_s: float = 60.0) -> tuple[int, int]:
    """Acknowledge the sent events the lineage tables already hold (a consumer on another machine
    cannot reach this outbox), and queue again those sent more than `resend_after_s` ago that the
    store still lacks (a broker that lost them). Returns (acknowledged, queued again)."""
    from lineage.store import stored_event_ids

    outbox = Outbox(settings)
    sent = outbox.sent_unacknowledged()
    if not sent:
        return 0, 0
    held = stored_event_ids(settings, sent)
    acknowledged = outbox.acknowledge(held)
    stale = set(outbox.sent_unacknowledged(resend_after_s)) - held
    return acknowledged, outbox.requeue_sent(stale) if stale else 0


def _describe(dataset: Mapping[str, Any]) -> str:
    version = ev.dataset_version(dataset)
    return f"{dataset.get('name')}" + (f"@{version}" if version else "")
