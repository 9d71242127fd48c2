"""The walk-in desk, one step after the other on one screen: where and when → a free car → the driver → extras →
the quote and payment → the booking, its agreement and the keys. This module holds the frame every step uses and
steps 1 and 2; walk_in_driver has step 3, walk_in_booking steps 4 to 6.

Every value lives in st.session_state under a "walkin_" key and every widget keeps its value for the whole session
(persist_state), so a step that folds into its one-line summary, or a visit to another page, loses nothing. A step
is done when its value is there; "Edit" opens it again. Once the booking is made the steps above it are locked, and
"Start over" begins the next customer. The booking is made with an idempotency key held in the session: a second
click on "Confirm" returns the booking the first one made.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from app import resources
from app.resources import session
from app.ui import desk
from app.ui.desk import plain
from services import availability, booking_views, lost_demand, quotes_bulk
from services.actors import Actor
from services.availability import Availability, AvailabilityQuery, AvailableVehicle
from services.booking_views import format_money, local_time
from services.errors import FleetdeskError, InvalidInput

STEPS = ("Where, when and what", "Free cars", "Driver", "Extras", "Quote and payment", "Booking and keys")
KEEP = {"persist_state": "session"}
SAME_BRANCH = 0
SORTS = {"price": "Cheapest first", "distance": "Nearest first"}
FLASH = "walkin_flash"


@dataclass(frozen=True)
class Search:
    """The question asked in step 1, in UTC, with the pick-up branch's time zone for showing it."""

    pickup_location_id: int
    dropoff_location_id: int | None  # None: back where the car was found
    pickup_at: datetime
    dropoff_at: datetime
    vehicle_types: tuple[str, ...]
    radius_km: float | None  # None: the pick-up branch only
    timezone: str
    branch_name: str


# --- the frame ---------------------------------------------------------------------------------------------------

def begin(actor: Actor) -> None:
    """Defaults for a new customer (branch: the one this agent last booked at; times: now → 3 days), and the
    "Start over" button."""
    state = st.session_state
    state.setdefault("walkin_key", _new_key())
    places = desk.branches()
    if "walkin_branch" not in state or state["walkin_branch"] not in set(places["id"]):
        with session() as s:
            last = booking_views.last_pickup_branch(s, actor.user_id)
        state["walkin_branch"] = last if last in set(places["id"]) else int(places["id"].iloc[0])
    if "walkin_pickup" not in state:
        zone = places.set_index("id").loc[state["walkin_branch"], "timezone"]
        start = _next_quarter(datetime.now(ZoneInfo(zone)) + timedelta(minutes=15)).replace(tzinfo=None)
        state["walkin_pickup"], state["walkin_dropoff"] = start, start + timedelta(days=3)
    state.setdefault("walkin_radius", 10.0)
    state.setdefault("walkin_sort", "price")
    left, right = st.columns([0.8, 0.2], vertical_alignment="bottom")
    left.caption("A walk-in rental from the first question to the keys. Nothing typed is lost when you go back "
                 "to a step.")
    right.button("Start over", icon=":material/restart_alt:", key="walkin-start-over", on_click=start_over,
                 width="stretch")
    desk.show_flash(FLASH)


def start_over() -> None:
    """Forget this customer (keep the branch): every walkin_ value and widget, and a new idempotency key."""
    keep = {"walkin_branch", "walkin_return_branch"}
    for key in [k for k in st.session_state if str(k).startswith("walkin_") and k not in keep]:
        del st.session_state[key]
    st.session_state["walkin_key"] = _new_key()


def _new_key() -> str:
    return f"walkin-{uuid.uuid4().hex}"


def _next_quarter(at: datetime) -> datetime:
    at = at.replace(second=0, microsecond=0)
    return at + timedelta(minutes=-at.minute % 15)


def booked() -> bool:
    return st.session_state.get("walkin_booking_id") is not None


def is_open(number: int, done: bool) -> bool:
    return not done or (st.session_state.get("walkin_editing") == number and not booked())


def _edit(number: int) -> None:
    st.session_state["walkin_editing"] = number


def close_edit() -> None:
    st.session_state["walkin_editing"] = None


