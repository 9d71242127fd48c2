"""The returns desk: find the rental by reference or plate, take the readings, explain the charges, close it.

The charges are worked out first by the check-in itself in a rolled-back savepoint (booking_views.return_preview),
so what the agent explains is exactly what "Close the rental" will charge — unless the readings are changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import streamlit as st

from app.resources import session
from app.ui import desk
from app.ui.desk import plain
from services import booking_views, bookings
from services.actors import Actor
from services.booking_views import BookingView
from services.bookings import ReturnCharges
from services.errors import FleetdeskError, InvalidInput

FLASH = "returns_flash"
KEEP = {"persist_state": "session"}
FIELDS = ("returns_odometer", "returns_fuel", "returns_at", "returns_damaged", "returns_damage_charge",
          "returns_notes")


@dataclass(frozen=True)
class Readings:
    odometer_km: int
    fuel_level: int
    returned_at: datetime
    damaged: bool
    damage_charge: Decimal
    notes: str

    def as_kwargs(self) -> dict:
        return dict(odometer_km=self.odometer_km, fuel_level=self.fuel_level, returned_at=self.returned_at,
                    damaged=self.damaged, damage_charge=self.damage_charge, notes=self.notes)


def find_rental(actor: Actor) -> BookingView | None:
    """The search box; the booking found stays open (by id) until another is searched."""
    desk.show_flash(FLASH)
    with st.form("returns-find", border=False):
        typed, go = st.columns([0.8, 0.2], vertical_alignment="bottom")
        typed.text_input("Booking reference or number plate", key="returns_query", max_chars=40,
                         placeholder="e.g. FDK3M9QZ or LK72 XYZ", **KEEP)
        found = go.form_submit_button("Find", type="primary", icon=":material/search:", width="stretch")
    if found:
        try:
            with session() as s:
                view = booking_views.find_booking(s, actor, st.session_state.get("returns_query") or "")
        except FleetdeskError as error:
            st.error(str(error), icon=":material/error:")
            return None
        _open(view)
    if (booking_id := st.session_state.get("returns_booking_id")) is None:
        return None
    with session() as s:
        return booking_views.booking_detail(s, actor, booking_id)


def _open(view: BookingView) -> None:
    if st.session_state.get("returns_booking_id") != view.id:
        for key in (*FIELDS, "returns_preview"):
            st.session_state.pop(key, None)
    st.session_state["returns_booking_id"] = view.id


def show_rental(view: BookingView) -> None:
    with st.container(border=True):
        head, badge = st.columns([0.8, 0.2], vertical_alignment="center")
        head.subheader(f"{view.reference} · {plain(view.make)} {plain(view.model)} · {plain(view.plate)}",
                       anchor=False)
        with badge:
            desk.status_badge(view)
        desk.booking_summary(view)
        if view.picked_up_at:
            st.caption(f"Handed over {booking_views.local_time(view.picked_up_at, view.pickup.timezone)} at "
                       f"{view.odometer_out_km:,} km with {view.fuel_out}% fuel."
                       + (f" Notes: {plain(view.checkout_notes)}" if view.checkout_notes else ""))
    if view.status == "completed":
        charges = booking_views.charges_of(view)
        returned = booking_views.local_time(view.actual_return_at, view.dropoff.timezone)
        _explain(view, charges, title=f"Returned {returned}")
    elif view.status != "picked_up":
        st.info(f"Booking {view.reference} is {view.status_label.lower()}; only a car that is out on this rental "
                "can be checked in here.")


def check_in_form(actor: Actor, view: BookingView) -> Readings | None:
    """The readings at the counter; returns them when the agent asks for the charges."""
    state = st.session_state
    zone = ZoneInfo(view.dropoff.timezone)
    state.setdefault("returns_odometer", view.odometer_out_km or view.vehicle_odometer_km)
    state.setdefault("returns_fuel", view.fuel_out if view.fuel_out is not None else 100)
    now = datetime.now(zone).replace(tzinfo=None)
    minute = now.replace(second=0, microsecond=0)  # up to the minute: never before a hand-over made just now
    state.setdefault("returns_at", minute + timedelta(minutes=1) if now > minute else minute)
    with st.form("returns-check-in"):
        st.markdown("**Check-in**")
        reading, fuel, when = st.columns(3)
        reading.number_input("Odometer (km)", min_value=0, step=1, key="returns_odometer", **KEEP)
        fuel.slider("Fuel (% of a tank)", 0, 100, step=1, key="returns_fuel", **KEEP)
        when.datetime_input(f"Returned at ({view.dropoff.timezone})", key="returns_at", format="DD/MM/YYYY",
                            step=timedelta(minutes=1), **KEEP)
        damaged, charge = st.columns([0.5, 0.5], vertical_alignment="bottom")
        damaged.checkbox("The car came back damaged", key="returns_damaged", **KEEP)
        charge.number_input(f"Damage charge ({view.currency})", min_value=0.0, step=10.0, format="%.2f",
                            key="returns_damage_charge", **KEEP)
        st.text_area("Notes", key="returns_notes", max_chars=2000, height=80,
                     placeholder="Needed when damaged: what and where, for the workshop", **KEEP)
        asked = st.form_submit_button("Work out the charges", type="primary", icon=":material/calculate:")
    if not asked:
        return None
    local = state.get("returns_at")
    if local is None:
        st.error("Enter when the car came back.")
        return None
    return Readings(int(state["returns_odometer"]), int(state["returns_fuel"]),
                    local.replace(tzinfo=zone).astimezone(UTC), bool(state.get("returns_damaged")),
                    Decimal(str(state.get("returns_damage_charge") or 0)).quantize(Decimal("0.01")),
                    state.get("returns_notes") or "")


def preview(actor: Actor, view: BookingView, readings: Readings | None) -> None:
    """Work out the charges for new readings; show the last worked-out charges with the button that closes."""
    if readings is not None:
        try:
            with session() as s:
                charges = booking_views.return_preview(s, actor, view.id, **readings.as_kwargs())
        except FleetdeskError as error:
            st.session_state.pop("returns_preview", None)
            st.error(str(error), icon=":material/error:")
            return
        st.session_state["returns_preview"] = (view.id, readings, charges)
    kept = st.session_state.get("returns_preview")
    if not kept or kept[0] != view.id:
        return
    _, readings, charges = kept
    _explain(view, charges, title="Charges to explain to the customer")
    if st.button("Close the rental", type="primary", key="returns-close", icon=":material/task_alt:"):
        _close(actor, view, readings)


def _close(actor: Actor, view: BookingView, readings: Readings) -> None:
    try:
        with session() as s:
            _, charges = bookings.check_in(s, actor, view.id, **readings.as_kwargs())
    except InvalidInput as error:
        st.error(f"{error} Change the readings and work out the charges again.", icon=":material/error:")
        return
    except FleetdeskError as error:
        st.error(str(error), icon=":material/error:")
        return
    st.session_state.pop("returns_preview", None)
    desk.flash(FLASH, f"Booking {view.reference} completed; {view.plate} is back at {view.dropoff.name}. Extra "
                      f"charges {view.money(charges.total)}.")


def _explain(view: BookingView, charges: ReturnCharges | None, *, title: str) -> None:
    if charges is None:
        return
    with st.container(border=True):
        st.markdown(f"**{title}**")
        for line in charges.explain(view.currency):
            st.markdown(f"- {line}")
        st.markdown(f"**Extra charges {view.money(charges.total)}** on top of the rental "
                    f"({view.money(view.total)}, payment {view.payment_label}).")
