"""The explorer's numbers: headline figures of a run, the pin-and-compare table, the CSV exports.

Headline figures are summary keys with their catalog titles and units (sim/metrics/catalog.py),
formatted as the ``llmsim`` console prints them (times by ``fmt_time``), so the page and the
command show the same text. A serving run has percentiles where a batch has one figure: its
TTFT and TPOT are the medians.
"""

from __future__ import annotations

import io

import pandas as pd

from sim.metrics.catalog import metric
from sim.output.console import fmt_time

HEADLINE = {
    "single_batch": ("ttft_s", "tpot_s", "output_tokens_per_s", "usd_per_million_output_tokens",
                     "joules_per_output_token", "chip_area_mm2", "avg_power_W", "peak_power_W"),
    "serving": ("ttft_p50_s", "tpot_p50_s", "output_tokens_per_s", "usd_per_million_output_tokens",
                "joules_per_output_token", "chip_area_mm2", "avg_power_W", "ttft_p99_s", "slo_attainment"),
}
SHORT = {"ttft_s": "TTFT", "tpot_s": "TPOT", "ttft_p50_s": "TTFT p50", "tpot_p50_s": "TPOT p50",
         "ttft_p99_s": "TTFT p99", "output_tokens_per_s": "output tokens/s",
         "usd_per_million_output_tokens": "$ per M output tokens", "joules_per_output_token": "J per output token",
         "chip_area_mm2": "chip area", "avg_power_W": "avg power per chip", "peak_power_W": "peak power per chip",
         "slo_attainment": "SLO attainment"}


def fmt_metric(name: str, value) -> str:
    """``value`` of metric ``name`` in its unit, as the console writes it."""
    if value is None:
        return "n/a"
    unit = metric(name).unit
    if unit == "s":
        return fmt_time(value)
    if unit in ("USD", "$"):
        return f"${value:.3g}"
    if unit == "/s":  # output tokens per second
        return f"{value:,.1f} tokens/s"
    return f"{value:,.4g} {unit}".rstrip()


def headline(summary: dict, kind: str) -> list[dict]:
    """One row per headline figure: ``name``, ``label``, ``value`` (raw), ``text`` (formatted) and ``note`` (what
    the console prints beside it: the chip area's HBM stacks when they were derived, as a bandwidth slider may)."""
    notes = {"chip_area_mm2": (summary.get("area") or {}).get("hbm_stacks_note") or ""}
    return [{"name": n, "label": SHORT.get(n, metric(n).title), "value": summary.get(n),
             "text": fmt_metric(n, summary.get(n)), "note": notes.get(n, "")} for n in HEADLINE[kind] if n in summary]


def compare(pinned: dict, current: dict) -> list[dict]:
    """The delta table of two headline sets (``headline`` rows), current against pinned.

    Each row: the figure, both values as text, the change in the metric's unit and in percent, and
    whether the change is better or worse by the catalog's direction.
    """
    rows = []
    before = {r["name"]: r for r in pinned.get("headline", [])}
    for row in current.get("headline", []):
        old = before.get(row["name"])
        if old is None:
            continue
        a, b = old["value"], row["value"]
        delta = b - a if a is not None and b is not None else None
        pct = f"{delta / a:+.1%}" if delta is not None and a else "n/a"
        verdict = "same"
        if delta:
            better_high = metric(row["name"]).better.value == "high"
            verdict = "better" if (delta > 0) == better_high else "worse"
        rows.append({"figure": row["label"], "pinned": old["text"], "current": row["text"],
                     "change": pct, "verdict": verdict})
    return rows


def changed_settings(pinned_overrides: list[str], current_overrides: list[str], pinned_values: dict | None = None,
                     current_values: dict | None = None) -> list[str]:
    """What differs between two designs, as override texts (``key: pinned -> current``). A setting one design
    leaves at its preset shows the preset's value from that design's ``*_values`` (control key -> value as
    written in an override), else the word preset."""
    a = dict(o.split("=", 1) for o in pinned_overrides)
    b = dict(o.split("=", 1) for o in current_overrides)
    keys = list(dict.fromkeys([*a, *b]))

    def shown(over: dict, values: dict | None, key: str) -> str:
        return over.get(key) or (values or {}).get(key) or "preset"

    return [f"{k}: {shown(a, pinned_values, k)} -> {shown(b, current_values, k)}" for k in keys
            if a.get(k) != b.get(k)]


def csv_text(frame: pd.DataFrame) -> str:
    """A table as CSV text (for a download)."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()


def headline_frame(rows: list[dict], command: str) -> pd.DataFrame:
    """The headline figures as a table with the command that produced them."""
    return pd.DataFrame([{"figure": r["label"], "metric": r["name"], "value": r["value"], "text": r["text"],
                          "command": command} for r in rows])
