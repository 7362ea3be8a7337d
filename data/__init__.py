"""Installed as ``sim.data``: the measurements (calibration, validation) as package data (see sim/config/paths.py)."""
