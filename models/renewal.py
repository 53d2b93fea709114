"""Automatic renewal: retrain a production model on new snapshots, compare on one holdout, promote or not.

Triggered by drift (or a schedule) from Airflow, this trains a candidate with the alias holder's
parameters on the new snapshots (or reuses a version already trained on exactly those snapshots
with those parameters, e.g. by the training DAG), then scores BOTH the holder and the candidate on
the same holdout, cut from the new data by the job's own split. The candidate takes the alias only
if its lineage is complete (promotion gate) and its primary metric on that holdout is not worse than
the holder's by more than `models.promotion_threshold`; otherwise it stays a candidate and the
reason is recorded. Every decision is a lineage run (`renew.<model>`) with a `tidemark_renewal` facet.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.tables import TableName, load_table
from lineage import events as ev
from lineage import actors, notifications, signing
from lineage.run import run as lineage_run
from lineage.transport import Transport
from models import artifacts
from models import inputs as inputs_mod
from models.exceptions import TrainingInputError
from models.jobs import JOBS, TrainingJob, load_entry_point
from models.promotion import NOT_IN_STORE, lineage_problems
from models.registry import ModelRef, ModelVersion, Registry

log = logging.getLogger(__name__)

RENEW_JOB = "renew"
DECISION_FACET = "tidemark_renewal"


@dataclass
class RenewalDecision:
    model: str
    alias: str
    holder_version: int
    candidate_version: int | None  # None: nothing new to train on, nothing done
    trigger: str  # drift | schedule | manual
    snapshots: dict[str, int]
    primary_metric: str
    metric_goal: str
    holder_metrics: dict[str, float]  # on the shared holdout
    candidate_metrics: dict[str, float]
    threshold: float
    promoted: bool
    reason: str
    reused_candidate: bool = False
    drift_run_id: str | None = None
    run_id: str | None = None
    problems: list[str] = field(default_factory=list)
    nothing_new: bool = False
    # The alias is protected (`models.protected_aliases`): a candidate that passed was not moved in;
    # this pending request (`models.approvals`) waits for an approver instead.
    request_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def job_for(mv: ModelVersion) -> TrainingJob:
    """The job that trained `mv`, with its holdout scorer: a reference job (matched by entry point and
    model), else the version's own record (a user's `module:JOB_OBJECT` or `module:function --holdout`
    job stores its holdout scorer beside its code identity)."""
    if (mv.code or {}).get("engine") == "spark":
        raise TrainingInputError(
            f"{mv.model}:{mv.version} was trained on Spark, and automatic renewal does not score Spark models yet; "
            "train a candidate with `tidemark train` and move the alias with `tidemark models promote`"
        )
    for job in JOBS.values():
        if job.entry_point == mv.entry_point and job.model == mv.model:
            return job
    holdout = (mv.code or {}).get("holdout_entry_point")
    if not holdout:
        raise TrainingInputError(
            f"{mv.model}:{mv.version} was trained by {mv.entry_point} with no holdout scorer recorded; automatic renewal "
            "scores the holder and a candidate on one holdout: train it again with `--holdout module:function` "
            "(or as a TrainingJob with holdout_entry_point), promote that version, then renew"
        )
    if not mv.primary_metric:
        raise TrainingInputError(
            f"{mv.model}:{mv.version} declares no primary metric; train it with `--primary-metric M --metric-goal max|min` to renew it"
        )
    job_name = mv.job_name.removeprefix("train.")
    return TrainingJob(
        name=job_name,
        model=mv.model,
        inputs=tuple(i.table for i in mv.inputs),
        entry_point=mv.entry_point,
        params=dict(mv.parameters),
        primary_metric=mv.primary_metric,
        metric_goal=mv.metric_goal or "max",
        holdout_entry_point=holdout,
        # A renewal keeps the model's owner: the service that retrains it does not become the owner.
        owner=mv.owner,
    )


def _lineage_problems_after_wait(
    settings: Settings, candidate: ModelVersion, wait_s: float, progress: Callable[[str], None], poll_s: float = 2.0
) -> list[str]:
    """The promotion gate's lineage problems, waiting up to `wait_s` while the only ones are lineage
    the consumer has not stored yet. A renewal started by a landing's asset event can run before the
    lineage consumer has read that landing's events from Kafka: a race, not a fault, so the gate
    waits for it (bounded) instead of refusing; past the bound the problem is the reason, naming the
    command that stores it."""
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        problems = lineage_problems(settings, candidate)
        pending = [p for p in problems if NOT_IN_STORE in p]
        if not pending or len(pending) < len(problems) or time.monotonic() >= deadline:
            return problems
        if not said:
            progress(f"waiting up to {wait_s:g} s for the lineage consumer to store: {pending[0]}")
            said = True
        time.sleep(poll_s)


def _reusable(registry: Registry, holder: ModelVersion, snapshots: Mapping[str, int]) -> ModelVersion | None:
    """A version newer than the holder, trained by the same entry point and parameters on exactly these snapshots."""
    for mv in reversed(registry.versions(holder.model, include_archived=False)):
        if mv.version <= holder.version:
            break
        if mv.entry_point == holder.entry_point and mv.parameters == holder.parameters and {i.table: i.snapshot_id for i in mv.inputs} == dict(snapshots):
            return mv
    return None


def renew(
    settings: Settings,
    ref: str,
    *,
    snapshots: Mapping[str, int] | None = None,
    trigger: str = "manual",
    drift_run_id: str | None = None,
    transport: Transport | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> RenewalDecision:
    """Renew `ref` (NAME@ALIAS): candidate on `snapshots` (default: each input's current main), compare, decide."""
    from models.train import train

    parsed = ModelRef.parse(ref)
    if parsed.alias is None:
        raise TrainingInputError(f"{ref}: renewal replaces an alias holder; give NAME@ALIAS, e.g. {parsed.name}@production")
    catalog = load_catalog(settings)
    registry = Registry(settings, catalog)
    holder = registry.resolve(parsed)
    job = job_for(holder)
    if not job.holdout_entry_point or not job.primary_metric:
        raise TrainingInputError(f"job {job.name} declares no holdout scorer or primary metric; automatic renewal cannot compare versions")
    tables = {n: load_table(catalog, TableName.parse(n)) for n in job.inputs}
    chosen: dict[str, int] = {}
    for name, table in tables.items():
        sid = (snapshots or {}).get(name)
        if sid is None:
            current = table.current_snapshot()
            if current is None:
                raise TrainingInputError(f"{name} has no data; nothing to renew {ref} on")
            sid = current.snapshot_id
        if table.snapshot_by_id(int(sid)) is None:
            raise TrainingInputError(f"{name} has no snapshot {sid}; give a snapshot id from `tidemark sql` or the asset event")
        chosen[name] = int(sid)

    trained_on = {i.table: i.snapshot_id for i in holder.inputs}
    if trained_on == chosen:
        # The holder was trained on exactly this data: a candidate would be the same model again
        # (training is deterministic), and moving the alias to it would say something changed.
        reason = f"{trigger}: nothing new: {ref} (version {holder.version}) was trained on exactly {chosen}; nothing trained, alias unchanged"
        progress(reason)
        return RenewalDecision(
            model=holder.model, alias=parsed.alias, holder_version=holder.version, candidate_version=None, trigger=trigger,
            snapshots=chosen, primary_metric=job.primary_metric, metric_goal=job.metric_goal, holder_metrics={},
            candidate_metrics={}, threshold=settings.models.promotion_threshold, promoted=False, reason=reason,
            drift_run_id=drift_run_id, nothing_new=True,
        )
    candidate = _reusable(registry, holder, chosen)
    reused = candidate is not None
    if candidate is None:
        progress(f"training a candidate for {ref} on {chosen}")
        candidate = train(settings, job, params=dict(holder.parameters), snapshots=chosen, transport=transport, progress=progress).version
    else:
        progress(f"reusing {candidate.model}:{candidate.version}, already trained on {chosen} with the same parameters")

    frames = {name: inputs_mod.read_at(tables[name], sid) for name, sid in chosen.items()}
    score = load_entry_point(job.holdout_entry_point)
    params = dict(candidate.parameters)  # the holdout both are scored on: the candidate's split of the new data

    def metrics_of(mv: ModelVersion) -> dict[str, float]:
        estimator = pickle.loads(artifacts.get(settings, mv.artifact_uri, mv.sha256))  # noqa: S301 (our own content-addressed artifact)
        return dict(score(estimator, frames, params))

    holder_metrics, candidate_metrics = metrics_of(holder), metrics_of(candidate)
    metric, goal = job.primary_metric, job.metric_goal
    new, old = candidate_metrics[metric], holder_metrics[metric]
    worse_by = (old - new) if goal == "max" else (new - old)
    threshold = settings.models.promotion_threshold
    problems = _lineage_problems_after_wait(settings, candidate, settings.models.lineage_wait_s, progress)
    comparison = f"{metric} on the shared holdout {new:.6g} vs {old:.6g} of version {holder.version}"
    if worse_by > threshold:
        problems.append(f"{comparison}: worse by {worse_by:.6g}, more than the threshold {threshold:g}")
    passed = not problems
    protected = settings.models.is_protected(holder.model, parsed.alias)
    promoted = passed and not protected
    if promoted:
        reason = f"{trigger}: {comparison}"
    elif passed:
        reason = f"{trigger}: {comparison}; {holder.model}@{parsed.alias} is protected: requested, awaiting approval"
    else:
        context = "" if any(p.startswith(comparison) for p in problems) else f" ({comparison})"
        reason = f"{trigger}: kept as a candidate: {'; '.join(problems)}{context}"
    decision = RenewalDecision(
        model=holder.model,
        alias=parsed.alias,
        holder_version=holder.version,
        candidate_version=candidate.version,
        trigger=trigger,
        snapshots=chosen,
        primary_metric=metric,
        metric_goal=goal,
        holder_metrics=holder_metrics,
        candidate_metrics=candidate_metrics,
        threshold=threshold,
        promoted=promoted,
        reason=reason,
        reused_candidate=reused,
        drift_run_id=drift_run_id,
        problems=problems,
    )
    datasets = [inputs_mod.dataset(settings, n, tables[n], sid) for n, sid in chosen.items()]
    with lineage_run(
        f"{RENEW_JOB}.{holder.model}",
        inputs=[*datasets, registry.model_dataset(holder), registry.model_dataset(candidate)],
        parameters={"ref": ref, "trigger": trigger},
        settings=settings,
        transport=transport,
        code=renew,
    ) as run:
        decision.run_id = run.run_id
        if promoted:
            registry.promote(holder.model, candidate.version, parsed.alias, reason=f"automatic renewal ({reason})", transport=transport)
        elif passed:
            from models.approvals import request

            # force: renewal judged the metric on the shared holdout, which the registry's training
            # metrics the gate compares may contradict; the request then carries that verdict for the approver.
            req = request(
                settings, holder.model, candidate.version, parsed.alias, reason=reason, force=True,
                requested_by=f"automatic renewal (run {run.run_id})", transport=transport,
            )
            decision.request_id = req["request_id"]
            decision.reason = reason = f"{reason} (request {req['request_id']}: `{req['approve_with']}`)"
        # Signed: `models status` shows a decision only from Tidemark's own renewal, never a forged event's.
        run.add_run_facet(DECISION_FACET, signing.sign_facet(settings, ev.facet(run.producer, f"{ev.TIDEMARK_FACETS}/RenewalRunFacet.json", **decision.to_json())))
        run.add_run_facet(notifications.FACET, _notification(run.producer, decision, actors.current_actor(settings).name))
    verdict = "promoted" if promoted else "requested" if decision.request_id else "not promoted"
    progress(f"{verdict} {holder.model}:{candidate.version} to {parsed.alias}: {reason}")
    return decision


def _notification(producer: str, d: RenewalDecision, actor: str) -> dict[str, Any]:
    """The renewal decision as a notification (`lineage.notifications`): promoted, requested or kept."""
    outcome = "promoted" if d.promoted else "requested" if d.request_id else "kept"
    return notifications.facet(
        producer, notifications.RENEWAL_DECISION, model=d.model, alias=d.alias, version=d.candidate_version, actor=actor,
        summary=f"renewal of {d.model}@{d.alias}: version {d.candidate_version} {outcome}: {d.reason}",
        details={"outcome": outcome, "holderVersion": d.holder_version, "requestId": d.request_id, "trigger": d.trigger},
    )


def renew_alias(
    settings: Settings,
    model: str,
    alias: str,
    snapshots: Mapping[str, int] | None,
    trigger: str,
    drift_run_id: str | None = None,
    *,
    progress: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any] | None:
    """`renew` for a scheduler: the decision as JSON (`nothing_new` true when the holder was trained on
    exactly these snapshots: nothing done), or None when no version holds `model@alias` yet (the first
    holder is promoted by hand, so there is nothing to renew)."""
    if (model, alias) not in Registry(settings).current_aliases():
        log.info("%s@%s: no holder; nothing to renew (promote a first version by hand)", model, alias)
        return None
    decision = renew(settings, f"{model}@{alias}", snapshots=snapshots, trigger=trigger, drift_run_id=drift_run_id, progress=progress)
    return decision.to_json()


def promote_first_version(
    settings: Settings, model: str, version: int, alias: str = "production", *, progress: Callable[[str], None] = lambda _msg: None
) -> dict[str, Any] | None:
    """Promote `model:version` to `alias` when no version holds it yet (`models.promote_first_version`,
    what the training DAG does so the continuous loop has a holder to watch), through the promotion
    gate, after waiting (bounded) for the lineage it needs. None when `alias` already has a holder:
    replacing a holder is renewal's job. A refusal raises the gate's error."""
    from models.promotion import promote

    registry = Registry(settings)
    if (model, alias) in registry.current_aliases():
        return None
    mv = registry.get(model, version)
    _lineage_problems_after_wait(settings, mv, settings.models.lineage_wait_s, progress)
    move = promote(settings, model, version, alias, reason="first version (models.promote_first_version: no holder yet)")
    if "request_id" in move:
        progress(f"{model}@{alias} is protected: requested {model}:{version} as its first holder ({move['approve_with']})")
    else:
        progress(f"promoted {model}:{version} to {alias}: the first holder")
    return move
