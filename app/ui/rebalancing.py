"""Rebalancing widgets: the horizon, supply against demand (chart, map, table), the plan settings, the plan on a map
of arcs with its table, and approval."""

from __future__ import annotations

import html
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pydeck as pdk
import streamlit as st

from app import resources
from app.resources import session
from app.ui import desk
from app.ui.maps import graticule_layer, label_layer, view_for
from services import demand
from services import rebalance_planning as rp
from services.actors import Actor
from services.errors import FleetdeskError

PICKER_KEY = "rebalancing-plan-picker"
FLASH_KEY = "rebalancing-flash"
SURPLUS_COLOUR, SHORT_COLOUR, EVEN_COLOUR = [46, 160, 67], [214, 39, 40], [150, 150, 150]
TYPE_COLOURS = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
                [227, 119, 194], [127, 127, 127]]


# --- readers (cached) ------------------------------------------------------------------------------------------------

@st.cache_data(ttl=3600, show_spinner="Forecasting demand from the booking history…")
def _forecast(start: date, days: int) -> tuple[pd.DataFrame | None, str | None]:
    """The demand model's forecast, or why there is none (then plans use the booked pick-ups alone)."""
    try:
        with session() as s:
            return demand.forecast(s, start, days), None
    except (FleetdeskError, ValueError, ArithmeticError) as error:  # a model that cannot fit: plan on bookings
        return None, f"no forecast: {error}"


@st.cache_data(ttl=60, show_spinner="Reading bookings, the workshop and transfers…")
def _supply(start: date, days: int, use_forecast: bool) -> tuple[rp.Supply, str | None]:
    forecast, why_not = _forecast(start, days) if use_forecast else (None, "switched off")
    with session() as s:
        return rp.supply(s, start, days, forecast=forecast), why_not


def forget() -> None:
    _supply.clear()
    resources.forget_vehicle_data()


def flash(message: str) -> None:
    forget()
    desk.flash(FLASH_KEY, message)


def show_flash() -> None:
    desk.show_flash(FLASH_KEY)


# --- the horizon and supply ------------------------------------------------------------------------------------------

def horizon() -> tuple[date, int, bool]:
    """Day 0 (tomorrow by default: the first moves leave tonight), how many days, and whether to use the forecast."""
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    with st.container(horizontal=True, vertical_alignment="bottom"):
        start = st.date_input("From", tomorrow, min_value=tomorrow - timedelta(days=1), format="DD/MM/YYYY",
                              key="rebalancing-start", help="Day 0; the first moves leave the evening before.")
        days = st.number_input("Days ahead", min_value=1, max_value=rp.MAX_HORIZON_DAYS, value=7, step=1,
                               key="rebalancing-days")
        use_forecast = st.toggle("Use the demand forecast", value=True, key="rebalancing-forecast",
                                 help="Expected pick-ups from the demand model; off: only the bookings already made.")
    return start, int(days), use_forecast


def load_supply(start: date, days: int, use_forecast: bool) -> rp.Supply:
    supply, why_not = _supply(start, days, use_forecast)
    if supply.demand_source == "booked":
        st.warning(f"Demand is the **booked pick-ups only** ({why_not or 'no forecast'}): customers who have not "
                   "booked yet are not counted, so shortfalls are understated.", icon=":material/info:")
    else:
        st.caption("Demand: the forecast pick-ups of the demand model, and never fewer than those already booked.")
    return supply


