"""Serving simulation: a stream of requests through a batching scheduler on the simulated chip.

traffic.py generates the requests (or reads a trace), kv_cache.py is the paged KV cache,
schedulers.py decides what every step computes (disaggregated.py: separate prefill and decode
instances), step_cost.py prices a step from the cost model, server.py runs it all as SimPy
processes, registry.py names the schedulers by ``scheduler.kind``. ``run.simulate_serving`` is
the entry point; sim/metrics/serving_summary.py, sim/output/ and sim/plots/ turn the run into numbers,
files and a plot (sim/studies/serving_job.py, as the ``llmsim`` command does).
"""
