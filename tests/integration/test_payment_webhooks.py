"""The webhook endpoint: signatures, events applied once, any order, unknown payments; and a real round trip."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from decimal import Decimal

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app import payments_server
from app.api import app
from db.models import AuditEntry, Booking, BookingStatus, Payment, PaymentEvent, PaymentStatus
from db.session import session_scope
from services import payments
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import AGENT, WEBHOOK_SECRET, committed_booking, free_port, signed

URL = "/api/v1/payments/webhook"


@pytest.fixture
def client(payment_env):
    with TestClient(app) as test_client:
        yield test_client


def _event(kind: str, obj: dict, event_id: str | None = None) -> dict:
    return {"id": event_id or f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "type": kind,
            "created": int(time.time()), "livemode": False, "data": {"object": obj}}


def _intent(payment: Payment, status: str, **extra) -> dict:
    return {"id": payment.provider_payment_id, "object": "payment_intent", "status": status,
            "amount": int(payment.amount * 100), "currency": "gbp",
            "metadata": {"fleetdesk_key": payment.idempotency_key}, **extra}


def _charge(payment: Payment, refunded: Decimal, refund_id: str) -> dict:
    return {"id": payment.provider_charge_id or "ch_unknown", "object": "charge", "captured": True,
            "payment_intent": payment.provider_payment_id, "amount": int(payment.amount * 100),
            "amount_captured": int(payment.amount * 100), "amount_refunded": int(refunded * 100), "currency": "gbp",
            "refunds": {"data": [{"id": refund_id, "amount": int(refunded * 100), "status": "succeeded"}]},
            "payment_method_details": {"card": {"last4": "4242"}}, "billing_details": {"name": "Pat Payer"}}


def _pending_charge(pay_engine, gateway) -> tuple[int, int]:
    booking_id = committed_booking(pay_engine)
    with session_scope(pay_engine) as session:
        payment = payments.charge_booking(session, AGENT, booking_id, payment_method_id="pm_card_visa",
                                          gateway=gateway).payment
        return booking_id, payment.id


def _load(pay_engine, booking_id: int, payment_id: int) -> tuple[Booking, Payment]:
    with session_scope(pay_engine) as session:
        return session.get(Booking, booking_id), session.get(Payment, payment_id)


def _count(pay_engine, model, *where) -> int:
    with session_scope(pay_engine) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def _post(client, event: dict, secret: str = WEBHOOK_SECRET):
    body, headers = signed(event, secret)
    return client.post(URL, content=body, headers=headers)


def test_the_api_answers_its_health_check(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_payment_intent_succeeded_confirms_the_booking_and_a_redelivery_changes_nothing(client, pay_engine, gateway):
    booking_id, payment_id = _pending_charge(pay_engine, gateway)
    _, payment = _load(pay_engine, booking_id, payment_id)
    event = _event("payment_intent.succeeded", _intent(payment, "succeeded", amount_received=12000))
    first = _post(client, event)
    assert first.status_code == 200 and "booking confirmed" in first.json()["outcome"]
    booking, payment = _load(pay_engine, booking_id, payment_id)
    assert (booking.status, booking.payment_status) == (BookingStatus.CONFIRMED, "paid")
    assert (payment.status, payment.amount_captured) == (PaymentStatus.SUCCEEDED, Decimal("120.00"))
    audits = _count(pay_engine, AuditEntry, AuditEntry.entity_id.in_([str(booking_id), str(payment_id)]))
    again = _post(client, event)
    assert again.status_code == 200 and again.json()["outcome"].startswith("duplicate")
    assert _count(pay_engine, AuditEntry, AuditEntry.entity_id.in_([str(booking_id), str(payment_id)])) == audits
    assert _count(pay_engine, PaymentEvent, PaymentEvent.provider_event_id == event["id"]) == 1


def test_a_bad_signature_is_refused_with_400_and_changes_nothing(client, pay_engine, gateway):
    booking_id, payment_id = _pending_charge(pay_engine, gateway)
    _, payment = _load(pay_engine, booking_id, payment_id)
    event = _event("payment_intent.succeeded", _intent(payment, "succeeded"))
    events_before = _count(pay_engine, PaymentEvent)
    forged = _post(client, event, secret="whsec_not_ours")
    assert forged.status_code == 400 and "signature" in forged.json()["detail"]
    body, headers = signed(event)
    tampered = client.post(URL, content=body.replace(b"succeeded", b"succeedeD"), headers=headers)
    unsigned = client.post(URL, content=body)
    assert (tampered.status_code, unsigned.status_code) == (400, 400)
    booking, payment = _load(pay_engine, booking_id, payment_id)
    assert (booking.status, payment.status) == (BookingStatus.PENDING, PaymentStatus.PENDING)
    assert _count(pay_engine, PaymentEvent) == events_before


def test_an_event_for_a_payment_we_do_not_know_is_logged_and_accepted(client, pay_engine, caplog):
    caplog.set_level(logging.WARNING, logger="services.payments")
    before = (_count(pay_engine, Payment), _count(pay_engine, Booking))
    event = _event("payment_intent.succeeded", {"id": "pi_nobodyknows", "object": "payment_intent",
                                                "status": "succeeded", "amount": 999, "currency": "gbp"})
    answer = _post(client, event)
    assert answer.status_code == 200 and answer.json()["outcome"] == "ignored: unknown payment"
    assert "pi_nobodyknows" in caplog.text and "do not know" in caplog.text
    assert (_count(pay_engine, Payment), _count(pay_engine, Booking)) == before


def test_a_failed_payment_keeps_the_booking_pending_with_the_reason(client, pay_engine, gateway):
    booking_id, payment_id = _pending_charge(pay_engine, gateway)
    _, payment = _load(pay_engine, booking_id, payment_id)
    error = {"code": "card_declined", "message": "Your card has insufficient funds."}
    assert _post(client, _event("payment_intent.payment_failed",
                                _intent(payment, "requires_payment_method", last_payment_error=error))).status_code == 200
    booking, payment = _load(pay_engine, booking_id, payment_id)
    assert (booking.status, booking.payment_status) == (BookingStatus.PENDING, "failed")
    assert (payment.status, payment.failure_reason) == (PaymentStatus.FAILED, "Your card has insufficient funds.")


def test_a_late_success_after_a_refund_does_not_undo_the_refund(client, pay_engine, gateway):
    booking_id = committed_booking(pay_engine)
    with session_scope(pay_engine) as session:
        payment = payments.pay_at_desk(session, AGENT, booking_id, method="card", payment_method_id="pm_card_visa",
                                       gateway=gateway)
        payments.refund_payment(session, AGENT, payment.id, Decimal("120.00"), reason="cancelled", gateway=gateway)
        payment_id = payment.id
    answer = _post(client, _event("payment_intent.succeeded", _intent(payment, "succeeded")))
    assert answer.json()["outcome"] == "no change: already succeeded"
    booking, payment = _load(pay_engine, booking_id, payment_id)
    assert (payment.status, payment.amount_refunded, booking.payment_status) == (
        PaymentStatus.REFUNDED, Decimal("120.00"), "refunded")


def test_a_refund_event_before_the_success_event_ends_refunded_either_way(client, pay_engine, gateway):
    booking_id, payment_id = _pending_charge(pay_engine, gateway)
    _, payment = _load(pay_engine, booking_id, payment_id)
    refund_id = f"re_{uuid.uuid4().hex[:12]}"
    refunded = _event("charge.refunded", _charge(payment, Decimal("40.00"), refund_id))
    assert _post(client, refunded).status_code == 200
    assert _post(client, _event("payment_intent.succeeded", _intent(payment, "succeeded"))).status_code == 200
    assert _post(client, refunded).json()["outcome"].startswith("duplicate")
    booking, payment = _load(pay_engine, booking_id, payment_id)
    assert (payment.status, payment.amount_captured, payment.amount_refunded) == (
        PaymentStatus.PARTIALLY_REFUNDED, Decimal("120.00"), Decimal("40.00"))
    assert (booking.status, booking.payment_status) == (BookingStatus.CONFIRMED, "partially_refunded")
    with session_scope(pay_engine) as session:
        stored = session.scalar(select(PaymentEvent).where(PaymentEvent.provider_event_id == refunded["id"]))
        assert "payment_method_details" not in str(stored.payload) and "Pat Payer" not in str(stored.payload)
        assert stored.payment_id == payment_id


def test_a_dispute_flags_the_booking_for_staff_and_its_close_clears_it_in_any_order(client, pay_engine, gateway):
    booking_id = committed_booking(pay_engine)
    with session_scope(pay_engine) as session:
        payment = payments.pay_at_desk(session, AGENT, booking_id, method="card", payment_method_id="pm_card_visa",
                                       gateway=gateway)
        payment_id = payment.id
    dispute = {"id": f"dp_{uuid.uuid4().hex[:12]}", "object": "dispute", "amount": 12000, "currency": "gbp",
               "charge": payment.provider_charge_id, "payment_intent": payment.provider_payment_id,
               "reason": "fraudulent", "status": "needs_response"}
    opened = _event("charge.dispute.created", dispute)
    assert _post(client, opened).status_code == 200
    booking, payment = _load(pay_engine, booking_id, payment_id)
    assert (booking.disputed, booking.payment_status) == (True, "disputed")
    assert (payment.dispute_status, payment.dispute_reason, payment.dispute_amount) == (
        "needs_response", "fraudulent", Decimal("120.00"))
    with session_scope(pay_engine) as session:
        assert payment_id in set(payments.disputes(session)["id"])
    assert _post(client, _event("charge.dispute.closed", {**dispute, "status": "won"})).status_code == 200
    assert _post(client, _event("charge.dispute.created", dispute)).json()["outcome"].startswith("no change")
    booking, payment = _load(pay_engine, booking_id, payment_id)
    assert (booking.disputed, booking.payment_status, payment.dispute_status) == (False, "paid", "won")


def test_localstripe_delivers_payment_intent_succeeded_to_our_running_api_which_confirms_the_booking(
        payment_env, pay_engine, gateway):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        payments_server.register_webhook(payment_env.api_base, f"http://127.0.0.1:{port}{URL}", WEBHOOK_SECRET)
        booking_id, payment_id = _pending_charge(pay_engine, gateway)  # a card on file, waiting for the client
        _, payment = _load(pay_engine, booking_id, payment_id)
        assert payment.status == PaymentStatus.PENDING
        gateway._client.v1.payment_intents.confirm(payment.provider_payment_id)  # what Stripe.js would do
        deadline = time.monotonic() + 30  # localstripe waits a second before it sends
        while _load(pay_engine, booking_id, payment_id)[0].status != BookingStatus.CONFIRMED:
            assert time.monotonic() < deadline, "the webhook never confirmed the booking"
            time.sleep(0.2)
        booking, payment = _load(pay_engine, booking_id, payment_id)
        assert (booking.payment_status, payment.status) == ("paid", PaymentStatus.SUCCEEDED)
        with session_scope(pay_engine) as session:
            assert session.scalar(select(PaymentEvent.type).where(PaymentEvent.payment_id == payment_id)) == \
                "payment_intent.succeeded"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
