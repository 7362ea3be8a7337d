"""The explorer's one page (Dash components): pickers, sliders and boxes with units, outputs, charts.

Every control has an error line under it (``err-<control id>``) where bad input is said in words.
Ids are stable: the browser test and the callbacks (sim/studies/explore/app.py) use them.
"""

from __future__ import annotations

import math

from dash import dcc, html

from sim.studies.explore.controls import (
    BY_KEY,
    CONTROLS,
    PRESET_GROUPS,
    SWEEPABLE,
    Control,
    format_value,
    preset_choices,
    slider_position,
)

CARD = {"border": "1px solid #ddd", "borderRadius": "6px", "padding": "8px 12px", "margin": "4px",
        "minWidth": "120px", "background": "#fafafa"}
ERROR = {"color": "#B00020", "fontSize": "13px", "minHeight": "0px"}
PANEL = {"border": "1px solid #eee", "borderRadius": "6px", "padding": "6px", "margin": "6px 0"}
DEFAULT_MAP_AXES = ("hardware.hbm_bandwidth_GBps", "workload.batch")


def preset_id(group: str) -> str:
    return f"preset-{group}"


def slider_marks(control: Control) -> dict:
    """Marks at decades for log sliders, at the ends and middle for linear ones."""
    if control.log:
        lo, hi = math.ceil(math.log10(control.low)), math.floor(math.log10(control.high))
        return {p: format_value(float(10 ** p)) for p in range(lo, hi + 1)}
    mid = (control.low + control.high) / 2
    return {v: format_value(float(v)) for v in (control.low, mid, control.high)}


def control_widget(control: Control, value):
    """The input element of one control, holding ``value``."""
    if control.kind == "choice":
        return dcc.Dropdown(id=control.dom_id, options=list(control.choices), value=value, clearable=False)
    if control.kind == "slider":
        lo, hi = slider_position(control, control.low), slider_position(control, control.high)
        step = 0.01 if control.log else control.step
        return dcc.Slider(id=control.dom_id, min=lo, max=hi, step=step, value=slider_position(control, value),
                          marks=slider_marks(control), updatemode="mouseup", allow_direct_input=False)
    return dcc.Input(id=control.dom_id, type="text", value=format_value(value), debounce=True,
                     style={"width": "110px"}, inputMode="numeric")


def control_block(control: Control, value) -> html.Div:
    """Label with unit, the widget, its current value in words (sliders) and its error line."""
    unit = f" ({control.unit})" if control.unit and control.kind != "choice" else ""
    parts = [html.Label(f"{control.label}{unit}", htmlFor=control.dom_id, style={"fontWeight": "bold"}),
             control_widget(control, value)]
    if control.kind == "slider":
        parts.append(html.Div(id=f"val-{control.dom_id}", style={"fontSize": "13px"}))
    parts.append(html.Div(id=f"err-{control.dom_id}", style=ERROR))
    return html.Div(parts, id=f"block-{control.dom_id}", style={"marginBottom": "10px"})


def controls_column(state: dict) -> html.Div:
    pickers = []
    for group in PRESET_GROUPS:
        pickers.append(html.Div([
            html.Label(group, htmlFor=preset_id(group), style={"fontWeight": "bold"}),
            dcc.Dropdown(id=preset_id(group), options=preset_choices(group), value=state["presets"][group],
                         clearable=False)], id=f"block-{preset_id(group)}", style={"marginBottom": "8px"}))
    blocks = [control_block(c, state["values"][c.key]) for c in CONTROLS]
    return html.Div([html.H3("design"), *pickers, html.Hr(), *blocks,
                     html.Div(id="err-general", style=ERROR)],
                    style={"width": "300px", "flex": "0 0 300px", "padding": "8px", "overflowY": "auto"})


