"""What the explorer lets a user set, and the ``llmsim`` overrides a setting stands for.

A state is a plain dict (it travels through the browser as JSON): the chosen presets under
``presets`` (hardware, model, workload, scheduler) and the value of every control under
``values``, keyed by its config key. The overrides of a state are its presets plus every value
that differs from what those presets compose to, so the exported command is as short as the
change and reproduces the run exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.config.paths import presets
from sim.config.schema import WorkloadKind

PRECISIONS = ("bf16", "fp16", "fp8", "int8", "int4", "fp4")
WORKLOAD_KINDS = tuple(k.value for k in WorkloadKind)
PRESET_GROUPS = ("hardware", "model", "workload", "scheduler")
# Models read from a file on disk need a path: not a pick-list choice.
NOT_PICKABLE = {"model": ("hf",)}
DEFAULT_PRESETS = {"hardware": "teaching_npu", "model": "llama2_7b", "workload": "single_batch",
                   "scheduler": "continuous"}
DEFAULT_FIDELITY = "analytic"  # the fast path; the DES agrees with it when nothing overlaps (README)


@dataclass(frozen=True)
class Control:
    """One thing a user sets: its config key, label, unit and kind.

    ``kind`` is ``slider`` (with ``low``/``high``/``step``; ``log`` spaces it geometrically),
    ``box`` (a number typed in) or ``choice`` (one of ``choices``). ``serving`` marks controls that
    only a serving run reads; ``batch_only`` those only a single batch reads.
    """

    key: str
    label: str
    unit: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    step: float = 1.0
    log: bool = False
    integer: bool = False
    choices: tuple[str, ...] = ()
    serving: bool = False
    batch_only: bool = False

    @property
    def dom_id(self) -> str:
        """The control's id on the page (dots are not allowed in Dash ids)."""
        return "ctl-" + self.key.replace(".", "-").replace("_", "-")


CONTROLS: tuple[Control, ...] = (
    Control("hardware.hbm_bandwidth_GBps", "HBM bandwidth", "GB/s", "slider", 100, 16000, log=True),
    Control("hardware.freq_GHz", "clock", "GHz", "slider", 0.25, 4.0, 0.05),
    Control("hardware.num_cores", "cores", "cores", "slider", 1, 1024, integer=True, log=True),
    Control("hardware.sram_MiB", "on-chip SRAM", "MiB", "slider", 1, 1024, log=True),
    Control("hardware.link_bandwidth_GBps", "link bandwidth (per direction)", "GB/s", "slider", 10, 2000, log=True),
    Control("workload.batch", "batch", "sequences", "box", 1, 4096, integer=True, batch_only=True),
    Control("workload.prompt_tokens", "prompt length", "tokens", "box", 1, 1 << 20, integer=True),
    Control("workload.decode_tokens", "output length", "tokens", "box", 1, 32768, integer=True),
    Control("parallel.tp", "tensor parallelism", "chips", "box", 1, 64, integer=True),
    Control("parallel.ep", "expert parallelism (MoE)", "chips", "box", 1, 256, integer=True),
    Control("workload.rate_per_s", "request rate", "requests/s", "box", 0.01, 1e6, serving=True),
    Control("workload.num_requests", "requests simulated", "requests", "box", 1, 100000, integer=True,
            serving=True),
    Control("precision.weights", "weights", "format", "choice", choices=PRECISIONS),
    Control("precision.activations", "activations", "format", "choice", choices=PRECISIONS),
    Control("precision.kv_cache", "KV cache", "format", "choice", choices=PRECISIONS),
    Control("attention.kernel", "attention kernel", "", "choice", choices=("fused", "unfused")),
    Control("fidelity", "fidelity", "", "choice", choices=("analytic", "des")),
)
BY_KEY = {c.key: c for c in CONTROLS}
# The explorer simulates fewer serving requests than the preset's 1,000 so that a change answers
# quickly; the exported command names the number it ran.
EXPLORER_DEFAULTS = {"fidelity": DEFAULT_FIDELITY, "workload.num_requests": 100}
SWEEPABLE = tuple(c.key for c in CONTROLS if c.kind in ("slider", "box"))


def serving(kind: str | WorkloadKind) -> bool:
    """Whether a state's workload (its preset name, as the page holds it) is a serving run."""
    return WorkloadKind(getattr(kind, "value", kind)) is WorkloadKind.serving


def preset_choices(group: str) -> list[str]:
    """The presets a picker offers for ``group`` (hardware, model, workload, scheduler)."""
    if group == "workload":
        return list(WORKLOAD_KINDS)
    return [p for p in presets(group) if p not in NOT_PICKABLE.get(group, ())]


def group_overrides(chosen: dict[str, str]) -> list[str]:
    """The preset overrides of a state (the scheduler only for serving runs)."""
    out = [f"hardware={chosen['hardware']}", f"model={chosen['model']}", f"workload={chosen['workload']}"]
    if serving(chosen["workload"]):
        out.append(f"scheduler={chosen['scheduler']}")
    return out


def applies(control: Control, workload: str) -> bool:
    """Whether ``control`` changes a run of ``workload`` (serving or single_batch)."""
    return control.serving == serving(workload) or not (control.serving or control.batch_only)


def format_value(value) -> str:
    """A value as an override writes it: whole floats without '.0', others as Python prints them."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def value_overrides(values: dict, base: dict, workload: str) -> list[str]:
    """``key=value`` for every control whose value differs from the composed presets' ``base``."""
    out = []
    for c in CONTROLS:
        if c.key not in values or not applies(c, workload):
            continue
        value = values[c.key]
        if c.key in base and _same(value, base[c.key]):
            continue
        out.append(f"{c.key}={format_value(value)}")
    return out


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=0, abs_tol=0) or float(a) == float(b)
    return str(a) == str(b)


def command(overrides: list[str]) -> str:
    """The ``llmsim`` command line of ``overrides`` (quoted where a shell would need it)."""
    import shlex

    return " ".join(["llmsim", *(shlex.quote(o) for o in overrides)])


def parse_number(control: Control, raw) -> float | int:
    """The number a box or slider holds, or ValueError with a sentence saying what is wrong."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise ValueError(f"{control.label}: enter a number")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{control.label}: '{raw}' is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{control.label}: '{raw}' is not a finite number")
    if control.integer:
        if not value.is_integer():
            raise ValueError(f"{control.label}: {raw} is not a whole number of {control.unit}")
        value = int(value)
    if value < control.low or value > control.high:
        raise ValueError(f"{control.label}: {format_value(value)} {control.unit} is outside "
                         f"{format_value(control.low)}-{format_value(control.high)} {control.unit}")
    return value


def slider_position(control: Control, value: float) -> float:
    """Where ``value`` sits on its slider (log sliders move in log10 units)."""
    return math.log10(value) if control.log else value


def slider_value(control: Control, position: float) -> float | int:
    """The value at a slider ``position``, rounded to 4 significant figures (whole for integers): a preset's
    datasheet value (1555 GB/s, 537.6 GB/s) comes back as itself, not as a nearby round number."""
    value = 10 ** position if control.log else position
    value = float(f"{value:.4g}") if control.log else round(value, 6)
    return int(round(value)) if control.integer else value
