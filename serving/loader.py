"""One version made ready to answer: its artifact read from the warehouse, checked against the sha256
the registry recorded, unpickled, with its model card and input schema."""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from lakehouse.config import Settings
from models import artifacts, signature
from models.registry import ModelVersion
from serving.exceptions import ArtifactRefusedError


@dataclass(frozen=True)
class Served:
    """A loaded version. Immutable: a swap replaces the whole object, so a request that took it
    answers with one version from start to end."""

    version: ModelVersion
    alias: str
    estimator: Any
    schema: signature.InputSchema
    card: dict[str, Any]
    loaded_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @cached_property
    def names(self) -> tuple[str, ...]:
        """The input features in the schema's order (the columns of a validated request's matrix)."""
        return tuple(f.name for f in self.schema.fields)

    def identity(self) -> dict[str, Any]:
        """What every answer carries: which version, run and bytes made it."""
        mv = self.version
        return {"model": mv.model, "version": mv.version, "run_id": mv.run_id, "artifact_sha256": mv.sha256}


def load(settings: Settings, mv: ModelVersion, alias: str) -> Served:
    """Read, check and unpickle `mv`'s artifact; ArtifactRefusedError if it is missing or altered,
    SchemaNotRecordedError if the version has no recorded input schema."""
    card = signature.read_card(settings, mv)
    schema = signature.from_card(mv, card)
    try:
        data = artifacts.get(settings, mv.artifact_uri)
    except OSError as exc:
        raise ArtifactRefusedError(
            f"the artifact of {mv.model} version {mv.version} at {mv.artifact_uri} cannot be read ({exc.__class__.__name__}: {exc}); "
            "restore it from a backup or retrain the version (`tidemark retrain`)"
        ) from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != mv.sha256:
        raise ArtifactRefusedError(
            f"the artifact of {mv.model} version {mv.version} at {mv.artifact_uri} has sha256 {digest}, not the {mv.sha256} "
            "the registry recorded: it was altered; restore it or retrain the version (`tidemark retrain`)"
        )
    # Unpickled only once its bytes are the ones training stored (the sha256 above).
    estimator = pickle.loads(data)  # noqa: S301
    return Served(version=mv, alias=alias, estimator=estimator, schema=schema, card=card)
