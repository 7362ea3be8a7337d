"""Composing run configs outside a Hydra app (the grid and sensitivity commands), as ``llmsim`` does."""

from __future__ import annotations

import copy

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

from sim.config.schema import RunConfig, register_configs


def compose_dict(overrides: list[str], with_hydra: bool = False) -> DictConfig:
    """The composed config for ``overrides`` (with the ``hydra`` node when ``with_hydra``)."""
    from sim.config.paths import CONF_DIR

    register_configs()
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app or a test that left it set
        GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("config", overrides=list(overrides), return_hydra_config=with_hydra)


def to_run_config(dcfg: DictConfig) -> RunConfig:
    """The typed, validated RunConfig of a composed config (its ``hydra`` node ignored)."""
    return OmegaConf.to_object(without_hydra(dcfg))


def without_hydra(dcfg: DictConfig) -> DictConfig:
    """A copy of ``dcfg`` without its ``hydra`` node (still typed by the schema)."""
    if "hydra" not in dcfg:
        return dcfg
    dcfg = copy.deepcopy(dcfg)
    with open_dict(dcfg):
        del dcfg["hydra"]
    return dcfg


def compose_config(overrides: list[str]) -> tuple[DictConfig, RunConfig]:
    """(composed DictConfig, typed RunConfig) for ``overrides``."""
    dcfg = compose_dict(overrides)
    return dcfg, to_run_config(dcfg)
