"""Steps 4 to 6 of the walk-in: the extras with their prices, the quote and the payment, then the booking with its
agreement and the hand-over of the keys.

"Confirm booking" holds and confirms in one unit of work with the idempotency key kept in the session, so a second
click (or a retry after a lost answer) returns the booking the first click made.
"""

from __future__ import annotations

import streamlit as st

from app.resources import session
from app.ui import desk
from app.ui.desk import plain
from app.ui.walk_in import (
    FLASH,
    KEEP,
    Search,
    booked,
    close_edit,
    folded,
    is_open,
    opened,
    rental,
    start_over,
)
from services import booking_views, bookings, payments, pricing
from services.actors import Actor
from services.availability import AvailableVehicle
from services.booking_views import BookingView, format_money
from services.errors import FleetdeskError, InvalidInput
from services.gateway import GatewayConfig, PaymentDeclined

PAYMENTS = {"card": "Card on the terminal", "cash": "Cash received", "due": "Record as due at the desk"}
# The demo's terminal: Stripe's test payment methods (localstripe understands these too).
TEST_CARDS = {"pm_card_visa": "Visa •••• 4242 (test card that pays)",
              "pm_card_chargeCustomerFail": "Visa •••• 0341 (test card that is declined)"}


def card_payments_available() -> bool:
    return bool(GatewayConfig.from_environment().secret_key)


# --- 4. extras ------------------------------------------------------------------------------------------------------

def chosen_extras() -> list[str]:
    return [code for code in pricing.EXTRAS if st.session_state.get(f"walkin_extra_{code}")]


def extras(actor: Actor) -> bool:
    search, car, pickup_id, dropoff_id = rental()
    try:
        with session() as s:
            every = pricing.quote(s, car.id, pickup_id, dropoff_id, search.pickup_at, search.dropoff_at,
                                  tuple(pricing.EXTRAS))
    except FleetdeskError as error:
        st.error(str(error))
        return False
    prices = {line.code: line.amount for line in every.lines}
    chosen = chosen_extras()
    if not is_open(4, bool(st.session_state.get("walkin_extras_done"))):
        names = ", ".join(pricing.EXTRAS[c].name for c in chosen) or "No extras"
        folded(4, f"{names} — {format_money(sum(prices[c] for c in chosen), every.currency)}" if chosen else names)
        return True
    with opened(4):
        for code, extra in pricing.EXTRAS.items():
            cap = f", at most {format_money(extra.max_total, every.currency)}" if extra.max_total else ""
            st.checkbox(f"{extra.name} — **{format_money(prices[code], every.currency)}**", key=f"walkin_extra_{code}",
                        help=f"{format_money(extra.per_day, every.currency)} a day{cap}", **KEEP)
        st.button("Continue", type="primary", key="walkin-extras-done", on_click=_extras_done)
    return False


def _extras_done() -> None:
    st.session_state["walkin_extras_done"] = True
    close_edit()


# --- 5. quote and payment -------------------------------------------------------------------------------------------

def quote_and_payment(actor: Actor) -> bool:
    if booked():
        with session() as s:
            view = booking_views.booking_detail(s, actor, st.session_state["walkin_booking_id"])
        folded(5, f"{view.money(view.total)} · payment {view.payment_label}")
        return True
    search, car, pickup_id, dropoff_id = rental()
    with opened(5):
        st.text_input("Promotion code", key="walkin_promo", max_chars=32, placeholder="e.g. SPRING10 (optional)",
                      help="Taken off the rental charge when the rental qualifies; counted once for this booking.",
                      **KEEP)
        try:
            quote, promo_code = _quote(car, pickup_id, dropoff_id, search)
        except FleetdeskError as error:
            st.error(str(error))
            return False
        desk.receipt([(line.label, line.amount) for line in quote.lines], quote.total, quote.vat_included,
                     quote.currency)
        if quote.multiplier != 1 or quote.rules:
            applied = ", ".join(name for _, name in quote.rules)
            st.caption(" · ".join(part for part in (
                f"Rules applied: {plain(applied)}" if applied else "",
                f"today's dynamic rate ×{quote.multiplier.normalize():f} for this branch and car type"
                if quote.multiplier != 1 else "") if part))
        methods = [m for m in PAYMENTS if m != "card" or card_payments_available()]
        method = st.radio("Payment", methods, format_func=PAYMENTS.get, key="walkin_payment", horizontal=True,
                          **KEEP)
        if method == "card":
            st.selectbox("Card presented", list(TEST_CARDS), format_func=TEST_CARDS.get, key="walkin_card", **KEEP)
            st.caption("The booking is confirmed only when the payment service says the card was charged.")
        elif not card_payments_available():
            st.caption("Card payments need the payment service (set STRIPE_SECRET_KEY, or STRIPE_API_BASE for the "
                       "local stand-in); meanwhile take cash or record the payment as due.")
        if st.button("Confirm booking", type="primary", key="walkin-confirm", icon=":material/check:"):
            return _confirm(actor, search, car, pickup_id, dropoff_id, promo_code)
    return False


