"""The continuous loop, shown end to end: `tidemark demo --airflow` (`make airflow-demo`).

Starts the local stack (Airflow's scheduler, API server, DAG processor and triggerer on the
LocalExecutor, and the lineage consumer, all supervised by `tidemark.airflow_stack`), then makes the
only two moves a user makes: it lands a first batch of wine data (a file in the ingest DAG's landing
folder, and a run of `ingest_wine`), and later a second batch whose alcohol has drifted. Everything
else is Airflow's scheduler acting on asset events: `train_wine_classifier` trains and promotes the
first version, `monitor_wine` finds the drift, `renew_wine` trains a candidate and promotes it or
keeps it with the reason. Each DAG run is printed as it starts and ends, with the snapshot ids of
the asset events, the versions and the decision; the demo ends with `tidemark trace wine@production`.

It watches Airflow through Airflow's own metadata database (read-only: `dag_run`, `asset_event`), as
the tests do, and Tidemark through its registry and lineage store.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.config import Settings
from lakehouse.exceptions import TidemarkError
from tidemark import airflow_env
from tidemark.airflow_stack import AirflowStack, local_environ

MODEL = "wine"
INGEST_DAG = "ingest_wine"
DAGS = (INGEST_DAG, "train_wine_classifier", "monitor_wine", "renew_wine")


class AirflowDemoError(TidemarkError):
    """The Airflow demo could not finish: a DAG run failed or a step took longer than its bound."""


@dataclass
class Watcher:
    """Airflow's DAG runs and asset events, read from its metadata database, printed once each."""

    conn: str
    say: Callable[[str], None]
    seen: dict[tuple[str, str], str] = field(default_factory=dict)
    events_seen: int = 0

    def _rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.conn)
        try:
            with engine.connect() as c:
                return [dict(r._mapping) for r in c.execute(sqlalchemy.text(sql), params)]
        finally:
            engine.dispose()

    def runs(self) -> list[dict[str, Any]]:
        return self._rows("SELECT dag_id, run_id, state, run_type FROM dag_run ORDER BY id")

    def dags_parsed(self) -> set[str]:
        return {r["dag_id"] for r in self._rows("SELECT dag_id FROM dag")}

    def poll(self) -> list[dict[str, Any]]:
        """Print the runs that started or ended and the asset events since the last poll; all runs."""
        runs = self.runs()
        for r in runs:
            key, state = (r["dag_id"], r["run_id"]), str(r["state"])
            if self.seen.get(key) != state:
                self.seen[key] = state
                self.say(f"DAG run {r['dag_id']} {r['run_id']}: {state}")
        events = self._rows(
            "SELECT a.uri, e.extra, e.source_dag_id, e.source_run_id FROM asset_event e JOIN asset a ON a.id = e.asset_id ORDER BY e.id"
        )
        for e in events[self.events_seen :]:
            self.say(f"asset event {e['uri']} from {e['source_dag_id']} {e['source_run_id']}: {e['extra']}")
        self.events_seen = len(events)
        return runs


def _wait(what: str, done: Callable[[], Any], watcher: Watcher, stack: AirflowStack, deadline: float) -> Any:
    """Poll until `done()` answers something truthy, printing Airflow's progress; fail on a failed
    DAG run, a stack part that keeps dying, or the deadline."""
    while True:
        runs = watcher.poll()
        failed = [r for r in runs if r["state"] == "failed" and r["dag_id"] in DAGS]
        if failed:
            f = failed[0]
            raise AirflowDemoError(
                f"DAG run {f['dag_id']} {f['run_id']} failed while waiting for {what}; its task logs are under "
                f"{stack.env['AIRFLOW_HOME']}/logs"
            )
        answer = done()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AirflowDemoError(f"timed out waiting for {what}; see the logs under {stack.env['AIRFLOW_HOME']}/stack")
        stack.restart_dead()
        time.sleep(1)


