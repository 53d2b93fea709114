"""The error handler's contract (see `tidemark.cli.main`): one line and exit 1 for a TidemarkError,
in the words of the command being run; exit 2 for usage errors; Ctrl-C is exit 130, or the normal
end of the commands that run until stopped."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse.exceptions import TidemarkError, reword
from tidemark.cli import build_parser, main
from tidemark.commands.arguments import flags


def _one_line(capsys: Any, argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 1, (out, err)
    assert out == "" and err.count("\n") == 1 and err.startswith("tidemark: error: "), err
    return err.strip()


@pytest.mark.parametrize(
    "argv, says",
    [
        (["ingest", "a.csv"], "--table NS.TABLE is required to land a file"),
        (["ingest", "quarantine", "list", "raw.a", "raw.b"], "usage: tidemark ingest quarantine list [NS.TABLE]"),
        (["ingest", "quarantine", "show", "raw.a"], "usage: tidemark ingest quarantine show NS.TABLE BRANCH"),
        (["train", "wine_classifier", "--snapshot", "raw.wine"], "--snapshot 'raw.wine' must look like KEY=VALUE"),
        (["train", "wine_classifier", "--snapshot", "raw.wine=latest"], "--snapshot raw.wine=latest: a snapshot id is a number"),
        (["models", "history", "wine", "--at", "2026-11-26T10:00:00Z"], "--at needs --alias, e.g. --alias production"),
        (["models", "drift", "wine", "--snapshot", "raw.wine=1"], "--snapshot chooses what a new check compares; add --check"),
        (["models", "drift", "wine", "--plot", "psi.pdf"], "--plot psi.pdf: the chart is written as SVG or PNG; name the file FILE.svg or FILE.png"),
        (["lineage", "consume", "--partitions", "one,two"], "--partitions 'one,two' is not a list of partition numbers"),
        (["airflow"], "give Airflow's arguments, e.g. `tidemark airflow standalone`"),
    ],
)
def test_a_refused_flag_combination_is_one_line_and_exit_1(argv: list[str], says: str, capsys: Any) -> None:
    assert says in _one_line(capsys, argv)


@pytest.mark.parametrize(
    "argv, says",
    [
        (["models", "history", "wine", "--alias", "production", "--at", "noon"], "--at 'noon' is not an ISO-8601 time"),
        (["sql", "SELECT 1", "--as-of", "2026-11-26"], "--as-of '2026-11-26' has no time zone; add one, e.g. 2026-11-26T00:00:00Z"),
        (["lineage", "upstream", "raw.t", "--as-of", "yesterday"], "--as-of 'yesterday' is not an ISO-8601 time"),
        (["retrain", "wine", "--as-of", "1795716000"], "(an epoch number is not accepted: its unit cannot be told; as seconds 2026-11-26T18:00:00Z"),
    ],
)
def test_a_time_is_refused_in_the_words_of_its_flag(argv: list[str], says: str, capsys: Any) -> None:
    """Every TIME flag is read by lakehouse.times.parse_time, before anything is opened."""
    assert says in _one_line(capsys, argv)


@pytest.mark.parametrize("argv", [["models", "nosuch"], ["status", "--output", "yaml"], ["train"], ["lineage", "consume", "--interval", "soon"]])
def test_usage_errors_exit_2_as_argparse_does(argv: list[str], capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: tidemark") and "error: " in err.splitlines()[-1], err


def test_a_library_error_names_the_flag_of_the_command_run(capsys: Any) -> None:
    from lakehouse.config import load_settings
    from models.exceptions import TrainingInputError
    from models.jobs import get_job
    from models.train import train

    # The library speaks Python: its parameter, as the function took it...
    with pytest.raises(TrainingInputError) as caught:
        train(load_settings(), get_job("wine_classifier"), snapshots={"raw.nope": 1})
    assert caught.value.parameter == "snapshots" and str(caught.value).startswith("snapshots raw.nope: ")
    # ...and the CLI says it with the flag that fed it, for each command that passes it.
    line = _one_line(capsys, ["train", "wine_classifier", "--snapshot", "raw.nope=1"])
    assert line == "tidemark: error: --snapshot raw.nope: job wine_classifier reads only raw.wine"


def _parsed(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def test_the_flag_table_comes_from_the_parser_plus_the_names_a_command_declares() -> None:
    # Derived: each option's dest is the library's name for it.
    assert flags(_parsed(["retrain", "wine", "--as-of", "2026-11-26"]))["as_of"] == "--as-of"
    assert flags(_parsed(["models", "history", "wine"]))["at"] == "--at"
    assert flags(_parsed(["lineage", "graph", "raw.wine", "-o", "g.svg"]))["out"] == "--out"  # the long form
    consume = flags(_parsed(["lineage", "consume"]))
    assert consume["batch_size"] == "--batch-size" and consume["partitions"] == "--partitions"
    # Declared: where the library's name differs from the dest.
    assert consume["interval_s"] == "--interval"
    for argv in (["train", "j"], ["models", "drift", "wine"], ["models", "renew", "wine@production"]):
        assert flags(_parsed(argv))["snapshots"] == "--snapshot", argv
    assert "snapshots" not in flags(_parsed(["retrain", "wine"]))  # only the commands that have the flag


def _commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _commands(sub)
    if parser.get_default("handler"):
        yield parser


def test_every_declared_parameter_names_a_flag_its_command_has() -> None:
    commands = list(_commands(build_parser()))
    assert len(commands) == 37  # every leaf command, so none is skipped
    for parser in commands:
        options = {o for a in parser._actions for o in a.option_strings}
        for parameter, flag in parser.get_default("parameter_flags").items():
            assert flag in options, f"{parser.prog}: {parameter} -> {flag}, which it does not have"


def test_reword_leaves_dotted_names_and_other_words_alone() -> None:
    exc = TidemarkError("table 'raw' is not of the form namespace.table; table.name neither", parameter="table")
    assert reword(exc, {"table": "--table"}) == "--table 'raw' is not of the form namespace.table; table.name neither"
    exc = TidemarkError("as_of 'soon' is not a time; was_of and as_of_x are other words. Check as_of.", parameter="as_of")
    assert reword(exc, {"as_of": "--as-of"}) == "--as-of 'soon' is not a time; was_of and as_of_x are other words. Check --as-of."
    assert reword(TidemarkError("as_of is bad"), {"as_of": "--as-of"}) == "as_of is bad"  # no parameter: as it is


class _SilentKafka:
    """A TCP listener that accepts and never answers: a command waiting on Kafka blocks there, and
    the accepted connection tells the test that it got that far."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(60)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"

    def wait_for_client(self) -> None:
        conn, _ = self.sock.accept()
        conn.close()


