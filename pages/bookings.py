"""Bookings: find bookings by status, branch, dates, customer or reference; open one to see its history or cancel it."""

import streamlit as st

from app.ui import bookings as ui
from app.ui.session import current_actor

actor = current_actor()
st.title("Bookings")

search = ui.filters()
if (picked := ui.results(actor, search)) is not None:
    st.query_params["booking"] = str(picked)
if opened := st.query_params.get("booking"):
    ui.detail(actor, opened)
