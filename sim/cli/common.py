"""What every console command does around its work: Ctrl-C and Hydra's own errors as one line."""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from sim.config.errors import interrupted_by
from sim.config.overrides import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED, hydra_error_line


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
                with sigterm_as_interrupt():
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
    """Print ``<prog>: interrupted`` (or ``terminated``, or the interrupt's own line) and exit 130 (143 for SIGTERM)."""
    word = "terminated" if isinstance(err, Terminated) else "interrupted"
    plain = f"{word}; re-run to resume" if resumable else word
    print(f"{prog}: {str(err) or plain}", file=sys.stderr)
    sys.exit(EXIT_TERMINATED if isinstance(err, Terminated) else EXIT_INTERRUPTED)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, as Ctrl-C raises KeyboardInterrupt."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, ``timeout``, a job scheduler's stop) ends a command as Ctrl-C does: its one line, and the
    clean-up on the way out (no temporary file left behind); Python's default ends it at once, without a word."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr and exit 2 (the standard of every command)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def file_arg(text: str) -> Path:
    """A file argument (``--out``, ``--csv``, an input CSV): a path, never the empty string (argparse would make it
    '.', the working folder, and the error would name a '.' the user never typed)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("needs a file, not an empty string")
    return Path(text)


def folder_arg(text: str) -> Path:
    """An ``--out`` folder: a path, never the empty string (argparse would make it '.', the working folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("needs a folder, not an empty string")
    return Path(text)


_OUTPUT_DIRS = ("hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir", "hydra.runtime.output_dir")


def hydra_split(prog: str, overrides: list[str], out: bool = True) -> tuple[list[str], list[str]]:
    """(``overrides`` less Hydra's own settings and groups, ``hydra.*`` and ``hydra/...``; a note for each of those).
    A command other than ``llmsim`` composes its config with Hydra but does not run as a Hydra app: those would
    be dropped unsaid (or refused, as ``+hydra.run.dir=`` is) while its files went elsewhere. ``out``: the command
    writes its files to ``--out`` (the note on an output folder says so)."""
    kept, notes = [], {}
    for o in overrides:
        key = o.partition("=")[0].lstrip("+~")
        if not key.startswith(("hydra.", "hydra/")) or not ("=" in o or o.startswith("~")):  # no value: the checks say
            kept.append(o)
            continue
        hint = f"; {prog} takes --out for its output folder" if out and key in _OUTPUT_DIRS else ""
        notes.setdefault(key, f"{key} is not used: only llmsim runs as a Hydra app{hint}")
    return kept, list(notes.values())


def print_notes(prog: str, notes: list[str]) -> None:
    """Each note as one line on stderr (the run goes on)."""
    print(*(f"{prog}: note: {n}\n" for n in notes), sep="", end="", file=sys.stderr)
