"""Privacy requests on a real PostGIS: the export holds everything about the person, erasure keeps the accounts."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from db.models import (
    ApiToken,
    AuditEntry,
    Booking,
    BookingStatus,
    DevMailboxMessage,
    DomainEvent,
    Notification,
    Payment,
    PaymentStatus,
    Refund,
    User,
    UserRole,
)
from services import customers, privacy
from services.actors import Actor, Forbidden
from services.errors import Conflict, InvalidInput, NotFound
from tests import factories

KEY = Fernet.generate_key().decode()
LICENCE = "PRIVA905123AB1CD"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def keys(monkeypatch, tmp_path):
    monkeypatch.setenv("FLEETDESK_ENCRYPTION_KEYS", KEY)
    monkeypatch.setenv("FLEETDESK_HOME", str(tmp_path / "home"))


def staff(session, role: UserRole) -> Actor:
    user = factories.customer(session, role=role)
    return Actor(user.id, user.email, role, user.full_name)


@pytest.fixture
def desk(session):
    return staff(session, UserRole.DESK_AGENT)


@pytest.fixture
def admin(session):
    return staff(session, UserRole.ADMIN)


@pytest.fixture
def driver(session, desk):
    """A customer with history: a completed rental paid by card and partly refunded, a cancelled one, a token."""
    created = customers.create_customer(
        session, desk, email="priya.shah@example.test", first_name="Priya", last_name="Shah",
        date_of_birth=datetime(1988, 4, 2).date(), phone="+44 161 496 0777", address="9 Quay Street, Manchester",
        licence_number=LICENCE, licence_country="GB", licence_expiry=(NOW + timedelta(days=800)).date(),
        marketing_opt_in=True, preferred_language="de")
    customers.update_customer(session, desk, created.id, address="10 Quay Street, Manchester")
    customers.set_identity_status(session, desk, created.id, "verified", "Checked at the desk by Priya's photo")
    user = session.get(User, created.id)
    branch = factories.location(session)
    car = factories.vehicle(session, factories.vehicle_type(session), branch)
    done = factories.booking(session, car, user, NOW - timedelta(days=20), NOW - timedelta(days=17),
                             status=BookingStatus.COMPLETED)
    factories.booking(session, car, user, NOW - timedelta(days=10), NOW - timedelta(days=8),
                      status=BookingStatus.CANCELLED, cancel_reason="Plans changed")
    payment = Payment(booking_id=done.id, kind="charge", method="card", amount=Decimal("120.00"),
                      amount_captured=Decimal("120.00"), amount_refunded=Decimal("20.00"), currency="GBP",
                      status=PaymentStatus.PARTIALLY_REFUNDED, idempotency_key=f"pay-{done.id}",
                      provider_payment_id=f"pi_{done.id}", provider_customer_id="cus_priya")
    session.add(payment)
    session.flush()
    session.add(Refund(payment_id=payment.id, amount=Decimal("20.00"), currency="GBP", reason="Fuel credit",
                       status="succeeded", idempotency_key=f"ref-{payment.id}"))
    session.add(ApiToken(user_id=user.id, prefix="fdk_abcd", token_hash=b"h" * 32,
                         expires_at=NOW + timedelta(days=30)))
    sent = Notification(idempotency_key=f"done-{done.id}", booking_id=done.id, customer_id=user.id,
                        kind="booking_confirmed", category="transactional", channel="mailbox_email", language="en",
                        recipient="priya.shah@example.test", subject="Your booking",
                        body="Dear Priya Shah, your car is booked.", status="sent", sent_at=NOW)
    waiting = Notification(idempotency_key=f"offer-{user.id}", customer_id=user.id, kind="offer",
                           category="marketing", channel="mailbox_sms", language="en", recipient="+44 161 496 0777",
                           body="Priya, 10% off this weekend")
    session.add_all([sent, waiting])
    session.flush()
    session.add(DevMailboxMessage(notification_id=sent.id, medium="email", recipient=sent.recipient,
                                  subject=sent.subject, body=sent.body))
    session.flush()
    return created


def test_the_export_holds_the_profile_licence_bookings_payments_refunds_and_audit_entries(session, admin, driver):
    export = privacy.export_customer(session, admin, driver.id)
    assert json.loads(json.dumps(export)) == export  # JSON as it is, no custom encoder needed
    profile = export["customer"]
    assert profile["email"] == "priya.shah@example.test" and profile["address"] == "10 Quay Street, Manchester"
    assert profile["licence"] == {"number": LICENCE, "country": "GB", "expiry": profile["licence"]["expiry"]}
    assert profile["identity"]["status"] == "verified" and profile["marketing_opt_in"] is True
    assert profile["preferred_language"] == "de"
    assert not {"password_hash", "licence_number_hash", "licence_number_encrypted"} & set(profile)
    assert [b["status"] for b in export["bookings"]] == ["completed", "cancelled"]
    assert export["bookings"][1]["cancel_reason"] == "Plans changed"
    assert [(p["amount"], p["amount_refunded"], p["provider_customer_id"]) for p in export["payments"]] \
        == [("120.00", "20.00", "cus_priya")]
    assert [(r["amount"], r["reason"]) for r in export["refunds"]] == [("20.00", "Fuel credit")]
    assert [t["prefix"] for t in export["api_tokens"]] == ["fdk_abcd"]
    assert [(n["kind"], n["recipient"], n["status"], n["booking_reference"]) for n in export["notifications"]] == [
        ("booking_confirmed", "priya.shah@example.test", "sent", export["bookings"][0]["reference"]),
        ("offer", "+44 161 496 0777", "queued", None)]
    assert export["notifications"][0]["body"] == "Dear Priya Shah, your car is booked."
    assert [e["action"] for e in export["audit_entries"]] == ["customer.created", "customer.updated",
                                                              "customer.identity_checked"]


def test_an_export_is_audited_without_the_licence_number(session, admin, driver):
    privacy.export_customer(session, admin, driver.id)
    entry = session.query(AuditEntry).filter_by(action="customer.exported", entity_id=str(driver.id)).one()
    assert entry.actor_label == admin.label
    assert LICENCE not in json.dumps(entry.changes)


def test_desk_agents_cannot_export_or_erase(session, desk, driver):
    with pytest.raises(Forbidden, match="export"):
        privacy.export_customer(session, desk, driver.id)
    with pytest.raises(Forbidden, match="erase"):
        privacy.erase_customer(session, desk, driver.id, "asked by email")
    assert session.get(User, driver.id).status == "active"
    assert session.query(AuditEntry).filter(AuditEntry.action.in_(["customer.exported", "customer.erased"])).count() \
        == 0


def test_erasure_anonymises_the_person_and_keeps_bookings_and_payments(session, admin, driver):
    done = privacy.erase_customer(session, admin, driver.id, "Request of 3 May by email")
    assert (done.bookings_kept, done.payments_kept) == (2, 1)
    session.expire_all()
    user = session.get(User, driver.id)
    assert user.email == f"erased-{driver.id}@invalid"
    assert (user.first_name, user.last_name) == ("Erased", "Erased")
    assert [user.phone, user.address, user.date_of_birth, user.licence_number_encrypted, user.licence_number_hash,
            user.licence_country, user.licence_expiry, user.blocked_reason, user.preferred_language] == [None] * 9
    assert user.status == "erased" and user.erased_at is not None and user.marketing_opt_in is False
    assert session.query(Booking).filter_by(user_id=driver.id).count() == 2
    assert session.query(Payment).join(Booking).filter(Booking.user_id == driver.id).count() == 1
    assert session.query(ApiToken).filter_by(user_id=driver.id).one().revoked_at is not None
    event = session.query(DomainEvent).filter_by(event_type="customer.erased").one()
    assert event.payload == {"customer_id": driver.id}
    entry = session.query(AuditEntry).filter_by(action="customer.erased").one()
    assert entry.changes == {"status": {"before": "active", "after": "erased"},
                             "_note": "reason: Request of 3 May by email"}


def test_after_erasure_no_personal_value_is_left_in_the_audit_log_or_the_outbox(session, admin, driver):
    privacy.erase_customer(session, admin, driver.id, "Request of 3 May by email")
    for value in ("priya", "shah", "+44 161 496 0777", "Quay Street", "1988-04-02", LICENCE):
        for table in ("audit_log", "domain_events", "users", "notifications", "dev_mailbox"):
            hits = session.execute(text(f"SELECT count(*) FROM {table} t WHERE t::text ILIKE :v"),
                                   {"v": f"%{value}%"}).scalar()
            assert hits == 0, f"{value} is still in {table}"
    messages = session.query(Notification).filter_by(customer_id=driver.id).order_by(Notification.id).all()
    assert [(m.kind, m.status, m.recipient, m.body) for m in messages] == [
        ("booking_confirmed", "sent", "erased", "[erased]"),  # that it was sent, and when, stays
        ("offer", "failed", "erased", "[erased]")]  # what was still waiting is never sent
    assert messages[0].sent_at is not None
    created = session.query(AuditEntry).filter_by(action="customer.created", entity_id=str(driver.id)).one()
    assert created.actor_label  # who did it and when stay
    assert created.changes["email"] == created.changes["preferred_language"] == {"redacted": True}


def test_an_erased_customer_cannot_be_booked_changed_or_erased_again(session, admin, desk, driver):
    privacy.erase_customer(session, admin, driver.id, "Request of 3 May by email")
    vehicle_type = factories.vehicle_type(session)
    result = customers.check_eligibility(session, driver.id, vehicle_type.code, NOW.date() + timedelta(days=2))
    assert not result.eligible
    assert "personal data was erased" in result.reasons[0] and "create a new customer" in result.reasons[0]
    with pytest.raises(Conflict, match="already erased on"):
        privacy.erase_customer(session, admin, driver.id, "again")
    with pytest.raises(Conflict, match="erased record cannot be changed"):
        customers.update_customer(session, desk, driver.id, phone="+44 20 7946 0000")
    assert customers.find_customers(session, desk, "erased") == []
    assert [c.id for c in customers.find_customers(session, desk, "erased", include_erased=True)] == [driver.id]
    export = privacy.export_customer(session, admin, driver.id)
    assert export["customer"]["licence"] is None and len(export["bookings"]) == 2


def test_a_customer_with_an_active_booking_cannot_be_erased_yet(session, admin, driver):
    user = session.get(User, driver.id)
    car = factories.vehicle(session, factories.vehicle_type(session), factories.location(session))
    upcoming = factories.booking(session, car, user, NOW + timedelta(days=3), NOW + timedelta(days=5))
    with pytest.raises(Conflict, match=f"active booking {upcoming.reference}; complete or cancel it"):
        privacy.erase_customer(session, admin, driver.id, "Request of 3 May")
    assert session.get(User, driver.id).status == "active"


def test_erasure_needs_a_reason_and_a_real_customer(session, admin, driver):
    with pytest.raises(InvalidInput, match="Give the reason"):
        privacy.erase_customer(session, admin, driver.id, "   ")
    with pytest.raises(NotFound, match="There is no customer"):
        privacy.erase_customer(session, admin, admin.user_id, "staff are not customers")


def test_exporting_and_erasing_never_log_the_licence(session, admin, driver, caplog):
    caplog.set_level(logging.DEBUG)
    export = privacy.export_customer(session, admin, driver.id)
    privacy.erase_customer(session, admin, driver.id, "Request of 3 May by email")
    assert export["customer"]["licence"]["number"] == LICENCE
    assert LICENCE not in caplog.text
    for table, column in (("audit_log", "changes"), ("domain_events", "payload")):
        assert session.execute(text(f"SELECT count(*) FROM {table} WHERE {column}::text LIKE :s"),
                               {"s": f"%{LICENCE}%"}).scalar() == 0
