"""The explorer's logic (``llmsim-explore``): a design state, the runs it asks for, and their figures.

``controls`` says what a user can set (presets, sliders and boxes with units) and turns a state into
``llmsim`` overrides and the command that reproduces it; ``outcome`` simulates a state the way the
``llmsim`` command does and turns bad input into words per control; ``figures`` draws the views
(Plotly); ``app`` lays them out on one Dash page. The entry point is sim/cli/explore.py.
"""