def folded(number: int, summary: str) -> None:
    """A done step as one line, with "Edit" until the booking is made."""
    with st.container(border=True, key=f"walkin-step-{number}"):
        line, button = st.columns([0.88, 0.12], vertical_alignment="center")
        line.markdown(f":material/check_circle: **{number} · {STEPS[number - 1]}** — {summary}")
        if not booked():
            button.button("Edit", key=f"walkin-edit-{number}", on_click=_edit, args=(number,), type="tertiary",
                          icon=":material/edit:")


def opened(number: int):
    box = st.container(border=True, key=f"walkin-step-{number}")
    box.subheader(f"{number} · {STEPS[number - 1]}", anchor=False)
    st.session_state["walkin_open_step"] = number
    return box


def steps_ahead() -> None:
    """The steps not reached yet, greyed, so the agent sees how far there is to go."""
    current = st.session_state.pop("walkin_open_step", len(STEPS) + 1)
    later = [f"{n} · {title}" for n, title in enumerate(STEPS, 1) if n > current]
    if later:
        st.caption("Then: " + " → ".join(later))


# --- 1. where, when and what --------------------------------------------------------------------------------------

def where_and_when(actor: Actor) -> bool:
    search: Search | None = st.session_state.get("walkin_search")
    if not is_open(1, search is not None):
        folded(1, _describe_search(search))
        return True
    places = desk.branches().set_index("id")
    names = (places["code"] + " · " + places["name"]).to_dict()
    with opened(1):
        with st.form("walkin-search-form", border=False):
            where, back = st.columns(2)
            where.selectbox("Pick-up branch", list(names), format_func=names.get, key="walkin_branch", **KEEP)
            back.selectbox("Return to", [SAME_BRANCH, *names], format_func=lambda i: names.get(i, "The same branch"),
                           key="walkin_return_branch", **KEEP)
            start, end, kinds = st.columns([1, 1, 1.2])
            start.datetime_input("Pick-up", key="walkin_pickup", format="DD/MM/YYYY", step=timedelta(minutes=15),
                                 **KEEP)
            end.datetime_input("Return", key="walkin_dropoff", format="DD/MM/YYYY", step=timedelta(minutes=15),
                               **KEEP)
            kinds.multiselect("Vehicle type", resources.vehicle_types(), key="walkin_types", placeholder="Any type",
                              **KEEP)
            near, radius, order = st.columns([1, 1, 1.2], vertical_alignment="bottom")
            near.toggle("Also nearby branches", key="walkin_nearby", **KEEP)
            radius.number_input("Within (km)", min_value=1.0, max_value=availability.MAX_RADIUS_KM, step=5.0,
                                format="%.0f", key="walkin_radius", **KEEP)
            order.segmented_control("Sort", list(SORTS), format_func=SORTS.get, key="walkin_sort", required=True,
                                    **KEEP)
            zone = places.loc[st.session_state["walkin_branch"], "timezone"]
            st.caption(f"Times are local to the pick-up branch ({zone}).")
            with st.container(horizontal=True):
                asked = st.form_submit_button("Find free cars", type="primary", icon=":material/search:")
                if search is not None:
                    st.form_submit_button("Keep the last search", type="tertiary", on_click=_keep_search,
                                          args=(search,))
        if asked:
            return _run_search(places)
    return False


def _keep_search(search: Search) -> None:
    """Leave the search as it was asked, and its fields with it."""
    zone = ZoneInfo(search.timezone)
    st.session_state.update({
        "walkin_branch": search.pickup_location_id,
        "walkin_return_branch": search.dropoff_location_id or SAME_BRANCH,
        "walkin_pickup": search.pickup_at.astimezone(zone).replace(tzinfo=None),
        "walkin_dropoff": search.dropoff_at.astimezone(zone).replace(tzinfo=None),
        "walkin_types": list(search.vehicle_types), "walkin_nearby": search.radius_km is not None,
    })
    if search.radius_km is not None:
        st.session_state["walkin_radius"] = search.radius_km
    close_edit()


