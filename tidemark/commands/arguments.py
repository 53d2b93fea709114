"""What the commands share on the way in: a subcommand with `--output`, argument types, and the
table that puts a library's parameter names as the running command's flags."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from lakehouse.exceptions import TidemarkError

if TYPE_CHECKING:
    from lakehouse.config import Settings

Handler = Callable[[argparse.Namespace], int]
Subcommands = Any  # what `add_subparsers()` returns; argparse names its type privately

_OUTPUT = argparse.ArgumentParser(add_help=False)
_OUTPUT.add_argument("--output", choices=("text", "json"), default="text", help="result format (default: text)")


def add_command(
    parent: Subcommands, name: str, handler: Handler, help_text: str, *, parameters: Mapping[str, str] | None = None
) -> argparse.ArgumentParser:
    """A subcommand that `handler` runs, with `--output text|json`.

    `parameters`: library parameter name -> this command's flag, only where the library names a value
    differently from the option's dest (`train(snapshots=...)` is fed by `--snapshot`). Every other
    option's dest already is the library's name, and `flags` finds it from the parser itself.
    """
    sp = parent.add_parser(name, parents=[_OUTPUT], help=help_text, description=help_text)
    sp.set_defaults(handler=handler, command_parser=sp, parameter_flags=dict(parameters or {}))
    return sp


def add_group(parent: Subcommands, name: str, help_text: str) -> Subcommands:
    """A command word with subcommands of its own (`tidemark models ...`); the chosen one is `<name>_command`."""
    return parent.add_parser(name, help=help_text).add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def current_settings() -> Settings:
    """The settings from tidemark.yaml and TIDEMARK__... variables, loaded when a command runs
    (imported here, not at the top, so `tidemark --help` does not pay for it)."""
    from lakehouse.config import load_settings

    settings = load_settings()
    _say_home(settings)
    return settings


_told: set[str] = set()


def _say_home(settings: Settings) -> None:
    """One stderr line when the home is not the working directory's own `.tidemark`, found by
    walking up (as git finds `.git`): the user should know which catalog and broker a command uses."""
    import sys
    from pathlib import Path

    if settings.home_source == "found" and settings.home.parent != Path.cwd().resolve() and str(settings.home) not in _told:
        _told.add(str(settings.home))
        print(f"tidemark: using the home {settings.home} (found above the working directory; TIDEMARK_HOME overrides)", file=sys.stderr)
    elif settings.home_source == "default" and not settings.home.exists() and str(settings.home) not in _told:
        _told.add(str(settings.home))
        print(f"tidemark: no .tidemark here or above; a new home is {settings.home} (TIDEMARK_HOME chooses another)", file=sys.stderr)


def flags(args: argparse.Namespace) -> dict[str, str]:
    """Library parameter name -> the flag of the command that parsed `args` (for `reword`).

    Derived from argparse: each option's dest -> its long option string (`as_of` -> `--as-of`),
    then the command's declared `parameters` where the library's name differs.
    """
    derived = {}
    for action in args.command_parser._actions:  # argparse keeps no public list of a parser's options
        long = [o for o in action.option_strings if o.startswith("--")]
        if long:
            derived[action.dest] = long[0]
    return {**derived, **args.parameter_flags}


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1.

    The same rule as `lakehouse.config._as_count` for settings, kept apart on purpose: argparse needs
    an ArgumentTypeError (a usage error, exit 2, naming the flag), the settings a ConfigError naming
    `section.key`; sharing the check would cost a translation longer than these lines.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def snapshot_ids(pairs: list[str] | None) -> dict[str, int]:
    """`--snapshot TABLE=ID ...` as {table: snapshot id}; a table given twice keeps its last id."""
    given: dict[str, str] = {}
    for item in pairs or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TidemarkError(f"--snapshot {item!r} must look like KEY=VALUE")
        given[key] = value
    out = {}
    for key, value in given.items():
        if not value.isdigit():
            raise TidemarkError(f"--snapshot {key}={value}: a snapshot id is a number")
        out[key] = int(value)
    return out
