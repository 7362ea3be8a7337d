"""Serving simulation: a stream of requests through a batching scheduler on the simulated chip.

traffic.py generates the requests (or reads a trace), kv_cache.py is the paged KV cache,
schedulers.py decides what every step computes (disaggregated.py: separate prefill and decode
instances), step_cost.py prices a step from the cost model, server.py runs it all as SimPy
processes, metrics.py, report.py, plot.py and outputs.py turn the run into numbers, a plot and
files. ``run.simulate_serving`` is the entry point, ``job.serve_job`` what the command runs.
"""
