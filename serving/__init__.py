"""Serving: the alias holder answers requests; every prediction is logged to the lakehouse (`predlog`)."""

__all__ = ["exceptions", "predlog"]
