"""Privacy requests: export everything held about a customer, or erase their personal data.

Erasure keeps bookings, payments and refunds for the accounts: they point at the customer's id, which becomes a
pseudonymous id once the row behind it holds no personal data. Earlier audit entries about the customer keep who did
what and when, but their copies of personal fields are redacted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, cast, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from db.models import (
    ACTIVE_BOOKING_STATUSES,
    ApiToken,
    AuditEntry,
    Booking,
    DevMailboxMessage,
    Location,
    Notification,
    Payment,
    Refund,
    User,
    UserRole,
    Vehicle,
    VehicleType,
)
from services import audit
from services.actors import Actor, require_role
from services.crypto import LicenceCipher
from services.customer_fields import NOTE_MAX_CHARS
from services.customers import load_customer
from services.errors import Conflict, InvalidInput
from services.events import record_event

EXPORT_FORMAT = "fleetdesk.customer-export/1"
ERASED_NAME = "Erased"
ERASED_RECIPIENT = "erased"
ERASED_TEXT = "[erased]"
# the fields of a customer that identify them; their values are blanked in audit entries on erasure
PERSONAL_FIELDS = frozenset({"email", "first_name", "last_name", "date_of_birth", "phone", "address",
                             "licence_country", "licence_expiry", "blocked_reason", "preferred_language",
                             "_note"})


@dataclass(frozen=True)
class Erasure:
    customer_id: int
    bookings_kept: int
    payments_kept: int
    audit_entries_redacted: int
    notifications_redacted: int = 0


def export_customer(session: Session, actor: Actor, customer_id: int) -> dict[str, Any]:
    """Everything held about the customer, as JSON-ready data (their own licence number included, decrypted)."""
    require_role(actor, UserRole.ADMIN, doing="export a customer's personal data")
    user = load_customer(session, customer_id)
    bookings = _bookings(session, user.id)
    payments = _payments(session, user.id)
    export = {
        "format": EXPORT_FORMAT,
        "exported_at": audit.plain(datetime.now(UTC)),
        "exported_by": actor.label,
        "customer": _profile(session, user),
        "bookings": bookings,
        "payments": payments,
        "refunds": _refunds(session, user.id),
        "api_tokens": _tokens(session, user.id),
        "notifications": _notifications(session, user.id),
        "audit_entries": _audit_entries(session, user.id, bookings, payments),
    }
    audit.record(session, actor, "customer.exported", "customer", user.id, note="personal data exported as JSON")
    return export


def erase_customer(session: Session, actor: Actor, customer_id: int, reason: str) -> Erasure:
    """Anonymise the customer's personal fields for good, keeping their bookings and payments for the accounts."""
    require_role(actor, UserRole.ADMIN, doing="erase customers")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Give the reason for the erasure (e.g. 'customer's request of 3 May by email'); "
                           "it is kept in the audit log.")
    if len(reason) > NOTE_MAX_CHARS:
        raise InvalidInput(f"The reason is {len(reason)} characters long; keep it under {NOTE_MAX_CHARS}.")
    user = load_customer(session, customer_id, for_update=True)
    if user.status == "erased":
        when = f" on {user.erased_at:%d %b %Y}" if user.erased_at else ""
        raise Conflict(f"Customer {user.id} was already erased{when}; there is nothing left to erase.")
    active = session.scalars(select(Booking.reference).where(
        Booking.user_id == user.id, Booking.status.in_(ACTIVE_BOOKING_STATUSES)).order_by(Booking.pickup_at)).all()
    if active:
        raise Conflict(f"Customer {user.id} has active booking{'s' if len(active) > 1 else ''} "
                       f"{', '.join(active)}; complete or cancel {'them' if len(active) > 1 else 'it'} before "
                       "erasing the customer.")
    before = {"status": user.status}
    _anonymise(user)
    session.execute(update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                    .values(revoked_at=func.now()))
    redacted = _redact_audit_entries(session, user.id)
    messages = _redact_notifications(session, user.id)
    session.flush()
    audit.record(session, actor, "customer.erased", "customer", user.id, before, {"status": "erased"},
                 note=f"reason: {reason}")
    record_event(session, "customer", user.id, "customer.erased", {"customer_id": user.id})
    return Erasure(
        customer_id=user.id,
        bookings_kept=session.scalar(select(func.count()).where(Booking.user_id == user.id)) or 0,
        payments_kept=session.scalar(select(func.count(Payment.id)).join(Booking, Booking.id == Payment.booking_id)
                                     .where(Booking.user_id == user.id)) or 0,
        audit_entries_redacted=redacted,
        notifications_redacted=messages,
    )


