"""Serving simulation: a stream of requests through a batching scheduler on the simulated chip.

traffic.py generates the requests (or reads a trace), kv_cache.py is the paged KV cache,
schedulers.py decides what every step computes (disaggregated.py: separate prefill and decode
instances), step_cost.py prices a step from the cost model, server.py runs it all as SimPy
processes. ``run.simulate_serving`` is the entry point; the floors above turn its result into numbers
(sim/metrics/serving.py), console lines and files (sim/output/serving_*.py) and a plot
(sim/plots/serving.py); sim/studies/serving_job.py is what the command runs.
"""
