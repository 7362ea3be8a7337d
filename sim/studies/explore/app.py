"""The explorer's Dash app: the page (sim/studies/explore/layout.py) and the callbacks that answer it.

One callback turns the controls into a state, simulates it (sim/studies/explore/outcome.py) and
updates the headline figures, the charts, the command and every control's error line; the regime
map has its own callback (a grid of runs takes seconds, the headline does not wait for it). Every
callback answers bad input in words: an error the simulator raises is shown next to the control
it names, and anything unexpected as one line under the controls, never as a traceback.
"""

from __future__ import annotations

import json
import tempfile
from collections import OrderedDict
from pathlib import Path

import dash
import pandas as pd
from dash import Input, Output, State, dcc

from sim.studies.explore import figures
from sim.studies.explore.controls import (
    BY_KEY,
    CONTROLS,
    PRESET_GROUPS,
    applies,
    command,
    format_value,
    serving,
    slider_position,
    slider_value,
)
from sim.studies.explore.design_map import design_map
from sim.studies.explore.layout import compare_table, headline_cards, page, preset_id
from sim.studies.explore.outcome import (
    GENERAL,
    Outcome,
    checked_values,
    default_state,
    evaluate,
    overrides_of,
    preset_values,
    unknown_preset,
)
from sim.studies.explore.readouts import changed_settings, compare, csv_text, headline, headline_frame

SLIDERS = [c for c in CONTROLS if c.kind == "slider"]
HIDDEN = {"display": "none"}
_CACHE: OrderedDict[str, Outcome] = OrderedDict()  # the last few outcomes, for the downloads


def state_of(chosen: list, raw: list) -> dict:
    """The state of the page: presets picked and every control's value (sliders as values, not positions)."""
    values = {}
    for control, value in zip(CONTROLS, raw, strict=True):
        if control.kind == "slider" and isinstance(value, (int, float)):
            value = slider_value(control, value)
        values[control.key] = value
    return {"presets": dict(zip(PRESET_GROUPS, chosen, strict=True)), "values": values}


def outcome_of(state: dict) -> Outcome:
    """``evaluate(state)``, remembered for the downloads that follow."""
    key = json.dumps(state, sort_keys=True, default=str)
    if key not in _CACHE:
        _CACHE[key] = evaluate(state)
        while len(_CACHE) > 8:
            _CACHE.popitem(last=False)
    return _CACHE[key]


def run_outputs(chosen: list, raw: list) -> tuple:
    """Everything the main callback updates, in its output order."""
    state = state_of(chosen, raw)
    try:
        out = outcome_of(state)
    except Exception as err:  # noqa: BLE001 - a bug is one line on the page, never a traceback
        reason = f"internal error: {type(err).__name__}: {err}"
        out = Outcome([], state["presets"]["workload"], errors={GENERAL: reason})
    kind = state["presets"]["workload"]
    errors = [out.errors.get(c.key, "") for c in CONTROLS]
    readouts = [f"{format_value(slider_value(c, r))} {c.unit}" if isinstance(r, (int, float)) else ""
                for c, r in zip(CONTROLS, raw, strict=True) if c.kind == "slider"]
    if not out.ok:
        note = figures.message("fix the input marked in red")
        return (state, None, [], command(out.overrides) if out.overrides else "", note, note, note,
                out.errors.get(GENERAL, ""), *errors, *readouts)
    rows = headline(out.summary, kind)
    current = {"headline": rows, "overrides": out.overrides, "command": command(out.overrides),
               "values": {key: format_value(value) for key, value in state["values"].items()}}
    if out.records:
        cfg = out.result.cfg
        title = f"roofline: {cfg.model.name} on {cfg.hardware.name}, batch {cfg.workload.batch}"
        roof, by_op = figures.roofline(out.records, cfg.hardware, title), figures.time_by_op(out.breakdown)
        by_bound = figures.time_by_bound(out.summary)
    else:
        roof = by_op = figures.message("a single batch's ops only:<br>set workload to single_batch")
        by_bound = (figures.time_by_bound(out.summary) if out.summary.get("time_by_bound_s")
                    else figures.message("time by bound: single batch runs only"))
    return (state, current, headline_cards(rows), current["command"], roof, by_bound, by_op, "", *errors, *readouts)