def _anonymise(user: User) -> None:
    user.email = f"erased-{user.id}@invalid"
    user.first_name = user.last_name = ERASED_NAME
    user.date_of_birth = user.address = user.phone = None
    user.licence_number_encrypted = user.licence_number_hash = None
    user.licence_country = user.licence_expiry = None
    user.password_hash = user.blocked_reason = None
    user.identity_status, user.identity_checked_by, user.identity_checked_at = "unverified", None, None
    user.marketing_opt_in, user.preferred_language = False, None
    user.failed_logins, user.locked_until = 0, None
    user.status = "erased"
    user.erased_at = datetime.now(UTC)
    user.updated_at = func.now()


def _redact_notifications(session: Session, user_id: int) -> int:
    """Blank the address and text of every message to the customer (sent ones are kept as a record that something was
    sent, and when); messages still waiting are not sent any more."""
    mine = select(Notification.id).where(Notification.customer_id == user_id).scalar_subquery()
    session.execute(update(DevMailboxMessage).where(DevMailboxMessage.notification_id.in_(mine))
                    .values(recipient=ERASED_RECIPIENT, subject=None, body=ERASED_TEXT))
    session.execute(update(Notification).where(Notification.customer_id == user_id,
                                               Notification.status.in_(("queued", "failed")))
                    .values(status="failed", last_error="not sent: the customer's personal data was erased"))
    done = session.execute(update(Notification).where(Notification.customer_id == user_id)
                           .values(recipient=ERASED_RECIPIENT, subject=None, body=ERASED_TEXT, updated_at=func.now()))
    return done.rowcount or 0


def _redact_audit_entries(session: Session, user_id: int) -> int:
    """Blank the personal values copied into audit entries about the customer, and their own sign-in label."""
    entries = session.scalars(select(AuditEntry).where(
        AuditEntry.entity_type.in_(("customer", "user")), AuditEntry.entity_id == str(user_id))).all()
    redacted = 0
    for entry in entries:
        personal = PERSONAL_FIELDS & set(entry.changes)
        if personal:
            entry.changes = {field: {"redacted": True} if field in personal else change
                             for field, change in entry.changes.items()}
            redacted += 1
    session.execute(update(AuditEntry).where(AuditEntry.actor_id == user_id)
                    .values(actor_label=f"erased-{user_id}@invalid"))
    return redacted


def _profile(session: Session, user: User) -> dict[str, Any]:
    licence = None
    if user.licence_number_encrypted:
        number = LicenceCipher.from_environment().decrypt(user.licence_number_encrypted,
                                                          what=f"the licence number of customer {user.id}")
        licence = {"number": number, "country": user.licence_country, "expiry": audit.plain(user.licence_expiry)}
    return audit.plain({
        "id": user.id, "role": user.role, "email": user.email, "first_name": user.first_name,
        "last_name": user.last_name, "date_of_birth": user.date_of_birth, "phone": user.phone,
        "address": user.address, "status": user.status, "blocked_reason": user.blocked_reason, "licence": licence,
        "identity": {"status": user.identity_status, "checked_at": user.identity_checked_at,
                     "checked_by_staff_id": user.identity_checked_by},
        "marketing_opt_in": user.marketing_opt_in, "preferred_language": user.preferred_language,
        "last_login_at": user.last_login_at,
        "erased_at": user.erased_at, "created_at": user.created_at, "updated_at": user.updated_at,
    })


