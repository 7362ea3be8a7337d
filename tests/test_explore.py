"""The explorer's logic without a browser: controls, the run of a state, errors in words, the map, the
comparison, the page and the command (tests/test_explore_browser.py drives the page in Chromium)."""

from __future__ import annotations

import copy
import re
import socket

import dash
import pytest

from sim.studies.explore.controls import (
    BY_KEY,
    CONTROLS,
    command,
    format_value,
    parse_number,
    slider_position,
    slider_value,
)
from sim.studies.explore.outcome import GENERAL, default_state, evaluate, overrides_of


@pytest.fixture(scope="module")
def state():
    return default_state()


def _with(state, **values):
    s = copy.deepcopy(state)
    s["values"].update({k.replace("__", "."): v for k, v in values.items()})
    return s


def test_a_box_says_what_is_wrong_in_words():
    batch = BY_KEY["workload.batch"]
    assert parse_number(batch, "8") == 8 and parse_number(batch, 16.0) == 16
    for raw, words in (("abc", "'abc' is not a number"), ("2.5", "not a whole number"), ("", "enter a number"),
                       ("0", "outside 1-4096 sequences"), ("nan", "not a finite number")):
        with pytest.raises(ValueError, match=words):
            parse_number(batch, raw)


def test_sliders_move_in_log_units_and_show_four_figures():
    hbm = BY_KEY["hardware.hbm_bandwidth_GBps"]
    assert slider_position(hbm, 1000) == 3
    assert slider_value(hbm, 3) == 1000 and slider_value(hbm, 3.54) == 3467
    assert format_value(1000.0) == "1000" and format_value(1.5) == "1.5"
    assert all(c.unit or c.kind == "choice" for c in CONTROLS), "every number has its unit"


def test_every_chip_preset_fits_its_controls_and_comes_back_unchanged():
    """Picking a preset sets the sliders to its datasheet values; reading them back must give those values (a
    rounded 1550 for A100's 1555 GB/s would be a change the user never made) inside each control's range."""
    from sim.config.paths import presets
    from sim.studies.explore.outcome import preset_values

    for chip in presets("hardware"):
        values = preset_values({"hardware": chip, "model": "llama2_7b", "workload": "single_batch",
                                "scheduler": "continuous"})
        for c in CONTROLS:
            if c.kind == "slider":
                assert slider_value(c, slider_position(c, values[c.key])) == values[c.key], (chip, c.key)
            if c.kind in ("slider", "box") and values.get(c.key) is not None:
                parse_number(c, values[c.key])  # within the control's range


def test_the_default_state_is_the_presets_and_the_fast_fidelity(state):
    assert overrides_of(state) == ["hardware=teaching_npu", "model=llama2_7b", "workload=single_batch",
                                   "fidelity=analytic"]
    changed = _with(state, hardware__hbm_bandwidth_GBps=2000, workload__batch="8")
    assert overrides_of(changed)[3:] == ["hardware.hbm_bandwidth_GBps=2000", "workload.batch=8", "fidelity=analytic"]
    assert command(overrides_of(changed)).startswith("llmsim hardware=teaching_npu ")


def test_a_state_gives_the_numbers_of_its_command(state):
    from sim.batch.run import simulate
    from sim.config.compose import compose_dict, to_run_config
    from sim.metrics.summary import summarize

    s = _with(state, hardware__hbm_bandwidth_GBps=2000, workload__batch="8", workload__decode_tokens="16")
    out = evaluate(s)
    assert out.ok and not out.errors
    direct = summarize(simulate(to_run_config(compose_dict(out.overrides))))
    assert out.summary["tpot_s"] == direct["tpot_s"] and out.summary["ttft_s"] == direct["ttft_s"]
    assert evaluate(s).summary["tpot_s"] == out.summary["tpot_s"], "the same state, the same numbers"


def test_bad_input_lands_next_to_its_control(state):
    assert evaluate(_with(state, workload__batch="abc")).errors == {"workload.batch": "batch: 'abc' is not a number"}
    tp = evaluate(_with(state, parallel__tp="3")).errors
    assert list(tp) == ["parallel.tp"] and "does not divide" in tp["parallel.tp"]
    fit = evaluate(_with(state, workload__batch="2000")).errors
    assert len(fit) == 1 and "does not fit" in next(iter(fit.values()))
    none = copy.deepcopy(state)
    none["presets"]["model"] = ""
    assert GENERAL in evaluate(none).errors


def test_the_main_callback_answers_every_output_and_never_raises(state):
    from sim.studies.explore.app import SLIDERS, run_outputs
    from sim.studies.explore.controls import PRESET_GROUPS

    chosen = [state["presets"][g] for g in PRESET_GROUPS]
    raw = [slider_position(c, state["values"][c.key]) if c.kind == "slider" else state["values"][c.key]
           for c in CONTROLS]
    good = run_outputs(chosen, raw)
    assert len(good) == 8 + len(CONTROLS) + len(SLIDERS)
    assert re.fullmatch(r"\d+(\.\d+)? ms", good[1]["headline"][1]["text"]) and good[7] == ""
    raw[CONTROLS.index(BY_KEY["workload.batch"])] = "-3"
    bad = run_outputs(chosen, raw)
    assert bad[1] is None and "batch" in bad[8 + CONTROLS.index(BY_KEY["workload.batch"])]


