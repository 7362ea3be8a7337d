"""What every chart shares: the colour-blind-safe palette, labels with units, an atomic save.

Colours are the Okabe-Ito palette (Okabe and Ito, "Color Universal Design", 2008), which
stays distinguishable under the common colour-vision deficiencies. Each bound keeps its
colour on every chart.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sim.metrics import catalog  # noqa: E402
from sim.output.files import atomic_write  # noqa: E402

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
# A cycle for series without a fixed meaning (op kinds, data types); grey is "other".
SERIES = [OKABE_ITO[k] for k in ("blue", "orange", "bluish_green", "vermillion", "sky_blue", "reddish_purple",
                                 "yellow", "black")]
OTHER = "#BBBBBB"

# The dominant bound of a point: what limits it. "capacity": the model did not fit in HBM;
# "invalid": the point failed for another reason (a tensor-parallel degree that does not divide).
BOUND_ORDER = ("compute", "memory", "capacity", "interconnect", "overhead", "invalid")
BOUND_COLOURS = {
    "compute": OKABE_ITO["blue"],
    "memory": OKABE_ITO["orange"],
    "capacity": OKABE_ITO["vermillion"],
    "interconnect": OKABE_ITO["bluish_green"],
    "overhead": OKABE_ITO["reddish_purple"],
    "invalid": "#DDDDDD",
    "idle": "#EEEEEE",  # time-by-bound part, never a point's dominant bound
}
BOUND_LABELS = {
    "compute": "compute",
    "memory": "memory bandwidth",
    "capacity": "memory capacity (does not fit)",
    "interconnect": "interconnect",
    "overhead": "overhead (launch, sync)",
    "invalid": "invalid point (failed)",
    "idle": "idle (pipeline bubbles)",
}
PHASE_COLOURS = {"prefill": OKABE_ITO["blue"], "decode": OKABE_ITO["orange"]}
PHASE_MARKERS = {"prefill": "o", "decode": "^"}

# Labels for the config keys people sweep (metrics take theirs from the catalog,
# sim/metrics/catalog.py); any other key is labelled by its name with the unit its suffix states.
_LABELS = {
    "hardware.hbm_bandwidth_GBps": "HBM bandwidth (GB/s)",
    "hardware.hbm_capacity_GB": "HBM capacity (GB)",
    "hardware.sram_MiB": "on-chip SRAM (MiB)",
    "hardware.link_bandwidth_GBps": "link bandwidth per direction (GB/s)",
    "hardware.freq_GHz": "clock (GHz)",
    "hardware.num_cores": "cores (compute arrays)",
    "hardware.vector_TFLOPS": "vector unit (TFLOP/s)",
    "parallel.tp": "tensor-parallel degree (chips)",
    "workload.batch": "batch (sequences)",
    "workload.prompt_tokens": "prompt (tokens)",
    "workload.decode_tokens": "generated (tokens)",
    "precision.weights": "weight format",
    "precision.kv_cache": "KV-cache format",
    "precision.activations": "activation format",
    "attention.kernel": "attention kernel",
}
_SUFFIX_UNITS = (
    ("_per_s", "/s"), ("_GBps", "GB/s"), ("_TBps", "TB/s"), ("_TFLOPS", "TFLOP/s"), ("_GHz", "GHz"),
    ("_MiB", "MiB"), ("_GB", "GB"), ("_usd", "USD"), ("_USD", "USD"), ("_W", "W"), ("_J", "J"), ("_us", "us"),
    ("_s", "s"),
)


def label(key: str) -> str:
    """A readable axis label with its unit for a config key or a metric name (from the catalog)."""
    if key in _LABELS:
        return _LABELS[key]
    known = catalog.label(key)
    if known is not None:
        return known
    if "." in key and not key.startswith(("hardware.", "workload.", "parallel.")):  # a nested metric
        parent, leaf = key.rsplit(".", 1)
        return f"{label(parent)}: {leaf.replace('_', ' ')}"
    name = key.rsplit(".", 1)[-1] if key.startswith(("hardware.", "workload.", "parallel.")) else key
    for suffix, unit in _SUFFIX_UNITS:
        if name.endswith(suffix):
            base = name[: -len(suffix)].replace("_", " ")
            return f"{base} {unit}" if unit.startswith("/") else f"{base} ({unit})"
    return name.replace("_", " ")


def name(key: str) -> str:
    """The label of ``key`` without its unit, for titles: 'HBM bandwidth', 'clock', 'weight format'."""
    return re.sub(r" \([^)]*\)$", "", label(key))


def short(key: str) -> str:
    """A compact name for tick labels: the last part of a dotted key, unit suffix dropped."""
    name = key.rsplit(".", 1)[-1]
    return re.sub(r"_(GBps|GB|MiB|GHz|TFLOPS|TBps|us|s)$", "", name)


def fmt_value(value) -> str:
    """A swept value as a tick label, 4 significant figures: 4000 -> '4000', 0.793701 -> '0.7937'."""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def fmt_num(value: float) -> str:
    """A metric value for a cell or contour label: 0.0123, 4.56, 789, 12,345; 3 significant figures."""
    size = abs(value)
    if 100 <= size < 1e6:
        return f"{float(f'{value:.3g}'):,.0f}"
    return f"{value:.3g}"


def new_figure(width: float = 8.0, height: float = 5.5) -> tuple[Figure, plt.Axes]:
    """A figure and axes with the shared look (inches)."""
    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    ax.grid(True, which="major", color="#E5E5E5", linewidth=0.8)
    ax.set_axisbelow(True)
    return fig, ax


def set_title(ax: plt.Axes, text: str, fontsize: float = 11) -> None:
    """A title wrapped to the width of ``ax`` (a character is taken as 0.62 em wide, a little over the average)."""
    width_in = ax.get_position().width * ax.figure.get_figwidth()
    chars = max(30, int(width_in * 72 / (0.62 * fontsize)))
    lines = [textwrap.fill(part, chars) for part in text.split("\n")]
    ax.set_title("\n".join(lines), fontsize=fontsize)


def spread_labels(ax: plt.Axes, points: list[tuple[float, float, str, str]], gap_px: float = 10.0,
                  width_px: float = 70.0) -> None:
    """Label data points so that labels near each other do not overlap.

    ``points``: (x, y, text, colour) in data coordinates; call after the axes limits are set.
    Labels sit to the right of their point; where two would collide (closer than ``width_px``
    across and ``gap_px`` up or down, in pixels) the lower one moves down, with a thin leader line.
    """
    to_px = ax.transData.transform
    placed: list[tuple[float, float]] = []
    for x, y, text, colour in sorted(points, key=lambda p: -to_px((p[0], p[1]))[1]):
        px, py = to_px((x, y))
        ty = py
        for qx, qy in placed:
            if abs(qx - px) < width_px and ty > qy - gap_px:
                ty = qy - gap_px
        placed.append((px, ty))
        dy = ty - py
        ax.annotate(text, (x, y), xytext=(6, dy * 72 / ax.figure.dpi - 3), textcoords="offset points", fontsize=7.5,
                    color=colour, zorder=5,
                    arrowprops={"arrowstyle": "-", "color": colour, "linewidth": 0.5} if dy < -4 else None)


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (never a half-written file) and close it."""
    try:
        fig.tight_layout()
        atomic_write(Path(path), lambda p: fig.savefig(p, format="png"))
    finally:
        plt.close(fig)
    return Path(path)
