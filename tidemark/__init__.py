"""Tidemark: which data, code and parameters produced a model in production, and how to produce it again.

This package is the shell: the `tidemark` CLI and the demo scenario. Logic lives in `lakehouse`,
`ingest`, `lineage` and `models`.

Nothing imports the shell (tests/test_architecture.py): its `__all__` names nothing for other packages.
"""

__all__: list[str] = []

__version__ = "0.1.0"
