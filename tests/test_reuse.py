"""Nothing stale (issue 14): a sweep point's reuse key covers the contents of every input file
its config names and the model version; an hf run's config.yaml records the architecture that
ran; invalid Hugging Face configs are one clear line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from hwmodels.calibration import CALIBRATION_FILE
from sim.config.compose import compose_dict, with_calibration, with_resolved_model
from sim.config.schema import RunConfig
from sim.studies.sweep import points
from sim.studies.sweep.points import INPUT_FILES, input_digests, point_key
from tests.conftest import run_cli
from workloads.model import ModelConfig, ModelError

# A small Llama-style model: quick to simulate, big enough that its layers dominate decode time.
HF = {"num_hidden_layers": 32, "hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 4,
      "intermediate_size": 2816, "vocab_size": 32000, "max_position_embeddings": 4096,
      "hidden_act": "silu", "model_type": "llama"}
QUICK = ["workload.prompt_tokens=128", "workload.decode_tokens=8", "fidelity=analytic", "output.print_summary=false",
         "sweep.report=false"]
TRACE = "arrival_s,prompt_tokens,output_tokens\n0.0,100,10\n0.1,200,20\n0.2,50,30\n"
SERVING = ["workload=serving", "workload.arrival=trace", "workload.num_requests=3", "fidelity=analytic",
           "output.print_summary=false", "sweep.report=false"]


def write_hf(folder: Path, **changes) -> Path:
    path = folder / "config.json"
    path.write_text(json.dumps({**HF, **changes}))
    return path


def hf_dict(path: Path, *extra: str):
    """The composed config of an hf run as ``llmsim`` sees it when it computes the key."""
    return with_resolved_model(with_calibration(compose_dict(["model=hf", f"model.hf_config_path={path}", *extra])))


# The key ---------------------------------------------------------------------------------------
def test_the_key_follows_the_contents_of_a_hf_config_json(tmp_path):
    path = write_hf(tmp_path)
    before = point_key(hf_dict(path))
    assert point_key(hf_dict(path)) == before  # same file, same key
    write_hf(tmp_path, num_hidden_layers=64)
    assert point_key(hf_dict(path)) != before
    # The digest alone tells them apart too, before the architecture is resolved into the config.
    raw = compose_dict(["model=hf", f"model.hf_config_path={path}"])
    edited = point_key(raw)
    write_hf(tmp_path)
    assert point_key(raw) != edited
    folder = compose_dict(["model=hf", f"model.hf_config_path={tmp_path}"])  # a folder: its config.json
    assert input_digests(folder).values() and list(input_digests(folder).values()) == list(input_digests(raw).values())


def test_the_key_follows_the_contents_of_a_trace(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(TRACE)
    dcfg = compose_dict([*SERVING, f"workload.trace_path={trace}"])
    before = point_key(dcfg)
    trace.write_text(TRACE.replace("0.1,200,20", "0.1,200,40"))
    assert point_key(dcfg) != before


def test_the_key_holds_the_model_version(monkeypatch):
    dcfg = compose_dict(QUICK)
    before = point_key(dcfg)
    monkeypatch.setattr(points, "MODEL_VERSION", points.MODEL_VERSION + 1)
    assert point_key(dcfg) != before


def test_a_calibration_file_reaches_the_key_through_its_values(tmp_path):
    """A calibration file needs no digest: with_calibration writes its fitted values into the
    config's hardware, which the key hashes; its path is not part of the key."""
    shipped = yaml.safe_load(CALIBRATION_FILE.read_text())
    first, copy, other = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"
    first.write_text(yaml.safe_dump(shipped))
    shutil.copyfile(first, copy)
    other.write_text(yaml.safe_dump({**shipped, "hbm_latency_us": shipped["hbm_latency_us"] + 0.5}))
    keys = {p: point_key(compose_dict([*QUICK, f"calibration={p}"])) for p in (first, copy, other)}
    assert keys[first] == keys[copy] != keys[other]
    fitted = compose_dict([*QUICK, f"calibration={other}"]).hardware
    assert fitted.hbm_latency_us == pytest.approx(shipped["hbm_latency_us"] + 0.5)
    assert "calibration" not in INPUT_FILES and "calibration" not in {f.name for f in fields(RunConfig)}


