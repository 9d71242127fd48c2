"""From a domain event to the messages a customer gets: which kinds, which channels, which language, what text.

Runs inside the worker's transaction for the event, so the messages are queued exactly when the event is marked
handled; the idempotency key (event, kind, medium) makes a second handling of the same event queue nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import DomainEvent, Notification, PickupReminder
from services.events import record_event
from services.notifications.channels import Channels
from services.notifications.rendering import render

log = logging.getLogger(__name__)

TRANSACTIONAL, MARKETING = "transactional", "marketing"


@dataclass(frozen=True)
class Kind:
    category: str
    media: tuple[str, ...]


KINDS: dict[str, Kind] = {
    "booking_confirmed": Kind(TRANSACTIONAL, ("email", "sms")),
    "pickup_reminder": Kind(TRANSACTIONAL, ("email", "sms")),
    "booking_changed": Kind(TRANSACTIONAL, ("email", "sms")),
    "booking_cancelled": Kind(TRANSACTIONAL, ("email", "sms")),
    "receipt": Kind(TRANSACTIONAL, ("email", "sms")),
    "payment_failed": Kind(TRANSACTIONAL, ("email", "sms")),
    "rental_offer": Kind(MARKETING, ("email",)),
}
EVENT_KINDS: dict[str, tuple[str, ...]] = {
    "booking.confirmed": ("booking_confirmed",),
    "booking.pickup_reminder_due": ("pickup_reminder",),
    "booking.changed": ("booking_changed",),
    "booking.cancelled": ("booking_cancelled",),
    "booking.completed": ("receipt", "rental_offer"),
    "payment.failed": ("payment_failed",),
}
REMINDER_EVENT = "booking.pickup_reminder_due"

_DATE_FORMATS = {"en": "%a %-d %b %Y, %H:%M", "de": "%d.%m.%Y, %H:%M Uhr"}

_FACTS = text("""
    SELECT b.id AS booking_id, b.reference, b.status::text AS status, b.pickup_at, b.dropoff_at, b.total_price,
           b.currency, u.id AS customer_id, u.first_name, u.last_name, u.email, u.phone, u.marketing_opt_in,
           u.preferred_language, u.erased_at, v.make, v.model, v.license_plate,
           pl.name AS pickup_branch, pl.address AS pickup_address, pl.timezone AS pickup_tz,
           pl.contact_phone AS branch_phone, pl.languages, dl.name AS dropoff_branch, dl.timezone AS dropoff_tz
    FROM bookings b
    JOIN users u ON u.id = b.user_id
    JOIN vehicles v ON v.id = b.vehicle_id
    JOIN locations pl ON pl.id = b.pickup_location_id
    JOIN locations dl ON dl.id = b.dropoff_location_id
    WHERE b.id = :booking_id