def supply_section(supply: rp.Supply, basemap: str | None) -> None:
    """Metrics for day 0, a day picker for the map and table, the chart over the horizon."""
    first = supply.by_branch(0)
    with st.container(horizontal=True, key="rebalancing-supply-counts"):
        st.metric("Branches short on day 0", f"{int((first['short'] > 0).sum()):,}", border=True)
        st.metric("Rentals lost on day 0", f"{int(first['short'].sum()):,}", border=True,
                  help="If no car is moved")
        st.metric("Rentals lost over the horizon", f"{int(supply.cells['short'].sum()):,}", border=True,
                  help="If no car is moved")
        st.metric("Expected pick-ups", f"{int(supply.cells['expected_pickups'].sum()):,}", border=True)
    days = [supply.start + timedelta(days=d) for d in range(supply.horizon_days)]
    chosen = st.select_slider("Day on the map", options=days, value=days[0], format_func=lambda d: f"{d:%a %d %b}",
                              key="rebalancing-map-day")
    per_branch = supply.by_branch(days.index(chosen))
    st.caption("If no car is moved: <span style='color:rgb(214,39,40)'>●</span> rentals lost for want of a car "
               "(of some type) · <span style='color:rgb(46,160,67)'>●</span> cars left over at the end of the day · "
               "circle size: how many", unsafe_allow_html=True)
    st.pydeck_chart(surplus_deck(per_branch, basemap), height=460, key="rebalancing-supply-map")
    st.dataframe(
        per_branch.sort_values("surplus"), hide_index=True, width="stretch", key="rebalancing-supply-table",
        column_order=["code", "name", "free_cars", "booked_pickups", "expected_pickups", "returns", "in_maintenance",
                      "spare", "short"],
        column_config={"code": "Branch", "name": "Name",
                       "free_cars": st.column_config.NumberColumn("Free all day", help="Standing at the branch, "
                                                                  "not booked, not in the workshop"),
                       "booked_pickups": "Booked pick-ups", "expected_pickups": "Expected pick-ups",
                       "returns": st.column_config.NumberColumn("Returns", help="Booked drop-offs (one-way rentals "
                                                                "included), cars back from the workshop or a transfer"),
                       "in_maintenance": "In the workshop",
                       "spare": st.column_config.NumberColumn("Spare", help="Left at the end of the day if no car "
                                                              "is moved"),
                       "short": st.column_config.NumberColumn("Short", help="Rentals lost if no car is moved")},
    )
    st.subheader("Over the horizon")
    by_day = supply.by_day().groupby("day")[["expected_pickups", "booked_pickups", "returns", "short"]].sum()
    st.line_chart(by_day.rename(columns={"expected_pickups": "Expected pick-ups", "booked_pickups": "Booked pick-ups",
                                         "returns": "Returns", "short": "Lost if nothing moves"}),
                  x_label="Day", y_label="Cars")


def surplus_deck(per_branch: pd.DataFrame, basemap: str | None) -> pdk.Deck:
    """Branches short of cars (any type) in red, sized by the rentals lost; the others green, sized by spare cars."""
    per_branch = per_branch.sort_values(["short", "spare"])  # the short ones drawn last, on top
    short, spare = per_branch["short"].to_numpy(), per_branch["spare"].to_numpy()
    data = per_branch.assign(
        radius=np.sqrt(np.where(short > 0, short, spare) + 1) * 500,
        colour=[[*(SHORT_COLOUR if s > 0 else SURPLUS_COLOUR if p > 0 else EVEN_COLOUR), 170]
                for s, p in zip(short, spare, strict=True)],
    )
    data["tip"] = ("<b>" + data["code"].map(html.escape) + " " + data["name"].map(html.escape) + "</b><br/>"
                   + data["free_cars"].astype(str) + " free all day · " + data["expected_pickups"].astype(str)
                   + " pick-ups expected (" + data["booked_pickups"].astype(str) + " booked) · "
                   + data["returns"].astype(str) + " returns<br/>if no car is moved: " + data["spare"].astype(str)
                   + " spare, " + data["short"].astype(str) + " lost")
    data = data[["lat", "lon", "code", "radius", "colour", "tip"]]
    layers = [graticule_layer(data),
              pdk.Layer("ScatterplotLayer", data=data, id="surplus", get_position=["lon", "lat"],
                        get_radius="radius", get_fill_color="colour", stroked=True, get_line_color=[255, 255, 255],
                        line_width_min_pixels=1, radius_min_pixels=4, pickable=True),
              label_layer(data)]
    return pdk.Deck(layers=layers, initial_view_state=view_for(data), map_provider="carto" if basemap else None,
                    map_style=basemap, tooltip={"html": "{tip}", "style": {"fontSize": "12px"}})


