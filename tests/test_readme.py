"""The README's tables of figures are what the model gives now: each row is simulated again and compared at the
precision the table prints (they had drifted for three model versions before a review found it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sim.batch.run import simulate
from sim.metrics.summary import summarize
from tests.conftest import make_config

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _table_after(marker: str) -> list[list[str]]:
    """The cells of the first Markdown table after ``marker`` (its header and rule dropped)."""
    rest = README[README.index(marker):]
    lines = [ln for ln in rest[rest.index("\n|"):].split("\n\n")[0].strip().splitlines()]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def _matches(printed: str, value: float) -> bool:
    """``value`` rounds to ``printed`` (as many decimals as it shows)."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return round(value, decimals) == pytest.approx(float(printed.replace(",", "")), abs=1.01 * 10**-decimals / 2)


SOFTWARE = _table_after("`llmsim +experiment=software_options` sets weight format")


@pytest.mark.parametrize("row", SOFTWARE, ids=["-".join(r[:3]) for r in SOFTWARE])
def test_the_software_options_table(row):
    batch, kernel, weights, ttft_ms, tpot_ms, tokens_s, *shares = row
    s = summarize(simulate(make_config("+experiment=software_options", f"workload.batch={batch}",
                                       f"attention.kernel={kernel}", f"precision.weights={weights}")))
    assert _matches(ttft_ms, s["ttft_s"] * 1e3), (row, s["ttft_s"])
    assert _matches(tpot_ms, s["tpot_s"] * 1e3), (row, s["tpot_s"])
    assert _matches(tokens_s, s["output_tokens_per_s"]), (row, s["output_tokens_per_s"])
    bound = s["time_by_bound_s"]
    total = sum(bound.values())
    for share, key in zip(shares, ("compute", "memory", "interconnect", "overhead"), strict=True):
        assert _matches(share.rstrip(" %"), 100 * bound[key] / total), (row, key, bound)


DEEPSEEK = _table_after("On 8 H200 (fp8 weights and activations, TP8 and EP8, batch 8, 16 tokens generated")


@pytest.mark.parametrize("row", DEEPSEEK, ids=[re.sub(r"\W+", "-", r[0]) for r in DEEPSEEK])
def test_the_deepseek_v3_table(row):
    prompt, form = re.search(r"prompt (\d+), `mla_form=(\w+)`", row[0]).groups()
    s = summarize(simulate(make_config(
        "model=deepseek_v3", "hardware=h200", "parallel.tp=8", "parallel.ep=8", "precision.weights=fp8",
        "precision.activations=fp8", "workload.batch=8", f"workload.prompt_tokens={prompt}",
        "workload.decode_tokens=16", f"attention.mla_form={form}", "fidelity=analytic")))
    for printed, seconds in ((row[1], s["ttft_s"]), (row[2], s["tpot_s"])):
        number, unit = printed.split()
        assert _matches(number, seconds * (1e3 if unit == "ms" else 1)), (row, s["ttft_s"], s["tpot_s"])