def _path_fields(cls, prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(cls)
    found = []
    for f in fields(cls):
        kind = hints[f.name]
        if is_dataclass(kind):
            found += _path_fields(kind, f"{prefix}{f.name}.")
        elif f.name.endswith("_path"):
            found.append(prefix + f.name)
    return found


def test_every_file_a_run_reads_is_an_input_of_the_key():
    """Every ``*_path`` field, and workload.trace (it names a shipped file in data/traces/)."""
    assert sorted([*_path_fields(RunConfig), "workload.trace"]) == sorted(INPUT_FILES)


# The written config ------------------------------------------------------------------------------
def test_a_resolved_hf_model_holds_the_architecture_read(tmp_path):
    model = hf_dict(write_hf(tmp_path)).model
    assert (model.num_layers, model.hidden_size, model.num_heads, model.num_kv_heads, model.head_dim,
            model.ffn_size, model.vocab_size, model.max_context) == (32, 1024, 16, 4, 64, 2816, 32000, 4096)
    assert model.name == "llama" and model.hf_config_path == str(tmp_path / "config.json")
    again = ModelConfig(**{k: v for k, v in OmegaConf.to_container(model).items()})
    assert again.num_params() == ModelConfig(name="hf", hf_config_path=str(tmp_path)).num_params()
    preset = compose_dict(QUICK)
    assert with_resolved_model(preset) is preset  # presets are written as they are


# End to end (the reproductions) ------------------------------------------------------------
def _tpot(folder: Path) -> float:
    return json.loads((folder / "summary.json").read_text())["tpot_s"]


@pytest.mark.slow
def test_an_edited_hf_config_json_is_simulated_again_not_reused(tmp_path):
    path = write_hf(tmp_path)
    args = ["-m", "model=hf", f"model.hf_config_path={path}", *QUICK, "workload.batch=1,2"]
    first = run_cli(*args, f"hydra.sweep.dir={tmp_path / 'sweeps' / 'first'}")
    assert first.returncode == 0, first.stderr
    written = OmegaConf.load(tmp_path / "sweeps" / "first" / "0" / "config.yaml").model
    assert (written.num_layers, written.hidden_size, written.num_heads, written.num_kv_heads) == (32, 1024, 16, 4)
    write_hf(tmp_path, num_hidden_layers=64)
    second = run_cli(*args, f"hydra.sweep.dir={tmp_path / 'sweeps' / 'second'}")
    assert second.returncode == 0, second.stderr
    assert "reused" not in second.stdout
    for point in ("0", "1"):
        assert not (tmp_path / "sweeps" / "second" / point / "reused.json").exists()
        old, new = _tpot(tmp_path / "sweeps" / "first" / point), _tpot(tmp_path / "sweeps" / "second" / point)
        assert new > 1.5 * old  # twice the layers: nearly twice the time per token
    assert OmegaConf.load(tmp_path / "sweeps" / "second" / "0" / "config.yaml").model.num_layers == 64
    third = run_cli(*args, f"hydra.sweep.dir={tmp_path / 'sweeps' / 'third'}")  # unchanged: reused
    assert third.returncode == 0 and "reused" in third.stdout, third.stderr
    assert _tpot(tmp_path / "sweeps" / "third" / "0") == _tpot(tmp_path / "sweeps" / "second" / "0")


@pytest.mark.slow
def test_an_edited_trace_is_simulated_again_not_reused(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(TRACE)
    args = ["-m", *SERVING, f"workload.trace_path={trace}", "scheduler=continuous,static"]
    first = run_cli(*args, f"hydra.sweep.dir={tmp_path / 'sweeps' / 'first'}")
    assert first.returncode == 0, first.stderr
    trace.write_text(TRACE.replace("0.1,200,20", "0.1,2000,200"))
    second = run_cli(*args, f"hydra.sweep.dir={tmp_path / 'sweeps' / 'second'}")
    assert second.returncode == 0, second.stderr
    assert "reused" not in second.stdout
    for point in ("0", "1"):
        assert not (tmp_path / "sweeps" / "second" / point / "reused.json").exists()
        old, new = (json.loads((tmp_path / "sweeps" / d / point / "summary.json").read_text())
                    for d in ("first", "second"))
        assert new != old


def test_the_key_follows_the_contents_of_a_shipped_trace_named_by_workload_trace(tmp_path, monkeypatch):
    """workload.trace=azure_code names a file in data/traces/; editing it reused the old results (review)."""
    import shutil

    import sim.serving.traces as traces

    shutil.copytree(traces.DATA_DIR / "traces", tmp_path / "traces")
    monkeypatch.setattr(traces, "DATA_DIR", tmp_path)
    raw = compose_dict(["workload=serving", "workload.arrival=trace", "workload.trace=azure_code"])
    before = point_key(raw)
    assert point_key(raw) == before
    shipped = tmp_path / "traces" / traces.TRACE_FILES[traces.TraceName.azure_code]
    shipped.write_text(shipped.read_text().replace("\n", "\n", 1) + "\n")
    assert point_key(raw) != before


# Invalid Hugging Face configs ------------------------------------------------------------------
LLAMA_SIZES = {"num_attention_heads": 32, "num_key_value_heads": 8, "hidden_size": 4096}
BAD_HF = [
    ({"hidden_size": 4097}, "hidden_size=4097, not a multiple of num_attention_heads=32"),
    ({"num_key_value_heads": 0}, "num_key_value_heads=0; expected a whole number >= 1"),
    ({"num_attention_heads": 0}, "num_attention_heads=0; expected a whole number >= 1"),
    ({"num_attention_heads": 32, "num_key_value_heads": 5}, "not a multiple of num_key_value_heads=5"),
    ({"num_hidden_layers": 0}, "num_hidden_layers=0; expected a whole number >= 1"),
    ({"hidden_size": -4096}, "hidden_size=-4096; expected a whole number >= 1"),
    ({"vocab_size": 0}, "vocab_size=0"),
    ({"max_position_embeddings": -1}, "max_position_embeddings=-1"),
    ({"intermediate_size": -5}, "intermediate_size=-5"),
    ({"head_dim": 0}, "head_dim=0"),
    ({"num_key_value_heads": "8"}, "num_key_value_heads='8'; expected a whole number"),
]


@pytest.mark.parametrize("changes, words", BAD_HF, ids=[next(iter(c)) + "=" + str(next(iter(c.values())))
                                                        for c, _ in BAD_HF])
def test_invalid_hf_config_is_refused(tmp_path, changes, words):
    path = write_hf(tmp_path, **{**LLAMA_SIZES, **changes})
    with pytest.raises(ModelError, match=words.replace("(", r"\(").replace("+", r"\+")):
        ModelConfig(name="hf", hf_config_path=str(path))


def test_an_explicit_head_dim_allows_heads_that_do_not_divide_the_hidden_size(tmp_path):
    # Mistral-NeMo style: 5120 hidden, 32 heads of 128 (the query width is not the hidden size).
    path = write_hf(tmp_path, hidden_size=5120, num_attention_heads=32, num_key_value_heads=8, head_dim=128)
    assert ModelConfig(name="hf", hf_config_path=str(path)).q_size == 4096
    write_hf(tmp_path, hidden_size=4097, num_attention_heads=32, num_key_value_heads=8, head_dim=128)
    assert ModelConfig(name="hf", hf_config_path=str(path)).head_dim == 128


def test_a_preset_whose_heads_do_not_divide_the_hidden_size_is_refused():
    with pytest.raises(ModelError, match="hidden_size=4097 is not a multiple of model.num_heads=32"):
        ModelConfig(name="x", num_layers=2, hidden_size=4097, num_heads=32, ffn_size=64, vocab_size=10)


@pytest.mark.slow
@pytest.mark.parametrize("changes, words", [BAD_HF[0], BAD_HF[1], BAD_HF[2]], ids=["4097", "kv0", "heads0"])
def test_invalid_hf_config_is_one_line_and_exit_2(tmp_path, changes, words):
    path = write_hf(tmp_path, **{**LLAMA_SIZES, **changes})
    proc = run_cli(f"hydra.run.dir={tmp_path / 'run'}", "model=hf", f"model.hf_config_path={path}",
                   "output.print_summary=false")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], proc.stderr


def test_a_search_with_an_edited_input_file_is_another_search(tmp_path, monkeypatch):
    """llmsim-search resumes a study only with the same settings: an edited config.json or a new
    model version makes the stored study another search (refused, never silently extended)."""
    from sim.studies.search.runner import _plain, _run_part
    from sim.studies.search.study import Search

    path = write_hf(tmp_path)

    def fingerprint() -> str:
        tree = _plain(["model=hf", f"model.hf_config_path={path}", "fidelity=analytic"])
        node = tree.pop("search")
        node.update(space={"hardware.num_cores": {"choices": [2, 4]}}, objectives=["output_tokens_per_s"],
                    constraints={}, derived={})
        return Search(_run_part(tree), node, 0).fingerprint()

    before = fingerprint()
    assert fingerprint() == before
    write_hf(tmp_path, num_hidden_layers=64)
    edited = fingerprint()
    assert edited != before
    monkeypatch.setattr("sim.studies.search.study.MODEL_VERSION", points.MODEL_VERSION + 1)
    assert fingerprint() != edited


# The model version moves with the numbers ------------------------------------------------------------
@pytest.mark.slow
def test_numbers_change_only_with_a_new_model_version():
    """Reference runs' headline numbers as recorded under the current MODEL_VERSION: a change that
    moves them must bump the version (else sweeps reuse the old model's points as the new one's)."""
    from sim.engine.model_version import MODEL_VERSION
    from tests.golden.model_numbers import RECORD, current_numbers

    record = json.loads(RECORD.read_text())
    fix = ("bump MODEL_VERSION in sim/engine/model_version.py (with a history line), then run "
           "`python -m tests.golden.model_numbers`")
    if record["model_version"] != MODEL_VERSION:
        pytest.fail(f"MODEL_VERSION is {MODEL_VERSION} but tests/golden/model_numbers.json records "
                    f"{record['model_version']}: run `python -m tests.golden.model_numbers`")
    now = current_numbers()
    moved = [f"{run}.{key}: {old!r} -> {now[run][key]!r}" for run, keys in record["runs"].items()
             for key, old in keys.items() if now[run][key] != pytest.approx(old, rel=1e-9)]
    assert not moved, f"the model's numbers changed under the same version; {fix}:\n" + "\n".join(moved)


def test_a_reused_point_whose_files_went_missing_is_simulated(tmp_path):
    """A finished point found for reuse whose summary.json is gone by the time it is copied (its folder removed while
    the sweep ran) leaves nothing in the new point's folder and returns None: the point is simulated, and no error
    names the new folder's summary.json."""
    source, out = tmp_path / "old", tmp_path / "new"
    source.mkdir()
    (source / "config.yaml").write_text("x: 1\n")
    assert points.reuse(source, out) is None
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]  # the copy of a file that was there; no outcome
    (source / "summary.json").write_text('{"a": 1}\n')
    assert points.reuse(source, out) == {"a": 1} and (out / "reused.json").exists()