def _bookings(session: Session, user_id: int) -> list[dict[str, Any]]:
    pickup, dropoff = aliased(Location), aliased(Location)
    rows = session.execute(
        select(Booking.id, Booking.reference, Booking.status, Booking.channel, VehicleType.code.label("vehicle_type"),
               Vehicle.license_plate, Vehicle.make, Vehicle.model, pickup.code.label("pickup_branch"),
               dropoff.code.label("dropoff_branch"), Booking.pickup_at, Booking.dropoff_at, Booking.actual_return_at,
               Booking.total_price, Booking.currency, Booking.price_breakdown, Booking.payment_status,
               Booking.odometer_out_km, Booking.odometer_in_km, Booking.fuel_out, Booking.fuel_in,
               Booking.cancel_reason, Booking.cancelled_at, Booking.created_at, Booking.updated_at)
        .join(Vehicle, Vehicle.id == Booking.vehicle_id).join(VehicleType, VehicleType.id == Booking.vehicle_type_id)
        .join(pickup, pickup.id == Booking.pickup_location_id).join(dropoff, dropoff.id == Booking.dropoff_location_id)
        .where(Booking.user_id == user_id).order_by(Booking.pickup_at, Booking.id)
    ).mappings()
    return [audit.plain(dict(row)) for row in rows]


def _payments(session: Session, user_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Payment.id, Booking.reference.label("booking_reference"), Payment.kind, Payment.method,
               Payment.amount, Payment.amount_captured, Payment.amount_refunded, Payment.currency, Payment.status,
               Payment.provider, Payment.provider_payment_id, Payment.provider_customer_id, Payment.failure_reason,
               Payment.created_at, Payment.updated_at)
        .join(Booking, Booking.id == Payment.booking_id).where(Booking.user_id == user_id)
        .order_by(Payment.created_at, Payment.id)
    ).mappings()
    return [audit.plain(dict(row)) for row in rows]


def _refunds(session: Session, user_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Refund.id, Refund.payment_id, Refund.amount, Refund.currency, Refund.reason, Refund.status,
               Refund.provider_refund_id, Refund.created_at)
        .join(Payment, Payment.id == Refund.payment_id).join(Booking, Booking.id == Payment.booking_id)
        .where(Booking.user_id == user_id).order_by(Refund.created_at, Refund.id)
    ).mappings()
    return [audit.plain(dict(row)) for row in rows]


def _tokens(session: Session, user_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(ApiToken.prefix, ApiToken.created_at, ApiToken.expires_at, ApiToken.revoked_at, ApiToken.last_used_at)
        .where(ApiToken.user_id == user_id).order_by(ApiToken.created_at)
    ).mappings()
    return [audit.plain(dict(row)) for row in rows]


def _notifications(session: Session, user_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Notification.id, Booking.reference.label("booking_reference"), Notification.kind,
               Notification.category, Notification.channel, Notification.language, Notification.recipient,
               Notification.subject, Notification.body, Notification.status, Notification.created_at,
               Notification.sent_at)
        .outerjoin(Booking, Booking.id == Notification.booking_id).where(Notification.customer_id == user_id)
        .order_by(Notification.created_at, Notification.id)
    ).mappings()
    return [audit.plain(dict(row)) for row in rows]


def _audit_entries(session: Session, user_id: int, bookings: list[dict[str, Any]],
                   payments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries about the customer, their bookings or payments, or made by them."""
    booking_keys = [str(b["id"]) for b in bookings] + [b["reference"] for b in bookings]
    payment_keys = [str(p["id"]) for p in payments]
    rows = session.execute(
        select(AuditEntry.at, AuditEntry.actor_label.label("actor"), AuditEntry.action, AuditEntry.entity_type,
               AuditEntry.entity_id, AuditEntry.changes)
        .where(or_(
            (AuditEntry.entity_type.in_(("customer", "user"))) & (AuditEntry.entity_id == cast(user_id, String)),
            (AuditEntry.entity_type == "booking") & AuditEntry.entity_id.in_(booking_keys or [""]),
            (AuditEntry.entity_type == "payment") & AuditEntry.entity_id.in_(payment_keys or [""]),
            AuditEntry.actor_id == user_id,
        ))
        .order_by(AuditEntry.at, AuditEntry.id)
    ).mappings()
    return [audit.plain(dict(row)) for row in rows]

