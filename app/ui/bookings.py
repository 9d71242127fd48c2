"""The bookings list and one booking in detail: its price, its history from the audit log, and cancelling it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

from app.resources import session
from app.ui import desk
from app.ui.desk import plain
from services import booking_views, bookings
from services.actors import Actor
from services.booking_views import STATUS_LABELS, BookingSearch, BookingView, local_time
from services.errors import FleetdeskError

FLASH = "bookings_flash"
KEEP = {"persist_state": "session"}
LIST_COLUMNS = {
    "reference": "Reference", "status": "Status", "customer": "Customer", "car": "Car", "plate": "Plate",
    "pickup_branch": "From", "dropoff_branch": "To",
    "pickup_local": st.column_config.DatetimeColumn("Pick-up", format="ddd D MMM HH:mm"),
    "dropoff_local": st.column_config.DatetimeColumn("Drop-off", format="ddd D MMM HH:mm"),
    "total": "Total",
}


def filters() -> BookingSearch:
    """Status, branch, dates (the rental overlaps them), customer, reference or plate."""
    desk.show_flash(FLASH)
    today = datetime.now(UTC).date()
    places = desk.branches()
    names = dict(zip(places["id"], places["code"] + " · " + places["name"], strict=True))
    status, branch, dates = st.columns([1, 1, 1])
    chosen = status.multiselect("Status", list(STATUS_LABELS), format_func=STATUS_LABELS.get,
                                key="bookings_status", placeholder="Any status", **KEEP)
    where = branch.multiselect("Branch", list(names), format_func=names.get, key="bookings_branch",
                               placeholder="Any branch", **KEEP)
    period = dates.date_input("Rental dates", (today, today + timedelta(days=7)),
                              key="bookings_dates", format="DD/MM/YYYY",
                              help="Bookings whose rental overlaps these days (local to the pick-up branch).",
                              **KEEP)
    who, ref = st.columns([2, 1])
    customer = who.text_input("Customer", key="bookings_customer", max_chars=200, placeholder="Name or email",
                              **KEEP)
    reference = ref.text_input("Reference or plate", key="bookings_reference", max_chars=20,
                               placeholder="FD… or a plate", **KEEP)
    period = tuple(period or ())
    return BookingSearch(statuses=tuple(chosen), location_ids=tuple(int(i) for i in where),
                         starts_from=period[0] if period else None,
                         ends_by=period[1] if len(period) > 1 else None, customer=customer or "",
                         reference=reference or "")


def results(actor: Actor, search: BookingSearch) -> int | None:
    """The matching bookings; returns the id of the row selected."""
    try:
        with session() as s:
            found = booking_views.search_bookings(s, actor, search)
    except FleetdeskError as error:
        st.error(str(error))
        return None
    shown = found.assign(
        status=found["status"].map(STATUS_LABELS),
        total=[desk.money(t, c) for t, c in zip(found["total"], found["currency"], strict=True)],
    )
    more = len(found) >= search.limit
    st.caption(f"{len(found)} booking{'s' if len(found) != 1 else ''}"
               + (f" (the first {search.limit}; narrow the filters)" if more else "")
               + ", by pick-up time, in each branch's local time. Select a row to open it.")
    picked = st.dataframe(shown[["id", *LIST_COLUMNS]], hide_index=True, width="stretch", on_select="rerun",
                          selection_mode="single-row", key="bookings-table",
                          column_config={"id": None, **LIST_COLUMNS})
    if picked.selection.rows:
        return int(shown.iloc[picked.selection.rows[0]]["id"])
    return None


def detail(actor: Actor, opened: str) -> None:
    """The booking named in the address (?booking=ID), or a warning when there is none."""
    if not opened.isdigit():
        st.warning(f"{opened[:20]!r} is not a booking number; select a booking in the list.")
        return
    booking_id = int(opened)
    try:
        with session() as s:
            view = booking_views.booking_detail(s, actor, booking_id)
            history = booking_views.booking_history(s, actor, booking_id)
    except FleetdeskError as error:
        st.warning(str(error))
        return
    head, badge = st.columns([0.8, 0.2], vertical_alignment="center")
    head.header(f"{view.reference} · {plain(view.customer_name)}", anchor=False, divider="gray")
    with badge:
        desk.status_badge(view)
    desk.booking_summary(view)
    price, facts = st.columns([0.45, 0.55])
    with price:
        desk.price_lines(view)
        desk.agreement_download(view, key="bookings-agreement")
    facts.markdown(_facts(view))
    st.subheader("History", anchor=False)
    if history.empty:
        st.caption("No changes recorded for this booking (bookings loaded in bulk have no history).")
    else:
        history["at"] = history["at"].map(lambda at: local_time(at, view.pickup.timezone))
        st.dataframe(history, hide_index=True, width="stretch", key="bookings-history",
                     column_config={"at": "When", "actor": "Who", "action": "What", "changes": "Changes"})
    if view.status in ("pending", "confirmed"):
        _cancel(actor, view)


def _facts(view: BookingView) -> str:
    zone = view.pickup.timezone
    lines = [f"**Booked** {local_time(view.created_at, zone)}" + (f" by {plain(view.created_by)}"
                                                                    if view.created_by else "")]
    if view.confirmed_at:
        lines.append(f"**Confirmed** {local_time(view.confirmed_at, zone)} · payment {view.payment_label}")
    if view.picked_up_at:
        lines.append(f"**Handed over** {local_time(view.picked_up_at, zone)} · {view.odometer_out_km:,} km, "
                     f"fuel {view.fuel_out}%")
    if view.actual_return_at:
        lines.append(f"**Returned** {local_time(view.actual_return_at, view.dropoff.timezone)} · "
                     f"{view.odometer_in_km:,} km, fuel {view.fuel_in}% · extra charges "
                     f"{view.money(view.extra_charges)}")
    if view.cancelled_at:
        lines.append(f"**Cancelled** {local_time(view.cancelled_at, zone)} · {plain(view.cancel_reason)} · fee "
                     f"{view.money(view.cancellation_fee)}, refund due {view.money(view.refund_due)}")
    for notes, label in ((view.checkout_notes, "Hand-over notes"), (view.checkin_notes, "Return notes")):
        if notes:
            lines.append(f"**{label}** {plain(notes)}")
    return "  \n".join(lines)


def _cancel(actor: Actor, view: BookingView) -> None:
    with st.expander("Cancel booking", icon=":material/event_busy:"):
        with session() as s:
            fee, refund = booking_views.cancellation_preview(s, view.id)
        paid = view.money(view.total) if view.payment_status == "paid" else "nothing yet"
        st.markdown(f"Cancelling now: fee **{view.money(fee)}**, refund due **{view.money(refund)}** "
                    f"(paid so far: {paid}).")
        st.caption(f"By the policy: free until {bookings.Policy.from_environment().free_cancellation_hours} hours "
                   "before pick-up, then a share of the total, all of it once the pick-up time has passed.")
        with st.form("bookings-cancel", border=False):
            st.text_input("Reason (kept with the booking)", key="bookings_cancel_reason", max_chars=500,
                          placeholder="e.g. customer's flight cancelled")
            go = st.form_submit_button(f"Cancel booking {view.reference}", type="primary",
                                       icon=":material/cancel:")
        if go:
            try:
                with session() as s:
                    done = bookings.cancel_booking(s, actor, view.id,
                                                   reason=st.session_state.get("bookings_cancel_reason") or "")
                    fee, refund = done.cancellation_fee, done.refund_due
            except FleetdeskError as error:
                st.error(str(error), icon=":material/error:")
                return
            st.session_state.pop("bookings_cancel_reason", None)
            desk.flash(FLASH, f"Booking {view.reference} cancelled: fee {view.money(fee)}, refund due "
                              f"{view.money(refund)}.")
