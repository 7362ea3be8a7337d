"""Composing run configs outside a Hydra app (the grid and sensitivity commands), as ``llmsim`` does."""

from __future__ import annotations

import copy
from dataclasses import fields

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

from hwmodels.calibration import FITTED_KEYS, load_fit
from hwmodels.chip import IDEAL
from sim.config.schema import AppConfig, RunConfig, register_configs
from sim.config.system import apply_scale_up
from workloads.model import ModelConfig


def compose_dict(overrides: list[str], with_hydra: bool = False) -> DictConfig:
    """The composed config for ``overrides`` (with the ``hydra`` node when ``with_hydra``)."""
    from sim.config.paths import CONF_DIR

    register_configs()
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app or a test that left it set
        GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return with_calibration(compose("config", overrides=list(overrides), return_hydra_config=with_hydra))


def with_calibration(dcfg: DictConfig) -> DictConfig:
    """A copy of ``dcfg`` whose fitted chip fields left unset (None) hold the run's fit.

    The fit is the file named by ``calibration`` (relative to the working directory) or, when
    that is empty, the shipped one (an ``ideal`` chip takes hwmodels.chip.IDEAL instead); fields
    the preset or the user set keep their values. The
    values are written into the config (not left to HardwareConfig's defaults) so that the
    config a run saves, and the key of a sweep point, name the numbers that were used.

    Raises:
        hwmodels.calibration.CalibrationError: no readable, complete fit at ``calibration``.
    """
    if "hardware" not in dcfg:
        return dcfg
    fit = load_fit(OmegaConf.select(dcfg, "calibration", default="") or None)
    if OmegaConf.select(dcfg.hardware, "ideal", default=False):  # an idealised chip: ideal values, not the fit
        fit = IDEAL
    dcfg = copy.deepcopy(dcfg)
    for key in FITTED_KEYS:
        if OmegaConf.select(dcfg.hardware, key) is None:
            dcfg.hardware[key] = fit[key]
    return dcfg


def with_resolved_model(dcfg: DictConfig) -> DictConfig:
    """A copy of ``dcfg`` whose model read from a Hugging Face config.json holds the values read.

    With ``model.hf_config_path`` set every architectural field comes from that file; they are
    written into the config (not left at the preset's zeros) so that the config a run saves,
    and the key of a sweep point, name the architecture that ran. Other models are returned
    as they are.

    Raises:
        workloads.model.ModelError: the file is missing, unreadable or describes no valid model.
    """
    if "model" not in dcfg or not OmegaConf.select(dcfg, "model.hf_config_path", default=None):
        return dcfg
    model = OmegaConf.to_object(dcfg.model)
    if not isinstance(model, ModelConfig):  # a plain (untyped) tree
        model = ModelConfig(**model)
    dcfg = copy.deepcopy(dcfg)
    for field in fields(ModelConfig):
        dcfg.model[field.name] = getattr(model, field.name)
    return dcfg


def to_run_config(dcfg: DictConfig) -> RunConfig:
    """The typed, validated RunConfig of a composed config: its run part only (the tools' settings,
    ``name``, ``output``, ``sweep``, ``search``, and the ``hydra`` node are left out), with an
    explicitly set ``system.scale_up`` written onto the chip."""
    return to_app_config(dcfg).run_config()


def to_app_config(dcfg: DictConfig | dict) -> AppConfig:
    """The typed AppConfig (run and tools) of a composed config or a plain tree of one."""
    if isinstance(dcfg, dict):
        dcfg = OmegaConf.merge(OmegaConf.structured(AppConfig), dcfg)
    app = OmegaConf.to_object(apply_scale_up(without_hydra(dcfg)))
    if not isinstance(app, AppConfig):  # a config typed by RunConfig alone: no tool settings
        app = AppConfig(**{name: getattr(app, name) for name in app.__dataclass_fields__})
    return app


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
