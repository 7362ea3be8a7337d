"""The transfer check (data/transfer_check): A100-fitted predictions of H100 GEMMs, and its helper."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sim.config.paths import DATA_DIR
from sim.studies.calibrate import SOURCE, build_validation_set
from sim.studies.transfer import ALL, BANDS, TRANSFER_CHECK, band, medians_table, transfer_medians, transfer_report

# What the H100 rows reach, predicted with the shipped (A100-only) fit: 4.9 % overall, 4.3 / 5.1 / 5.8 %
# in the three bands (12.7 % and 16.3 / 11.1 / 9.7 % before the transfer mechanisms; 6.1 % and
# 4.2 / 10.7 / 5.8 % before stream-K covered GEMMs with fewer output tiles than SMs, which had run
# as split-K with an HBM workspace). These are issue 12's targets: 6 % overall, 8 % per band.
H100_MEDIAN_PCT = 6.0
H100_BAND_MEDIAN_PCT = 8.0


@pytest.fixture(scope="module")
def report():
    return transfer_report()


def test_the_check_ships_as_package_data_with_its_provenance():
    assert TRANSFER_CHECK.parent == DATA_DIR / "transfer_check" and TRANSFER_CHECK.is_file()
    readme = (TRANSFER_CHECK.parent / "README.md").read_text()
    assert "never for fitting" in readme and "microsoft/vidur @ 7d47513363ec447a741ac5e47241580b47724fbf" in readme
    rows = pd.read_csv(TRANSFER_CHECK)
    assert len(rows) == 512 and set(rows["hardware"]) == {"a100_80gb", "h100_sxm"}
    assert (rows.groupby("hardware").size() == 256).all()


def test_no_fit_reads_the_check():
    """The calibration reads data/calibration only; no transfer-check row is in its set."""
    assert TRANSFER_CHECK.parent not in (SOURCE, *SOURCE.parents) and SOURCE not in TRANSFER_CHECK.parents
    fitted_on = build_validation_set()
    assert not fitted_on["source"].str.contains("internlm|qwen", case=False).any()


def test_every_row_is_predicted(report):
    out, medians, problems = report
    assert problems == [] and out["error_pct"].notna().all()
    assert set(medians["band"]) == {ALL, *BANDS}


def test_bands_cover_the_ms_of_the_check():
    assert [band(m) for m in (1, 64, 65, 127, 128, 512, 513, 1024, 4096)] == [
        "M<=64", "M<=64", None, None, "128<=M<=512", "128<=M<=512", None, "M>=1024", "M>=1024"]
    assert band(float("nan")) is None
    assert {band(m) for m in pd.read_csv(TRANSFER_CHECK)["m"]} == set(BANDS)


def test_medians_by_hand():
    out = pd.DataFrame({"hardware": ["x", "x", "x", "x", "y", "y"], "m": [1, 32, 256, 2048, 100, 8],
                        "error_pct": [-10.0, 4.0, 20.0, float("nan"), 3.0, -5.0]})
    got = transfer_medians(out).set_index(["hardware", "band"])
    assert got.loc[("x", ALL)].tolist() == [3, 10.0]  # |-10|, 4, 20: median 10; the NaN row is left out
    assert got.loc[("x", "M<=64")].tolist() == [2, 7.0]
    assert got.loc[("x", "128<=M<=512")].tolist() == [1, 20.0]
    assert ("x", "M>=1024") not in got.index  # its one row was not predicted
    assert got.loc[("y", ALL)].tolist() == [2, 4.0] and got.loc[("y", "M<=64")].tolist() == [1, 5.0]
    assert ("y", "128<=M<=512") not in got.index  # M = 100 lies between bands: in "all" only
    table = medians_table(transfer_medians(out))
    assert "10.0% (3)" in table and "20.0% (1)" in table and table.splitlines()[1].split()[0] == "band"


def test_a100_half_stays_near_its_calibration(report):
    """The A100 rows are the fitted chip on shapes it was not fitted on: its GEMM accuracy holds."""
    medians = report[1].set_index(["hardware", "band"])["median_abs_error_pct"]
    assert medians[("a100_80gb", ALL)] <= 8.0
    assert all(math.isfinite(v) for v in medians)


def test_h100_rows_predicted_from_the_a100_fit(report):
    medians = report[1]
    h100 = medians[medians["hardware"] == "h100_sxm"].set_index("band")["median_abs_error_pct"]
    failures = [f"{name}: {h100[name]:.1f}% > {H100_BAND_MEDIAN_PCT}%" for name in BANDS
                if h100[name] > H100_BAND_MEDIAN_PCT]
    if h100[ALL] > H100_MEDIAN_PCT:
        failures.insert(0, f"all: {h100[ALL]:.1f}% > {H100_MEDIAN_PCT}%")
    assert not failures, "H100 median |error| over target: " + "; ".join(failures) + "\n" + medians_table(medians)
