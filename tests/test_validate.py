"""Calibration and validation against the shipped A100 measurements."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hwmodels.calibration import CALIBRATION_FILE, FITTED
from sim.config.presets import load_hardware
from sim.studies.calibrate import VALIDATION, build_validation_set, fit
from sim.studies.validate import summary_line, validate

LINE = re.compile(r"^validated (\d+) rows: median \|err\| (\d+\.\d)%, mean \|err\| (\d+\.\d)%, max \|err\| (\d+\.\d)%$")
# The bounds this model reaches on the shipped set (median |error| per kind), held here so that a
# change that makes predictions worse fails. Issue 12's targets: gemm 5, allreduce 6, memcpy 5,
# decode 4, prefill 8; memcpy sits at its line (5.003 %) and prefill is not there (README, calibration).
BOUNDS = {"gemm": 5.0, "allreduce": 6.0, "memcpy": 5.1, "decode": 4.0, "prefill": 17.0}


def test_at_most_twelve_fitted_parameters():
    """The chip fields in calibration.yaml plus the eager runtime's two host costs: the only fitted numbers."""
    from sim.studies.calibrate import BOUNDS as FIT_BOUNDS

    assert set(FIT_BOUNDS) == set(FITTED)
    assert len(FITTED) + 2 <= 12


@pytest.fixture(scope="module")
def validated() -> pd.DataFrame:
    return validate(pd.read_csv(VALIDATION))[0]


def test_shipped_validation_set_is_what_the_sources_give():
    shipped = pd.read_csv(VALIDATION)
    rebuilt = build_validation_set()
    assert len(shipped) == len(rebuilt)
    assert shipped["measured_ms"].to_numpy() == pytest.approx(rebuilt["measured_ms"].to_numpy())
    assert set(shipped["kind"]) == {"gemm", "allreduce", "memcpy", "prefill", "decode"}


@pytest.mark.parametrize("kind", list(BOUNDS))
def test_median_error_per_kind(validated, kind):
    part = validated[validated["kind"] == kind]
    assert len(part) >= 5
    assert part["error_pct"].abs().median() <= BOUNDS[kind], summary_line(part)


@pytest.mark.slow
def test_fitted_values_are_what_the_fit_gives():
    fitted = fit(build_validation_set())
    for key, value in fitted.items():
        assert FITTED[key] == pytest.approx(value, rel=1e-3, abs=1e-3), key
    header = CALIBRATION_FILE.read_text()
    assert "llmsim-calibrate" in header and "data/calibration" in header
    assert yaml.safe_load(header)["matmul_efficiency"] == FITTED["matmul_efficiency"]


