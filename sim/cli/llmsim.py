"""The ``llmsim`` command: a Hydra app over conf/.

Before Hydra composes anything, the command-line overrides are checked against the schema
(sim/config/overrides.py) so that an unknown preset, a misspelt key or a value of the wrong
type gets one line that names the problem and the fix; the job itself is sim/studies/job.py.
Hydra's own errors (an override it cannot parse, a launcher or preset it cannot find, a value
its schema refuses) are caught around the app and reduced to one line, exit 2; Ctrl-C is one
line (with how many points of a multirun finished), exit 130. ``HYDRA_FULL_ERROR=1`` keeps
Hydra's full traceback, for debugging.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from sim.cli.common import interrupted, output_closed, sigterm_as_interrupt
from sim.config.errors import interrupted_by
from sim.config.overrides import EXIT_BAD_INPUT, InputError, check_override, hydra_error_line
from sim.config.paths import CONF_DIR, OutputDirError, output_dir
from sim.config.schema import register_configs
from sim.output.files import OutputWriteError, holding
from sim.studies.job import run_job


def main() -> None:
    """Console entry point."""
    register_configs()
    args = sys.argv[1:]
    multirun = is_multirun(args)
    try:
        for arg in args:
            check_not_search(arg)
            check_override(arg, multirun)
            check_output_dir(arg)
        check_default_output(args)
    except (InputError, OutputDirError) as err:
        print(f"llmsim: error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    debugging = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors to us instead of printing them and exiting 1
    try:
        with sigterm_as_interrupt(), _holding_run_dir(args, multirun):
            _hydra_main()
    except OutputWriteError as err:  # the named run folder is another llmsim command's (FolderInUse)
        print(f"llmsim: error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt as err:  # sim/studies/sweep/callbacks.Interrupted carries a multirun's count
        interrupted("llmsim", err, multirun)
    except (HydraException, OmegaConfBaseException) as err:
        if interrupted_by(err) is not None:  # Ctrl-C inside OmegaConf, whose clean-up then failed
            interrupted("llmsim", interrupted_by(err), multirun)
        if debugging:
            raise
        print(f"llmsim: error: {hydra_error_line(err)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except BrokenPipeError:  # ``llmsim ... | head``: the files are written; the console's reader went away
        output_closed()
    except OSError as err:  # a file Hydra or a sweep's bookkeeping could not write (a run's own: sim/studies/job.py)
        print(f"llmsim: error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def console() -> None:
    """The ``llmsim`` console script: ``main``; then a single run exits at once (``leave_now``)."""
    main()
    if not is_multirun(sys.argv[1:]):
        leave_now()


def is_multirun(args: list[str]) -> bool:
    return any(a in ("-m", "--multirun") or a.startswith("+experiment=") for a in args)


def leave_now() -> None:
    """Exit with status 0 at once, the output flushed and the log closed, without freeing the run's objects one
    by one (a trace replay's millions of them take about a second to tear down). Only from the console script
    (``main`` called in a process that goes on, as a test does, returns), and not after a multirun, whose
    launcher may still have exit handlers to run."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def check_not_search(arg: str) -> None:
    """A search recipe is llmsim-search's: given to llmsim it would run one point and print nothing."""
    key, _, value = arg.partition("=")
    if key.lstrip("+") == "search":
        raise InputError(f"{arg} is a search recipe; run it with llmsim-search +search={value} [overrides]")


def check_output_dir(arg: str) -> None:
    """Check the output folder an override names (``hydra.run.dir=``, ``hydra.sweep.dir=``) before Hydra starts.

    Raises:
        OutputDirError: the folder is a file, or lies under one, or cannot be written.
    """
    key, _, value = arg.partition("=")
    if key in ("hydra.run.dir", "hydra.sweep.dir") and not value.strip():
        raise OutputDirError(f"{key} is empty: give a folder (an empty one wrote the results into the working "
                             "directory itself)")
    if key in ("hydra.run.dir", "hydra.sweep.dir") and "$" not in value:  # ${now:...}: Hydra's
        output_dir(value, create=False)  # relative to the working directory, as Hydra resolves it


def check_default_output(args: list[str]) -> None:
    """Without an output folder named, the results go under ./results (conf/config.yaml): checked before Hydra starts
    too, so that a read-only working directory is one line naming the folder, not a bare errno."""
    if not any(a.partition("=")[0] in ("hydra.run.dir", "hydra.sweep.dir") for a in args):
        output_dir("results", create=False)


def _holding_run_dir(args: list[str], multirun: bool):
    """A single run into a folder named by ``hydra.run.dir=`` holds it (sim/output/files.py) from before Hydra writes
    its records there, so that a second run into it meanwhile stops in one line instead of mixing its files with the
    first's; any other run's folder is its own (a sweep's is held by its callback, a default one is new)."""
    named = [value for key, _, value in (a.partition("=") for a in args) if key == "hydra.run.dir"]
    if multirun or not named or "$" in named[-1]:
        return contextlib.nullcontext()
    return holding(Path(named[-1]))


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_main(dcfg: DictConfig) -> dict | None:
    return run_job(dcfg)


if __name__ == "__main__":
    console()
