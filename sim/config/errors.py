"""The error every config check raises."""

from __future__ import annotations


class RunError(ValueError):
    """A configuration that cannot be simulated as asked."""
