"""Sweeps: many runs, one table, the charts that compare them.

* ``points``: a point's identity (a hash of the config that changes results) and the
  markers that let a re-run skip points already finished;
* ``callbacks``: the Hydra callback of a multirun (progress bar, report at the end);
* ``table``: the tidy table of a sweep, one row per point (swept parameters, every metric);
* ``report``: ``llmsim-report``, the table and charts of a sweep or of one run;
* ``grid``: ``llmsim-grid``, a fine numeric grid swept inside one process;
* ``sensitivity``: ``llmsim-sensitivity``, +-10% of each hardware parameter and each
  software option, ranked by what it does to a metric.
"""

from hwmodels.chip import HardwareError
from sim.config.schema import RunError
from workloads.model import ModelError


class ReportError(ValueError):
    """Bad input to a report (unknown metric or axis, an empty sweep folder): one line for the user."""


FAILURES = (HardwareError, ModelError, RunError)  # what a point that cannot run raises (a failed row, not a crash)
