"""Transfers: the cars drivers are to move between branches (most from approved rebalancing plans), with their
departure and arrival recorded here."""

import streamlit as st

from app.ui import transfers as ui
from app.ui.session import current_actor

actor = current_actor()
st.title("Transfers")
ui.show_flash()

statuses, branch = ui.filters()
table = ui.load(statuses, branch)
ui.metrics(table)

if table.empty:
    st.info("No transfer matches. Approve a rebalancing plan to plan some, or widen the filters.")
elif (selected := ui.transfer_table(table)) is not None:
    if done := ui.actions(actor, selected):
        ui.flash(done)
else:
    st.caption("Select a transfer to record its departure or arrival, or to cancel it. Times are the local time "
               "of the branch the car leaves.")
