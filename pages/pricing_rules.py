"""Pricing rules: the rate rules in the order they apply, flagged overlaps, add or edit one, and a price preview."""

import streamlit as st

from app.resources import session
from app.ui import desk
from app.ui import pricing_rules as ui
from app.ui.session import current_actor
from services import pricing_rules

actor = current_actor()
st.title("Pricing rules")
desk.show_flash(ui.FLASH)
st.caption("A rule prices the days of a rental that it matches (type, pick-up branch, dates, days of the week, "
           "rental length). Per day, the first matching rule of each priority applies; rules of different "
           "priorities multiply. The published dynamic rate scales the result.")

with session() as s:
    rules = pricing_rules.all_rules(s)
    conflicts = pricing_rules.conflicts(pricing_rules.as_rule(r) for r in rules)
    types, branches = pricing_rules.choices(s)
    vat, fees = pricing_rules.branch_terms(s)

ui.show_conflicts(conflicts)
with st.expander("New rule", icon=":material/add:"):
    if made := ui.rule_form(actor, "new-rule", types, branches):
        desk.flash(ui.FLASH, f"Rule “{made.name}” added.")

if not rules:
    st.info("No rules yet: every quote is the car's list rate. Add one above.")
elif (picked := ui.rules_table(ui.rules_frame(rules, types, branches))) is not None:
    rule = next(r for r in rules if r.id == picked)
    st.subheader(f"Edit “{rule.name}”")
    if saved := ui.rule_form(actor, f"edit-rule-{rule.id}", types, branches, rule):
        desk.flash(ui.FLASH, f"Rule “{saved.name}” saved.")
else:
    st.caption("Select a rule to edit it (or untick Active to retire it).")

st.subheader("Preview a price")
ui.preview(types, branches)

st.subheader("VAT and one-way fees")
if changed := ui.branch_terms(actor, vat, fees):
    desk.flash(ui.FLASH, changed)
