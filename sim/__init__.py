"""llmsim's simulator: joins the workload (``workloads``) and the chip (``hwmodels``) in time.

Floors, lowest first; each sub-package imports only the floors below it (tests/test_layers.py
walks every import and fails on one that points up; docs/architecture.md draws the same):

========  ==========================================================================
config    the run as data: schema, cross-part checks, presets, composition, overrides
engine    time on the chip: costing (the one join), resources, the replay loop, fidelities
batch     one batch: prefill, then decode steps (speculative decoding, memory check)
serving   a stream of requests through a batching scheduler (same floor as batch)
metrics   numbers from results: summary, economics (energy, area, cost), serving metrics
output    one run's files, console lines, trace
plots     charts (matplotlib, Agg)
studies   many runs and the job of one: sweep, grid, sensitivity, search, calibration, validation
cli       thin entry points: parse, call, one-line error, exit 2 (nothing imports them)
========  ==========================================================================

The public API is re-exported here and imported lazily (``import sim`` stays cheap)::

    from sim import simulate, simulate_serving, RunConfig
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "simulate": "sim.batch.run",
    "RunResult": "sim.batch.run",
    "simulate_serving": "sim.serving.run",
    "RunConfig": "sim.config.schema",
    "RunError": "sim.config.schema",
    "Fidelity": "sim.config.schema",
    "WorkloadKind": "sim.config.schema",
    "compose_config": "sim.config.compose",
    "summarize": "sim.metrics.summary",
    "summarize_serving": "sim.metrics.serving_summary",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
