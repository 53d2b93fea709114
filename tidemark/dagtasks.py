"""What the Airflow DAGs' tasks do, as plain functions over the packages (no Airflow import here).

The DAG files in `dags/` stay thin: each task unpacks its Airflow context and calls one function
below, so the same behaviour is testable without a scheduler and callable from any orchestrator.
Everything returned is JSON-ready, because it travels between tasks as XCom.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from lakehouse.config import Settings
from lakehouse.exceptions import TidemarkError
from lakehouse.tables import TableName
from tidemark.exceptions import DagConfigError, LineageStalledError

log = logging.getLogger(__name__)

ASSET_SCHEME = "x-iceberg://tidemark/"
SOURCES_FILE = "sources.yaml"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def asset_uri(table: str) -> str:
    """The Airflow Asset URI of an Iceberg table (the same string in the ingest and training DAGs)."""
    return ASSET_SCHEME + str(TableName.parse(table))


# -- sources ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceConfig:
    """One configured source: files matching `location` land into `table` on `schedule`."""

    name: str
    table: str
    location: str  # a path, glob or URI; `{home}` is TIDEMARK_HOME
    schedule: str | None = "@hourly"
    suite: str | None = None
    format: str | None = None

    @property
    def dag_id(self) -> str:
        return f"ingest_{self.name}"

    def resolved_location(self, settings: Settings) -> str:
        return self.location.replace("{home}", str(settings.home))


def load_sources(path: Path) -> list[SourceConfig]:
    """Read the sources file that generates one ingest DAG per entry (cheap: runs at DAG parse time)."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise DagConfigError(f"{path}: no sources file; create it with a `sources:` mapping of name -> table, location") from None
    except yaml.YAMLError as exc:
        raise DagConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None
    entries = raw.get("sources") if isinstance(raw, dict) else None
    if not isinstance(entries, dict):
        raise DagConfigError(f"{path}: expected a top-level `sources:` mapping of name -> {{table, location}}")
    out = []
    for name, entry in entries.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise DagConfigError(f"{path}: source name {name!r} must be lower-case letters, digits and _ (it names the DAG)")
        if not isinstance(entry, dict) or not entry.get("table") or not entry.get("location"):
            raise DagConfigError(f"{path}: source {name!r} needs `table: NS.TABLE` and `location: PATH_OR_GLOB`")
        unknown = set(entry) - {"table", "location", "schedule", "suite", "format"}
        if unknown:
            raise DagConfigError(f"{path}: source {name!r} has unknown key(s) {', '.join(sorted(unknown))}")
        try:
            table = str(TableName.parse(str(entry["table"])))
        except TidemarkError as exc:
            raise DagConfigError(f"{path}: source {name!r}: {exc}") from None
        out.append(
            SourceConfig(
                name=name,
                table=table,
                location=str(entry["location"]),
                schedule=entry.get("schedule", "@hourly"),
                suite=entry.get("suite"),
                format=entry.get("format"),
            )
        )
    return out


# -- ingest: land, validate, publish or quarantine ------------------------------------------------


def land_source(settings: Settings, source: SourceConfig) -> list[dict[str, Any]]:
    """Land every file of the source not yet in the table onto its own audit branch (nothing published).

    A location that matches no file is not an error for a scheduled run: there is nothing new.
    """
    from ingest import sources as ingest_sources
    from ingest.exceptions import SourceError
    from ingest.land import land

    location = source.resolved_location(settings)
    try:
        files = ingest_sources.expand(location, settings.catalog.properties)
    except SourceError:
        if ingest_sources.GLOB_CHARS & set(location):
            log.info("%s: no file matches; nothing to land", location)
            return []
        raise
    staged = []
    for f in files:
        r = land(settings, f, source.table, suite_file=source.suite, fmt=source.format, publish=False, progress=log.info)
        staged.append({"file": f, "skipped": r.skipped, "branch": r.audit_branch, "snapshot_id": r.snapshot_id, "run_id": r.run_id, "rows": r.rows})
        log.info("%s: %s", f, "already landed" if r.skipped else f"audited snapshot {r.snapshot_id} on branch {r.audit_branch}")
    return staged