def _run_search(places: pd.DataFrame) -> bool:
    state = st.session_state
    branch_id = int(state["walkin_branch"])
    branch = places.loc[branch_id]
    zone = ZoneInfo(branch["timezone"])
    back = int(state["walkin_return_branch"] or 0) or None
    try:
        pickup_at = _utc(state["walkin_pickup"], zone, "pick-up")
        dropoff_at = _utc(state["walkin_dropoff"], zone, "return")
        search = Search(branch_id, back, pickup_at, dropoff_at, tuple(state.get("walkin_types") or ()),
                        float(state["walkin_radius"]) if state.get("walkin_nearby") else None, str(zone),
                        str(branch["name"]))
        if search.radius_km is None:
            query = AvailabilityQuery(pickup_at, dropoff_at, pickup_location_id=branch_id,
                                      dropoff_location_id=back, vehicle_types=search.vehicle_types)
        else:
            query = AvailabilityQuery(pickup_at, dropoff_at, lat=float(branch["lat"]), lon=float(branch["lon"]),
                                      radius_km=search.radius_km, dropoff_location_id=back,
                                      vehicle_types=search.vehicle_types)
        with session() as s:
            found = quotes_bulk.find_priced(s, query)
    except FleetdeskError as error:
        st.error(str(error), icon=":material/error:")
        return False
    state["walkin_search"], state["walkin_found"] = search, found
    _keep_car_if_still_free(found)
    close_edit()
    st.rerun()


def _utc(local: datetime | None, zone: ZoneInfo, what: str) -> datetime:
    if local is None:
        raise InvalidInput(f"Choose the {what} date and time.")
    return local.replace(tzinfo=zone).astimezone(UTC)


def _keep_car_if_still_free(found: Availability) -> None:
    car: AvailableVehicle | None = st.session_state.get("walkin_car")
    if car is None:
        return
    same = next((v for v in found.vehicles if v.id == car.id), None)
    st.session_state["walkin_car"] = same
    if same is None:
        st.session_state["walkin_note"] = f"{car.license_plate} is not free for the new search; pick another car."


def _describe_search(search: Search) -> str:
    back = " (back to the same branch)" if search.dropoff_location_id is None else ""
    near = f" and branches within {search.radius_km:g} km" if search.radius_km else ""
    kinds = ", ".join(search.vehicle_types) or "any type"
    return (f"{plain(search.branch_name)}{near} · {local_time(search.pickup_at, search.timezone)} → "
            f"{local_time(search.dropoff_at, search.timezone)}{back} · {kinds}")


# --- 2. free cars ---------------------------------------------------------------------------------------------------

def free_cars(actor: Actor) -> bool:
    car: AvailableVehicle | None = st.session_state.get("walkin_car")
    found: Availability = st.session_state["walkin_found"]
    if not is_open(2, car is not None):
        folded(2, _describe_car(car, found.rental_days))
        return True
    with opened(2):
        if note := st.session_state.pop("walkin_note", None):
            st.info(note)
        if found.closed_branches:
            names = ", ".join(plain(closed.name) for closed in found.closed_branches)
            st.caption(f"Left out, closed at the pick-up or return time: {names}.")
        if not found.vehicles:
            st.warning(found.hint or "No car is free for these times; change the search.")
            st.button("Change the search", key="walkin-research", on_click=_edit, args=(1,))
            turned_away(actor, "no_car")
            return False
        shown = _cars_frame(found, st.session_state.get("walkin_sort") or "price")
        ids = shown["id"].tolist()
        st.caption(f"{len(shown)} free car{'s' if len(shown) != 1 else ''}"
                   + (" (the first ones; narrow the search for others)" if found.more else "")
                   + f" for {found.rental_days} day{'s' if found.rental_days != 1 else ''}. Select a row, or type "
                   "the plate below.")
        hidden = ["id"] if st.session_state["walkin_search"].radius_km else ["id", "branch", "km"]
        st.dataframe(shown.drop(columns=hidden), hide_index=True, width="stretch", column_config=_CAR_COLUMNS,
                     on_select=partial(_picked_row, ids), selection_mode="single-row", key="walkin-cars-table")
        labels = dict(zip(ids, shown["plate"] + " · " + shown["make"] + " " + shown["model"] + " · "
                          + shown["price"], strict=True))
        st.selectbox("…or type the plate", ids, index=None, format_func=labels.get, key="walkin_car_pick",
                     placeholder="Type a plate or a model", on_change=_picked_plate)
        if car is not None:
            st.button(f"Keep {car.license_plate}", key="walkin-keep-car", on_click=close_edit)
        turned_away(actor, "price")
    return False


