"""The price optimiser on the Pricing page: what to price, the run, the proposal against the current rates, publish."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from app import resources
from app.resources import session
from services import price_planning
from services.actors import Actor
from services.demand import DemandFit
from services.errors import FleetdeskError
from services.price_planning import MAX_HORIZON_DAYS, PricePlanResult, WhatIf

RESULT = "pricing-result"
PUBLISHED = "pricing-published"


@dataclass(frozen=True)
class RunRequest:
    location_ids: tuple[int, ...]
    vehicle_type_ids: tuple[int, ...]
    start: object
    days: int
    time_limit_s: float
    max_step: int | None
    class_order: bool
    what_if: WhatIf


def run_form(fit: DemandFit) -> RunRequest | None:
    """Branches, types, horizon, limits and the what-if; the request when the analyst runs it."""
    branches = resources.location_choices()
    types = fit.elasticity
    labels = dict(zip(branches["id"], branches["code"] + " · " + branches["name"], strict=True))
    type_labels = dict(zip(types["vehicle_type_id"], types["code"], strict=True))
    with st.form("pricing-run"):
        chosen = st.multiselect("Branches", list(labels), default=list(labels)[:3], format_func=labels.get,
                                key="pricing-branches")
        chosen_types = st.multiselect("Vehicle types", list(type_labels), default=list(type_labels),
                                      format_func=type_labels.get, key="pricing-types")
        when, horizon, limit = st.columns(3)
        start = when.date_input("First day", value=datetime.now(UTC).date() + timedelta(days=1),
                                key="pricing-start")
        days = horizon.number_input("Days", 1, MAX_HORIZON_DAYS, 14, key="pricing-days")
        time_limit = limit.number_input("Time limit (s)", 1.0, 120.0, 10.0, step=1.0, key="pricing-time-limit")
        step, order = st.columns(2)
        max_step = step.number_input("Most ladder steps a rate may move from one day to the next (0: free)", 0, 7,
                                     2, key="pricing-max-step")
        class_order = order.checkbox("A higher class is never cheaper than a lower one", value=True,
                                     key="pricing-class-order")
        with st.expander("What if… (change the model before publishing)"):
            st.caption("Leave an elasticity at its fitted value to use the fit.")
            columns = st.columns(min(len(types), 6) or 1)
            overrides = {}
            for index, row in enumerate(types.itertuples(index=False)):
                value = columns[index % len(columns)].number_input(
                    f"{row.code}", 0.0, 10.0, round(float(row.elasticity), 2), step=0.1, format="%.2f",
                    key=f"pricing-elasticity-{row.vehicle_type_id}")
                if abs(value - round(float(row.elasticity), 2)) > 1e-9:
                    overrides[int(row.vehicle_type_id)] = float(value)
            capacity = st.slider("Capacity (share of the free cars)", 0.25, 2.0, 1.0, 0.05, key="pricing-capacity")
        if not st.form_submit_button("Run the optimiser", type="primary"):
            return None
    if not chosen or not chosen_types:
        st.error("Choose at least one branch and one vehicle type, then run again.")
        return None
    return RunRequest(tuple(int(i) for i in chosen), tuple(int(t) for t in chosen_types), start, int(days),
                      float(time_limit), int(max_step) or None, bool(class_order),
                      WhatIf(elasticity=overrides, capacity_factor=float(capacity)))


def run(request: RunRequest, fit: DemandFit) -> None:
    """Build the instance from the database, run with a progress bar, keep the result for review."""
    bar = st.progress(0.0, text="Reading the fleet and the forecast…")

    def progress(fraction: float, message: str = "") -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=message or "Optimising…")

    try:
        with session() as s:
            planning = price_planning.build_instance(
                s, location_ids=request.location_ids, vehicle_type_ids=request.vehicle_type_ids,
                start=request.start, days=request.days, fit=fit, max_step=request.max_step,
                class_order=request.class_order, what_if=request.what_if)
        progress(0.05, "Optimising…")
        result = price_planning.plan_prices(planning, time_limit_s=request.time_limit_s, progress=progress)
    except FleetdeskError as error:
        bar.empty()
        st.error(f"The optimiser was not run: {error}")
        return
    bar.progress(1.0, text=f"Done: {result.status}")
    st.session_state[RESULT] = result
    st.session_state.pop(PUBLISHED, None)


def summary(result: PricePlanResult) -> None:
    if not result.publishable:
        st.error(f"The optimiser found no rates ({result.status}): {result.reason or 'no reason given'}. "
                 "Change the branches, horizon or what-if and run again.")
        return
    rows = result.summary.set_index("rates")
    proposed, current = rows.loc["proposed"], rows.loc["current"]
    gap = (f"{100 * (result.bound - result.objective) / result.bound:.2f}% from the proven bound"
           if result.bound and result.objective else "no bound reported")
    with st.container(horizontal=True, key="pricing-summary"):
        st.metric("Expected revenue", f"£{proposed['revenue']:,.0f}",
                  delta=_delta(proposed["revenue"], current["revenue"]), border=True,
                  help="Rentals accepted × daily rate × rental days, over the horizon")
        st.metric("At the current rates", f"£{current['revenue']:,.0f}" if pd.notna(current["revenue"]) else "—",
                  border=True)
        st.metric("Utilisation", f"{proposed['utilisation_pct']:.1f}%" if pd.notna(proposed["utilisation_pct"])
                  else "—", delta=_points(proposed["utilisation_pct"], current["utilisation_pct"]), border=True,
                  help="Car-days taken by the accepted rentals over the free car-days")
        st.metric("Rentals", f"{proposed['rentals']:,.0f}", delta=_delta(proposed["rentals"], current["rentals"]),
                  border=True)
        st.metric("Solution", result.status, border=True, help=gap)
    st.caption(f"{gap}; what-if: {result.planning.what_if.describe()}; solved in "
               f"{result.solve_seconds or 0:.1f} s.")


def _delta(new, old) -> str | None:
    if new is None or old is None or pd.isna(new) or pd.isna(old) or not old:
        return None
    return f"{100 * (new - old) / old:+.1f}% vs current"


def _points(new, old) -> str | None:
    if new is None or old is None or pd.isna(new) or pd.isna(old):
        return None
    return f"{new - old:+.1f} points vs current"


def heatmap(result: PricePlanResult) -> None:
    """Proposed multipliers as a calendar: one row per branch and type, one column per day."""
    prices = result.prices.assign(row=lambda f: f["branch"] + " · " + f["class"],
                                  date=lambda f: pd.to_datetime(f["day"]))
    order = prices.sort_values(["branch", "rank"])["row"].drop_duplicates().tolist()
    chart = alt.Chart(prices).mark_rect().encode(
        x=alt.X("monthdate(date):O", title=None),
        y=alt.Y("row:N", sort=order, title=None, axis=alt.Axis(labelOverlap=False)),
        color=alt.Color("multiplier:Q", title="Multiplier", scale=alt.Scale(scheme="redblue", domainMid=1.0,
                                                                            reverse=True)),
        tooltip=["branch", "class", alt.Tooltip("date:T", format="%a %d %b"),
                 alt.Tooltip("multiplier:Q", format=".2f"), alt.Tooltip("rate:Q", format=".2f", title="daily rate (£)"),
                 alt.Tooltip("current_multiplier:Q", format=".2f", title="current"),
                 alt.Tooltip("demand:Q", format=".2f"), alt.Tooltip("accept:Q", format=".2f"),
                 alt.Tooltip("capacity:Q"), alt.Tooltip("occupied:Q", format=".1f")],
    ).properties(height=max(160, 24 * len(order)))
    text = chart.mark_text(fontSize=9).encode(text=alt.Text("multiplier:Q", format=".2f"), color=alt.value("black"))
    st.altair_chart(chart + text, width="stretch", key="pricing-heatmap")


def binding_constraints(result: PricePlanResult) -> None:
    binding = result.binding
    if binding.empty:
        st.info("No constraint binds: every rate is where demand alone puts it.")
        return
    counts = binding.groupby("constraint").size().rename("times").reset_index()
    st.dataframe(counts, hide_index=True, key="pricing-binding-counts",
                 column_config={"constraint": "Constraint", "times": "Times it binds"})
    with st.expander(f"Every binding constraint ({len(binding):,})"):
        st.dataframe(binding, hide_index=True, width="stretch", key="pricing-binding",
                     column_config={"constraint": "Constraint", "branch": "Branch", "class": "Type",
                                    "day": st.column_config.DateColumn("Day", format="ddd D MMM"),
                                    "detail": "Why"})


def rates_table(result: PricePlanResult) -> None:
    with st.expander("Proposed rates as a table"):
        st.dataframe(
            result.prices, hide_index=True, width="stretch", key="pricing-rates",
            column_order=["branch", "class", "day", "multiplier", "current_multiplier", "rate", "demand", "accept",
                          "capacity", "occupied", "revenue"],
            column_config={
                "branch": "Branch", "class": "Type", "day": st.column_config.DateColumn("Day", format="ddd D MMM"),
                "multiplier": st.column_config.NumberColumn("Multiplier", format="%.2f"),
                "current_multiplier": st.column_config.NumberColumn("Current", format="%.2f"),
                "rate": st.column_config.NumberColumn("Daily rate", format="£%.2f"),
                "demand": st.column_config.NumberColumn("Demand", format="%.2f"),
                "accept": st.column_config.NumberColumn("Accept", format="%.2f"),
                "capacity": "Free cars", "occupied": st.column_config.NumberColumn("Cars taken", format="%.1f"),
                "revenue": st.column_config.NumberColumn("Revenue", format="£%.2f"),
            },
        )


def publish_form(actor: Actor, result: PricePlanResult) -> int | None:
    """Publish after an explicit confirmation; the publication id once done."""
    if not result.publishable:
        return None
    if published := st.session_state.get(PUBLISHED):
        st.success(f"Published as publication #{published}: quotes use these multipliers from now on.")
        return None
    with st.form("pricing-publish"):
        st.markdown(f"Publish **{len(result.prices):,}** multipliers for {result.planning.days} days from "
                    f"{result.planning.start:%a %d %b %Y}. Quotes at these branches use them from the moment "
                    "they are published; rates already published for the same day are replaced.")
        note = st.text_input("Note for the audit log (optional)", key="pricing-publish-note")
        confirmed = st.checkbox("I have reviewed these rates", key="pricing-publish-confirm")
        if not st.form_submit_button("Publish rates", type="primary"):
            return None
    if not confirmed:
        st.error("Tick “I have reviewed these rates” to publish them.")
        return None
    try:
        with session() as s:
            publication = price_planning.publish_plan(s, result, by=actor, note=note.strip() or None)
    except FleetdeskError as error:
        st.error(f"The rates were not published: {error}")
        return None
    st.session_state[PUBLISHED] = publication
    st.success(f"Published as publication #{publication}: quotes use these multipliers from now on.")
    return publication