def preset_outputs(trigger: str | None, chosen: list) -> tuple:
    """Control values reset to the presets' own when a preset changes (only the controls it sets),
    and the controls that the workload does not read hidden."""
    picked = dict(zip(PRESET_GROUPS, chosen, strict=True))
    if unknown_preset(picked):  # a preset no picker offers: the main callback says what is wrong
        return tuple(dash.no_update for _ in range(2 * len(CONTROLS) + 2))
    values = preset_values(picked)
    group = (trigger or "").removeprefix("preset-")
    out = []
    for c in CONTROLS:
        resets = trigger is None or c.key.startswith(f"{group}.") or (group == "model" and c.key == "parallel.tp")
        if not resets:
            out.append(dash.no_update)
        elif c.kind == "slider":
            out.append(slider_position(c, values[c.key]))
        elif c.kind == "choice":
            out.append(values[c.key])
        else:
            out.append(format_value(values[c.key]))
    styles = [None if applies(c, picked["workload"]) else HIDDEN for c in CONTROLS]
    scheduler = None if serving(picked["workload"]) else HIDDEN
    map_y = dash.no_update
    if group == "workload":  # the map's second axis: what this kind of run is swept by most
        map_y = "workload.rate_per_s" if serving(picked["workload"]) else "workload.batch"
    return (*out, *styles, scheduler, map_y)


def map_outputs(state: dict | None, x: str, y: str) -> tuple:
    """The regime-map callback's outputs: figure, its command, its error line, its grid (for the CSV)."""
    if not state or unknown_preset(state["presets"]) or checked_values(state)[1]:
        return figures.message("fix the input marked in red"), "", "", None
    kind = state["presets"]["workload"]
    metric = "tpot_p50_s" if serving(kind) else "tpot_s"
    unread = [BY_KEY[k].label for k in (x, y) if k in BY_KEY and not applies(BY_KEY[k], kind)]
    if unread:
        text = f"a {kind} run does not read {' or '.join(unread)}: choose another axis"
        return figures.message(text), "", text, None
    try:
        grid = design_map(state, x, y, metric)
    except ValueError as err:
        return figures.message(str(err)), "", str(err), None
    fixed = [o for o in overrides_of(state) if o.split("=", 1)[0] not in (x, y)]
    sweep = [f"{x}={','.join(format_value(v) for v in grid['xs'])}",
             f"{y}={','.join(format_value(v) for v in grid['ys'])}"]
    cmd = command(["-m", *fixed, *sweep])
    return figures.regime_map(grid), cmd, "", {**grid, "command": cmd}


def make_app() -> dash.Dash:
    """The Dash app, every script and style served from the installed packages (no CDN)."""
    app = dash.Dash(__name__, title="llmsim explorer", serve_locally=True, update_title=None,
                    assets_folder=str(Path(tempfile.gettempdir()) / "llmsim-explore-no-assets"))
    app.layout = page(default_state())
    _main_callbacks(app)
    _other_callbacks(app)
    _download_callbacks(app)
    return app


def _main_callbacks(app: dash.Dash) -> None:
    presets = [Input(preset_id(g), "value") for g in PRESET_GROUPS]
    controls = [Input(c.dom_id, "value") for c in CONTROLS]
    outputs = [Output("state", "data"), Output("current", "data"), Output("headline", "children"),
               Output("command", "children"), Output("fig-roofline", "figure"), Output("fig-bound", "figure"),
               Output("fig-op", "figure"), Output("err-general", "children")]
    outputs += [Output(f"err-{c.dom_id}", "children") for c in CONTROLS]
    outputs += [Output(f"val-{c.dom_id}", "children") for c in SLIDERS]

    @app.callback(*outputs, *presets, *controls)
    def _run(*args):
        return run_outputs(list(args[:len(PRESET_GROUPS)]), list(args[len(PRESET_GROUPS):]))

    resets = [Output(c.dom_id, "value") for c in CONTROLS]
    styles = [Output(f"block-{c.dom_id}", "style") for c in CONTROLS] + [Output("block-preset-scheduler", "style"),
                                                                          Output("map-y", "value")]

    @app.callback(*resets, *styles, *presets)
    def _presets(*chosen):
        return preset_outputs(dash.ctx.triggered_id, list(chosen))


