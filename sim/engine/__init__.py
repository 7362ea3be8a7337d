"""Time on the chip: costing (the one join of workload and chip), resources, the replay loop, fidelities."""