def test_a_preset_no_picker_offers_is_one_line_not_hydras_dump(state):
    """A hand-made request (the pickers cannot send it) with an unknown preset: the main callback says so in one
    line, naming the choices; the preset and map callbacks leave the page as it is."""
    from sim.studies.explore.app import map_outputs, preset_outputs, run_outputs
    from sim.studies.explore.controls import PRESET_GROUPS

    for group, value in (("hardware", "nochip"), ("model", "../../etc/passwd"), ("workload", "bogus")):
        bad = copy.deepcopy(state)
        bad["presets"][group] = value
        chosen = [bad["presets"][g] for g in PRESET_GROUPS]
        raw = [slider_position(c, bad["values"][c.key]) if c.kind == "slider" else bad["values"][c.key]
               for c in CONTROLS]
        line = run_outputs(chosen, raw)[7]
        assert line.startswith(f"unknown {group} preset {value!r}; choose one of ") and "\n" not in line
        assert "internal error" not in line and "search path" not in line.lower()
        assert all(v is dash.no_update for v in preset_outputs(f"preset-{group}", chosen))
        assert map_outputs(bad, "hardware.hbm_bandwidth_GBps", "workload.batch")[1:] == ("", "", None)


def test_compare_says_which_way_each_figure_moved():
    from sim.studies.explore.readouts import changed_settings, compare

    pinned = {"headline": [{"name": "tpot_s", "label": "TPOT", "value": 0.010, "text": "10 ms"},
                           {"name": "output_tokens_per_s", "label": "tokens/s", "value": 100.0, "text": "100"}]}
    current = {"headline": [{"name": "tpot_s", "label": "TPOT", "value": 0.012, "text": "12 ms"},
                            {"name": "output_tokens_per_s", "label": "tokens/s", "value": 100.0, "text": "100"}]}
    rows = compare(pinned, current)
    assert rows[0]["change"] == "+20.0%" and rows[0]["verdict"] == "worse"
    assert rows[1]["verdict"] == "same"
    assert changed_settings(["a=1", "b=2"], ["a=1", "b=3", "c=4"]) == ["b: 2 -> 3", "c: preset -> 4"]
    # a setting left at its preset shows the preset's value
    assert changed_settings(["a=1"], ["a=1", "c=4"], {"c": "bf16"}, {"c": "4"}) == ["c: bf16 -> 4"]


def test_the_regime_map_marks_the_design_on_its_grid(state):
    from sim.studies.explore.design_map import axis_around, design_map

    assert axis_around("workload.batch", 1) == [1, 2, 4, 8, 16]
    assert axis_around("hardware.hbm_bandwidth_GBps", 1000.0) == [250, 500, 1000, 2000, 4000]
    small = _with(state, workload__prompt_tokens="64", workload__decode_tokens="2")
    grid = design_map(small, "hardware.hbm_bandwidth_GBps", "workload.batch")
    assert grid["here"] == (1000.0, 1.0) and len(grid["bound"]) == 5 and len(grid["bound"][0]) == 5
    assert {b for row in grid["bound"] for b in row} <= {"compute", "memory", "overhead", "interconnect",
                                                         "capacity", "invalid"}
    with pytest.raises(ValueError, match="two different"):
        design_map(small, "workload.batch", "workload.batch")


def test_the_page_serves_its_scripts_itself():
    from sim.studies.explore.app import make_app

    client = make_app().server.test_client()
    page = client.get("/").get_data(as_text=True)
    assert "llmsim explorer" in page and "http" not in page.split("<footer>")[1].split("_dash-config")[0]
    layout = client.get("/_dash-layout").get_data(as_text=True)
    assert all(c.dom_id in layout and f"err-{c.dom_id}" in layout for c in CONTROLS)
    scripts = client.get("/_dash-component-suites/plotly/package_data/plotly.min.js")
    assert scripts.status_code == 200 and len(scripts.get_data()) > 1_000_000


