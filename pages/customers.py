"""Customers: find a driver by name, email, phone or licence number, open one, or add a new one."""

import streamlit as st

from app.resources import session
from app.ui import customers as ui
from app.ui.session import current_actor
from db.models import UserRole
from services import customers
from services.errors import InvalidInput, NotFound

actor = current_actor()
st.title("Customers")
ui.show_flash()

with st.expander("New customer", icon=":material/person_add:"):
    created = ui.new_customer_form(actor)
    if created is not None:
        st.query_params["customer"] = str(created.id)
        ui.flash(f"Added customer {created.id}, {created.full_name}.")

query = st.text_input("Find a customer", placeholder="Name, email, phone or whole licence number", max_chars=200,
                      key="customer-search")
with session() as s:
    found = customers.find_customers(s, actor, query)
shown = ui.results_frame(found)
st.caption(f"{len(shown)} customers" + (" (the first 50; narrow the search)" if len(shown) == 50 else "")
           + (" matching the search." if query.strip() else ", newest first.") + " Select a row to open one.")
selection = st.dataframe(
    shown, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key="customer-table",
    column_config={"id": st.column_config.NumberColumn("No.", format="%d"), "name": "Name", "email": "Email",
                   "phone": "Phone", "licence": "Licence", "country": "Issued in",
                   "expiry": st.column_config.DateColumn("Valid until", format="D MMM YYYY"),
                   "identity": "Identity", "status": "Status"},
)
if selection.selection.rows:
    st.query_params["customer"] = str(shown.iloc[selection.selection.rows[0]]["id"])

if opened := st.query_params.get("customer"):
    try:
        with session() as s:
            customer = customers.get_customer(s, actor, opened)
    except (NotFound, InvalidInput) as missing:
        st.warning(str(missing))
    else:
        ui.customer_detail(actor, customer)
        if actor.role == UserRole.ADMIN:
            ui.privacy_actions(actor, customer)
