"""Desk: payments — find and filter them, see one with its Stripe ids and events, refund, and the disputes queue."""

import streamlit as st

from app.resources import session
from app.ui.payments import payment_detail, payment_filters, payments_table
from app.ui.session import current_actor
from services import payments

actor = current_actor()
st.title("Payments")

all_tab, disputes_tab = st.tabs(["Payments", "Disputes"])
with all_tab:
    query = payment_filters()
    with session() as s:
        frame = payments.list_payments(s, query)
    st.caption(f"{len(frame):,} payments, newest first" + (" (the first 500)" if len(frame) == 500 else ""))
    chosen = payments_table(frame, key="payments-table")
    if chosen is not None:
        payment_detail(chosen, actor)
with disputes_tab:
    with session() as s:
        queue = payments.disputes(s)
    if queue.empty:
        st.success("No disputes.")
    else:
        st.caption("Open disputes first; a lost one stays flagged on its booking until staff deal with it.")
        chosen = payments_table(queue, key="disputes-table")
        if chosen is not None:
            payment_detail(chosen, actor)
