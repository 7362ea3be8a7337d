"""The error every config check raises."""

from __future__ import annotations


class RunError(ValueError):
    """A configuration that cannot be simulated as asked."""


def check_at_most(key: str, value: float | None, limit: float, why: str) -> None:
    """Raise RunError when ``key``'s ``value`` is above ``limit``, the top of its sane range (``why`` says why).

    The tops are generous (well beyond any deployment of 2024) so that a what-if passes and
    only a typo or a unit slip is stopped before it prints numbers that look like results.
    """
    from hwmodels.limits import plain_number

    if value is not None and value > limit:
        raise RunError(f"{key}={plain_number(value)} is out of range: at most {plain_number(limit)} ({why})")