@pytest.mark.slow
def test_a_truncated_summary_is_simulated_again_and_fails_only_its_point_in_a_report(tmp_path):
    """A finished point's summary.json cut short (or edited by hand) was copied into the next sweep as reused, which
    then failed with a traceback, and ``llmsim-report`` failed as a whole (independent review)."""
    args = ["-m", *QUICK, "workload.batch=1,2"]
    first = run_cli(*args, f"hydra.sweep.dir={tmp_path / 'first'}")
    assert first.returncode == 0, first.stderr
    (tmp_path / "first" / "1" / "summary.json").write_text('{"ttft_s": ')
    second = run_cli(*args, f"hydra.sweep.dir={tmp_path / 'second'}")
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "second" / "0" / "reused.json").exists()  # the readable one is still reused
    assert not (tmp_path / "second" / "1" / "reused.json").exists() and _tpot(tmp_path / "second" / "1") > 0
    report = run_cli_tool("llmsim-report", str(tmp_path / "first"))
    assert report.returncode == 0, report.stderr
    table = pd.read_csv(tmp_path / "first" / "report" / "points.csv").set_index("point")
    assert table.loc[0, "status"] == "ok" and table.loc[1, "status"] == "failed"
    assert "could not be read" in table.loc[1, "reason"]


def run_cli_tool(name: str, *args: str):
    exe = Path(sys.executable).parent / name
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_run_folder_with_a_file_cut_short_is_one_line_from_llmsim_report(tmp_path):
    run = run_cli(*QUICK, f"hydra.run.dir={tmp_path / 'run'}")
    assert run.returncode == 0, run.stderr
    ops = tmp_path / "run" / "ops.parquet"
    ops.write_bytes(ops.read_bytes()[:100])
    for broken in ("ops.parquet", "summary.json"):
        if broken == "summary.json":
            (tmp_path / "run" / "summary.json").write_text("[1]")
        out = run_cli_tool("llmsim-report", str(tmp_path / "run"))
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and f"{broken} could not be read" in out.stderr


