"""Availability: the cars free for a period at a branch or around a point, on a map and with their price."""

import streamlit as st

from app import resources
from app.ui import availability as ui

st.title("Availability")

places = resources.search_places()
if places.empty:
    st.info("There are no branches yet. Load the demo company with `make demo` (or `fleetdesk demo-data`).")
    st.stop()

query = ui.search_form(places)
if query is not None:
    ui.live_answer(query, places, resources.basemap_style())
