"""The `tidemark` command: assembles the subcommands of `tidemark/commands/`, sets up logging and
runs the chosen one under the one error handler. It holds no logic.

Heavy libraries (pyiceberg, Great Expectations, scikit-learn) are imported inside the commands
that use them, so `tidemark --help` answers at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from tidemark.commands import catalog, ingest, lineage, maintenance, models, serve, sql, stack, train
from tidemark.commands.arguments import flags

# The order of `tidemark --help`.
COMMANDS = (stack, ingest, train, lineage, sql, models, serve, maintenance, catalog)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tidemark",
        description="Know which data, code and parameters produced a model, and produce it again.",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return p


def _no_deprecations(record: logging.LogRecord) -> bool:
    return "DeprecationWarning: " not in record.getMessage()


def _set_up_logging(verbose: bool) -> None:
    from lakehouse.redact import RedactingFilter

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())  # no credential reaches a log line
    # Warnings become log lines (Great Expectations turns this on at import anyway), and libraries'
    # deprecation notices are for their developers, not our users: kafka-python's, raised while
    # another library had turned every warning on, once broke an error that must be one line.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").addFilter(_no_deprecations)
    if not verbose:
        # kafka-python logs every refused connection as an ERROR; our own error names the address once.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `tidemark` command and return its exit status. What the caller sees when it fails:

    - a usage error argparse finds (an unknown command or flag, a bad value for a typed option):
      argparse's usage line and `tidemark ...: error: ...` on stderr, exit 2 (argparse exits itself);
    - a TidemarkError (bad input, something missing, a service that does not answer, a flag
      combination a command refuses): exactly one line `tidemark: error: MESSAGE` on stderr, exit 1.
      A library error about a parameter it took names it as this command's flag (`as_of` -> `--as-of`,
      see `tidemark.commands.arguments.flags`); credentials are masked;
    - a reader that closed stdout early (`... | head -2`): nothing more is printed, exit 0;
    - Ctrl-C (KeyboardInterrupt): `tidemark: interrupted` on stderr, exit 130 (128 + SIGINT, as shells
      report it). `lineage watch` ends on Ctrl-C with exit 0, and `lineage consume` without --once
      stops at the end of its batch and reports, exit 0: for them it is the normal way to stop;
    - anything else is a bug: its traceback (credentials masked) on stderr, exit 1.
    """
    args = build_parser().parse_args(argv)
    _set_up_logging(args.verbose)
    from lakehouse.exceptions import TidemarkError, reword
    from lakehouse.redact import redact

    try:
        code = int(args.handler(args))
        sys.stdout.flush()  # inside the handler below: a reader that left early is seen here, not at exit
        return code
    except BrokenPipeError:
        # The reader closed our stdout (`tidemark trace ... | head -2`): it has what it wanted. End
        # quietly with 0 as other Unix tools do; stdout goes to /dev/null so the interpreter's own
        # flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except TidemarkError as exc:
        print(f"tidemark: error: {redact(reword(exc, flags(args)))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tidemark: interrupted", file=sys.stderr)
        return 130
    except Exception:
        # An unexpected error keeps its traceback, minus any credential a library put in it.
        import traceback

        print(redact(traceback.format_exc()), end="", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
