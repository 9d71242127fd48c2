"""Rebalancing: where cars will be short or spare over the coming days, a plan of overnight moves from the optimiser
(shown as arcs on a map and as a table), and its approval into transfers of specific cars."""

import streamlit as st

from app import resources
from app.ui import rebalancing as ui
from app.ui.session import current_actor

actor = current_actor()
st.title("Rebalancing")
ui.show_flash()

start, days, use_forecast = ui.horizon()
supply = ui.load_supply(start, days, use_forecast)
basemap = resources.basemap_style()

supply_tab, plan_tab = st.tabs(["Forecast and supply", "Plan"])
with supply_tab:
    ui.supply_section(supply, basemap)
with plan_tab:
    st.caption("The optimiser moves cars overnight between branches within reach, wherever a move costs less than "
               "the rentals it saves; cars leave at 20:00 the evening before the day they are needed.")
    ui.departures_note(start, days)
    if settings := ui.settings_form(start, days):
        ui.make_plan(actor, settings, supply)
    if plan := ui.plan_picker():
        ui.plan_summary(plan)
        ui.moves_section(plan, basemap)
        ui.decision(actor, plan)