def _trigger(env: Mapping[str, str], dag_id: str) -> str:
    proc = subprocess.run(["airflow", "dags", "trigger", dag_id, "-o", "json"], env=dict(env), capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise AirflowDemoError(f"`airflow dags trigger {dag_id}` failed: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return dag_id


def run_airflow_demo(
    settings: Settings,
    cli: Callable[[list[str]], int],
    *,
    api_port: int = 8080,
    timeout_s: float = 600,
    keep_running: bool = False,
    say: Callable[[str], None] = print,
    base_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run the loop (see the module docstring); returns what it observed (runs, versions, decision)."""
    from models.registry import Registry
    from models.status import status
    from tidemark.demo import write_drifted_wine_csv, write_wine_csv

    def step(title: str) -> None:
        say(f"\n== {title}")

    step("Start the local stack: broker, lineage topic and tables")
    if cli(["up"]) != 0:
        raise AirflowDemoError("`tidemark up` failed; see above")
    env = local_environ(settings, base=base_env, api_port=api_port)
    # The loop needs a first production holder to watch: the training DAG promotes it through the gate.
    env.setdefault("TIDEMARK__MODELS__PROMOTE_FIRST_VERSION", "true")
    stack = AirflowStack(env, consumer=True)
    conn = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or f"sqlite:///{Path(env['AIRFLOW_HOME']) / 'airflow.db'}"
    watcher = Watcher(conn, say)
    step("Start Airflow (scheduler, API server, DAG processor, triggerer; LocalExecutor) and the lineage consumer")
    stack.migrate()
    stack.start()
    deadline = time.monotonic() + timeout_s
    try:
        say(f"Airflow UI: http://localhost:{stack.port}  login: {airflow_env.ADMIN} / {airflow_env.admin_password(env)}")
        _wait("Airflow to parse the DAGs", lambda: set(DAGS) <= watcher.dags_parsed(), watcher, stack, deadline)

        step("Land batch 1: scikit-learn's wine data into the ingest DAG's landing folder, and run ingest_wine")
        landing = settings.home / "landing" / "wine"
        first = write_wine_csv(landing / "wine-batch-1.csv")
        say(f"wrote {first}")
        _trigger(env, INGEST_DAG)
        registry = Registry(settings)

        def holder() -> int | None:
            return Registry(settings).current_aliases().get((MODEL, "production"))

        step("Airflow by itself: the asset event starts train_wine_classifier, which trains and promotes the first version")
        v1 = _wait("a first production version", holder, watcher, stack, deadline)
        say(f"{MODEL}@production is version {v1}")

        step("Land batch 2: the same wines with alcohol moved by two standard deviations")
        second = write_drifted_wine_csv(first, landing / "wine-batch-2.csv")
        say(f"wrote {second}")
        _trigger(env, INGEST_DAG)

        step("Airflow by itself: monitor_wine finds the drift, renew_wine trains a candidate and decides")

        def decided() -> dict[str, Any] | None:
            st = status(settings, MODEL)
            d = st["last_decision"]
            return st if d and d.get("holder_version") == v1 and d.get("trigger") == "drift" else None

        st = _wait("the renewal decision", decided, watcher, stack, deadline)

        def renew_ended() -> bool:
            runs = [r for r in watcher.runs() if r["dag_id"] == "renew_wine" and r["run_type"] == "asset_triggered"]
            return bool(runs) and all(r["state"] in ("success", "failed") for r in runs)

        _wait("the renew_wine run to end", renew_ended, watcher, stack, deadline)
        drift = st["last_drift_check"] or {}
        say(f"drift check {drift.get('run_id')}: {'DRIFT' if drift.get('drifted') else 'no drift'}: "
            + "; ".join("; ".join(t["reasons"]) for t in drift.get("tables", [])))
        d = st["last_decision"]
        verdict = f"promoted version {d['candidate_version']}" if d["promoted"] else f"kept version {d['candidate_version']} as a candidate"
        say(f"renewal ({d['trigger']}): {verdict}: {d['reason']}")

        step(f"Trace {MODEL}@production to its data and the DAG runs that made it")
        cli(["trace", f"{MODEL}@production"])
        watcher.poll()
        return {
            "first_version": v1,
            "status": st,
            "runs": watcher.runs(),
            "production": registry.current_aliases().get((MODEL, "production")),
            "airflow_ui": f"http://localhost:{stack.port}",
        }
    finally:
        if keep_running:
            say(f"\nAirflow and the consumer keep running (Ctrl-C stops them): http://localhost:{stack.port}")
            from tidemark.airflow_stack import supervise

            supervise(stack)
        else:
            step("Stop Airflow and the lineage consumer")
            stack.stop(grace_s=10)
