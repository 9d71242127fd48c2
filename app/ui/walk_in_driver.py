"""Step 3 of the walk-in: find the driver by email, phone or licence, or add them; then the eligibility checks.

A driver who may not take this car for these dates is shown with every reason, and the flow does not go on until
the reasons are gone (another driver, or the missing licence or date of birth added here).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import streamlit as st

from app.resources import session
from app.ui import desk
from app.ui.customers import customer_fields, licence_fields
from app.ui.desk import plain
from app.ui.walk_in import FLASH, KEEP, close_edit, folded, is_open, opened, rental
from services import customers
from services.actors import Actor
from services.customer_fields import CustomerInputError
from services.customers import Customer, DuplicateCustomer, Eligibility
from services.errors import FleetdeskError

RESULTS = 8
IDENTITY = {"unverified": "identity not checked yet", "verified": "identity verified", "rejected": "identity rejected"}
NEW = "walkin_new_"
FIX = "walkin_fix_"


def driver(actor: Actor) -> bool:
    search, car, _, _ = rental()
    customer, eligibility = _chosen(actor, car.vehicle_type, search.pickup_at.date(), search.dropoff_at.date())
    done = customer is not None and eligibility is not None and eligibility.eligible
    if not is_open(3, done):
        folded(3, _describe(customer))
        return True
    with opened(3):
        if customer is not None:
            _chosen_card(actor, customer, eligibility)
        find, new = st.tabs(["Find the driver", "New customer"])
        with find:
            _search(actor)
        with new:
            _new_customer(actor)
    return False


def _chosen(actor: Actor, vehicle_type: str, pickup: date, dropoff: date) -> tuple[Customer | None,
                                                                                  Eligibility | None]:
    customer_id = st.session_state.get("walkin_customer_id")
    if customer_id is None:
        return None, None
    with session() as s:
        return (customers.get_customer(s, actor, customer_id),
                customers.check_eligibility(s, customer_id, vehicle_type, dropoff, pickup_date=pickup))


def _describe(customer: Customer) -> str:
    licence = f" · licence {customer.licence_masked}" if customer.licence_masked else ""
    return f"**{plain(customer.full_name)}** · {plain(customer.email)}{licence} · eligible"


def _line(customer: Customer) -> str:
    licence = (f"licence {customer.licence_masked} ({plain(customer.licence_country)}) valid until "
               f"{customer.licence_expiry:%d %b %Y}" if customer.licence_masked else "no licence on file")
    born = f"born {customer.date_of_birth:%d %b %Y}" if customer.date_of_birth else "no date of birth"
    return (f"**{plain(customer.full_name)}** · {plain(customer.email)} · {plain(customer.phone)}  \n"
            f"{licence} · {born} · {IDENTITY.get(customer.identity_status, customer.identity_status)}")


def _chosen_card(actor: Actor, customer: Customer, eligibility: Eligibility) -> None:
    with st.container(border=True):
        st.markdown(_line(customer))
        for reason in eligibility.reasons:
            st.warning(reason, icon=":material/warning:")
        if eligibility.eligible:
            st.button(f"Continue with {customer.full_name}", type="primary", key="walkin-keep-driver",
                      on_click=close_edit)
        elif customer.status == "active" and customer.identity_status != "rejected":
            _complete_details(actor, customer)


def _pick(customer_id: int) -> None:
    st.session_state["walkin_customer_id"] = customer_id
    close_edit()


def _search(actor: Actor) -> None:
    query = st.text_input("Email, phone or licence number", key="walkin_customer_query", max_chars=200,
                          placeholder="e.g. sam@example.com, +44 7700 900123 or the whole licence number", **KEEP)
    if not (query or "").strip():
        st.caption("Names work too. Licence numbers are matched whole, never partly.")
        return
    try:
        with session() as s:
            found = customers.find_customers(s, actor, query, limit=RESULTS + 1)
    except FleetdeskError as error:
        st.error(str(error))
        return
    if not found:
        st.info("No customer matches; check the spelling, or add them under **New customer**.")
    for customer in found[:RESULTS]:
        line, button = st.columns([0.86, 0.14], vertical_alignment="center")
        line.markdown(_line(customer))
        button.button("Choose", key=f"walkin-choose-{customer.id}", on_click=_pick, args=(customer.id,),
                      disabled=customer.status == "erased", width="stretch")
    if len(found) > RESULTS:
        st.caption(f"More than {RESULTS} match; type more of the email or phone number.")


def _fields(prefix: str, today: date) -> tuple[dict[str, object], dict[str, Callable[[str], object]]]:
    return customer_fields(prefix, today, widget_options=KEEP)


def _new_customer(actor: Actor) -> None:
    today = datetime.now(UTC).date()
    with st.form("walkin-new-customer", border=False):
        values, slots = _fields(NEW, today)
        added = st.form_submit_button("Add customer", type="primary", icon=":material/person_add:")
    if not added:
        return
    try:
        with session() as s:
            created = customers.create_customer(s, actor, **values)
    except (CustomerInputError, DuplicateCustomer) as error:
        for name, problem in error.problems.items():
            slots[name](problem)
        st.error("The customer was not added; fix the fields marked above.")
        return
    except FleetdeskError as error:
        st.error(str(error))
        return
    for key in [k for k in st.session_state if str(k).startswith(NEW)]:
        del st.session_state[key]
    _pick(created.id)
    desk.flash(FLASH, f"Added customer {created.id}, {created.full_name}.")


def _complete_details(actor: Actor, customer: Customer) -> None:
    """Add what the checks miss — date of birth, or the licence (number, country, expiry) — without leaving."""
    today = datetime.now(UTC).date()
    with st.expander("Add or renew the driver's licence details", expanded=True), \
            st.form("walkin-fix-customer", border=False):
        values: dict[str, object] = {}
        slots: dict[str, Callable[[str], object]] = {}

        def field(name: str, widget: Callable[..., object], label: str, **options) -> None:
            values[name] = widget(label, key=FIX + name, **KEEP, **options)
            slots[name] = st.empty().error

        left, right = st.columns(2)
        with left:
            if customer.date_of_birth is None:
                field("date_of_birth", st.date_input, "Date of birth", value=None, min_value=date(1900, 1, 1),
                      max_value=today, format="DD/MM/YYYY")
            licence_fields(field, today)
        right.caption("From the licence in front of you. A new licence number needs a new identity check; "
                      "the number is stored encrypted and shown only as its last 4 characters.")
        saved = st.form_submit_button("Save the driver's details")
    if not saved:
        return
    changes = {name: value for name, value in values.items() if value not in (None, "")}
    if not changes:
        st.error("Fill in the details from the driver's licence first.")
        return
    try:
        with session() as s:
            customers.update_customer(s, actor, customer.id, **changes)
    except (CustomerInputError, DuplicateCustomer) as error:
        for name, problem in error.problems.items():
            (slots.get(name) or st.error)(problem)
        return
    except FleetdeskError as error:
        st.error(str(error))
        return
    for key in [k for k in st.session_state if str(k).startswith(FIX)]:
        del st.session_state[key]
    desk.flash(FLASH, f"Details of {customer.full_name} saved.")
