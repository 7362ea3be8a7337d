"""The serving tables written through pyarrow read back to the columns' values, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.output.serving_files import write_tables


def test_tables_read_back_to_the_same_values(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.random(50) * 10.0 ** rng.integers(-9, 12, 50)
    steps = {"instance": ["replica0", "a,b"] * 25, "start_s": x.tolist(), "tokens": list(range(50)),
             "swap_s": [0.0] * 49 + [1e-5], "preempted": [0, 1] * 25}
    requests = {"request_id": np.arange(50, dtype=np.int64), "tpot_s": np.where(x > 1, x, np.nan),
                "meets_slo": x > 1, "instance": np.array(["r0", "r1"] * 25, dtype=object)}
    write_tables(tmp_path, requests, steps, "x: 1\n")
    for name, columns in (("requests", requests), ("steps", steps)):
        expected = pd.DataFrame(columns)
        for read in (pd.read_parquet(tmp_path / f"{name}.parquet"), pd.read_csv(tmp_path / f"{name}.csv")):
            assert list(read.columns) == list(expected.columns)
            for col in expected:
                a, b = expected[col].to_numpy(), read[col].to_numpy()
                if a.dtype.kind == "f":
                    assert np.array_equal(a, b.astype(float), equal_nan=True), col  # bit for bit, NaN where NaN
                else:
                    assert a.tolist() == b.tolist(), col
    assert (tmp_path / "steps.csv").read_text().splitlines()[0] == "instance,start_s,tokens,swap_s,preempted"