""")


def money(amount: Any, currency: str, language: str) -> str | None:
    """An amount as the customer reads it; None for nothing (so templates can leave the line out)."""
    try:
        value = Decimal(str(amount)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None
    if value == 0:
        return None
    shown = f"{value:,.2f}"
    if language == "de":
        shown = shown.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return f"{shown} {currency}"


def language_for(preferred: str | None, branch_languages: list[str] | None) -> str:
    """The customer's language when the branch writes in it, else the branch's first language."""
    languages = list(branch_languages or ["en"])
    return preferred if preferred in languages else languages[0]


def _context(facts: Any, payload: dict[str, Any], language: str) -> dict[str, Any]:
    fmt = _DATE_FORMATS.get(language, "%Y-%m-%d %H:%M")
    currency = payload.get("currency") or facts.currency
    extra = payload.get("extra_charges")
    grand_total = facts.total_price + (Decimal(str(extra)) if extra else Decimal("0"))
    return {
        "customer_name": f"{facts.first_name} {facts.last_name}".strip(),
        "reference": facts.reference,
        "car": f"{facts.make} {facts.model}",
        "plate": facts.license_plate,
        "pickup_local": facts.pickup_at.astimezone(ZoneInfo(facts.pickup_tz)).strftime(fmt),
        "dropoff_local": facts.dropoff_at.astimezone(ZoneInfo(facts.dropoff_tz)).strftime(fmt),
        "pickup_branch": facts.pickup_branch,
        "pickup_address": facts.pickup_address,
        "dropoff_branch": facts.dropoff_branch,
        "branch_phone": facts.branch_phone,
        "total": money(facts.total_price, facts.currency, language),
        "grand_total": money(grand_total, facts.currency, language),
        "extra_charges": money(extra or 0, facts.currency, language),
        "refund": money(payload.get("refund_due") or 0, facts.currency, language),
        "cancellation_fee": money(payload.get("cancellation_fee") or 0, facts.currency, language),
        "amount": money(payload.get("amount") or 0, currency, language),
        "reason": payload.get("reason") or "",
    }


def _skip_reason(kind: str, facts: Any, now: datetime) -> str | None:
    if facts.erased_at is not None:
        return "the customer was erased"
    if KINDS[kind].category == MARKETING and not facts.marketing_opt_in:
        return "the customer has not opted in to marketing"
    if kind == "pickup_reminder" and (facts.status != "confirmed" or facts.pickup_at <= now):
        return "the booking is no longer waiting for its pick-up"
    return None


def queue_for_event(session: Session, event: DomainEvent, channels: Channels, *,
                    now: datetime | None = None) -> int:
    """Render and queue this event's messages; returns how many were newly queued."""
    kinds = EVENT_KINDS.get(event.event_type, ())
    booking_id = (event.payload or {}).get("booking_id")
    if not kinds or booking_id is None:
        return 0
    facts = session.execute(_FACTS, {"booking_id": int(booking_id)}).one_or_none()
    if facts is None:
        return 0
    now = now or datetime.now(UTC)
    language = language_for(facts.preferred_language, facts.languages)
    context = _context(facts, event.payload, language)
    queued = 0
    for kind in kinds:
        if reason := _skip_reason(kind, facts, now):
            log.info("no %s for booking %s: %s", kind, facts.reference, reason)
            continue
        for medium in KINDS[kind].media:
            channel = channels.for_medium(medium)
            recipient = facts.email if medium == "email" else facts.phone
            if channel is None or not recipient:
                continue
            rendered = render(medium, language, kind, context)
            queued += _queue(session, key=f"event:{event.id}:{kind}:{medium}", event_id=event.id,
                             booking_id=facts.booking_id, customer_id=facts.customer_id, kind=kind,
                             category=KINDS[kind].category, channel=channel.name, language=language,
                             recipient=recipient, subject=rendered.subject, body=rendered.body)
    return queued


def _queue(session: Session, *, key: str, **values: Any) -> int:
    statement = (insert(Notification).values(idempotency_key=key, **values)
                 .on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(Notification.id))
    return 1 if session.execute(statement).scalar() is not None else 0


def queue_pickup_reminders(session: Session, *, lead: timedelta, now: datetime | None = None) -> int:
    """Record a reminder-due event for every confirmed booking picked up within `lead`; once per pick-up time."""
    now = now or datetime.now(UTC)
    due = session.execute(text("""
        SELECT b.id, b.reference, b.pickup_at FROM bookings b
        WHERE b.status = 'confirmed' AND b.pickup_at > :now AND b.pickup_at <= :until
          AND NOT EXISTS (SELECT 1 FROM pickup_reminders r WHERE r.booking_id = b.id AND r.pickup_at = b.pickup_at)
        ORDER BY b.pickup_at
        FOR UPDATE OF b SKIP LOCKED
    """), {"now": now, "until": now + lead}).all()
    queued = 0
    for booking_id, reference, pickup_at in due:
        try:
            with session.begin_nested():
                event = record_event(session, "booking", booking_id, REMINDER_EVENT,
                                     {"booking_id": booking_id, "reference": reference,
                                      "pickup_at": pickup_at.isoformat()})
                session.add(PickupReminder(booking_id=booking_id, pickup_at=pickup_at, event_id=event.id))
                session.flush()
        except IntegrityError:
            continue  # another worker queued it a moment ago
        queued += 1
    return queued


def forget_customer(session: Session, event: DomainEvent) -> None:
    """After an erasure, the messages kept for the customer lose their personal data too."""
    customer_id = (event.payload or {}).get("customer_id")
    if customer_id is None:
        return
    session.execute(text("""
        UPDATE dev_mailbox m SET recipient = 'erased', subject = NULL, body = '(erased)'
        FROM notifications n WHERE n.id = m.notification_id AND n.customer_id = :id
    """), {"id": int(customer_id)})
    session.execute(text("""
        UPDATE notifications SET recipient = 'erased', subject = NULL, body = '(erased)', updated_at = now(),
               status = CASE WHEN status = 'queued' THEN 'failed' ELSE status END,
               last_error = CASE WHEN status = 'queued' THEN 'the customer was erased before it was sent'
                                 ELSE last_error END
        WHERE customer_id = :id
    """), {"id": int(customer_id)})
