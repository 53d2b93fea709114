"""Errors of the lineage package; each message names the thing and the fix."""

from __future__ import annotations

from lakehouse.exceptions import TidemarkError


class BrokerUnavailableError(TidemarkError):
    """No Kafka broker answered at the configured or local address."""


class LocalBrokerError(TidemarkError):
    """The embedded broker could not be started, found or stopped."""


class EmitError(TidemarkError):
    """An event could not be delivered to the lineage topic."""


class NotFoundError(TidemarkError):
    """A model, alias, version, run or dataset asked about is not in the lineage store."""


class ConsumerError(TidemarkError):
    """The lineage consumer cannot run as asked (a missing package, partitions that do not exist)."""


class LineageStalledError(TidemarkError):
    """Lineage events are waiting and the consumer is not storing them."""


class RenderError(TidemarkError):
    """A picture could not be drawn: the layout engine (Graphviz's dot) is missing or failed."""


class RegistryKeyError(TidemarkError):
    """The key that signs registry changes (`lineage.registry_key` or TIDEMARK_HOME/registry.key) cannot be read."""


class WebhookError(TidemarkError):
    """A notification the webhook subscriber could not deliver: no URL configured, or the receiver refused it."""
