"""The error every config check raises, and how to find a Ctrl-C that another error arose from."""

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


def interrupted_by(err: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM) that ``err`` arose from, or None.

    Ctrl-C raises KeyboardInterrupt wherever the program is; landing inside a library (OmegaConf, Hydra, pyarrow,
    matplotlib), its clean-up can fail on the half-done work and raise its own error, which then holds the
    KeyboardInterrupt as its context (or its cause's). That is an interrupt, not bad input.
    """
    todo, seen = [err], set()
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen:
            continue
        if isinstance(cur, KeyboardInterrupt):
            return cur
        seen.add(id(cur))
        todo += [cur.__cause__, cur.__context__]
    return None
