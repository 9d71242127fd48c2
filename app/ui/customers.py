"""Customer widgets for the desk: the results table, the new-customer form, one customer in detail, privacy actions.

Nothing here is cached: customer data is personal, and st.cache_data is shared by every signed-in person.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import streamlit as st

from app import resources
from app.resources import session
from app.ui import desk
from db.models import UserRole
from services import customers, identity, privacy
from services.actors import Actor
from services.customer_fields import CustomerInputError
from services.customers import Customer
from services.errors import FleetdeskError
from services.notifications.rendering import available_languages

FLASH_KEY = "customer-flash"
NEW_PREFIX = "new-customer-"
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=])")
IDENTITY_LABELS = {"unverified": "Not checked yet", "verified": "Verified in person", "rejected": "Rejected"}
# each language by its own name, as the customer would recognise it; codes without a name here are shown as they are
LANGUAGE_NAMES = {"en": "English", "de": "Deutsch", "fr": "Français", "es": "Español", "it": "Italiano",
                  "nl": "Nederlands", "pl": "Polski", "pt": "Português"}
BRANCH_LANGUAGE = "Branch's language"


def flash(message: str) -> None:
    desk.flash(FLASH_KEY, message)


def show_flash() -> None:
    desk.show_flash(FLASH_KEY)


def results_frame(found: list[Customer]) -> pd.DataFrame:
    return pd.DataFrame([{
        "id": c.id, "name": c.full_name, "email": c.email, "phone": c.phone, "licence": c.licence_masked,
        "country": c.licence_country, "expiry": c.licence_expiry, "identity": IDENTITY_LABELS[c.identity_status],
        "status": c.status,
    } for c in found], columns=["id", "name", "email", "phone", "licence", "country", "expiry", "identity", "status"])


def customer_fields(prefix: str, today: date, *, widget_options: dict | None = None,
                    marketing: bool = False) -> tuple[dict[str, object], dict[str, Callable[[str], object]]]:
    """The customer fields as widgets (keys prefix + field), each with an empty slot under it for its problem."""
    values: dict[str, object] = {}
    slots: dict[str, Callable[[str], object]] = {}

    def field(name: str, widget: Callable[..., object], label: str, **options) -> None:
        values[name] = widget(label, key=prefix + name, **(widget_options or {}), **options)
        slots[name] = st.empty().error

    left, right = st.columns(2)
    with left:
        field("first_name", st.text_input, "First name", max_chars=80)
        field("last_name", st.text_input, "Last name", max_chars=80)
        field("email", st.text_input, "Email", max_chars=254)
        field("phone", st.text_input, "Phone", max_chars=32, placeholder="+44 20 7946 0000")
        field("date_of_birth", st.date_input, "Date of birth", value=None, min_value=date(1900, 1, 1),
              max_value=today, format="DD/MM/YYYY")
    with right:
        licence_fields(field, today)
        field("address", st.text_area, "Address", max_chars=500, height=80)
        language_field(field)
        if marketing:
            field("marketing_opt_in", st.checkbox, "Agrees to marketing emails")
    return values, slots


def language_name(code: str | None) -> str:
    return BRANCH_LANGUAGE if code is None else LANGUAGE_NAMES.get(code, code)


def language_field(field: Callable[..., None], current: str | None = None) -> None:
    """The language of the customer's emails and texts; none means the branch's own."""
    options = [None, *available_languages()]
    if current not in options:  # set before its templates were removed: shown as it is rather than hidden
        options.append(current)
    field("preferred_language", st.selectbox, "Message language", options=options, index=options.index(current),
          format_func=language_name,
          help="Emails and texts go out in this language when the branch writes in it, else in the branch's own.")


def licence_fields(field: Callable[..., None], today: date) -> None:
    field("licence_number", st.text_input, "Licence number", max_chars=40, type="password",
          help="Typed from the licence; shown afterwards only as its last 4 characters.")
    field("licence_country", st.text_input, "Issuing country", max_chars=2, placeholder="GB")
    field("licence_expiry", st.date_input, "Licence valid until", value=None, min_value=today - timedelta(days=3650),
          max_value=today + timedelta(days=365 * 30), format="DD/MM/YYYY")


def new_customer_form(actor: Actor) -> Customer | None:
    """The form; problems are shown under the fields they are about, and nothing typed is lost."""
    today = datetime.now(UTC).date()
    with st.form("new-customer", clear_on_submit=False):
        fields, slots = customer_fields(NEW_PREFIX, today, marketing=True)
        if not st.form_submit_button("Add customer", type="primary"):
            return None
    try:
        with session() as s:
            created = customers.create_customer(s, actor, **fields)
    except (CustomerInputError, customers.DuplicateCustomer) as error:
        for name, problem in error.problems.items():
            slots[name](problem)
        st.error("The customer was not added; fix the fields marked above.")
        return None
    for name in fields:
        st.session_state.pop(NEW_PREFIX + name, None)
    return created


def customer_detail(actor: Actor, customer: Customer) -> None:
    st.header(f"{_md(customer.full_name)} · customer {customer.id}", divider="gray")
    if customer.status == "erased":
        st.info(f"This customer's personal data was erased on {customer.erased_at:%d %b %Y}; bookings and payments "
                "are kept under the pseudonymous id shown above.")
        return
    profile, licence, state = st.columns(3)
    profile.markdown(f"**Email** {_md(customer.email)}  \n**Phone** {_md(customer.phone)}  \n"
                     f"**Born** {_date(customer.date_of_birth)}  \n**Address** {_md(customer.address)}  \n"
                     f"**Messages in** {_md(language_name(customer.preferred_language))}")
    licence.markdown(f"**Licence** {customer.licence_masked or 'none on file'}  \n"
                     f"**Issued in** {_md(customer.licence_country)}  \n"
                     f"**Valid until** {_date(customer.licence_expiry)}")
    checked = (f" by {_md(customer.identity_checked_by or 'the command line')} on "
               f"{customer.identity_checked_at:%d %b %Y %H:%M}" if customer.identity_checked_at else "")
    state.markdown(f"**Identity** {IDENTITY_LABELS[customer.identity_status]}{checked}  \n"
                   f"**Status** {customer.status}" + (f" — {_md(customer.blocked_reason)}"
                                                       if customer.blocked_reason else ""))
    if customer.has_licence and actor.may(UserRole.DESK_AGENT) and \
            licence.button("Show full licence number", key="reveal-licence", icon=":material/visibility:"):
        with session() as s:
            licence.code(customers.reveal_licence(s, actor, customer.id), language=None)
        licence.caption("Shown once; this is recorded in the audit log.")
    _message_language(actor, customer)
    _identity_check(actor, customer)
    _block(actor, customer)
    _eligibility(customer)


def _message_language(actor: Actor, customer: Customer) -> None:
    with st.expander("Change the message language"), st.form("message-language"):
        values: dict[str, object] = {}

        def field(name: str, widget: Callable[..., object], label: str, **options) -> None:
            # one widget per customer, so that opening another customer shows their language, not this one's
            values[name] = widget(label, key=f"customer-{customer.id}-{name}", **options)

        language_field(field, customer.preferred_language)
        if not st.form_submit_button("Save the language", type="primary"):
            return
    chosen = values["preferred_language"]
    if chosen == customer.preferred_language:
        st.info(f"Messages to customer {customer.id} already go out in {_in_language(chosen)}.")
        return
    try:
        with session() as s:
            customers.update_customer(s, actor, customer.id, preferred_language=chosen)
    except FleetdeskError as error:
        st.error(str(error))
    else:
        flash(f"Customer {customer.id} will get their messages in {_in_language(chosen)}.")


def _in_language(code: str | None) -> str:
    return "the branch's language" if code is None else language_name(code)


def _identity_check(actor: Actor, customer: Customer) -> None:
    verifier = identity.identity_verifier()
    if not verifier.in_person:
        st.caption(f"Identity checks are made by {verifier.name}.")
        return
    with st.expander("Checked the licence in person"), st.form("identity-check"):
        outcome = st.radio("Outcome", ["verified", "rejected"], format_func=IDENTITY_LABELS.get, horizontal=True)
        note = st.text_input("Note", max_chars=500, placeholder="Needed when rejecting: what did not match?")
        if st.form_submit_button("Record the check", type="primary"):
            try:
                with session() as s:
                    verifier.record(s, actor, customer.id, outcome, note)
            except FleetdeskError as error:
                st.error(str(error))
            else:
                flash(f"Identity of customer {customer.id} recorded as {IDENTITY_LABELS[outcome].lower()}.")


def _block(actor: Actor, customer: Customer) -> None:
    blocked = customer.status == "blocked"
    with st.expander("Unblock" if blocked else "Block this customer"), st.form("block-customer"):
        text = st.text_input("Note" if blocked else "Reason (for staff, not read to the customer)", max_chars=500)
        if st.form_submit_button("Unblock" if blocked else "Block", type="primary"):
            try:
                with session() as s:
                    if blocked:
                        customers.unblock_customer(s, actor, customer.id, text)
                    else:
                        customers.block_customer(s, actor, customer.id, text)
            except FleetdeskError as error:
                st.error(str(error))
            else:
                flash(f"Customer {customer.id} {'unblocked' if blocked else 'blocked'}.")


def _eligibility(customer: Customer) -> None:
    with st.expander("Can they drive…?"):
        today = datetime.now(UTC).date()
        left, right = st.columns(2)
        vehicle_type = left.selectbox("Vehicle type", resources.vehicle_types(), key="eligibility-type")
        dates = right.date_input("Rental", (today, today + timedelta(days=3)), min_value=today,
                                 key="eligibility-dates")
        if vehicle_type and len(dates) == 2:
            with session() as s:
                result = customers.check_eligibility(s, customer.id, vehicle_type, dates[1], pickup_date=dates[0])
            if result.eligible:
                st.success(f"Customer {customer.id} may drive a {vehicle_type} car for these dates.")
            for reason in result.reasons:
                st.warning(reason)


def privacy_actions(actor: Actor, customer: Customer) -> None:
    """Admin only: export everything held as JSON, or erase the personal data."""
    st.subheader("Privacy requests")
    export_col, erase_col = st.columns(2)
    with export_col:
        if st.button("Prepare a data export", key="prepare-export", icon=":material/download:"):
            with session() as s:
                export = privacy.export_customer(s, actor, customer.id)
            st.download_button("Download JSON", json.dumps(export, indent=2, ensure_ascii=False),
                               file_name=f"customer-{customer.id}.json", mime="application/json",
                               on_click="ignore", type="primary", key="download-export")
            st.caption("The export is recorded in the audit log.")
    if customer.status == "erased":
        return
    with erase_col, st.form("erase-customer"):
        reason = st.text_input("Reason for erasure", max_chars=500,
                               placeholder="e.g. request of 3 May by email (no personal data here)")
        sure = st.checkbox(f"Erase customer {customer.id}'s personal data for good")
        if st.form_submit_button("Erase", type="primary"):
            if not sure:
                st.error("Tick the box to confirm; erasure cannot be undone.")
                return
            try:
                with session() as s:
                    privacy.erase_customer(s, actor, customer.id, reason)
            except FleetdeskError as error:
                st.error(str(error))
            else:
                flash(f"Customer {customer.id} erased; bookings and payments kept under id {customer.id}.")


def _md(value: str | None) -> str:
    """Text typed by people, shown literally: no links, images, colours or icons smuggled in as Markdown."""
    if not value:
        return "—"
    return _MARKDOWN.sub(r"\\\1", " ".join(value.split()))


def _date(value: date | None) -> str:
    return f"{value:%d %b %Y}" if value else "—"
