"""Payments against a real localstripe: charging, declines, idempotent retries, deposits, refunds, reconciliation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from db.models import AuditEntry, BookingStatus, DomainEvent, PaymentStatus, Refund, UserRole
from services import bookings, payments
from services.actors import Actor, Forbidden
from services.errors import InvalidInput
from services.gateway import PaymentDeclined
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import AGENT, KEYS, intents_for, make_booking

PRICE = Decimal("120.00")  # three days at £40


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("FLEETDESK_ENCRYPTION_KEYS", KEYS)


def test_charging_a_booking_makes_one_intent_for_the_frozen_price_and_records_it_pending(session, gateway):
    booking = make_booking(session)
    result = payments.charge_booking(session, AGENT, booking.id, gateway=gateway)
    payment = result.payment
    assert (payment.status, payment.amount, payment.currency, payment.kind) == (PaymentStatus.PENDING, PRICE, "GBP",
                                                                                "charge")
    assert payment.idempotency_key == f"booking-{booking.id}-charge-1"
    assert result.client_secret and result.client_secret.startswith(payment.provider_payment_id)
    assert booking.status == BookingStatus.PENDING and booking.payment_status == "pending"
    [intent] = intents_for(gateway, booking.id)
    assert (intent.intent_id, intent.amount, intent.currency) == (payment.provider_payment_id, PRICE, "GBP")
    again = payments.charge_booking(session, AGENT, booking.id, gateway=gateway)  # a double click
    assert again.payment.id == payment.id and len(intents_for(gateway, booking.id)) == 1


def test_a_card_at_the_desk_confirms_the_booking_once_the_charge_succeeded(session, gateway):
    booking = make_booking(session)
    payment = payments.pay_at_desk(session, AGENT, booking.id, method="card", payment_method_id="pm_card_visa",
                                   gateway=gateway)
    assert (payment.status, payment.amount_captured) == (PaymentStatus.SUCCEEDED, PRICE)
    assert (booking.status, booking.payment_status) == (BookingStatus.CONFIRMED, "paid")
    assert payment.provider_payment_id.startswith("pi_") and payment.provider_charge_id.startswith("ch_")
    same = payments.pay_at_desk(session, AGENT, booking.id, method="card", payment_method_id="pm_card_visa",
                                gateway=gateway)
    assert same.id == payment.id and len(intents_for(gateway, booking.id)) == 1  # never charged twice
    kinds = session.scalars(select(DomainEvent.event_type).where(DomainEvent.aggregate_type == "payment",
                                                                 DomainEvent.aggregate_id == str(payment.id))).all()
    assert kinds == ["payment.succeeded"]


def test_cash_at_the_desk_confirms_without_the_gateway(session, gateway):
    booking = make_booking(session)
    payment = payments.pay_at_desk(session, AGENT, booking.id, method="cash", gateway=gateway)
    assert (payment.method, payment.status, payment.provider_payment_id) == ("cash", PaymentStatus.SUCCEEDED, None)
    assert (booking.status, booking.payment_status) == (BookingStatus.CONFIRMED, "paid")
    assert intents_for(gateway, booking.id) == []


def test_a_declined_card_gives_the_reason_and_keeps_the_booking_pending_and_the_next_card_is_a_new_attempt(
        session, gateway):
    booking = make_booking(session)
    with pytest.raises(PaymentDeclined, match="Your card was declined"):
        payments.pay_at_desk(session, AGENT, booking.id, method="card",
                             payment_method_id="pm_card_chargeCustomerFail", gateway=gateway)
    assert (booking.status, booking.payment_status) == (BookingStatus.PENDING, "failed")
    [failed] = payments._payments(session, booking.id, "charge")
    assert (failed.status, failed.attempt) == (PaymentStatus.FAILED, 1)
    assert "declined" in failed.failure_reason
    paid = payments.pay_at_desk(session, AGENT, booking.id, method="card", payment_method_id="pm_card_visa",
                                gateway=gateway)
    assert (paid.attempt, paid.idempotency_key) == (2, f"booking-{booking.id}-charge-2")
    assert booking.status == BookingStatus.CONFIRMED


def test_a_retry_of_a_lost_request_reuses_its_key_and_never_charges_twice(session, gateway):
    booking = make_booking(session)
    with session.begin_nested() as lost:  # the first request charged, then its transaction was lost
        payments.pay_at_desk(session, AGENT, booking.id, method="card", payment_method_id="pm_card_visa",
                             gateway=gateway)
        lost.rollback()
    session.refresh(booking)
    assert booking.status == BookingStatus.PENDING and payments._payments(session, booking.id, "charge") == []
    payment = payments.pay_at_desk(session, AGENT, booking.id, method="card", payment_method_id="pm_card_visa",
                                   gateway=gateway)
    assert payment.idempotency_key == f"booking-{booking.id}-charge-1" and payment.status == PaymentStatus.SUCCEEDED
    assert len(intents_for(gateway, booking.id)) == 1


def test_a_deposit_is_held_then_the_extra_charges_are_captured_and_the_rest_released(session, gateway):
    booking = make_booking(session, deposit=Decimal("250.00"))
    payments.pay_at_desk(session, AGENT, booking.id, method="cash", gateway=gateway)
    hold = payments.hold_deposit(session, AGENT, booking.id, payment_method_id="pm_card_visa", gateway=gateway)
    assert (hold.kind, hold.amount, hold.status, hold.amount_captured) == ("deposit", Decimal("250.00"),
                                                                            PaymentStatus.REQUIRES_CAPTURE, 0)
    assert gateway.retrieve_intent(hold.provider_payment_id).status == "requires_capture"
    settled = payments.settle_deposit(session, AGENT, booking.id, charges=Decimal("52.50"), gateway=gateway)
    assert (settled.captured, settled.released, settled.still_due) == (Decimal("52.50"), Decimal("197.50"), 0)
    assert (hold.status, hold.amount_captured) == (PaymentStatus.SUCCEEDED, Decimal("52.50"))
    at_gateway = gateway.retrieve_intent(hold.provider_payment_id)
    assert (at_gateway.status, at_gateway.net_received) == ("succeeded", Decimal("52.50"))
    again = payments.settle_deposit(session, AGENT, booking.id, charges=Decimal("52.50"), gateway=gateway)
    assert again.captured == Decimal("52.50")  # a retry captures nothing more


def test_a_clean_return_releases_the_whole_deposit(session, gateway):
    booking = make_booking(session)
    payments.pay_at_desk(session, AGENT, booking.id, method="cash", gateway=gateway)
    hold = payments.hold_deposit(session, AGENT, booking.id, payment_method_id="pm_card_visa", gateway=gateway)
    settled = payments.settle_deposit(session, AGENT, booking.id, charges=Decimal("0"), gateway=gateway)
    assert (settled.captured, settled.released) == (Decimal("0.00"), Decimal("200.00"))
    assert hold.status == PaymentStatus.CANCELLED
    assert gateway.retrieve_intent(hold.provider_payment_id).status == "canceled"


def test_charges_beyond_the_deposit_capture_it_all_and_say_what_is_still_due(session, gateway):
    booking = make_booking(session, deposit=Decimal("100.00"))
    payments.pay_at_desk(session, AGENT, booking.id, method="cash", gateway=gateway)
    payments.hold_deposit(session, AGENT, booking.id, payment_method_id="pm_card_visa", gateway=gateway)
    settled = payments.settle_deposit(session, AGENT, booking.id, charges=Decimal("180.00"), gateway=gateway)
    assert (settled.captured, settled.still_due) == (Decimal("100.00"), Decimal("80.00"))


def test_partial_then_full_refunds_are_recorded_with_their_stripe_ids_and_never_exceed_what_was_paid(
        session, gateway):
    booking = make_booking(session)
    payment = payments.pay_at_desk(session, AGENT, booking.id, method="card", payment_method_id="pm_card_visa",
                                   gateway=gateway)
    first = payments.refund_payment(session, AGENT, payment.id, Decimal("20.00"), reason="goodwill", gateway=gateway)
    assert first.provider_refund_id.startswith("re_") and first.status == "succeeded"
    assert (payment.amount_refunded, payment.status) == (Decimal("20.00"), PaymentStatus.PARTIALLY_REFUNDED)
    assert booking.payment_status == "partially_refunded"
    with pytest.raises(InvalidInput, match=r"At most 100.00 GBP can be refunded"):
        payments.refund_payment(session, AGENT, payment.id, Decimal("100.01"), reason="too much", gateway=gateway)
    payments.refund_payment(session, AGENT, payment.id, "100.00", reason="rest", gateway=gateway)
    assert (payment.status, booking.payment_status) == (PaymentStatus.REFUNDED, "refunded")
    assert gateway.retrieve_intent(payment.provider_payment_id).amount_refunded == PRICE
    with pytest.raises(InvalidInput, match="At most 0.00"):
        payments.refund_payment(session, AGENT, payment.id, Decimal("1"), reason="again", gateway=gateway)
    audit = session.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "payment",
                                                            AuditEntry.entity_id == str(payment.id))).all()
    assert audit.count("payment.refunded") == 2


@pytest.mark.parametrize("amount", ["0", "-5", "abc"])
def test_a_refund_of_nothing_or_nonsense_is_refused(session, gateway, amount):
    booking = make_booking(session)
    payment = payments.pay_at_desk(session, AGENT, booking.id, method="cash", gateway=gateway)
    with pytest.raises(InvalidInput):
        payments.refund_payment(session, AGENT, payment.id, amount, reason="x", gateway=gateway)


def test_only_desk_agents_and_admins_may_refund(session, gateway):
    booking = make_booking(session)
    payment = payments.pay_at_desk(session, AGENT, booking.id, method="cash", gateway=gateway)
    fleet = Actor(None, "fleet@example.test", UserRole.FLEET_MANAGER, "Fleet")
    with pytest.raises(Forbidden, match="cannot refund payments"):
        payments.refund_payment(session, fleet, payment.id, Decimal("10"), reason="x", gateway=gateway)
    assert payment.amount_refunded == 0


def test_a_cancellation_refunds_what_the_policy_says_once(session, gateway):
    booking = make_booking(session)
    payment = payments.pay_at_desk(session, AGENT, booking.id, method="card", payment_method_id="pm_card_visa",
                                   gateway=gateway)
    bookings.cancel_booking(session, AGENT, booking.id, reason="plans changed")
    assert booking.refund_due == PRICE  # ten days ahead: free cancellation
    [refund] = payments.refund_for_cancellation(session, AGENT, booking.id, gateway=gateway)
    assert (refund.amount, refund.provider_refund_id[:3]) == (PRICE, "re_")
    assert payments.refund_for_cancellation(session, AGENT, booking.id, gateway=gateway)[0].id == refund.id
    assert session.scalars(select(Refund).where(Refund.payment_id == payment.id)).all() == [refund]
    assert (payment.status, booking.payment_status) == (PaymentStatus.REFUNDED, "refunded")
    assert gateway.retrieve_intent(payment.provider_payment_id).amount_refunded == PRICE


def test_reconcile_reports_a_difference_and_changes_nothing_without_fix(session, gateway):
    booking = make_booking(session)
    payment = payments.pay_at_desk(session, AGENT, booking.id, method="card", payment_method_id="pm_card_visa",
                                   gateway=gateway)
    gateway.refund(payment.provider_payment_id, Decimal("30.00"), "GBP", idempotency_key=f"behind-{payment.id}",
                   metadata={})  # refunded at the gateway, behind our back
    report = payments.reconcile(session, gateway=gateway)
    mine = [d for d in report.differences if d.payment_id == payment.id]
    assert [(d.what, d.ours, d.theirs) for d in mine] == [("amount", "120.00 GBP", "90.00 GBP")]
    assert payment.amount_refunded == 0 and not mine[0].fixed
    fixed = payments.reconcile(session, fix=True, gateway=gateway)
    assert [d.fixed for d in fixed.differences if d.payment_id == payment.id] == [True]
    assert (payment.amount_refunded, payment.status) == (Decimal("30.00"), PaymentStatus.PARTIALLY_REFUNDED)
    assert not [d for d in payments.reconcile(session, gateway=gateway).differences if d.payment_id == payment.id]


def test_reconcile_finds_a_charge_we_have_no_record_of(session, gateway):
    booking = make_booking(session)
    with session.begin_nested() as lost:
        lost_payment = payments.pay_at_desk(session, AGENT, booking.id, method="card",
                                            payment_method_id="pm_card_visa", gateway=gateway)
        intent_id = lost_payment.provider_payment_id
        lost.rollback()
    report = payments.reconcile(session, gateway=gateway)
    unknown = [d for d in report.differences if d.intent_id == intent_id]
    assert [d.what for d in unknown] == ["unknown_to_us"] and "succeeded 120.00 GBP" in unknown[0].theirs


def test_a_status_difference_is_reported_and_fixed(session, gateway):
    booking = make_booking(session)
    payment = payments.pay_at_desk(session, AGENT, booking.id, method="card", payment_method_id="pm_card_visa",
                                   gateway=gateway)
    payment.status = PaymentStatus.PENDING  # e.g. a lost webhook in an older version
    session.flush()
    report = payments.reconcile(session, gateway=gateway)
    assert {d.what for d in report.differences if d.payment_id == payment.id} == {"status", "amount"}
    assert payment.status == PaymentStatus.PENDING
    payments.reconcile(session, fix=True, gateway=gateway)
    assert payment.status == PaymentStatus.SUCCEEDED


def test_the_reconcile_command_reports_and_refuses_a_bad_date(payment_env, capsys):
    from app.cli import run

    try:
        code = run(["payments", "reconcile", "--since", "2020-01-01"])
    except SystemExit as exit_:  # 3: differences found (other tests' intents are at the gateway, not with us)
        code = exit_.code
    out = capsys.readouterr().out
    assert code in (0, 3) and "card payments since 2020-01-01" in out
    assert run(["payments", "reconcile", "--since", "last tuesday"]) == 2
    assert "--since must be a date" in capsys.readouterr().err
