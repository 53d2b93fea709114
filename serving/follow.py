"""The service follows its alias: whatever version the registry says holds NAME@ALIAS is the one served.

Two triggers, one decision. A Kafka subscriber on the lineage topic wakes the follower on every alias
move or archive of its model (fast: a swap within about a second of the event), and a timer re-reads
the registry every `serving.registry_poll_s` (sure: a missed event, a broker that is down, still ends
in the right version). Either way the registry decides, never the event: an event is only a hint to
look, so a forged or refused move (`lineage.model_store.vet_moves`) can never deploy anything.

A swap loads and checks the new version completely, then replaces one reference: a request holds the
`Served` it started with, so it finishes on the old version, and no request ever sees a half-loaded
one. A failed load keeps the old version and says why (log, metric, and the FAIL of its lineage run).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from lakehouse.config import Settings
from lakehouse.exceptions import TidemarkError
from lineage import model_store
from lineage.run import run as lineage_run
from models.registry import ModelRef, ModelVersion, Registry
from serving.loader import Served, load

log = logging.getLogger(__name__)

# After an event names a version for our alias, how long the registry may take to show it (a move
# from another installation reaches the registry through the lineage consumer, seconds later).
_EVENT_WAIT_S = 15.0
_EVENT_RECHECK_S = 0.25


def group_id(model: str, alias: str) -> str:
    """The subscriber's consumer group: its own per model and alias (the compose stack's Kafka ACL
    grants the `serve` user the prefix `tidemark-serve.`)."""
    return f"tidemark-serve.{model}.{alias}"


class Follower:
    """Holds the version served (`current`) and keeps it equal to the registry's alias holder."""

    def __init__(self, settings: Settings, ref: ModelRef, on_swap: Callable[[Served], None] = lambda _s: None) -> None:
        if ref.alias is None:
            raise ValueError("a followed reference names an alias (NAME@ALIAS)")
        self.settings = settings
        self.ref = ref
        self.model, self.alias = ref.name, ref.alias
        self.current: Served | None = None
        self.on_swap = on_swap
        self.on_refused: Callable[[str], None] = lambda _why: None
        self._registry: Registry | None = None
        self._lock = threading.Lock()  # one check at a time (the timer and the subscriber)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._expect: tuple[int, float] | None = None  # (version an event named, until when to wait for it)
        self._refused: dict[tuple[int, str], tuple[float, float]] = {}  # (version, sha256) -> (next try, pause)
        self._threads: list[threading.Thread] = []
        self.subscribed = threading.Event()  # set while the subscriber reads the topic (tests, /readyz `events`)

    # -- deciding ---------------------------------------------------------------------------------

    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(self.settings)
        return self._registry

    def holder(self) -> ModelVersion:
        return self.registry().resolve(self.ref)

    def start_serving(self) -> Served:
        """The first load, before the service answers: its errors stop the start (one line)."""
        with self._lock:
            served = self._deploy(self.holder(), previous=None)
        self.on_swap(served)
        return served

    def check(self) -> bool:
        """Re-read the registry and swap if the alias moved; True if it swapped. Never raises: a
        registry that cannot be read, or a version that cannot be loaded, keeps what is served."""
        with self._lock:
            try:
                mv = self.holder()
            except Exception as exc:  # a catalog away or broken, whatever it raises: the poll must live on
                log.warning("cannot read the registry for %s (%s); still serving what was loaded", self.ref, exc)
                return False
            current = self.current
            key = (mv.version, mv.sha256)
            if current is not None and (current.version.version, current.version.sha256) == key:
                return False
            retry = self._refused.get(key)
            if retry is not None and time.monotonic() < retry[0]:
                return False  # refused moments ago: tried again later, not on every poll of every worker
            try:
                served = self._deploy(mv, previous=current.version.version if current else None)
            except Exception as exc:  # whatever stops the load (an unpickling error too): keep the old version
                # Tried again after a growing pause (poll interval doubled, at most ten of them): an
                # artifact restored is picked up, a broken one does not fill the lineage log.
                poll = self.settings.serving.registry_poll_s
                pause = min(2 * retry[1], 10 * poll) if retry is not None else poll
                self._refused[key] = (time.monotonic() + pause, pause)
                log.warning("%s moved to version %s, which cannot be served (%s); still serving version %s, trying again in %g s",
                            self.ref, mv.version, exc, current.version.version if current else None, pause)
                self.on_refused(str(exc))
                return False
            self._refused.pop(key, None)
        log.warning("%s now serves version %s (was %s)", self.ref, mv.version, current.version.version if current else None)
        self.on_swap(served)
        return True

    def _deploy(self, mv: ModelVersion, previous: int | None) -> Served:
        """Load and check `mv` inside the lineage run `serve.NAME` (input: the version), so every
        deployment, and every refused one with its reason, is in the lineage store. The swap is made
        inside the run, as soon as the version is loaded: the COMPLETE event goes to the outbox after it
        and never delays the swap."""
        dataset = self.registry().model_dataset(mv)
        with lineage_run(
            f"serve.{self.model}",
            inputs=[dataset],
            parameters={"alias": self.alias, "version": mv.version, "previous_version": previous},
            settings=self.settings,
        ):
            served = load(self.settings, mv, self.alias)
            self.current = served  # the swap: one reference; requests in flight keep the one they took
        return served

    # -- the triggers -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the timer and the subscriber threads (daemons: they never hold the process up)."""
        for target, name in ((self._poll, "registry-poll"), (self._subscribe, "alias-events")):
            t = threading.Thread(target=target, name=f"serve-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=5)

    def _poll(self) -> None:
        while not self._stop.is_set():
            expecting = self._expect is not None
            self._wake.wait(_EVENT_RECHECK_S if expecting else self.settings.serving.registry_poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.check()
            if self._expect is not None:
                version, until = self._expect
                current = self.current
                if current is not None and current.version.version == version or time.monotonic() > until:
                    self._expect = None

    def notice(self, event: dict[str, Any]) -> None:
        """An event from the topic: wake the timer if it moves or archives a version of our model."""
        for move in model_store.alias_rows_from_event(event):
            if move["model"] != self.model:
                continue
            if move["action"] == "set" and move["alias"] == self.alias and move["version"] is not None:
                self._expect = (int(move["version"]), time.monotonic() + _EVENT_WAIT_S)
            self._wake.set()

    def _subscribe(self) -> None:
        """Read the lineage topic from its end, reconnecting while the broker is away."""
        import orjson
        from kafka import TopicPartition

        from lineage.broker import bootstrap_servers
        from lineage.kafka import consumer, ensure_topic

        topic = self.settings.kafka.topic
        # A group of our own (DESIGN: each subscriber its own), but partitions by assign(): every
        # worker process must see every event, and assign() needs no group rebalance to start.
        group = group_id(self.model, self.alias)
        down_since: float | None = None
        probe_ms = int(max(1.0, self.settings.kafka.connect_timeout_s) * 1000)
        while not self._stop.is_set():
            kc = None
            try:
                address = bootstrap_servers(self.settings)
                ensure_topic(self.settings)
                kc = consumer(self.settings, group)
                tps = [TopicPartition(topic, p) for p in sorted(kc.partitions_for_topic(topic) or [])]
                if not tps:
                    raise TidemarkError(f"topic {topic} has no partitions yet")
                kc.assign(tps)
                kc.seek_to_end(*tps)
                for tp in tps:
                    kc.position(tp)  # resolve the end now: an event from here on is seen
                if down_since is not None:
                    log.warning("the lineage topic answers again; following %s by events (worker pid %d)", self.ref, os.getpid())
                    self._wake.set()  # moves made while it was away: the registry has them
                down_since = None
                self.subscribed.set()
                look = time.monotonic() + 2.0
                while not self._stop.is_set():
                    if time.monotonic() >= look:
                        # The local broker stopped, or came back on another port with an empty log:
                        # kafka-python would retry the old address forever, so connect again.
                        look = time.monotonic() + 2.0
                        if bootstrap_servers(self.settings) != address:
                            raise TidemarkError("the local broker was restarted on another port")
                        # A configured broker that went away: kafka-python's poll() answers nothing
                        # rather than failing, so ask the topic's end, which fails then (and clears
                        # `subscribed` for /readyz until it answers again).
                        kc.end_offsets(tps, timeout_ms=probe_ms)
                    for recs in kc.poll(timeout_ms=200).values():
                        for r in recs:
                            try:
                                event = orjson.loads(r.value)
                            except orjson.JSONDecodeError:
                                continue  # not ours to judge: the lineage consumer dead-letters it
                            if isinstance(event, dict):
                                self.notice(event)
            except Exception as exc:  # any broker fault: keep serving, try again
                self.subscribed.clear()
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning("cannot read the lineage topic (%s); serving goes on, the registry is checked every %g s",
                                exc, self.settings.serving.registry_poll_s)
                self._stop.wait(2.0)
            finally:
                if kc is not None:
                    try:
                        kc.close(autocommit=False)
                    except Exception:  # closing a consumer of a dead broker: nothing to save
                        pass