def test_a_run_folder_with_a_file_edited_out_of_shape_is_one_line_from_llmsim_report(tmp_path):
    """Files that parse but are not a run's (a config.yaml cut mid-list, an ops table of other columns, a summary
    whose run is a number) were tracebacks; so was --point on a grid's folder (independent review)."""
    from sim.studies.sweep import ReportError
    from sim.studies.sweep.report import _example_run, make_report
    run = run_cli(*QUICK, f"hydra.run.dir={tmp_path / 'run'}")
    assert run.returncode == 0, run.stderr
    edits = {"config.yaml": ("hardware: [\n", "cannot read the chip of"),
             "ops.parquet": (pd.DataFrame({"a": [1]}), "ops.parquet lacks phase, step"),
             "summary.json": ('{"run": 5}\n', "summary.json is not a run's summary")}
    for name, (body, words) in edits.items():
        broken = tmp_path / name.replace(".", "_")
        shutil.copytree(tmp_path / "run", broken)
        body.to_parquet(broken / name) if isinstance(body, pd.DataFrame) else (broken / name).write_text(body)
        with pytest.raises(ReportError, match=words) as err:
            make_report(broken, tmp_path / f"{name}_report")
        assert "\n" not in str(err.value)
    grid = pd.DataFrame({"point": [0], "status": ["ok"]})  # llmsim-grid's table: no run folder per point
    with pytest.raises(ReportError, match="--point draws a point's own run folder"):
        _example_run(tmp_path, grid, 0)
    assert _example_run(tmp_path, grid, None) is None


