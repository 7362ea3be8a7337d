"""Typed presets from conf/ without a Hydra app: for tools that name a chip or a model per row."""

from __future__ import annotations

import dataclasses

from omegaconf import OmegaConf

from hwmodels.chip import AT_CLOCK, HardwareConfig
from sim.config.paths import CONF_DIR, presets
from workloads.model import ModelConfig


class PresetError(ValueError):
    """An unknown preset name."""


def _load(group: str, name: str, schema):
    path = CONF_DIR / group / f"{name}.yaml"
    if not path.is_file():
        raise PresetError(f"unknown {group} preset '{name}'; known: {', '.join(presets(group))}")
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.load(path)))


def load_hardware(name: str, **changes) -> HardwareConfig:
    """The chip preset ``name`` with any fields replaced by ``changes``."""
    chip = _load("hardware", name, HardwareConfig)
    if changes:
        for rate, silicon in AT_CLOCK.items():  # a rate at the clock replaces the preset's per-cycle figure
            if rate in changes:
                changes = {silicon: None, **changes}
        chip = dataclasses.replace(chip, **changes)
    return chip


def load_model(name: str) -> ModelConfig:
    return _load("model", name, ModelConfig)


def load_runtime(name: str):
    from sim.config.schema import RuntimeConfig

    return _load("runtime", name, RuntimeConfig)


def load_host(name: str):
    """The host CPU preset ``name`` (conf/host/)."""
    from sim.config.system import HostConfig

    return _load("host", name, HostConfig)


def usual_host(hardware: str):
    """The host of the first system preset (conf/system/, by name) built around chip ``hardware``; None if none is."""
    for system in presets("system"):
        defaults = OmegaConf.load(CONF_DIR / "system" / f"{system}.yaml").get("defaults", [])
        picks = {k.removeprefix("override /"): v
                 for entry in defaults if isinstance(entry, dict) for k, v in entry.items()}
        if picks.get("hardware") == hardware and picks.get("host"):
            return load_host(picks["host"])
    return None
