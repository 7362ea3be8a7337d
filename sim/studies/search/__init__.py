"""Design-space search: the best chip for a workload under area, power, cost and latency budgets.

* ``space``: the parameters a recipe varies (``search.space``) and those derived from them;
* ``evaluate``: one design simulated (analytic fidelity) and its metrics, with the chip's area,
  cost and maximum power;
* ``study``: the Optuna study (seeded, resumable SQLite storage, parallel worker processes);
* ``report``: ``trials.csv``, ``pareto.csv``, the Pareto chart, the best design per objective
  and its difference from the reference chip;
* ``cli``: the ``llmsim-search +search=<recipe>`` command.
"""


class SearchError(ValueError):
    """A search that cannot run as asked (empty space, unknown objective, nothing feasible): one line."""