def test_a_port_that_cannot_be_served_is_one_line(capsys):
    from sim.cli.explore import main

    with pytest.raises(SystemExit) as done:
        main(["--port", "70000"])
    assert done.value.code == 2 and capsys.readouterr().err.count("\n") == 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit) as done:
            main(["--port", str(taken.getsockname()[1])])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "choose another --port" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as done:  # not an address: the host is the fix, not the port (review)
        main(["--host", "999.1.1.1"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "check --host" in err and err.count("\n") == 1


def test_a_serving_point_is_placed_by_whether_the_server_keeps_up():
    from sim.studies.explore.design_map import regime
    from sim.studies.explore.figures import regime_map

    assert regime({"time_by_bound_s": {"compute": 1.0, "memory": 2.0}}) == "memory"
    assert regime({"overloaded": True}) == "overloaded" and regime({"overloaded": False}) == "keeps up"
    grid = {"x": "hardware.hbm_bandwidth_GBps", "y": "workload.rate_per_s", "xs": [500, 1000], "ys": [10, 20],
            "bound": [["keeps up", "keeps up"], ["overloaded", "capacity"]], "value": [[0.1, 0.1], [None, None]],
            "reasons": [["", ""], ["", "does not fit"]], "metric": "tpot_p50_s", "here": (1000.0, 10.0)}
    fig = regime_map(grid)
    names = {t.get("name") for t in fig["data"]}
    assert {"this design", "keeps up with arrivals", "overloaded (queue grows)"} <= names


@pytest.mark.slow
def test_every_view_downloads_with_its_command(state):
    """Figures, ops, roofline PNG and the map's table; the map's command sweeps its own axes."""
    from sim.studies.explore.app import map_frame, map_outputs, outcome_of, roofline_png
    from sim.studies.explore.readouts import csv_text, headline, headline_frame

    small = _with(state, workload__decode_tokens="4")
    out = outcome_of(small)
    figures_csv = csv_text(headline_frame(headline(out.summary, "single_batch"), command(out.overrides)))
    assert figures_csv.splitlines()[0] == "figure,metric,value,text,command" and "llmsim hardware=" in figures_csv
    assert {"op", "phase", "flops", "hbm_bytes", "bound"} <= set(out.ops_table().columns)
    assert roofline_png(out).startswith(b"\x89PNG")
    _, cmd, err, grid = map_outputs(small, "hardware.freq_GHz", "hardware.num_cores")
    assert not err and cmd.startswith("llmsim -m ") and "hardware.freq_GHz=0.25,0.5,1,2,4" in cmd
    table = map_frame(grid)
    assert len(table) == 25 and set(table["command"]) == {cmd}


def test_the_charts_are_figures_plotly_accepts(state):
    """They are built as plain dicts for speed: Plotly's own validation must still pass them."""
    import plotly.graph_objects as go

    from sim.studies.explore import figures

    out = evaluate(state)
    for fig in (figures.roofline(out.records, out.result.cfg.hardware, "t"), figures.time_by_op(out.breakdown),
                figures.time_by_bound(out.summary), figures.message("why")):
        go.Figure(fig)
        assert isinstance(fig["layout"]["title"], dict), "plotly.js 3 shows only title.text"
    roof = figures.roofline(out.records, out.result.cfg.hardware, "t")
    decode = next(t for t in roof["data"] if t["name"] == "decode")
    assert any("mlp_up" in text and "bound memory" in text for text in decode["text"]), "hover: op, bound"


@pytest.mark.slow
def test_ctrl_c_stops_the_server_in_one_line():
    import signal
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([str(Path(sys.executable).parent / "llmsim-explore"), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a shell would
    assert f"http://127.0.0.1:{port}/" in proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == "llmsim-explore: interrupted\n"


def test_the_map_waits_for_good_input_and_for_axes_the_run_reads(state):
    from sim.studies.explore.app import map_outputs

    _, cmd, err, grid = map_outputs(_with(state, workload__batch="abc"), "hardware.freq_GHz", "workload.batch")
    assert (cmd, err, grid) == ("", "", None)
    serving = copy.deepcopy(state)
    serving["presets"]["workload"] = "serving"
    _, _, err, _ = map_outputs(serving, "hardware.freq_GHz", "workload.batch")
    assert err == "a serving run does not read batch: choose another axis"


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 on this machine")
def test_an_ipv6_host_is_bound_as_ipv6():
    """``--host ::1`` was refused ("Address family not supported"): the port check opened IPv4 sockets only."""
    from sim.cli.explore import free_port
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("IPv6 loopback not configured")
    assert 0 < free_port("::1", 0) < 65536 and 0 < free_port("127.0.0.1", 0) < 65536
    assert 0 < free_port("", 0) < 65536  # every interface, as before


def test_a_bandwidth_that_needs_more_hbm_stacks_says_so_beside_the_area(state):
    """The console prints the derived stack count; the page showed the area double without a word (review)."""
    from sim.studies.explore.layout import headline_cards
    from sim.studies.explore.readouts import headline

    out = evaluate(_with(state, hardware__hbm_bandwidth_GBps=2000.0))
    area = next(r for r in headline(out.summary, "single_batch") if r["name"] == "chip_area_mm2")
    assert "stacks derived from 2,000 GB/s" in area["note"]
    assert "note-chip_area_mm2" in str(headline_cards([area]))
    plain = evaluate(state)
    assert all(not r["note"] for r in headline(plain.summary, "single_batch"))