def _other_callbacks(app: dash.Dash) -> None:
    @app.callback(Output("fig-map", "figure"), Output("map-command", "children"), Output("err-map", "children"),
                  Output("map-grid", "data"), Input("state", "data"), Input("map-x", "value"),
                  Input("map-y", "value"))
    def _map(state, x, y):
        try:
            return map_outputs(state, x, y)
        except Exception as err:  # noqa: BLE001 - one line on the page, never a traceback
            return figures.message("the map could not be drawn"), "", f"internal error: {err}", None

    @app.callback(Output("pinned", "data"), Input("pin-btn", "n_clicks"), State("current", "data"),
                  prevent_initial_call=True)
    def _pin(_, current):
        return current or dash.no_update

    @app.callback(Output("compare", "children"), Input("pinned", "data"), Input("current", "data"))
    def _compare(pinned, current):
        if not pinned or not current:
            return compare_table([], [])
        return compare_table(compare(pinned, current), changed_settings(pinned["overrides"], current["overrides"],
                                                                        pinned.get("values"), current.get("values")))


def _download_callbacks(app: dash.Dash) -> None:
    @app.callback(Output("dl-headline", "data"), Input("dl-headline-btn", "n_clicks"), State("current", "data"),
                  prevent_initial_call=True)
    def _headline(_, current):
        if not current:
            return dash.no_update
        return dcc.send_string(csv_text(headline_frame(current["headline"], current["command"])), "figures.csv")

    @app.callback(Output("dl-ops", "data"), Input("dl-ops-btn", "n_clicks"), State("state", "data"),
                  prevent_initial_call=True)
    def _ops(_, state):
        table = outcome_of(state).ops_table() if state else None
        if table is None:
            return dash.no_update
        return dcc.send_string(csv_text(table), "ops.csv")

    @app.callback(Output("dl-roofline", "data"), Input("dl-roofline-btn", "n_clicks"), State("state", "data"),
                  prevent_initial_call=True)
    def _roofline(_, state):
        out = outcome_of(state) if state else None
        if out is None or not out.records:
            return dash.no_update
        return dcc.send_bytes(roofline_png(out), "roofline.png")

    @app.callback(Output("dl-map", "data"), Input("dl-map-btn", "n_clicks"), State("map-grid", "data"),
                  prevent_initial_call=True)
    def _map(_, grid):
        return dcc.send_string(csv_text(map_frame(grid)), "regime_map.csv") if grid else dash.no_update

    @app.callback(Output("dl-compare", "data"), Input("dl-compare-btn", "n_clicks"), State("pinned", "data"),
                  State("current", "data"), prevent_initial_call=True)
    def _compare(_, pinned, current):
        if not pinned or not current:
            return dash.no_update
        frame = pd.DataFrame(compare(pinned, current)).assign(pinned_command=pinned["command"],
                                                              current_command=current["command"])
        return dcc.send_string(csv_text(frame), "comparison.csv")


def roofline_png(out: Outcome) -> bytes:
    """The run's roofline as the PNG ``llmsim-report`` draws (sim/plots/roofline.py)."""
    from sim.plots.roofline import plot_roofline

    cfg = out.result.cfg
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_roofline(out.ops_table(), cfg.hardware, Path(tmp) / "roofline.png",
                             f"{cfg.model.name} on {cfg.hardware.name}: {command(out.overrides)}",
                             cfg.precision.activations.value)
        return Path(path).read_bytes()


def map_frame(grid: dict) -> pd.DataFrame:
    """The regime map as a table: one row per grid point, with the command that sweeps it."""
    rows = []
    for i, yv in enumerate(grid["ys"]):
        for j, xv in enumerate(grid["xs"]):
            rows.append({grid["x"]: xv, grid["y"]: yv, "bound": grid["bound"][i][j],
                         grid["metric"]: grid["value"][i][j], "reason": grid["reasons"][i][j]})
    return pd.DataFrame(rows).assign(command=grid["command"])


__all__ = ["BY_KEY", "make_app"]