# --- the plan -------------------------------------------------------------------------------------------------------

def departures_note(start: date, days: int) -> None:
    """Say so when the first nights of the horizon can no longer carry a move (their departure has passed)."""
    settings = rp.PlanSettings(start=start, horizon_days=days)
    with session() as s:
        first = rp.first_move_day(s, settings)
    if first == 0:
        return
    if first >= days:
        st.warning(rp.too_late(settings), icon=":material/schedule:")
        return
    first_day = start + timedelta(days=first)
    st.info(f"It is past {rp.NIGHT_DEPARTURE:%H:%M} on {first_day - timedelta(days=2):%a %d %b}: the first moves "
            f"leave on the evening of {first_day - timedelta(days=1):%a %d %b}, for {first_day:%a %d %b}. Until then "
            "each branch makes do with the cars it has.", icon=":material/schedule:")


def settings_form(start: date, days: int) -> rp.PlanSettings | None:
    """Costs, limits and branches to leave out; returns the settings when the manager asks for a plan."""
    choices = resources.location_choices()
    labels = dict(zip(choices["id"], choices["code"] + " · " + choices["name"], strict=True))
    defaults = rp.PlanSettings(start=start, horizon_days=days)
    with st.form("rebalancing-settings", clear_on_submit=False):
        costs = st.columns(4)
        fixed = costs[0].number_input("Cost per move", min_value=0.0, value=float(defaults.move_fixed_cost),
                                      step=5.0, key="plan-fixed", help="A driver's trip and the way back")
        per_km = costs[1].number_input("Cost per km", min_value=0.0, value=float(defaults.move_cost_per_km),
                                       step=0.05, key="plan-per-km", help="Great-circle km between the branches")
        max_km = costs[2].number_input("Longest move (km)", min_value=1.0, value=float(defaults.max_move_km),
                                       step=10.0, key="plan-max-km")
        lost_days = costs[3].number_input("A lost rental costs (days of base rate)", min_value=0.0,
                                          value=float(defaults.lost_sale_days), step=0.5, key="plan-lost-days")
        limits = st.columns([2, 1, 1, 1])
        excluded = limits[0].multiselect("Leave these branches out", list(labels), format_func=labels.get,
                                         key="plan-excluded", placeholder="No branch left out")
        cap = limits[1].number_input("Most moves out of a branch per night", min_value=0, value=None, step=1,
                                     key="plan-cap", placeholder="No cap")
        time_limit = limits[2].number_input("Time limit (s)", min_value=1, max_value=int(rp.MAX_TIME_LIMIT_S),
                                            value=int(defaults.time_limit_s), step=5, key="plan-time-limit")
        parking = limits[3].checkbox("Respect parking capacity", value=defaults.use_parking_capacity,
                                     key="plan-parking", help="Branches never hold more cars than their parking; "
                                     "solved as a MIP, slower")
        if not st.form_submit_button("Make a plan", type="primary", icon=":material/route:"):
            return None
    return rp.PlanSettings(start=start, horizon_days=days, move_fixed_cost=_decimal(fixed),
                           move_cost_per_km=_decimal(per_km), max_move_km=_decimal(max_km),
                           lost_sale_days=_decimal(lost_days), max_moves_out=None if cap is None else int(cap),
                           use_parking_capacity=parking, excluded_location_ids=tuple(int(i) for i in excluded),
                           time_limit_s=float(time_limit))


