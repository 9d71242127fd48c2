"""Starting a card payment for a pending booking, as a client (a website, a partner) asks for it.

`payments.charge_booking` already returns the open PaymentIntent when the booking has one; this adds what a
client needs to know on top: whether the call opened a new payment or returned the one already open, and that
only a pending booking can be paid this way.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import BookingStatus, Payment, PaymentStatus, UserRole
from services.actors import Actor, require_role
from services.bookings import STATE_LABELS, InvalidTransition, get_booking
from services.gateway import PaymentGateway
from services.payments import CHARGE, ChargeResult, charge_booking


@dataclass(frozen=True)
class Initiated:
    charge: ChargeResult
    created: bool  # False when the booking's open payment was returned


def initiate_payment(session: Session, actor: Actor, booking_id: int, *,
                     gateway: PaymentGateway | None = None) -> Initiated:
    """A PaymentIntent for a pending booking, for the client to confirm; the same one while it stays open."""
    require_role(actor, UserRole.DESK_AGENT, doing="take payments")
    booking = get_booking(session, booking_id, lock=True)
    if booking.status != BookingStatus.PENDING:
        raise InvalidTransition(f"Booking {booking.reference} is {STATE_LABELS[booking.status.value]}; only a "
                                "pending booking can be paid through the API.")
    open_before = set(session.scalars(select(Payment.id).where(
        Payment.booking_id == booking.id, Payment.kind == CHARGE, Payment.status == PaymentStatus.PENDING,
        Payment.provider_payment_id.is_not(None))))
    result = charge_booking(session, actor, booking.id, gateway=gateway)
    return Initiated(result, created=result.payment.id not in open_before)
