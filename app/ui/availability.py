"""Availability widgets: where and when to search (a branch, or a point and a radius), and the free cars found.

Times are typed on the clock of the place searched: the pick-up branch's time zone, or that of the branch nearest
the point. Clicking a branch on the map searches there (at a branch) or around it (around a point).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from app import resources
from app.ui import live
from app.ui.maps import availability_deck
from services import availability, quotes_bulk
from services.availability import Availability, AvailabilityQuery
from services.errors import FleetdeskError

KEY = "availability-"
AT_BRANCH, AROUND_POINT = "At a branch", "Around a point"
MAP_KEY = KEY + "map"
_APPLIED = KEY + "map-applied"
_ANSWER = KEY + "live-answer"


def search_form(places: pd.DataFrame) -> AvailabilityQuery | None:
    """The search widgets; returns the query, or None after showing what is wrong with it."""
    _apply_map_pick(places)
    labels = dict(zip(places["id"], places["code"] + " · " + places["name"], strict=True))
    with st.container(horizontal=True, vertical_alignment="bottom"):
        where = st.segmented_control("Search", [AT_BRANCH, AROUND_POINT], default=AT_BRANCH, key=KEY + "where")
        if where == AROUND_POINT:
            lat = st.number_input("Latitude", -90.0, 90.0, value=_first(places, "lat", 51.5), step=0.01,
                                  format="%.4f", key=KEY + "lat")
            lon = st.number_input("Longitude", -180.0, 180.0, value=_first(places, "lon", -0.12), step=0.01,
                                  format="%.4f", key=KEY + "lon")
            radius = st.number_input("Radius (km)", 1.0, availability.MAX_RADIUS_KM,
                                     value=availability.DEFAULT_RADIUS_KM, step=5.0, key=KEY + "radius")
            zone, place = resources.time_zone_near(lat, lon), f"{lat:.4f}, {lon:.4f}"
            branch = None
            dropoff = st.selectbox("Drop-off branch", [None, *labels], key=KEY + "dropoff-any",
                                   format_func=lambda i: "Round trip" if i is None else labels[i])
        else:
            branch = st.selectbox("Pick-up branch", list(labels), format_func=labels.get, key=KEY + "branch")
            lat = lon = radius = None
            chosen = places[places["id"] == branch]
            zone = chosen["timezone"].iloc[0] if not chosen.empty else "UTC"
            place = labels.get(branch, "")
            dropoff = st.selectbox("Drop-off branch", [None, *labels], key=KEY + "dropoff",
                                   format_func=lambda i: "Same as pick-up" if i is None else labels[i])

    default_pickup = _default_pickup(ZoneInfo(zone))
    with st.container(horizontal=True, vertical_alignment="bottom"):
        pickup_day = st.date_input("Pick-up date", value=default_pickup.date(), key=KEY + "pickup-day",
                                   format="DD/MM/YYYY")
        pickup_time = st.time_input("Pick-up time", value=default_pickup.time(), step=timedelta(minutes=15),
                                    key=KEY + "pickup-time")
        dropoff_day = st.date_input("Drop-off date", value=default_pickup.date() + timedelta(days=3),
                                    key=KEY + "dropoff-day", format="DD/MM/YYYY")
        dropoff_time = st.time_input("Drop-off time", value=default_pickup.time(), step=timedelta(minutes=15),
                                     key=KEY + "dropoff-time")
        types = st.multiselect("Vehicle type", resources.vehicle_types(), key=KEY + "types",
                               placeholder="All types")
        limit = st.selectbox("Show up to", [25, 50, 100, 200, 500], index=1, key=KEY + "limit")
    st.caption(f"Times are local to {place} ({zone}).")

    try:
        return AvailabilityQuery(
            pickup_at=_local(pickup_day, pickup_time, zone), dropoff_at=_local(dropoff_day, dropoff_time, zone),
            pickup_location_id=int(branch) if branch is not None else None, lat=lat, lon=lon,
            radius_km=radius if radius is not None else availability.DEFAULT_RADIUS_KM,
            dropoff_location_id=int(dropoff) if dropoff is not None else None, vehicle_types=tuple(types),
            limit=int(limit),
        )
    except FleetdeskError as error:
        st.error(str(error))
        return None


def search(query: AvailabilityQuery) -> Availability | None:
    """Ask the service (never cached: cars are booked by the minute); refusals shown as errors."""
    try:
        with resources.session() as s:
            return quotes_bulk.find_priced(s, query)
    except FleetdeskError as error:
        st.error(str(error))
        return None


@st.fragment(run_every=live.refresh_seconds())
def live_answer(query: AvailabilityQuery, places: pd.DataFrame, basemap: str | None) -> None:
    """The answer, searched again (and redrawn) only when the fleet changed since it was found."""
    if _unapplied_pick() is not None:
        st.rerun(scope="app")  # a click on the map changes the search form, outside this fragment
    held = st.session_state.get(_ANSWER)
    if live.fleet_changed("availability") or held is None or held[0] != query:
        answer = search(query)
        st.session_state[_ANSWER] = (query, answer) if answer is not None else None
    else:
        answer = held[1]
    if answer is not None:
        render_answer(answer, places, basemap)
        live.caption()


def render_answer(answer: Availability, places: pd.DataFrame, basemap: str | None) -> None:
    """Counts, why nothing was found, the skipped branches, the map and the table."""
    cars = answer.frame()
    query = answer.query
    with st.container(horizontal=True):
        st.metric("Free cars", f"{len(cars)}{'+' if answer.more else ''}", border=True)
        st.metric("Days charged", answer.rental_days, border=True)
        if query.around_point:
            st.metric("Branches", cars["location_id"].nunique() if not cars.empty else 0, border=True)
            st.metric("Closed branches skipped", len(answer.closed_branches), border=True)
    if answer.hint:
        st.info(answer.hint, icon=":material/info:")
    if answer.more:
        st.caption(f"The nearest {len(cars)} free cars; more are free further out — raise “Show up to” to see them.")
    if answer.closed_branches:
        closed = len(answer.closed_branches)
        with st.expander(f"{closed} branch skipped because it is closed" if closed == 1 else
                         f"{closed} branches skipped because they are closed"):
            st.dataframe(pd.DataFrame([{"code": c.code, "name": c.name, "km": c.distance_km, "why": c.reason}
                                       for c in answer.closed_branches]),
                         hide_index=True, width="stretch",
                         column_config={"code": "Code", "name": "Branch",
                                        "km": st.column_config.NumberColumn("km", format="%.1f"), "why": "Why"})
    point = (query.lat, query.lon) if query.around_point else None
    st.pydeck_chart(
        availability_deck(cars, places, point=point, radius_km=query.radius_km if point else None,
                          branch_id=query.pickup_location_id, basemap=basemap),
        height=460, key=MAP_KEY, on_select="rerun", selection_mode="single-object",
    )
    st.caption("Circles: branches with free cars, sized by how many. Click a branch to search there.")
    if not cars.empty:
        _car_table(cars)


def _car_table(cars: pd.DataFrame) -> None:
    shown = cars.assign(
        branch=cars["location_code"] + " · " + cars["location_name"],
        # Decimal to float for the table's number formatting only; prices are computed in Decimal
        daily_rate=cars["daily_rate"].astype(float), total_price=cars["total_price"].astype(float),
    )
    st.dataframe(
        shown, hide_index=True, width="stretch", key=KEY + "table",
        column_order=["license_plate", "make", "model", "year", "vehicle_type", "branch", "distance_km",
                      "daily_rate", "total_price", "currency"],
        column_config={
            "license_plate": "Plate", "make": "Make", "model": "Model",
            "year": st.column_config.NumberColumn("Year", format="%d"), "vehicle_type": "Type", "branch": "Branch",
            "distance_km": st.column_config.NumberColumn("Distance (km)", format="%.1f"),
            "daily_rate": st.column_config.NumberColumn("Daily rate", format="%.2f"),
            "total_price": st.column_config.NumberColumn("Price for the period", format="%.2f"),
            "currency": "Currency",
        },
    )


def _unapplied_pick() -> dict | None:
    """The branch clicked on the map that the search has not taken up yet."""
    event = st.session_state.get(MAP_KEY) or {}
    objects = (event.get("selection") or {}).get("objects") or {}
    picked = next((obj for layer in objects.values() for obj in layer if "location_id" in obj), None)
    if picked is None or st.session_state.get(_APPLIED) == picked["location_id"]:
        return None
    return picked


def _apply_map_pick(places: pd.DataFrame) -> None:
    """A branch clicked on the map becomes the branch searched (or the centre of the search around a point)."""
    picked = _unapplied_pick()
    if picked is None:
        return
    st.session_state[_APPLIED] = picked["location_id"]
    chosen = places[places["id"] == picked["location_id"]]
    if chosen.empty:
        return
    if st.session_state.get(KEY + "where") == AROUND_POINT:
        st.session_state[KEY + "lat"] = float(chosen["lat"].iloc[0])
        st.session_state[KEY + "lon"] = float(chosen["lon"].iloc[0])
    else:
        st.session_state[KEY + "branch"] = int(picked["location_id"])


def _first(places: pd.DataFrame, column: str, fallback: float) -> float:
    return float(places[column].iloc[0]) if not places.empty else fallback


def _default_pickup(zone: ZoneInfo) -> datetime:
    """The next quarter-hour, or 09:00 the next morning when that is outside office hours."""
    now = datetime.now(zone).replace(second=0, microsecond=0)
    pickup = now + timedelta(minutes=15 - now.minute % 15)
    if not 8 <= pickup.hour < 18:
        day = pickup.date() + timedelta(days=1 if pickup.hour >= 18 else 0)
        pickup = datetime.combine(day, time(9), tzinfo=zone)
    return pickup


def _local(day: date | None, clock: time | None, zone: str) -> datetime | None:
    if day is None or clock is None:
        return None
    return datetime.combine(day, clock, tzinfo=ZoneInfo(zone))
