"""Walk-in desk: a free car for the customer in front of you, quoted, booked, signed for and handed over."""

import streamlit as st

from app.ui import walk_in as ui
from app.ui.session import current_actor
from app.ui.walk_in_booking import confirmation, extras, quote_and_payment
from app.ui.walk_in_driver import driver

actor = current_actor()
st.title("Walk-in desk")
ui.begin(actor)

for step in (ui.where_and_when, ui.free_cars, driver, extras, quote_and_payment, confirmation):
    if not step(actor):  # each step is done (one line) or open; the ones after an open step wait for it
        break
ui.steps_ahead()