def turned_away(actor: Actor, likely: str) -> None:
    """Record a customer who leaves without a car (lost demand, counted on the Analytics page)."""
    search: Search = st.session_state["walkin_search"]
    if st.session_state.get("walkin_turned_away") == st.session_state["walkin_key"]:
        st.caption("This customer is recorded as turned away.")
        return
    with st.expander("The customer leaves without a car? Record the lost rental", icon=":material/person_off:"), \
            st.form("walkin-turned-away", border=False):
        kinds = list(search.vehicle_types) or resources.vehicle_types()
        kind = st.selectbox("Vehicle type they wanted", kinds, key="walkin-ta-type")
        reasons = list(lost_demand.REASONS)
        why = st.radio("Why they left", reasons, index=reasons.index(likely), format_func=lost_demand.REASONS.get,
                       horizontal=True, key="walkin-ta-reason")
        note = st.text_input("Note (optional)", max_chars=lost_demand.NOTE_MAX_CHARS, key="walkin-ta-note",
                             placeholder="e.g. wanted an automatic")
        if st.form_submit_button("Record the lost rental", icon=":material/save:"):
            try:
                with session() as s:
                    lost_demand.record_turned_away(
                        s, actor, location_id=search.pickup_location_id, vehicle_type=kind,
                        pickup_at=search.pickup_at, dropoff_at=search.dropoff_at, reason=why, note=note)
            except FleetdeskError as error:
                st.error(str(error))
                return
            st.session_state["walkin_turned_away"] = st.session_state["walkin_key"]
            st.success(f"Recorded: a {kind} customer at {plain(search.branch_name)} left "
                       f"({lost_demand.REASONS[why].lower()}). It counts on the Analytics page as turned away.")


_CAR_COLUMNS = {"make": "Make", "model": "Model", "year": st.column_config.NumberColumn("Year", format="%d"),
                "type": "Type", "plate": "Plate", "branch": "At", "km": st.column_config.NumberColumn(
                    "Distance", format="%.1f km"), "daily": "Per day", "price": "Price for the period"}


def _cars_frame(found: Availability, order: str) -> pd.DataFrame:
    frame = found.frame()
    frame = frame.sort_values(["distance_km", "total_price", "id"] if order == "distance"
                              else ["total_price", "distance_km", "id"], kind="stable")
    return pd.DataFrame({
        "id": frame["id"], "make": frame["make"], "model": frame["model"], "year": frame["year"],
        "type": frame["vehicle_type"], "plate": frame["license_plate"],
        "branch": frame["location_code"] + " · " + frame["location_name"], "km": frame["distance_km"],
        "daily": [format_money(r, c) for r, c in zip(frame["daily_rate"], frame["currency"], strict=True)],
        "price": [format_money(p, c) for p, c in zip(frame["total_price"], frame["currency"], strict=True)],
    }).reset_index(drop=True)


def _picked_row(ids: list[int]) -> None:
    rows = st.session_state["walkin-cars-table"].selection.rows
    if rows:
        _take_car(ids[rows[0]])


def _picked_plate() -> None:
    if (vehicle_id := st.session_state.get("walkin_car_pick")) is not None:
        _take_car(vehicle_id)


def _take_car(vehicle_id: int) -> None:
    found: Availability = st.session_state["walkin_found"]
    st.session_state["walkin_car"] = next(v for v in found.vehicles if v.id == vehicle_id)
    st.session_state.pop("walkin_car_pick", None)
    close_edit()


def _describe_car(car: AvailableVehicle, days: int) -> str:
    where = f" at {plain(car.location_name)}" if car.distance_km else ""
    return (f"{plain(car.make)} {plain(car.model)} · **{plain(car.license_plate)}** · {car.vehicle_type}{where} — "
            f"{format_money(car.total_price, car.currency)} for {days} day{'s' if days != 1 else ''}")


def rental() -> tuple[Search, AvailableVehicle, int, int]:
    """The chosen search and car, and the pick-up and drop-off branch ids of the booking to make."""
    search: Search = st.session_state["walkin_search"]
    car: AvailableVehicle = st.session_state["walkin_car"]
    return search, car, car.location_id, search.dropoff_location_id or car.location_id
