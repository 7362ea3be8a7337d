"""Installed as ``sim.conf``: the Hydra config tree as package data (see sim/config/paths.py)."""