def make_plan(actor: Actor, settings: rp.PlanSettings, supply: rp.Supply) -> rp.PlanView | None:
    with st.spinner(f"Optimising the moves (at most {settings.time_limit_s:g} s)…", show_time=True):
        try:
            with session() as s:
                plan = rp.make_plan(s, actor, settings, supply)
        except FleetdeskError as error:
            st.error(str(error), icon=":material/route:")
            return None
    st.session_state[PICKER_KEY] = plan.id  # show the new plan (the picker is drawn after this)
    return plan


def plan_picker() -> rp.PlanView | None:
    """The plan just made, or another recent one (the newest by default)."""
    with session() as s:
        recent = rp.recent_plans(s)
    if recent.empty:
        st.info("No plan yet: choose the costs and limits above and make one.")
        return None
    ids = [int(i) for i in recent["id"]]
    if st.session_state.get(PICKER_KEY) not in ids:
        st.session_state[PICKER_KEY] = ids[0]
    labels = {int(r.id): f"#{r.id} · {r.status} · from {r.start_date:%a %d %b}, {r.horizon_days} days · "
                         f"{r.cars_moved} cars moved · made {r.created_at:%d %b %H:%M} by {r.made_by}"
              for r in recent.itertuples()}
    plan_id = st.selectbox("Plan", ids, format_func=labels.get, key=PICKER_KEY)
    with session() as s:
        return rp.get_plan(s, int(plan_id))


def plan_summary(plan: rp.PlanView) -> None:
    money = _money(plan.currency)
    with st.container(horizontal=True, key="rebalancing-plan-counts"):
        st.metric("Total cost", money(plan.objective), border=True,
                  help=f"Moves {money(plan.move_cost)} + lost rentals {money(plan.lost_sale_cost)}")
        st.metric("Doing nothing", money(plan.baseline_cost), border=True, help="Every rental lost for want of a car")
        st.metric("Demand covered", f"{plan.covered_pct:.1f}%", border=True,
                  delta=f"{plan.covered_pct - plan.baseline_covered_pct:+.1f} pts vs doing nothing")
        st.metric("Cars moved", f"{plan.cars_moved:,}", border=True)
        st.metric("Rentals lost", f"{plan.lost_sales:,} of {plan.demand_total:,}", border=True,
                  delta=f"{plan.lost_sales - plan.baseline_lost_sales:+,} vs doing nothing", delta_color="inverse")
    quality = "optimal" if plan.solver_status == "optimal" else (
        f"feasible, within {money(plan.objective - plan.bound)} of the best possible" if plan.bound is not None
        else "feasible (the time limit ran out before it was proven optimal)")
    source = "forecast" if plan.demand_source == "forecast" else "booked pick-ups only"
    st.caption(f"Plan #{plan.id}, {plan.status}: {quality}, solved in {plan.solve_seconds} s; demand: {source}.")


def moves_section(plan: rp.PlanView, basemap: str | None) -> None:
    if plan.moves.empty:
        st.success("No move pays for itself: every branch can serve its demand with the cars it will have, or the "
                   "cars that could help are too far or cost more to move than the rentals they would save.")
        return
    moves = plan.moves.assign(night=[f"{d:%a %d %b}" for d in plan.moves["night_of"]])
    st.pydeck_chart(arcs_deck(moves, basemap), height=480, key="rebalancing-arcs")
    st.dataframe(
        moves, hide_index=True, width="stretch", key="rebalancing-moves",
        column_order=["from_code", "to_code", "vehicle_type", "night", "count", "distance_km", "unit_cost", "cost",
                      "assigned"],
        column_config={"from_code": "From", "to_code": "To", "vehicle_type": "Type", "night": "Night of",
                       "count": "Cars", "distance_km": st.column_config.NumberColumn("km", format="%.1f"),
                       "unit_cost": st.column_config.NumberColumn(f"Cost per car ({plan.currency})", format="%.2f"),
                       "cost": st.column_config.NumberColumn(f"Cost ({plan.currency})", format="%.2f"),
                       "assigned": st.column_config.NumberColumn("Cars assigned", help="After approval")},
    )


