"""Paying through the API end to end against localstripe: book, initiate, the client confirms, the webhook
arrives at our running server, and the booking reads `confirmed`; then a cancellation refunds it in full."""

from __future__ import annotations

import time

import httpx
import pytest
import stripe

from app import payments_server
from tests.api.conftest import booking_body, new_car
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import WEBHOOK_SECRET

WAIT_S = 30  # localstripe waits about a second before it delivers an event


@pytest.fixture
def stripe_env(monkeypatch, localstripe):
    monkeypatch.setenv("STRIPE_API_BASE", localstripe.api_base)
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_fleetdesk")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("STRIPE_TIMEOUT_SECONDS", "10")
    return localstripe


def _confirm_as_the_client(api_base: str, intent_id: str, client_secret: str) -> str:
    """What Stripe.js does with the client secret: attach the card and confirm (localstripe takes both calls
    only with a secret key and the payment method set by an update, so that is how they are made here)."""
    client = stripe.StripeClient("sk_test_fleetdesk", base_addresses={"api": api_base}, max_network_retries=0)
    intent = client.v1.payment_intents.retrieve(intent_id)
    assert intent.client_secret == client_secret
    client.v1.payment_intents.update(intent_id, params={"payment_method": "pm_card_visa"})
    return client.v1.payment_intents.confirm(intent_id).status


def test_a_booking_paid_through_the_api_is_confirmed_by_the_webhook_and_a_cancel_refunds_it(
        stripe_env, live_api, api_env):
    payments_server.register_webhook(stripe_env.api_base, f"{live_api}/api/v1/payments/webhook", WEBHOOK_SECRET)
    with httpx.Client(base_url=live_api, headers=api_env.headers(), timeout=30) as api:
        booking = api.post("/api/v1/bookings", json=booking_body(api_env, new_car(api_env, rate="55.00")))
        assert booking.status_code == 201, booking.text
        booking_id = booking.json()["id"]

        initiated = api.post("/api/v1/payments/initiate", json={"booking_id": booking_id})
        assert initiated.status_code == 201, initiated.text
        payment = initiated.json()
        assert (payment["amount"], payment["status"]) == ("165.00", "pending")

        assert _confirm_as_the_client(stripe_env.api_base, payment["provider_payment_id"],
                                      payment["client_secret"]) == "succeeded"

        deadline = time.monotonic() + WAIT_S
        while (seen := api.get(f"/api/v1/bookings/{booking_id}").json())["status"] != "confirmed":
            assert time.monotonic() < deadline, f"the webhook never confirmed the booking: {seen}"
            time.sleep(0.2)
        assert seen["payment_status"] == "paid"

        again = api.post("/api/v1/payments/initiate", json={"booking_id": booking_id})
        assert again.status_code == 409 and "confirmed" in again.json()["detail"]

        cancelled = api.patch(f"/api/v1/bookings/{booking_id}/cancel", json={"reason": "trip called off"})
        assert cancelled.status_code == 200, cancelled.text
        assert (cancelled.json()["status"], cancelled.json()["refund_amount"]) == ("cancelled", "165.00")
        assert cancelled.json()["payment_status"] == "refunded"
