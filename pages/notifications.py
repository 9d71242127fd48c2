"""Notifications: what was sent to customers, failed or waits; a message as they saw it; resend; dead letters."""

import streamlit as st

from app.resources import session
from app.ui import notifications as ui
from app.ui.session import current_actor
from services.notifications import records

actor = current_actor()
st.title("Notifications")

names = ["Messages", "Development mailbox"] + (["Dead letters"] if actor.may("admin") else [])
tabs = st.tabs(names)
with tabs[0]:
    query = ui.message_filters()
    with session() as s:
        counts = records.status_counts(s)
        frame = records.list_notifications(s, query)
    ui.status_metrics(counts)
    if frame.empty:
        st.info("No messages match. Messages appear here once `fleetdesk worker` handles a booking's events.")
    else:
        st.caption(f"{len(frame):,} messages, newest first" + (" (the first 500)" if len(frame) == 500 else ""))
        chosen = ui.messages_table(frame, key="notifications-table")
        if chosen is not None:
            ui.message_view(chosen, actor)
with tabs[1]:
    ui.mailbox_view()
if len(tabs) > 2:
    with tabs[2]:
        ui.dead_letters_view(actor)