def arcs_deck(moves: pd.DataFrame, basemap: str | None) -> pdk.Deck:
    """Each move line as an arc from its branch to the other, as wide as the cars it moves, coloured by type."""
    types = sorted(moves["vehicle_type"].unique())
    colour = {t: TYPE_COLOURS[i % len(TYPE_COLOURS)] for i, t in enumerate(types)}
    data = moves.assign(width=2 + 2 * np.sqrt(moves["count"].astype(float)),
                        colour=moves["vehicle_type"].map(colour))
    data["tip"] = (data["count"].astype(str) + " " + data["vehicle_type"].map(html.escape) + " <b>"
                   + data["from_code"].map(html.escape) + " → " + data["to_code"].map(html.escape)
                   + "</b><br/>night of " + data["night"] + " · " + data["cost"].astype(str))
    arcs = data[["from_lat", "from_lon", "to_lat", "to_lon", "width", "colour", "tip"]].astype(
        {"from_lat": float, "from_lon": float, "to_lat": float, "to_lon": float})
    ends = pd.concat([
        data[["from_lat", "from_lon", "from_code"]].set_axis(["lat", "lon", "code"], axis=1),
        data[["to_lat", "to_lon", "to_code"]].set_axis(["lat", "lon", "code"], axis=1),
    ]).drop_duplicates("code").astype({"lat": float, "lon": float})
    ends["tip"] = "Branch <b>" + ends["code"].map(html.escape) + "</b>"
    layers = [graticule_layer(ends),
              pdk.Layer("ArcLayer", data=arcs, id="moves", get_source_position=["from_lon", "from_lat"],
                        get_target_position=["to_lon", "to_lat"], get_source_color="colour",
                        get_target_color="colour", get_width="width", pickable=True),
              pdk.Layer("ScatterplotLayer", data=ends, id="move-branches", get_position=["lon", "lat"],
                        get_radius=300, radius_min_pixels=4, get_fill_color=[40, 70, 120, 200], pickable=True),
              label_layer(ends)]
    st.caption(" ".join(f"<span style='color:rgb{tuple(c)}'>●</span> {html.escape(t)}" for t, c in colour.items())
               + " · arcs rise from the branch the cars leave", unsafe_allow_html=True)
    return pdk.Deck(layers=layers, initial_view_state=view_for(ends, pitch=30), map_provider="carto" if basemap
                    else None, map_style=basemap, tooltip={"html": "{tip}", "style": {"fontSize": "12px"}})


def decision(actor: Actor, plan: rp.PlanView) -> None:
    """Approve (the moves become transfers of specific cars) or discard a proposed plan."""
    if plan.status != "proposed":
        st.caption(f"This plan was {plan.status} on {plan.decided_at:%d %b %Y %H:%M} UTC; its transfers are on the "
                   "Transfers page.")
        return
    approve, discard = st.columns([1, 4])
    try:
        if approve.button("Approve the plan", type="primary", icon=":material/check_circle:",
                          key=f"approve-{plan.id}", disabled=plan.moves.empty):
            with session() as s:
                approval = rp.approve_plan(s, actor, plan.id)
            message = f"Plan #{plan.id} approved: {len(approval.transfer_ids)} transfers planned."
            if approval.shortfalls:
                message += " Not every car could be assigned: " + "; ".join(approval.shortfalls)
            flash(message)
        if discard.button("Discard", key=f"discard-{plan.id}"):
            with session() as s:
                rp.discard_plan(s, actor, plan.id)
            flash(f"Plan #{plan.id} discarded.")
    except FleetdeskError as error:
        st.error(str(error))


def _money(currency: str):
    return lambda amount: f"{Decimal(amount):,.2f} {currency}"


def _decimal(value: float) -> Decimal:
    return Decimal(str(round(value, 4)))
