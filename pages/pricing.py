"""Pricing: the demand model fitted to the booking history, and the optimiser that proposes daily rates to publish."""

import streamlit as st

from app.ui import pricing as ui
from app.ui import pricing_plan as plan
from app.ui.session import current_actor

actor = current_actor()
st.title("Pricing")
fit = ui.demand_fit()
if fit is None:
    st.stop()

model, optimiser = st.tabs(["Demand model", "Rate optimiser"])
with model:
    st.caption("Expected pick-ups per branch, type and day (weekday and season) and how demand answered to the "
               "price charged, fitted to the booking history. Judge the fit before you trust its rates.")
    ui.fit_overview(fit)
    ui.elasticity_table(fit)
    ui.fit_charts(fit)

with optimiser:
    st.caption("Proposes a multiplier per branch, type and day that maximises expected revenue from the forecast "
               "demand and the free cars. Nothing changes until you publish.")
    if request := plan.run_form(fit):
        plan.run(request, fit)
    if result := st.session_state.get(plan.RESULT):
        plan.summary(result)
        if result.publishable:
            st.subheader("Proposed rates")
            plan.heatmap(result)
            plan.rates_table(result)
            st.subheader("What holds the rates where they are")
            plan.binding_constraints(result)
            st.subheader("Publish")
            plan.publish_form(actor, result)
