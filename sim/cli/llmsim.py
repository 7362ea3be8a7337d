"""The ``llmsim`` command: a Hydra app over conf/.

Before Hydra composes anything, the command-line overrides are checked against the schema
(sim/config/overrides.py) so that an unknown preset, a misspelt key or a value of the wrong
type gets one line that names the problem and the fix; the job itself is sim/studies/job.py.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from sim.config.overrides import EXIT_BAD_INPUT, InputError, check_override
from sim.config.paths import CONF_DIR, OutputDirError, output_dir
from sim.config.schema import register_configs
from sim.studies.job import run_job


def main() -> None:
    """Console entry point."""
    register_configs()
    args = sys.argv[1:]
    multirun = any(a in ("-m", "--multirun") or a.startswith("+experiment=") for a in args)
    try:
        for arg in args:
            check_override(arg, multirun)
            check_output_dir(arg)
    except (InputError, OutputDirError) as err:
        print(f"llmsim: error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    _hydra_main()


def check_output_dir(arg: str) -> None:
    """Check the output folder an override names (``hydra.run.dir=``, ``hydra.sweep.dir=``) before Hydra starts.

    Raises:
        OutputDirError: the folder is a file, or lies under one, or cannot be written.
    """
    key, _, value = arg.partition("=")
    if key in ("hydra.run.dir", "hydra.sweep.dir") and value and "$" not in value:  # ${now:...}: Hydra's
        output_dir(value, create=False)  # relative to the working directory, as Hydra resolves it


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_main(dcfg: DictConfig) -> dict | None:
    return run_job(dcfg)
