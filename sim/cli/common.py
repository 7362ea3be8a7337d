"""What every console command does around its work: Ctrl-C and Hydra's own errors as one line."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from sim.config.overrides import EXIT_BAD_INPUT, EXIT_INTERRUPTED, hydra_error_line


def one_line_errors(prog: str, resumable: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a command's ``main``: Ctrl-C prints ``<prog>: interrupted`` and exits 130; an error of Hydra or
    OmegaConf that the command did not catch itself (a bad override, a missing preset), or a file that could
    not be read or written (an OSError: a folder where a result file goes, a full disk), prints one line and
    exits 2.

    Args:
        prog: the command's name, the start of its lines.
        resumable: the command resumes its work when run again (the line says so).
    """
    def wrap(main: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(main)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return main(*args, **kwargs)
            except KeyboardInterrupt as err:
                interrupted(prog, err, resumable)
            except (HydraException, OmegaConfBaseException) as err:
                if interrupted_by(err) is not None:
                    interrupted(prog, interrupted_by(err), resumable)
                print(f"{prog}: error: {hydra_error_line(err)}", file=sys.stderr)
                sys.exit(EXIT_BAD_INPUT)
            except BrokenPipeError:  # the reader of the output went away (``| head``): end quietly
                output_closed()
            except OSError as err:  # a file that could not be read or written (sim.output.files.OutputWriteError)
                print(f"{prog}: error: {err}", file=sys.stderr)
                sys.exit(EXIT_BAD_INPUT)
        return guarded
    return wrap


def output_closed() -> None:
    """The process's output was a pipe whose reader closed it: exit 1 without a word (what Python's docs advise:
    standard output pointed at /dev/null, so that flushing it at exit does not fail again)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)


def interrupted(prog: str, err: KeyboardInterrupt, resumable: bool) -> None:
    """Print ``<prog>: interrupted`` (or the interrupt's own line) and exit 130."""
    plain = "interrupted; re-run to resume" if resumable else "interrupted"
    print(f"{prog}: {str(err) or plain}", file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)


def interrupted_by(err: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C that ``err`` arose from, or None.

    Ctrl-C raises KeyboardInterrupt wherever the program is; landing inside OmegaConf or Hydra, their
    clean-up can fail on the half-done change and raise their own error, which then holds the
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


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr and exit 2 (the standard of every command)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