def _run_validate(path: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "llmsim-validate"
    return subprocess.run([str(exe), str(path)], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_cli_prints_rows_and_the_summary_line(tmp_path):
    rows = pd.read_csv(VALIDATION)
    sample = pd.concat([rows[rows["kind"] == k].head(3) for k in BOUNDS])
    sample["note"] = "kept"  # an extra column is carried into the output
    path = tmp_path / "rows.csv"
    sample.to_csv(path, index=False)
    proc = _run_validate(path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    match = LINE.match(lines[-1])
    assert match and int(match.group(1)) == len(sample)
    assert "predicted_ms" in lines[0] and "note" in lines[0] and "kept" in proc.stdout


@pytest.mark.slow
def test_malformed_rows_are_named_and_the_rest_still_run(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "id,hardware,kind,dtype,m,n,k,bytes,devices,model,batch,seq_len,measured_ms\n"
        "ok1,a100_80gb,gemm,fp16,1024,1024,1024,,,,,,0.02\n"
        "bad-kind,a100_80gb,conv,fp16,1,1,1,,,,,,0.02\n"
        "bad-hw,b100,gemm,fp16,1,1,1,,,,,,0.02\n"
        "bad-m,a100_80gb,gemm,fp16,-4,1,1,,,,,,0.02\n"
        "bad-dtype,a100_80gb,gemm,fp12,4,1,1,,,,,,0.02\n"
        "bad-measured,a100_80gb,memcpy,fp16,,,,1000000,,,,,0\n"
        "bad-model,a100_80gb,decode,fp16,,,,,1,llama9,1,100,10\n"
        "ok2,a100_80gb,allreduce,fp16,,,,1048576,8,,,,0.06\n"
    )
    proc = _run_validate(path)
    assert proc.returncode == 0
    assert "Traceback" not in proc.stderr
    for row, words in (("row 3 (id bad-kind)", "unknown kind 'conv'"), ("row 4 (id bad-hw)", "unknown hardware preset"),
                       ("row 5 (id bad-m)", "'m' must be a whole number"), ("row 6 (id bad-dtype)", "unknown dtype"),
                       ("row 7 (id bad-measured)", "measured_ms must be > 0"),
                       ("row 8 (id bad-model)", "unknown model preset 'llama9'")):
        assert any(row in line and words in line for line in proc.stderr.splitlines()), (row, proc.stderr)
    assert LINE.match(proc.stdout.strip().splitlines()[-1]).group(1) == "2"


@pytest.mark.slow
def test_missing_columns_and_missing_file(tmp_path):
    path = tmp_path / "nohead.csv"
    path.write_text("a,b\n1,2\n")
    proc = _run_validate(path)
    assert proc.returncode != 0 and "lacks the column(s) id, hardware, kind, measured_ms" in proc.stderr
    proc = _run_validate(tmp_path / "missing.csv")
    assert proc.returncode != 0 and "no file at" in proc.stderr and "Traceback" not in proc.stderr


def test_allreduce_curve_rises_from_latency_to_bandwidth_bound():
    frame = pd.DataFrame({"id": range(8), "hardware": "a100_80gb", "kind": "allreduce", "devices": 8,
                          "bytes": [2**e for e in range(10, 34, 3)], "measured_ms": 1.0})
    out = validate(frame)[0]
    time_ms = out["predicted_ms"].to_numpy()
    busbw = 2 * 7 / 8 * frame["bytes"].to_numpy() / (time_ms / 1e3)
    assert time_ms[1] < 1.5 * time_ms[0]  # flat while latency-bound
    assert all(b2 > b1 for b1, b2 in zip(busbw, busbw[1:], strict=False))  # bus bandwidth climbs ...
    plateau = 300e9 * load_hardware("a100_80gb").link_efficiency
    assert busbw[-1] == pytest.approx(plateau, rel=0.02)  # ... to the plateau


@pytest.mark.slow
def test_rows_that_do_not_fit_are_skipped_and_nothing_validated_is_an_error(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("id,hardware,kind,dtype,m,n,k,bytes,devices,model,batch,seq_len,measured_ms\n"
                    "big,a100_80gb,decode,fp16,,,,,1,llama2_70b,1,100,80\n"
                    "bad,a100_80gb,gemm,fp16,abc,1,1,,,,,,0.02\n")
    proc = _run_validate(path)
    assert proc.returncode == 2
    assert "row 2 (id big)" in proc.stderr and "does not fit" in proc.stderr
    assert "no row could be validated" in proc.stderr and "(and 1 more row)" in proc.stderr
    # one line, and no empty tables before it (independent review: two lines, and "Empty DataFrame" printed)
    assert len(proc.stderr.strip().splitlines()) == 1 and "Empty DataFrame" not in proc.stdout


def _row(**fields) -> dict:
    base = {"id": "t", "hardware": "a100_80gb", "kind": "decode", "dtype": "fp16", "devices": 8,
            "model": "llama2_70b", "batch": 1, "seq_len": 1024, "measured_ms": 40.0}
    return {**base, **fields}


def test_optional_columns_host_layers_runtime_and_notes():
    rows = pd.DataFrame([
        _row(id="eager_7742", runtime="vllm_eager", host="amd_epyc_7742"),
        _row(id="eager_8480c", runtime="vllm_eager", host="intel_xeon_8480c"),
        _row(id="one_layer", layers=1), _row(id="all_layers", layers=80),
        _row(id="too_many", layers=81), _row(id="gemm_layers", kind="gemm", m=1, n=8, k=8, layers=2),
        _row(id="long", seq_len=8192, kind="prefill"),
        _row(id="huge", kind="gemm", m=1e30, n=8, k=8), _row(id="bad_ms", measured_ms="abc"),
    ])
    out, problems = validate(rows)
    ms = out.set_index("id")["predicted_ms"]
    # host time scales with the inverse of the host's single-thread score (faster host, shorter step)
    assert ms["eager_8480c"] < ms["eager_7742"]
    assert ms["one_layer"] < ms["all_layers"] == pytest.approx(validate(pd.DataFrame([_row()]))[0]["predicted_ms"][0])
    assert "exceeds llama2_70b's maximum context" in out.set_index("id")["prediction_note"]["long"]
    skipped = " ".join(problems)
    for words in ("layers=81 exceeds", "'layers' applies to prefill and decode rows", "'m' = 1e+30 is out of range",
                  "measured_ms must be a number"):
        assert words in skipped
    assert ms[["too_many", "gemm_layers", "huge", "bad_ms"]].isna().all()


def test_trtllm_fp8_means_fp8_gemm_inputs_only():
    """TensorRT-LLM fp8: fp8 GEMMs, 16-bit KV and activations; an all-fp8 run moves fewer bytes."""
    rows = pd.DataFrame([_row(id="trt", kind="prefill", dtype="fp8", runtime="trtllm", hardware="h100_sxm",
                              devices=4, seq_len=2048),
                         _row(id="all8", kind="prefill", dtype="fp8", hardware="h100_sxm", devices=4, seq_len=2048)])
    ms = validate(rows)[0].set_index("id")["predicted_ms"]
    assert ms["all8"] < ms["trt"] < 1.5 * ms["all8"]


def test_calibrating_on_unreadable_measurements_is_one_line(monkeypatch):
    """An emptied or edited file of data/calibration ended llmsim-calibrate in a pandas or scipy traceback
    (review): a FitError the command prints in one line, before any fit."""
    import pandas as pd

    import sim.studies.calibrate as study

    def empty():
        raise pd.errors.EmptyDataError("No columns to parse from file")

    monkeypatch.setattr(study, "build_validation_set", empty)
    with pytest.raises(study.FitError, match="could not be read as the shipped measurements .EmptyDataError"):
        study.calibrate()
    frame = pd.DataFrame([{"source": "vidur:x", "measured_ms": 0.1}, {"source": "llmcompass:matmul",
                                                                      "measured_ms": float("nan")}])
    monkeypatch.setattr(study, "build_validation_set", lambda: frame)
    with pytest.raises(study.FitError, match=r"1 measured time\(s\) .* not finite positive numbers .*llmcompass"):
        study.calibrate()
