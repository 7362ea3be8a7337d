"""The run as data: schema (dataclasses Hydra types), cross-part checks, presets, composition, overrides."""