def _quote(car: AvailableVehicle, pickup_id: int, dropoff_id: int,
           search: Search) -> tuple[pricing.Quote, str | None]:
    """The quote for this customer with the code typed, or without it (saying why) when the rental does not qualify."""
    code = (st.session_state.get("walkin_promo") or "").strip() or None
    customer = st.session_state.get("walkin_customer_id")
    with session() as s:
        try:
            return pricing.quote(s, car.id, pickup_id, dropoff_id, search.pickup_at, search.dropoff_at,
                                 chosen_extras(), customer_id=customer, promo_code=code), code
        except InvalidInput as refused:
            if code is None:
                raise
            st.error(f"{refused} The quote below is without the code.", icon=":material/sell:")
        return pricing.quote(s, car.id, pickup_id, dropoff_id, search.pickup_at, search.dropoff_at,
                             chosen_extras(), customer_id=customer), None


def _confirm(actor: Actor, search: Search, car: AvailableVehicle, pickup_id: int, dropoff_id: int,
             promo_code: str | None = None) -> bool:
    """Hold the car (committed on its own, so a payment retry finds the same booking), then take the payment.

    The session's idempotency key makes a second click return the same booking; a card declined or a payment
    service that did not answer leaves the booking held, and trying again charges it at most once.
    """
    state = st.session_state
    method = state.get("walkin_payment") or "due"
    try:
        with session() as s:
            made = bookings.create_booking(
                s, actor, customer_id=state["walkin_customer_id"], vehicle_id=car.id, pickup_location_id=pickup_id,
                dropoff_location_id=dropoff_id, pickup_at=search.pickup_at, dropoff_at=search.dropoff_at,
                extras=chosen_extras(), channel="desk", idempotency_key=state["walkin_key"], promo_code=promo_code)
            booking_id, reference = made.booking.id, made.booking.reference
            if method == "due":
                bookings.confirm_booking(s, actor, booking_id, payment="due")
    except FleetdeskError as error:
        st.error(str(error), icon=":material/error:")
        return False
    if method in ("card", "cash"):
        declined = None
        try:
            with session() as s:
                try:
                    payment = payments.pay_at_desk(s, actor, booking_id, method=method,
                                                   payment_method_id=state.get("walkin_card"))
                except PaymentDeclined as error:  # caught inside: the failed attempt is kept
                    declined = str(error)
        except FleetdeskError as error:
            st.error(f"{error} Booking {reference} is held meanwhile.", icon=":material/error:")
            return False
        if declined:
            st.error(f"The card was declined: {declined} Booking {reference} is held; try another card or take "
                     "cash.", icon=":material/credit_card_off:")
            return False
        if payment.status.value not in ("succeeded", "requires_capture"):
            st.info(f"Booking {reference} is held; the payment service has not confirmed the charge yet.")
            return False
    state["walkin_booking_id"] = booking_id
    desk.flash(FLASH, f"Booking {reference} confirmed.")
    return True  # pragma: no cover - flash reruns


# --- 6. the booking, its agreement, the keys ------------------------------------------------------------------------

def confirmation(actor: Actor) -> bool:
    with session() as s:
        view = booking_views.booking_detail(s, actor, st.session_state["walkin_booking_id"])
    with opened(6):
        reference, papers = st.columns([0.5, 0.5], vertical_alignment="center")
        reference.metric("Booking reference", view.reference, border=True)
        with papers:
            desk.status_badge(view)
            desk.agreement_download(view, key="walkin-agreement")
            st.caption("Print it for the driver to sign; after the hand-over it carries the odometer and fuel.")
        desk.booking_summary(view)
        if view.status == "confirmed":
            _check_out_form(actor, view)
        elif view.status == "picked_up":
            st.success(f"Keys handed over: {view.odometer_out_km:,} km, fuel {view.fuel_out}%. Due back "
                       f"{view.dropoff_local(with_zone=True)} at {plain(view.dropoff.name)}.",
                       icon=":material/key:")
            st.button("Next customer", type="primary", key="walkin-next", on_click=start_over,
                      icon=":material/person_add:")
    return view.status == "picked_up"


def _check_out_form(actor: Actor, view: BookingView) -> None:
    st.markdown("**Hand over the keys**")
    state = st.session_state
    state.setdefault("walkin_out_odometer", view.vehicle_odometer_km)
    state.setdefault("walkin_out_fuel", view.vehicle_fuel_level)
    with st.form("walkin-checkout-form"):
        reading, fuel = st.columns(2)
        reading.number_input("Odometer (km)", min_value=0, step=1, key="walkin_out_odometer", **KEEP)
        fuel.slider("Fuel (% of a tank)", 0, 100, step=1, key="walkin_out_fuel", **KEEP)
        st.checkbox("I have checked the driving licence in person", key="walkin_out_licence", **KEEP)
        st.text_area("Notes on the car's condition", key="walkin_out_notes", max_chars=2000, height=80,
                     placeholder="e.g. small scratch on the rear bumper", **KEEP)
        handed = st.form_submit_button("Hand over the keys", type="primary", icon=":material/key:")
    if handed:
        try:
            with session() as s:
                bookings.check_out(s, actor, view.id, odometer_km=int(state["walkin_out_odometer"]),
                                   fuel_level=int(state["walkin_out_fuel"]),
                                   licence_checked=bool(state.get("walkin_out_licence")),
                                   notes=state.get("walkin_out_notes") or "")
        except FleetdeskError as error:
            st.error(str(error), icon=":material/error:")
            return
        desk.flash(FLASH, f"{view.plate} handed over on booking {view.reference}.")

