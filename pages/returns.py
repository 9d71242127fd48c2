"""Returns: find the rental by reference or plate, take the readings, explain the extra charges, close it."""

import streamlit as st

from app.ui import returns as ui
from app.ui.session import current_actor

actor = current_actor()
st.title("Returns")

rental = ui.find_rental(actor)
if rental is not None:
    ui.show_rental(rental)
    if rental.status == "picked_up":
        readings = ui.check_in_form(actor, rental)
        ui.preview(actor, rental, readings)
