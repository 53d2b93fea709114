"""Errors of the models package; each says what to do."""

from __future__ import annotations

from lakehouse.exceptions import InvalidNameError, TidemarkError


class UnknownJobError(TidemarkError):
    """A training job name or entry point that does not resolve."""


class ModelNotFoundError(TidemarkError):
    """A model, version or alias that the registry does not hold."""


class InvalidModelNameError(ModelNotFoundError, InvalidNameError):
    """A model or alias name that breaks its rule (`lakehouse.names`): no such model can exist."""


class TrainingInputError(TidemarkError):
    """A training input table or pinned snapshot is missing or unusable."""


class PromotionRefusedError(TidemarkError):
    """A promotion the gate refused: incomplete lineage, or a worse metric than the alias holder's."""


class ReproduceError(TidemarkError):
    """A version cannot be retrained: its data, table or code is gone."""


class SnapshotExpiredError(ReproduceError):
    """A recorded input snapshot no longer exists in its table."""


class TableDroppedError(ReproduceError):
    """A recorded input table no longer exists in the catalog."""


class DriftError(TidemarkError):
    """A drift check that cannot run: unknown column or snapshot, a table without a baseline."""


class EnvironmentBuildError(ReproduceError):
    """A recorded environment cannot be rebuilt: no list of its packages, a version that cannot be
    installed, no interpreter of its Python version."""


class RecordedCodeError(ReproduceError):
    """The recorded code cannot be got back: not in git, the commit unreachable, the module not in it."""


class SchemaNotRecordedError(TidemarkError):
    """A model version without a recorded input schema (trained before it was recorded, or by a job declaring no features)."""


class PredictionNotFoundError(TidemarkError):
    """No prediction log holds a row with this prediction id."""


class ApprovalRefusedError(TidemarkError):
    """An approval or rejection of a protected alias's request that cannot be taken: unknown or closed
    request, approval by the requester, a gate verdict that no longer holds."""
