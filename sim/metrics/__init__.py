"""Numbers from results: the summary, economics (energy, area, cost), serving metrics."""
