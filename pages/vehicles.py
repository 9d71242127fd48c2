"""Vehicles: find a car, add one or a whole file of them, and open one to see its days ahead, edit it or change
its status."""

import streamlit as st

from app import resources
from app.resources import session
from app.ui import filters
from app.ui import vehicle_detail as detail
from app.ui import vehicles as ui
from app.ui.session import current_actor
from services import vehicles
from services.errors import NotFound

actor = current_actor()
st.title("Vehicles")
ui.show_flash()

with st.expander("Add a vehicle", icon=":material/add_circle:"):
    if added := ui.vehicle_form(actor):
        st.query_params["vehicle"] = added.plate
        ui.flash(f"Added {added.plate}, {added.make} {added.model}.")
with st.expander("Import vehicles from a CSV file", icon=":material/upload_file:"):
    ui.import_panel(actor)

with st.container(horizontal=True, vertical_alignment="bottom"):
    search = st.text_input("Find", placeholder="Plate, VIN, make or model", max_chars=60, key="vehicle-search")
    statuses = filters.status_filter("vehicle-status")
    types = filters.type_filter("vehicle-type")
    branches = filters.branch_filter("vehicle-branch")
    retired = st.toggle("Include retired", key="vehicle-retired")
table = resources.vehicle_table(search.strip(), tuple(statuses), tuple(types), tuple(branches), retired)
st.caption(f"{len(table):,} vehicles" + (" (the first 5,000; narrow the search)" if len(table) == 5000 else "")
           + ". Select a row to open a vehicle.")
if picked := ui.vehicle_table(table, compact="vehicle" in st.query_params):
    st.query_params["vehicle"] = picked

if opened := st.query_params.get("vehicle"):
    try:
        with session() as s:
            vehicle = vehicles.find_vehicle(s, opened)
    except NotFound as missing:
        st.warning(str(missing))
        st.stop()
    detail.header(vehicle)
    overview, days_ahead, telematics, edit, status = st.tabs(
        ["Overview", "Timeline", "Telematics", "Edit", "Status"])
    with overview:
        detail.overview(vehicle, detail.service_for(vehicle))
    with days_ahead:
        detail.timeline(vehicle)
    with telematics:
        detail.telematics(vehicle)
    with edit:
        if changed := ui.vehicle_form(actor, vehicle):
            st.query_params["vehicle"] = changed.plate
            ui.flash(f"Saved the changes to {changed.plate}.")
    with status:
        if moved := ui.status_form(actor, vehicle):
            ui.flash(f"{moved.plate} is now {moved.status.label.lower()}.")
