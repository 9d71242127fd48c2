"""Maintenance: which cars are due for service, most urgent first; schedule the workshop; start, complete or cancel
the blocks in progress and coming up."""

import streamlit as st

from app import resources
from app.ui import maintenance as ui
from app.ui.session import current_actor
from app.ui.vehicles import flash, show_flash
from services.maintenance import DUE_SOON

actor = current_actor()
st.title("Maintenance")
show_flash()

queue = resources.service_queue()
blocks = resources.open_maintenance_blocks()
ui.metrics(queue, blocks)

st.subheader("Due for service")
st.caption(f"Cars past {DUE_SOON:.0%} of a service interval (km or days since their last service; a car never "
           "serviced here counts from the day it joined the fleet), most urgent first. Select one to schedule its "
           "service below.")
if queue.empty:
    st.success("No car is due for service.")
elif plate := ui.due_queue(queue):
    ui.prefill(plate)

st.subheader("Schedule maintenance")
if block := ui.schedule_form(actor, resources.vehicle_plates()):
    flash(f"Block #{block.id} scheduled for {block.plate}.")

st.subheader("In the workshop and coming up (30 days)")
if blocks.empty:
    st.info("No maintenance is in progress or scheduled for the next 30 days.")
elif (selected := ui.blocks_table(blocks)) is not None:
    if done := ui.block_actions(actor, selected):
        flash(done)
else:
    st.caption("Select a block to start, complete or cancel it.")
