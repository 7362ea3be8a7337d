"""llmsim-chips: every preset's datasheet figures beside its predicted and published achievable ones."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hwmodels.limits import HardwareError
from hwmodels.numerics import DType
from sim.cli.chips import main
from sim.config.paths import presets
from sim.config.presets import load_hardware
from sim.studies.chips import (
    ACHIEVABLE,
    ACHIEVABLE_COLUMNS,
    COLUMNS,
    GEMM_SIZE,
    QUANTITY_NAMES,
    STREAM_BYTES,
    ChipsInputError,
    chip_table,
    gemm_TFLOPS,
    read_achievable,
    stream_GBps,
)

HARDWARE = presets("hardware")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return chip_table()


def test_every_preset_appears_with_its_gemm_and_stream(table):
    assert set(table["chip"]) == set(HARDWARE)
    for name in HARDWARE:
        quantities = set(table.loc[table["chip"] == name, "quantity"])
        assert {"gemm_bf16_TFLOPS", "stream_GBps"} <= quantities, name
        assert ("gemm_fp8_TFLOPS" in quantities) == load_hardware(name).supports(DType.fp8), name
        assert ("gemm_fp4_TFLOPS" in quantities) == load_hardware(name).supports(DType.fp4), name


def test_predicted_never_beats_the_datasheet(table):
    bounded = table[table["quantity"] != "allreduce8_busbw_GBps"]  # in-switch reduction may pass a ring's ceiling
    assert (bounded["predicted"] > 0).all()
    assert (bounded["predicted"] <= bounded["datasheet"] * (1 + 1e-12)).all(), bounded


def test_figures_are_the_closed_forms():
    """The teaching chip is ideal (full efficiency, 1 us per kernel, 1 TB/s, 131.072 TFLOP/s at bf16):
    a copy of 2 GiB takes 2 GiB / 1 TB/s + 1 us; an 8192^3 GEMM runs within a few % of the peak."""
    chip = load_hardware("teaching_npu")
    assert stream_GBps(chip) == pytest.approx(STREAM_BYTES / (STREAM_BYTES / 1e12 + 1e-6) / 1e9, rel=1e-3)
    assert 0.95 * 131.072 <= gemm_TFLOPS(chip, DType.bf16) <= 131.072
    assert 0.95 * 262.144 <= gemm_TFLOPS(chip, DType.fp8) <= 262.144
    assert GEMM_SIZE == 8192


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(HARDWARE), low=st.floats(10.0, 1500.0), factor=st.floats(1.0, 10.0))
def test_more_hbm_bandwidth_never_lowers_the_streaming_bandwidth(name, low, factor):
    slow = load_hardware(name, hbm_bandwidth_GBps=low)
    try:
        fast = load_hardware(name, hbm_bandwidth_GBps=low * factor)
    except HardwareError:  # more stacks than the die's edge or the reticle holds (hwmodels/hbm_stacks.py)
        assume(False)
    assert stream_GBps(fast) >= stream_GBps(slow) * (1 - 1e-12)


def test_published_rows_name_known_presets_and_a_source():
    rows = pd.read_csv(ACHIEVABLE)
    assert tuple(rows.columns) == ACHIEVABLE_COLUMNS and len(rows) >= 10
    assert set(rows["chip"]) <= set(HARDWARE)
    assert set(rows["quantity"]) <= set(QUANTITY_NAMES)
    assert rows["source"].fillna("").str.strip().str.len().gt(0).all()
    assert rows["source"].str.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}:.+").all()  # owner/repo@commit:path
    assert (rows["value"] > 0).all() and not rows.duplicated(["chip", "quantity"]).any()
    assert len(read_achievable()) == len(rows)


def test_measured_figures_sit_beside_predictions_with_the_difference(table):
    row = table[(table["chip"] == "h100_sxm") & (table["quantity"] == "gemm_fp8_TFLOPS")].iloc[0]
    assert row["measured"] == 1290.1 and "ND_H100_v5" in row["source"]
    assert row["predicted_vs_measured_pct"] == pytest.approx((row["predicted"] / 1290.1 - 1) * 100)
    unmeasured = table[table["chip"] == "teaching_npu"]
    assert unmeasured["measured"].isna().all() and (unmeasured["source"] == "").all()


@pytest.mark.parametrize("text, match", [
    ("chip,quantity,value,source,note\nh100,stream_GBps,1,x,\n", "unknown chip 'h100'"),
    ("chip,quantity,value,source,note\nh200,stream_TBps,1,x,\n", "unknown quantity 'stream_TBps'"),
    ("chip,quantity,value,source,note\nh200,stream_GBps,-1,x,\n", "value must be a number > 0"),
    ("chip,quantity,value,source,note\nh200,stream_GBps,1,,\n", "no source"),
    ("chip,quantity,value,source,note\nh200,stream_GBps,1,x,\nh200,stream_GBps,2,y,\n", "twice"),
    ("chip,quantity,value\nh200,stream_GBps,1\n", "lacks the column"),
    ("chip,quantity,value,source,note\nh200,stream_GBps,1e300,x,\n", "out of range: at most 1e"),  # was printed
    ("chip,quantity,value,source,note\n", "a header but no measured figures"),  # was a table with none, exit 0
])
def test_a_bad_measured_file_is_refused(tmp_path, text, match):
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(ChipsInputError, match=match):
        read_achievable(path)


def test_a_measured_figure_for_a_quantity_the_chip_lacks_is_refused_not_dropped(tmp_path, capsys):
    """H100's arrays run no fp4: its measured fp4 row was dropped without a word (independent review)."""
    path = tmp_path / "m.csv"
    path.write_text("chip,quantity,value,source,note\nh100_sxm,gemm_fp4_TFLOPS,100,x,\n")
    with pytest.raises(SystemExit) as done:
        main(["--measured", str(path)])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and "h100_sxm has no gemm_fp4_TFLOPS" in err


def test_the_command_prints_every_preset_and_writes_the_csv(tmp_path, capsys):
    out = tmp_path / "sub" / "chips.csv"
    main(["--csv", str(out)])
    printed = capsys.readouterr().out
    first_words = {line.split()[0] for line in printed.splitlines() if line.strip()}
    assert set(HARDWARE) <= first_words
    assert "never fitted on" in printed and "[1] " in printed
    written = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert tuple(written.columns) == COLUMNS and set(written["chip"]) == set(HARDWARE)
    assert len(written) == len(chip_table()) and (written["source"].notna() == written["measured"].notna()).all()
    assert not list(out.parent.glob(".*"))  # atomic: no temporary left beside it


@pytest.mark.parametrize("argv, match", [
    (["--bogus"], "unrecognized arguments"),
    (["--csv"], "expected one argument"),
    (["--measured", "/nonexistent/m.csv"], "no file at"),
    (["--csv", "FILE/x.csv"], "is a file"),
    (["--csv", "."], "is a folder"),
    (["--csv", ""], "--csv: needs a file, not an empty string"),  # not "--csv . is a folder": '.' was never typed
    (["--measured", ""], "--measured: needs a file, not an empty string"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, match):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("not a folder\n")
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1 and match in err, err