def validate_staged(settings: Settings, table: str, staged: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The gate's decision for each audited landing: which branches to publish, which to quarantine."""
    from ingest.land import audit_verdict

    decision: dict[str, Any] = {"table": table, "publish": [], "quarantine": [], "verdicts": []}
    for s in staged:
        if s.get("skipped") or not s.get("branch"):
            continue
        v = audit_verdict(settings, table, s["branch"])
        decision["verdicts"].append({**v.to_json(), "file": s["file"]})
        if v.success is False:
            log.error("%s: gate %s FAILED on snapshot %s: %s (report: %s)", s["file"], v.suite, v.snapshot_id, v.failures, v.data_docs)
            decision["quarantine"].append(s["branch"])
        else:
            log.info("%s: gate %s passed on snapshot %s (%s rows)", s["file"], v.suite or "(none: ungated)", v.snapshot_id, v.rows)
            decision["publish"].append(s["branch"])
    return decision


def publish_staged(settings: Settings, decision: Mapping[str, Any]) -> dict[str, Any] | None:
    """Publish the branches that passed, in landing order. None when there was nothing to publish."""
    from ingest.land import publish_audited

    table = decision["table"]
    published = [publish_audited(settings, table, b, progress=log.info) for b in decision["publish"]]
    if not published:
        return None
    last = published[-1]
    return {
        "table": table,
        "snapshot_id": last.snapshot_id,
        "snapshot_ids": [p.snapshot_id for p in published],
        "landing_run_ids": [p.run_id for p in published],
        "rows": sum(p.rows for p in published),
    }


def quarantine_staged(settings: Settings, decision: Mapping[str, Any]) -> list[str]:
    """Move the failed landings to quarantine branches, then fail: main is untouched by them."""
    from ingest.exceptions import GateFailedError
    from ingest.land import quarantine_audited

    table = decision["table"]
    kept = [quarantine_audited(settings, table, b) for b in decision["quarantine"]]
    if kept:
        reasons = "; ".join(f"{v['file']}: {v['failures']}" for v in decision["verdicts"] if v["success"] is False)
        raise GateFailedError(
            f"validation gate failed for {table}: {reasons}. main is unchanged; the rows are on "
            f"{', '.join(kept)} (`tidemark ingest quarantine show {table} {kept[0]}`)"
        )
    return kept


# -- training on asset events ----------------------------------------------------------------------


def asset_event_extras(context: Mapping[str, Any], assets: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
    """Per asset URI, the extras of the events that triggered this run, else of the asset's newest
    event (a manual or `dags test` run). `context` is an Airflow task context; no Airflow import here."""
    triggering = context.get("triggering_asset_events") or {}
    out: dict[str, list[dict[str, Any]]] = {}
    for a in assets:
        got = list(triggering[a]) if a in triggering else []
        if got:
            log.info("%s: %d triggering asset event(s); using the newest", a.uri, len(got))
        else:
            log.info("%s: run not triggered by it; using its newest asset event", a.uri)
            try:
                got = [context["inlet_events"][a][-1]]
            except (IndexError, KeyError):
                got = []
        out[a.uri] = [dict(e.extra or {}) for e in got]
    return out


def snapshots_from_asset_events(job_inputs: Sequence[str], events: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, int]:
    """The snapshot id each input table's newest asset event carries (`events`: asset URI -> extras, oldest first).

    Training uses exactly these, never "whatever is current": an input with no event is an error.
    """
    out: dict[str, int] = {}
    missing = []
    for table in job_inputs:
        extras = [e for e in events.get(asset_uri(table), []) if e and e.get("snapshot_id") is not None]
        if not extras:
            missing.append(table)
            continue
        out[table] = int(extras[-1]["snapshot_id"])
    if missing:
        raise DagConfigError(
            f"no asset event with a snapshot id for {', '.join(missing)}; run its ingest DAG first "
            f"(asset {', '.join(asset_uri(t) for t in missing)})"
        )
    return out


def train_on_snapshots(settings: Settings, job_name: str, snapshots: Mapping[str, int]) -> dict[str, Any]:
    from models.jobs import get_job
    from models.train import train

    result = train(settings, get_job(job_name), snapshots=dict(snapshots), progress=log.info)
    mv = result.version
    return {"model": mv.model, "version": mv.version, "run_id": mv.run_id, "snapshots": dict(snapshots), "metrics": mv.metrics}


# -- retraining ------------------------------------------------------------------------------------


def retrain_ref(params: Mapping[str, Any]) -> tuple[str, str | None]:
    """Validate the retrain_model DAG's params: (reference, as-of time or None)."""
    from models.registry import ModelRef
    from models.retrain import parse_time

    model = str(params.get("model") or "").strip()
    version, alias, as_of = params.get("version"), params.get("alias") or None, params.get("as_of") or None
    if not model:
        raise DagConfigError("param `model` is required: the registered model's name, e.g. wine")
    if version not in (None, "") and alias:
        raise DagConfigError("give either param `version` or param `alias`, not both")
    ref = model
    if version not in (None, ""):
        try:
            ref = f"{model}:{int(version)}"
        except (TypeError, ValueError):
            raise DagConfigError(f"param `version` must be a whole number, got {version!r}") from None
    elif alias:
        ref = f"{model}@{alias}"
    ModelRef.parse(ref)  # the same checks as the CLI
    if as_of:
        parse_time(str(as_of))
    return ref, str(as_of) if as_of else None


def retrain_model(settings: Settings, params: Mapping[str, Any]) -> dict[str, Any]:
    from models.retrain import retrain

    ref, as_of = retrain_ref(params)
    report = retrain(settings, ref, as_of=as_of, progress=log.info)
    out = report.to_json()
    log.info("retrained %s: identical=%s", ref, out.get("identical"))
    return out


# -- maintenance -----------------------------------------------------------------------------------


def expire_all(settings: Settings, retention_s: float) -> dict[str, int]:
    """Expire snapshots older than the retention in every table (tagged and branch heads stay)."""
    from lakehouse.catalog import load_catalog
    from lakehouse.tables import expire_snapshots, with_commit_retry

    catalog = load_catalog(settings)
    cutoff = int((time.time() - retention_s) * 1000)
    report: dict[str, int] = {}
    for ns in catalog.list_namespaces():
        for ident in catalog.list_tables(ns):
            name = ".".join(ident)
            report[name] = with_commit_retry(lambda i=ident: expire_snapshots(catalog.load_table(i), cutoff), f"expiring snapshots of {name}")
    return report


def compact_lineage(settings: Settings) -> dict[str, int]:
    """Rewrite the lineage tables' small files (what the consumer does between batches)."""
    from lineage.consumer import LineageWriter

    from lakehouse.catalog import load_catalog

    writer = LineageWriter(settings, load_catalog(settings))
    return {"files_rewritten": writer.compact(min_files=2)}


def consumer_lag(settings: Settings, max_age_s: float) -> dict[str, Any]:
    """Events waiting for the consumer, and how long the oldest has waited; raises if it waited too long.

    Waiting: records in the topic past the offsets the lineage tables hold (read back from their
    snapshot summaries, as the consumer itself does), and events in the outbox not yet delivered.
    """
    from kafka import TopicPartition

    from lakehouse.catalog import load_catalog
    from lineage import kafka as lk
    from lineage.broker import log_id
    from lineage.consumer import stored_offsets
    from lineage.outbox import Outbox
    from lineage.store import EVENTS, ensure_tables

    catalog = load_catalog(settings)
    ensure_tables(catalog, settings)
    events = catalog.load_table((settings.lineage.namespace, EVENTS))
    stored = stored_offsets(events, settings.kafka.topic, log_id(settings))
    kc = lk.consumer(settings, None)
    oldest_ms: dict[int, int] = {}
    try:
        tps = [TopicPartition(settings.kafka.topic, p) for p in sorted(kc.partitions_for_topic(settings.kafka.topic) or [])]
        kc.assign(tps)
        for tp in tps:
            kc.seek(tp, stored.get(tp.partition, 0))
        # The high watermark from a fetch, not end_offsets(): the local broker answers the latter wrongly.
        # The first record fetched past the stored offset is the oldest one waiting in its partition.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(kc.highwater(tp) is None for tp in tps):
            for tp, recs in kc.poll(timeout_ms=200, max_records=100).items():
                if recs:
                    oldest_ms.setdefault(tp.partition, recs[0].timestamp)
                kc.pause(tp)  # one record per partition is enough
        ends = {tp: kc.highwater(tp) for tp in tps}
    finally:
        kc.close()
    unknown = [tp.partition for tp, end in ends.items() if end is None]
    if unknown:
        raise LineageStalledError(f"topic {settings.kafka.topic}: no answer for partition(s) {unknown} in 5 s; is the broker up (`tidemark status`)?")
    lag = {tp.partition: max(0, int(ends[tp] or 0) - stored.get(tp.partition, 0)) for tp in tps}
    outbox = Outbox(settings)
    waiting_since = [t / 1000 for p, t in oldest_ms.items() if lag.get(p)]
    if (created := outbox.oldest_created()) is not None:
        waiting_since.append(created)
    age = time.time() - min(waiting_since) if waiting_since else 0.0
    report = {
        "topic": settings.kafka.topic,
        "lag": sum(lag.values()),
        "lag_by_partition": lag,
        "outbox_pending": outbox.pending(),
        "oldest_waiting_s": round(age, 1),
    }
    if waiting_since and age > max_age_s:
        raise LineageStalledError(
            f"lineage consumer stalled: {report['lag']} record(s) in topic {settings.kafka.topic} and {report['outbox_pending']} "
            f"in the outbox wait, the oldest for {age:.0f} s (limit {max_age_s:.0f} s); check `tidemark lineage consume` and the broker"
        )
    return report


def remove_orphans(settings: Settings, grace_s: float) -> dict[str, Any]:
    """Delete unreferenced files older than the grace period under every table's location."""
    from datetime import timedelta

    from lakehouse.catalog import load_catalog
    from lakehouse.maintenance import remove_orphan_files

    catalog = load_catalog(settings)
    removed, size, by_table = 0, 0, {}
    for ns in catalog.list_namespaces():
        for ident in catalog.list_tables(ns):
            report = remove_orphan_files(catalog.load_table(ident), older_than=timedelta(seconds=grace_s))
            removed, size = removed + len(report.orphans), size + report.bytes
            if report.orphans:
                by_table[".".join(ident)] = len(report.orphans)
                log.info("%s: removed %d orphan file(s), %d bytes", ".".join(ident), len(report.orphans), report.bytes)
    return {"removed": removed, "bytes": size, "by_table": by_table}


def maintenance_report(expired: Mapping[str, int], compacted: Mapping[str, int], orphans: Mapping[str, Any]) -> dict[str, Any]:
    """One summary of what the maintenance run did (the report task's return value and log line)."""
    report = {
        "snapshots_expired": sum(expired.values()),
        "snapshots_expired_by_table": {k: v for k, v in expired.items() if v},
        "lineage_partitions_rewritten": compacted.get("files_rewritten", 0),
        "orphan_files_removed": orphans.get("removed", 0),
        "orphan_bytes_removed": orphans.get("bytes", 0),
    }
    log.info(
        "maintenance: %d snapshots expired, %d lineage partitions rewritten, %d orphan files (%d bytes) removed",
        report["snapshots_expired"], report["lineage_partitions_rewritten"], report["orphan_files_removed"], report["orphan_bytes_removed"],
    )
    return report


# -- continuous: drift checks and automatic renewal -------------------------------------------------


def drift_asset_uri(model: str) -> str:
    """The Asset a drift check updates when it finds drift; the renewal DAG is scheduled on it."""
    return f"x-tidemark://models/{model}/drift"


def check_drift_for(settings: Settings, model: str, snapshots: Mapping[str, int]) -> dict[str, Any] | None:
    """Drift-check every alias holder of `model` against `snapshots`; the first drifted one, or None.

    Returns what the drift asset event carries: alias, snapshots, the drift run, drifted features.
    """
    from models.drift import check_model
    from models.registry import Registry

    holders = sorted((alias, v) for (m, alias), v in Registry(settings).current_aliases().items() if m == model)
    if not holders:
        log.info("%s: no version holds an alias; nothing to watch", model)
        return None
    found = None
    for alias, version in holders:
        check = check_model(settings, f"{model}@{alias}", snapshots=dict(snapshots))
        features = sorted({f for t in check.tables for f in t.drifted_features})
        log.info("%s@%s (version %s) on %s: %s", model, alias, version, dict(snapshots), f"DRIFT in {', '.join(features)}" if check.drifted else "no drift")
        if check.drifted and found is None:
            found = {"model": model, "alias": alias, "version": version, "snapshots": dict(snapshots), "drift_run_id": check.run_id, "drifted_features": features}
    return found


def renew_model(settings: Settings, model: str, alias: str, snapshots: Mapping[str, int] | None, trigger: str, drift_run_id: str | None = None) -> dict[str, Any] | None:
    """Renew `model@alias` (see models.renewal); None when no version holds the alias yet."""
    from models.registry import Registry
    from models.renewal import renew

    if (model, alias) not in Registry(settings).current_aliases():
        log.info("%s@%s: no holder; nothing to renew (promote a first version by hand)", model, alias)
        return None

    decision = renew(settings, f"{model}@{alias}", snapshots=snapshots, trigger=trigger, drift_run_id=drift_run_id, progress=log.info)
    return decision.to_json()