def _start(*argv: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tidemark", *argv], env={**os.environ, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_ctrl_c_is_one_line_and_exit_130() -> None:
    kafka = _SilentKafka()
    env = {"TIDEMARK__KAFKA__BOOTSTRAP_SERVERS": kafka.address, "TIDEMARK__KAFKA__CONNECT_TIMEOUT_S": "60"}
    proc = _start("up", env=env)
    kafka.wait_for_client()  # `up` is creating the lineage topic
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert [line for line in err.splitlines() if not line.startswith("  [")] == ["tidemark: interrupted"], err


def test_ctrl_c_ends_a_watch_normally() -> None:
    kafka = _SilentKafka()
    proc = _start("lineage", "watch", env={"TIDEMARK__KAFKA__BOOTSTRAP_SERVERS": kafka.address, "TIDEMARK__KAFKA__CONNECT_TIMEOUT_S": "60"})
    kafka.wait_for_client()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out, err) == (0, "", "")


@pytest.mark.integration
def test_ctrl_c_stops_a_running_consumer_which_reports(kafka_env: str, isolated_env: Path) -> None:
    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings

    proc = _start("lineage", "consume", "--output", "json", env={})
    catalog = load_catalog(load_settings())
    deadline = time.monotonic() + 120
    # The consumer makes its tables after it has taken over Ctrl-C: from then on, Ctrl-C means stop.
    while not catalog.table_exists(("lineage", "events")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["records"] == 0


def test_a_closed_stdout_ends_the_command_quietly_with_exit_0(tmp_path: Path) -> None:
    """`tidemark ... | head -2`: the reader goes away; no BrokenPipeError traceback, exit 0."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes a byte
    try:
        proc = subprocess.run([sys.executable, "-m", "tidemark", "status", "--output", "json"], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120, env={**os.environ, "TIDEMARK_HOME": str(tmp_path / "h")})
    finally:
        os.close(write)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_a_command_run_below_the_home_uses_it_and_says_so(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".tidemark").mkdir(parents=True)
    (project / "notebooks").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEMARK")}
    proc = subprocess.run([sys.executable, "-m", "tidemark", "status", "--output", "json"], capture_output=True, text=True,
                          timeout=120, cwd=project / "notebooks", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["home"] == str((project / ".tidemark").resolve())
    assert f"using the home {(project / '.tidemark').resolve()} (found above the working directory" in proc.stderr
    assert not (project / "notebooks" / ".tidemark").exists()  # no new empty home beside it