def outputs_column() -> html.Div:
    axis_options = [{"label": f"{BY_KEY[k].label} ({BY_KEY[k].unit})", "value": k} for k in SWEEPABLE]
    return html.Div([
        html.Div(id="headline", style={"display": "flex", "flexWrap": "wrap"}),
        html.Div(["reproduce: ", html.Code(id="command")], style={"margin": "6px 4px", "fontSize": "13px"}),
        html.Div([html.Button("CSV: figures", id="dl-headline-btn"), html.Button("CSV: ops", id="dl-ops-btn"),
                  html.Button("PNG: roofline", id="dl-roofline-btn"), html.Button("pin this design", id="pin-btn"),
                  dcc.Download(id="dl-headline"), dcc.Download(id="dl-ops"), dcc.Download(id="dl-roofline")],
                 style={"display": "flex", "gap": "6px", "margin": "4px"}),
        html.Div([dcc.Graph(id="fig-roofline", style={"flex": "1 1 50%"}),
                  dcc.Graph(id="fig-bound", style={"flex": "1 1 50%"})], style={"display": "flex"}),
        dcc.Graph(id="fig-op"),
        html.Div([
            html.Div([html.Span("regime map: x "),
                      dcc.Dropdown(id="map-x", options=axis_options, value=DEFAULT_MAP_AXES[0], clearable=False,
                                   style={"width": "260px"}),
                      html.Span(" y "),
                      dcc.Dropdown(id="map-y", options=axis_options, value=DEFAULT_MAP_AXES[1], clearable=False,
                                   style={"width": "260px"}),
                      html.Button("CSV: map", id="dl-map-btn"), dcc.Download(id="dl-map")],
                     style={"display": "flex", "gap": "6px", "alignItems": "center"}),
            dcc.Loading(dcc.Graph(id="fig-map")),
            html.Div(["reproduce: ", html.Code(id="map-command")], style={"fontSize": "13px"}),
            html.Div(id="err-map", style=ERROR)], style=PANEL),
        html.Div([html.H4("pinned vs current"), html.Div(id="compare"),
                  html.Button("CSV: comparison", id="dl-compare-btn"), dcc.Download(id="dl-compare")],
                 style=PANEL),
    ], style={"flex": "1 1 auto", "padding": "8px", "minWidth": "0"})


def page(state: dict) -> html.Div:
    """The whole page, opened on ``state``."""
    return html.Div([
        html.H2("llmsim explorer", style={"margin": "6px 8px"}),
        dcc.Store(id="state"), dcc.Store(id="current"), dcc.Store(id="pinned"), dcc.Store(id="map-grid"),
        html.Div([controls_column(state), outputs_column()], style={"display": "flex"}),
    ], style={"fontFamily": "sans-serif"})


def headline_cards(rows: list[dict]) -> list[html.Div]:
    """One card per headline figure; each value's id is ``out-<metric>`` for tests and screen readers."""
    return [html.Div([html.Div(r["label"], style={"fontSize": "12px", "color": "#555"}),
                      html.Div(r["text"], id=f"out-{r['name']}", style={"fontSize": "20px"}),
                      *([html.Div(f"HBM: {r['note']}", id=f"note-{r['name']}", style={"fontSize": "11px",
                                                                                       "color": "#555"})]
                        if r.get("note") else [])], style=CARD)
            for r in rows]


def compare_table(rows: list[dict], changes: list[str]) -> html.Div:
    """The delta table of pin-and-compare, and which settings differ."""
    if not rows:
        return html.Div("pin a design, then change something: the two are compared here.")
    colour = {"better": "#007A3D", "worse": "#B00020", "same": "#555"}
    head = html.Tr([html.Th(h) for h in ("figure", "pinned", "current", "change")])
    body = [html.Tr([html.Td(r["figure"]), html.Td(r["pinned"]), html.Td(r["current"]),
                     html.Td(f"{r['change']} ({r['verdict']})", style={"color": colour[r["verdict"]]})])
            for r in rows]
    return html.Div([html.Table([head, *body], id="compare-table"),
                     html.Div("changed: " + ("; ".join(changes) or "nothing"), style={"fontSize": "13px"})])
