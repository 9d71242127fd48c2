"""Widgets shared by the desk screens (walk-in, returns, bookings): a booking at a glance, its agreement, messages.

Nothing here is cached: desk screens show personal data and must see every change at once.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from app.resources import session
from services import availability
from services.agreement import render_agreement
from services.booking_views import BookingView, format_money
from services.bookings import Policy

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=])")
STATUS_BADGES = {"pending": "orange", "confirmed": "blue", "picked_up": "violet", "completed": "green",
                 "cancelled": "gray", "no_show": "red"}


def plain(value: object) -> str:
    """Text typed by people, shown literally: no Markdown links, images or colours smuggled in."""
    if value is None or value == "":
        return "—"
    return _MARKDOWN.sub(r"\\\1", " ".join(str(value).split()))


def flash(key: str, message: str) -> None:
    """Show the message after the rerun that redraws the page with the change."""
    st.session_state[key] = message
    st.rerun()


def show_flash(key: str) -> None:
    if message := st.session_state.pop(key, None):
        st.success(message)


def short_time(at: datetime | None, zone: str) -> str:
    """'Thu 26 Nov 14:05' on the branch's clock, for tables; empty when there is no moment."""
    if at is None or pd.isna(at):
        return ""
    return f"{pd.Timestamp(at).tz_convert(ZoneInfo(zone)):%a %d %b %H:%M}"


def branches() -> pd.DataFrame:
    """Every branch (id, code, name, city, timezone, lat, lon), read fresh."""
    with session() as s:
        return availability.search_places(s)


def status_badge(view: BookingView) -> None:
    st.badge(view.status_label, color=STATUS_BADGES.get(view.status, "gray"))


def booking_summary(view: BookingView) -> None:
    """Who, which car, where and when (in each branch's time), and the price — three columns."""
    who, car, when = st.columns(3)
    licence = f"{view.licence_masked} ({plain(view.licence_country)})" if view.licence_masked else "none on file"
    who.markdown(f"**Driver** {plain(view.customer_name)}  \n{plain(view.customer_email)}  \n"
                 f"{plain(view.customer_phone)}  \n**Licence** {licence}")
    car.markdown(f"**Car** {plain(view.make)} {plain(view.model)} ({view.year})  \n**Plate** {plain(view.plate)}  \n"
                 f"**Category** {plain(view.vehicle_type)}  \n**Total** {view.money(view.total)} · "
                 f"payment {view.payment_label}")
    when.markdown(f"**Pick-up** {view.pickup_local(with_zone=True)}  \n{plain(view.pickup.name)}  \n"
                  f"**Return** {view.dropoff_local(with_zone=True)}  \n{plain(view.dropoff.name)}")


def price_lines(view: BookingView) -> None:
    """The frozen quote of the booking as a small receipt."""
    receipt([(line.label, line.amount) for line in view.lines], view.total, view.vat_included, view.currency)


def receipt(lines: list[tuple[str, Decimal]], total: Decimal, vat: Decimal | None, currency: str) -> None:
    """Price lines, then the total and the VAT it includes, as a small table."""
    rows = [(label, format_money(amount, currency)) for label, amount in lines]
    rows.append(("Total", format_money(total, currency)))
    if vat is not None:
        rows.append(("of which VAT", format_money(vat, currency)))
    st.table(pd.DataFrame(rows, columns=["Item", "Amount"]), hide_index=True, border="horizontal", width="content")


def agreement_download(view: BookingView, *, key: str, label: str = "Rental agreement (PDF)") -> None:
    """A download button for the printable rental agreement of the booking as shown, made when it is clicked."""
    def pdf() -> bytes:
        return render_agreement(view, policy=Policy.from_environment(), issued_at=datetime.now(UTC))

    st.download_button(label, pdf, file_name=f"rental-agreement-{view.reference}.pdf", mime="application/pdf",
                       on_click="ignore", icon=":material/picture_as_pdf:", key=key)


def money(amount, currency: str = "GBP") -> str:
    return format_money(amount, currency)
