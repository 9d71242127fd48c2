"""Widgets of the Payments page: filters, a payment's detail with its gateway ids and events, the refund form."""

from __future__ import annotations

from decimal import Decimal

import streamlit as st

from app.resources import session
from services import payments
from services.actors import Actor
from services.errors import FleetdeskError

STATUSES = ("pending", "requires_capture", "succeeded", "failed", "cancelled", "refunded", "partially_refunded")
MONEY = st.column_config.NumberColumn(format="%.2f")


def payment_filters() -> payments.PaymentQuery:
    """The filter row; returns the query it describes."""
    with st.container(horizontal=True):
        search = st.text_input("Booking or Stripe id", max_chars=128, placeholder="FD… or pi_…",
                               key="payments-search")
        statuses = st.multiselect("Status", STATUSES, key="payments-status")
        kinds = st.multiselect("Kind", ("charge", "deposit"), key="payments-kind")
        methods = st.multiselect("Method", ("card", "cash"), key="payments-method")
    return payments.PaymentQuery(statuses=tuple(statuses), kinds=tuple(kinds), methods=tuple(methods),
                                 search=search)


def payments_table(frame, *, key: str) -> int | None:
    """The payments as a table; returns the id of the row the person selected."""
    event = st.dataframe(frame, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                         key=key, column_config={
                             "created_at": st.column_config.DatetimeColumn("When", format="D MMM YYYY, HH:mm"),
                             "booking_id": None, "amount": MONEY, "captured": MONEY, "refunded": MONEY,
                             "provider_payment_id": "Stripe payment", "booking_payment": "Booking's payment"})
    rows = event.selection.rows if event else []
    return int(frame.iloc[rows[0]]["id"]) if rows else None


def payment_detail(payment_id: int, actor: Actor) -> None:
    """A payment with its Stripe ids, refunds and the gateway events we stored; the refund form when allowed."""
    with session() as s:
        detail = payments.payment_detail(s, payment_id)
    p = detail.payment
    st.subheader(f"Payment {p.id} · booking {detail.booking_reference}")
    cols = st.columns(4)
    cols[0].metric("Amount", f"{p.amount} {p.currency}")
    cols[1].metric("Captured", f"{p.amount_captured}")
    cols[2].metric("Refunded", f"{p.amount_refunded}")
    cols[3].metric("Status", p.status.value.replace("_", " "))
    st.markdown(f"**{p.kind.title()}** by {p.method}, attempt {p.attempt} · key `{p.idempotency_key}`  \n"
                f"Stripe payment `{p.provider_payment_id or '—'}` · charge `{p.provider_charge_id or '—'}`"
                + (f"  \nDispute `{p.dispute_id}`: {p.dispute_status} ({p.dispute_reason})" if p.dispute_id else ""))
    if p.failure_reason:
        st.warning(p.failure_reason)
    st.markdown("**Refunds**")
    st.dataframe(detail.refunds, hide_index=True, width="stretch", column_config={"amount": MONEY})
    st.markdown("**Gateway events**")
    st.dataframe(detail.events, hide_index=True, width="stretch")
    if actor.may("desk_agent"):
        refund_form(p.id, detail.refundable, p.currency, actor)


def refund_form(payment_id: int, refundable: Decimal, currency: str, actor: Actor) -> None:
    """Refund up to what is left; the service checks the role and the amount again."""
    if refundable <= 0:
        st.caption("Nothing left to refund on this payment.")
        return
    with st.form(f"refund-{payment_id}"):
        amount = st.number_input(f"Refund ({currency}, at most {refundable})", min_value=0.01,
                                 max_value=float(refundable), value=float(refundable), step=1.0, format="%.2f")
        reason = st.text_input("Reason", max_chars=500)
        if st.form_submit_button("Refund", type="primary"):
            try:
                with session() as s:
                    refund = payments.refund_payment(s, actor, payment_id, Decimal(f"{amount:.2f}"),
                                                     reason=reason)
                st.success(f"Refunded {refund.amount} {refund.currency}"
                           + (f" (Stripe {refund.provider_refund_id})" if refund.provider_refund_id else ""))
            except FleetdeskError as exc:
                st.error(str(exc))
