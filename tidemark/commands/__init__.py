"""The `tidemark` subcommands, one module per noun.

Each module holds its commands' parser, handler and text rendering together and adds them with
`register(subparsers)`; `tidemark/cli.py` calls the registers in order and runs the one error
handler. Adding a command means editing one module here. Heavy libraries are imported inside the
handlers, so `tidemark --help` imports none of them.
"""