@pytest.mark.slow
def test_a_folder_rewritten_by_another_point_is_never_reused_as_the_old_one(tmp_path):
    """A marker named the folder of its point's first run; the same sweep re-run with its values in another order
    rewrote that folder with the other point, and the marker then handed those numbers back as the first point's,
    "reused", exit 0 (independent review). A point's folder now says which point it holds (point.json)."""
    sweep = tmp_path / "X"
    args = ["-m", *QUICK, f"hydra.sweep.dir={sweep}"]
    assert run_cli(*args, "hardware.hbm_bandwidth_GBps=1000,2000").returncode == 0
    slow, fast = _tpot(sweep / "0"), _tpot(sweep / "1")
    again = run_cli(*args, "hardware.hbm_bandwidth_GBps=2000,1000")
    assert again.returncode == 0, again.stderr
    assert _tpot(sweep / "0") == fast and _tpot(sweep / "1") == slow  # 1000 GB/s simulated again, not 2000's copied
    assert not (sweep / "1" / "reused.json").exists()
    assert json.loads((sweep / "1" / "point.json").read_text())["key"] != \
        json.loads((sweep / "0" / "point.json").read_text())["key"]


@pytest.mark.slow
def test_a_new_sweep_counts_only_the_points_it_wrote_or_kept(tmp_path):
    """A sweep stopped before its last points left the earlier sweep's results in those folders, and the interrupt
    line and llmsim-report counted them as this sweep's, "ok" (independent review)."""
    from sim.studies.sweep.callbacks import finished_points
    from sim.studies.sweep.table import collect
    sweep = tmp_path / "X"
    assert run_cli("-m", *QUICK, f"hydra.sweep.dir={sweep}", "workload.batch=1,2").returncode == 0
    assert finished_points(sweep) == 2 and set(collect(sweep)["status"]) == {"ok"}
    points.new_sweep(sweep)  # another multirun started in the folder and was stopped before any point
    assert finished_points(sweep) == 0
    table = collect(sweep)
    assert set(table["status"]) == {"missing"} and table["reason"].str.contains("earlier sweep").all()
    resumed = run_cli("-m", *QUICK, f"hydra.sweep.dir={sweep}", "workload.batch=1,2")  # the same sweep: kept
    assert resumed.returncode == 0 and "reused" not in resumed.stdout, resumed.stderr
    assert finished_points(sweep) == 2 and set(collect(sweep)["status"]) == {"ok"}
