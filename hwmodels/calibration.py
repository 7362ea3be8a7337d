"""Fitted efficiency parameters: the defaults of every chip that does not set its own.

The shipped values live in hwmodels/calibration.yaml (package data, read-only), written by
``llmsim-calibrate`` from measured A100 data with their provenance in its header. They describe
how close a chip's kernels come to its datasheet peaks and what fixed latencies they pay; they
are applied to every chip through its own architecture parameters, never as per-chip factors.

A run can point at another fit (``llmsim calibration=<path>``, a file ``llmsim-calibrate``
wrote): ``load_fit(path)`` reads and checks it; the shipped fit is ``FITTED``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from importlib.resources import files
from types import MappingProxyType

import yaml

CALIBRATION_FILE = files("hwmodels") / "calibration.yaml"  # the shipped fit (a Traversable: read it, never write it)
FITTED_KEYS = ("matmul_efficiency", "hbm_latency_us", "kernel_overhead_us", "matmul_overhead_cycles",
               "link_latency_us", "collective_latency_us", "link_saturation_MB", "link_ramp_exponent")


class CalibrationError(ValueError):
    """A calibration file that is missing, unreadable or lacks a fitted value."""


def parse_fit(text: str, where: str) -> Mapping[str, float]:
    """The fitted values in the YAML ``text`` (from ``where``, for messages), read-only.

    Raises:
        CalibrationError: the text is not YAML, not a mapping, or lacks or mistypes a fitted key.
    """
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise CalibrationError(f"{where} is not YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise CalibrationError(f"{where} holds no mapping of fitted values; write one with llmsim-calibrate")
    missing = [k for k in FITTED_KEYS if k not in values]
    if missing:
        raise CalibrationError(f"{where} lacks {', '.join(missing)}; write a complete fit with llmsim-calibrate")
    fit = {}
    for key in FITTED_KEYS:
        try:
            fit[key] = float(values[key])
        except (TypeError, ValueError):
            raise CalibrationError(f"{where}: {key} must be a number (got {values[key]!r})") from None
        if not math.isfinite(fit[key]):
            raise CalibrationError(f"{where}: {key} must be finite (got {values[key]!r})")
    return MappingProxyType(fit)


def load_fit(path: str | os.PathLike | None = None) -> Mapping[str, float]:
    """The fit in the file at ``path`` (the shipped one when None), read-only.

    Raises:
        CalibrationError: no readable file at ``path``, or its content is not a complete fit.
    """
    if path is None:
        return parse_fit(CALIBRATION_FILE.read_text(), "the shipped hwmodels/calibration.yaml")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise CalibrationError(f"no calibration file at {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CalibrationError(f"calibration file {path} cannot be read ({err})") from None
    return parse_fit(text, f"calibration file {path}")


FITTED = load_fit()  # the shipped fit: the defaults of HardwareConfig's fitted fields
