"""Promotions: the codes, how often each was used against its limits, add or edit one; the loyalty tiers."""

import streamlit as st

from app.resources import session, vehicle_types
from app.ui import desk
from app.ui import promotions as ui
from app.ui.session import current_actor
from services import promotions

actor = current_actor()
st.title("Promotions")
desk.show_flash(ui.FLASH)
st.caption("A code takes a percentage or a fixed amount off the rental charge (not extras or fees) of a rental "
           "that starts within its dates; each booking redeems it once, and the limits hold even when desks race "
           "for the last use.")

with session() as s:
    rows = promotions.all_promotions(s)
    tiers = promotions.loyalty_tiers(s)
type_codes = vehicle_types()

with st.expander("New promotion", icon=":material/add:"):
    if made := ui.promotion_form(actor, "new-promotion", type_codes):
        desk.flash(ui.FLASH, f"Promotion {made.code} added.")

if not rows:
    st.info("No promotions yet. Add one above.")
elif (picked := ui.promotions_table(ui.promotions_frame(rows))) is not None:
    promo = next(p for p in rows if p.id == picked)
    st.subheader(f"Edit {promo.code}")
    if saved := ui.promotion_form(actor, f"edit-promotion-{promo.id}", type_codes, promo):
        desk.flash(ui.FLASH, f"Promotion {saved.code} saved.")
else:
    st.caption("Select a code to edit it (or untick Active to withdraw it).")

st.subheader("Loyalty tiers")
st.caption("A customer's tier takes its percentage off the rental charge, before any promotion code.")
ui.loyalty_table(tiers)
if tiers and (changed := ui.loyalty_form(actor, tiers)):
    desk.flash(ui.FLASH, changed)
