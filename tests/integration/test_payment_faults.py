"""Faults: the gateway down or silent mid-request (booking stays pending, a retry charges once); no card data kept."""

from __future__ import annotations

import logging
import subprocess
import uuid

import pytest

from app import payments_server
from db.config import fleetdesk_home
from db.models import BookingStatus, PaymentStatus
from db.session import session_scope
from services import payments
from services.gateway import GatewayConfig, GatewayUnavailable, StripeGateway
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import (
    AGENT,
    KEYS,
    WEBHOOK_SECRET,
    StallingProxy,
    free_port,
    intents_for,
    make_booking,
    start_localstripe,
)

CARD_NUMBER, CVC = "4242424242424242", "739"


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("FLEETDESK_ENCRYPTION_KEYS", KEYS)


def _gateway(port: int, timeout_s: float = 10) -> StripeGateway:
    return StripeGateway(GatewayConfig("sk_test_fleetdesk", f"http://127.0.0.1:{port}", WEBHOOK_SECRET,
                                       timeout_s=timeout_s, max_network_retries=0))


def test_an_unreachable_gateway_leaves_the_booking_pending_and_says_to_retry(session):
    booking = make_booking(session)
    closed = _gateway(free_port())
    with pytest.raises(GatewayUnavailable, match="did not answer; nothing was charged twice — try again"):
        payments.pay_at_desk(session, AGENT, booking.id, method="card", payment_method_id="pm_card_visa",
                             gateway=closed)
    assert (booking.status, booking.payment_status) == (BookingStatus.PENDING, "unpaid")
    assert payments._payments(session, booking.id, "charge") == []


def test_a_stopped_gateway_then_restarted_charges_once_on_retry(session):
    server = start_localstripe(fleetdesk_home() / "test-localstripe" / f"restart-{uuid.uuid4().hex[:8]}")
    try:
        gateway = _gateway(server.port)
        booking = make_booking(session)
        payments_server.stop(server)
        with pytest.raises(GatewayUnavailable):
            payments.pay_at_desk(session, AGENT, booking.id, method="card", payment_method_id="pm_card_visa",
                                 gateway=gateway)
        assert booking.status == BookingStatus.PENDING
        payments_server.start(server)  # same state file: what it knew before is still there
        payment = payments.pay_at_desk(session, AGENT, booking.id, method="card", payment_method_id="pm_card_visa",
                                       gateway=gateway)
        assert payment.status == PaymentStatus.SUCCEEDED and booking.status == BookingStatus.CONFIRMED
        assert len(intents_for(gateway, booking.id)) == 1
    finally:
        payments_server.stop(server)
        for path in (server.state_file, server.log_file, server.pid_file):
            path.unlink(missing_ok=True)
        server.state_file.parent.rmdir()


def test_a_gateway_that_goes_silent_after_taking_the_charge_is_retried_without_a_second_charge(
        session, localstripe, gateway):
    booking = make_booking(session)
    proxy = StallingProxy(localstripe.port)
    try:
        with pytest.raises(GatewayUnavailable, match="try again"):
            payments.pay_at_desk(session, AGENT, booking.id, method="card", payment_method_id="pm_card_visa",
                                 gateway=_gateway(proxy.port, timeout_s=1))
    finally:
        proxy.close()
    assert proxy.stalled_requests == 1
    assert (booking.status, booking.payment_status) == (BookingStatus.PENDING, "unpaid")
    [charged] = intents_for(gateway, booking.id)  # the gateway did take it
    payment = payments.pay_at_desk(session, AGENT, booking.id, method="card", payment_method_id="pm_card_visa",
                                   gateway=gateway)
    assert payment.provider_payment_id == charged.intent_id and payment.status == PaymentStatus.SUCCEEDED
    assert len(intents_for(gateway, booking.id)) == 1
    assert booking.status == BookingStatus.CONFIRMED


def test_no_card_number_or_cvc_reaches_our_database_or_our_logs(pay_engine, payments_db_url, gateway, caplog):
    caplog.set_level(logging.DEBUG)
    method_id = gateway.create_test_card(CARD_NUMBER, 12, 2034, CVC)
    with session_scope(pay_engine) as session:
        booking = make_booking(session)
        payment = payments.pay_at_desk(session, AGENT, booking.id, method="card", payment_method_id=method_id,
                                       gateway=gateway)
        payments.refund_payment(session, AGENT, payment.id, "10.00", reason="goodwill", gateway=gateway)
        intent_id = payment.provider_payment_id
    dump = subprocess.run(
        ["/usr/lib/postgresql/15/bin/pg_dump", "--data-only", "--no-owner",
         f"--dbname={payments_db_url.set(drivername='postgresql').render_as_string(hide_password=False)}"],
        capture_output=True, text=True, timeout=120, check=True).stdout
    assert intent_id in dump  # the payment is in the dump, by its Stripe id only
    assert any("Request to Stripe api" in r.getMessage() for r in caplog.records)  # the SDK's logs were captured
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for text in (dump, logs):
        assert CARD_NUMBER not in text
        assert "4242 4242 4242 4242" not in text
        assert "cvc" not in text.lower()
        assert f"={CVC}" not in text and f'"{CVC}"' not in text


def test_only_the_gateway_module_imports_stripe():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    importers = sorted(str(path.relative_to(root)) for folder in ("app", "services", "db", "pages")
                       for path in (root / folder).rglob("*.py")
                       if any(line.strip().startswith(("import stripe", "from stripe"))
                              for line in path.read_text().splitlines()))
    assert importers == ["services/gateway.py"]
