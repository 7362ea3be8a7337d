"""Charts of runs and sweeps, drawn with matplotlib on the Agg backend (no display needed).

One module per chart: ``regime`` (bottleneck map of a sweep), ``roofline`` (one run's ops
against the chip's ceilings), ``breakdown`` (stacked time across sweep points), ``pareto``
(the front of two metrics), ``sensitivity`` (what buys the most), ``timeline`` (a Gantt of
one decode step), ``serving`` (one serving run over time). ``charts`` is their registry, keyed
by ``Chart``: label, file name and draw function. ``style`` holds the shared palette, labels
with units (metrics' from sim/metrics/catalog.py) and the atomic save. Plot functions take tables (pandas
DataFrames) and write one PNG each; none simulates.
"""
