"""Feeds: a configured stream of files into one table, landed in steps a scheduler can run apart.

A feed says where new files appear (`location`: a path, glob or URI; `{home}` is TIDEMARK_HOME),
which table they land in, how often to look, and optionally the suite and format. The feeds file is
YAML with a top-level `sources:` mapping of name -> entry (`dags/sources.yaml`; the key keeps its
first name so existing files stay valid). A "source" in `ingest.sources` is one opened file; a feed
is the configured stream of them.

Landing a feed is write-audit-publish cut into steps that pass only JSON between them (Airflow
tasks hand them over as XCom): `land_feed` writes each new file to its own audit branch (nothing
published), `validate_staged` reads the gate's verdict of each, `publish_staged` moves main to the
ones that passed, in landing order, and `quarantine_staged` keeps the failed ones on quarantine
branches and raises `GateFailedError`, leaving main untouched by them. A file that cannot be landed
at all (unreadable, a schema it cannot join) does not stop the others: it is staged as failed,
the good files are published, and `quarantine_staged` fails the run naming it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ingest.exceptions import FeedConfigError, GateFailedError, SourceError
from lakehouse import names
from lakehouse.config import Settings
from lakehouse.exceptions import TidemarkError
from lakehouse.tables import TableName

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_KEYS = {"table", "location", "schedule", "suite", "format", "owner"}


@dataclass(frozen=True)
class Feed:
    """One configured feed: files matching `location` land into `table` on `schedule`."""

    name: str
    table: str
    location: str  # a path, glob or URI; `{home}` is TIDEMARK_HOME
    schedule: str | None = "@hourly"
    suite: str | None = None
    format: str | None = None
    # The table's owner (a person or team), recorded on each landing (`ingest.land.land(owner=)`).
    owner: str | None = None

    def resolved_location(self, settings: Settings) -> str:
        return self.location.replace("{home}", str(settings.home))


def load_feeds(path: Path) -> list[Feed]:
    """Read the feeds file (cheap: a DAG file calls it at parse time, once per feed it makes a DAG)."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise FeedConfigError(f"{path}: no sources file; create it with a `sources:` mapping of name -> table, location") from None
    except yaml.YAMLError as exc:
        raise FeedConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None
    entries = raw.get("sources") if isinstance(raw, dict) else None
    if not isinstance(entries, dict):
        raise FeedConfigError(f"{path}: expected a top-level `sources:` mapping of name -> {{table, location}}")
    out = []
    for name, entry in entries.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise FeedConfigError(f"{path}: source name {name!r} must be lower-case letters, digits and _ (it names the DAG)")
        if not isinstance(entry, dict) or not entry.get("table") or not entry.get("location"):
            raise FeedConfigError(f"{path}: source {name!r} needs `table: NS.TABLE` and `location: PATH_OR_GLOB`")
        unknown = set(entry) - _KEYS
        if unknown:
            raise FeedConfigError(f"{path}: source {name!r} has unknown key(s) {', '.join(sorted(unknown))}")
        try:
            table = str(TableName.parse(str(entry["table"])))
            owner = names.check("owner", str(entry["owner"]), "owner") if entry.get("owner") is not None else None
        except TidemarkError as exc:
            raise FeedConfigError(f"{path}: source {name!r}: {exc}") from None
        out.append(
            Feed(
                name=name,
                table=table,
                location=str(entry["location"]),
                schedule=entry.get("schedule", "@hourly"),
                suite=entry.get("suite"),
                format=entry.get("format"),
                owner=owner,
            )
        )
    return out


def land_feed(settings: Settings, feed: Feed) -> list[dict[str, Any]]:
    """Land every file of the feed not yet in the table onto its own audit branch (nothing published).

    A glob that matches no file is not an error for a scheduled run: there is nothing new. A file
    that fails is staged as `{"file", "error"}` and the others still land (`quarantine_staged` fails
    the run naming it).
    """
    from ingest import sources
    from ingest.land import FAILED, land
    from ingest.several import land_each

    location = feed.resolved_location(settings)
    try:
        files = sources.expand(location, settings.catalog.properties)
    except SourceError:
        if sources.GLOB_CHARS & set(location):
            log.info("%s: no file matches; nothing to land", location)
            return []
        raise
    staged: list[dict[str, Any]] = []
    outcomes = land_each(
        files,
        lambda f: land(settings, f, feed.table, suite_file=feed.suite, fmt=feed.format, publish=False, progress=log.info, owner=feed.owner),
        keep_going=True,
    )
    for o in outcomes:
        if o.outcome == FAILED:
            log.error("%s: %s", o.source, o.error)
            staged.append({"file": o.source, "error": str(o.error)})
            continue
        r = o.result
        staged.append({"file": o.source, "skipped": r.skipped, "branch": r.audit_branch, "snapshot_id": r.snapshot_id, "run_id": r.run_id, "rows": r.rows})
        log.info("%s: %s", o.source, "already landed" if r.skipped else f"audited snapshot {r.snapshot_id} on branch {r.audit_branch}")
    return staged


def validate_staged(settings: Settings, table: str, staged: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The gate's decision for each audited landing: which branches to publish, which to quarantine."""
    from ingest.staged import audit_verdict

    decision: dict[str, Any] = {"table": table, "publish": [], "quarantine": [], "verdicts": [], "failed": []}
    for s in staged:
        if s.get("error"):
            decision["failed"].append({"file": s["file"], "error": s["error"]})
            continue
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
    from ingest.staged import publish_audited

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
    """Move the failed landings to quarantine branches, then fail: main is untouched by them. Files
    that could not be landed at all fail the run too, named with their reasons."""
    from ingest.staged import quarantine_audited

    table = decision["table"]
    kept = [quarantine_audited(settings, table, b) for b in decision["quarantine"]]
    failed = decision.get("failed") or []
    unlanded = "; ".join(f"{f['error']}" for f in failed)
    if kept:
        reasons = "; ".join(f"{v['file']}: {v['failures']}" for v in decision["verdicts"] if v["success"] is False)
        raise GateFailedError(
            f"validation gate failed for {table}: {reasons}. main is unchanged; the rows are on "
            f"{', '.join(kept)} (`tidemark ingest quarantine show {table} {kept[0]}`)"
            + (f". Not landed: {unlanded}" if failed else "")
        )
    if failed:
        raise SourceError(f"{len(failed)} file(s) could not be landed into {table} (the others were): {unlanded}")
    return kept
