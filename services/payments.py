"""Payments: charging a booking, deposits, refunds, the gateway's events, and reconciliation with the gateway.

The gateway is reached only through `services.gateway.PaymentGateway`. Every request that moves money carries an
idempotency key derived from what it is for (`booking-{id}-charge-{attempt}`, …), so a retry after a lost answer
never charges twice. A failed attempt is recorded and the next one gets a new number. Like every service here,
nothing commits: a decline is recorded in the session and then raised — catch `PaymentDeclined` inside the unit
of work so the record of the attempt is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import (
    Booking,
    BookingStatus,
    Payment,
    PaymentEvent,
    PaymentStatus,
    Refund,
    UserRole,
    VehicleType,
)
from db.queries import result_frame
from services import audit
from services.actors import Actor, require_role
from services.bookings import InvalidTransition, confirm_booking, get_booking
from services.errors import Conflict, InvalidInput, NotFound
from services.events import record_event
from services.gateway import (
    GatewayUnavailable,
    IdempotencyKeyReused,
    IntentRequest,
    IntentResult,
    PaymentDeclined,
    PaymentGateway,
    default_gateway,
    from_minor,
)

__all__ = ["GatewayUnavailable", "PaymentDeclined"]

log = logging.getLogger(__name__)

CHARGE, DEPOSIT = "charge", "deposit"
GATEWAY_ACTOR = Actor(None, "stripe:webhook", UserRole.ADMIN, "payment gateway")
CENT = Decimal("0.01")
DONE = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)
OPEN = (PaymentStatus.PENDING, PaymentStatus.REQUIRES_CAPTURE)
MAX_ATTEMPTS = 20
# The booking's payment_status may be raised to 'paid' only from these; a refund or a dispute is never undone.
UNPAID_STATES = ("unpaid", "due", "pending", "failed")


def _gw(gateway: PaymentGateway | None) -> PaymentGateway:
    return gateway or default_gateway()


def _now() -> datetime:
    return datetime.now(UTC)


def _money(value: Decimal | str | int) -> Decimal:
    try:
        amount = Decimal(str(value)).quantize(CENT)
    except ArithmeticError:
        raise InvalidInput(f"{value!r} is not an amount of money.") from None
    return amount


def _snapshot(payment: Payment) -> dict[str, Any]:
    fields = ("kind", "method", "amount", "amount_captured", "amount_refunded", "currency", "status",
              "provider_payment_id", "failure_reason", "dispute_id", "dispute_status")
    return {name: getattr(payment, name) for name in fields}


def _event(session: Session, payment: Payment, event_type: str, **extra: Any) -> None:
    record_event(session, "payment", payment.id, event_type,
                 {"payment_id": payment.id, "booking_id": payment.booking_id, "kind": payment.kind,
                  "status": payment.status.value, "amount": str(payment.amount), "currency": payment.currency,
                  **{k: str(v) if isinstance(v, Decimal) else v for k, v in extra.items()}})


def status_of_intent(result: IntentResult) -> PaymentStatus:
    """Stripe's PaymentIntent status in our terms (refunds are ours to add on top)."""
    if result.status == "succeeded":
        return PaymentStatus.SUCCEEDED
    if result.status == "requires_capture":
        return PaymentStatus.REQUIRES_CAPTURE
    if result.status == "canceled":
        return PaymentStatus.CANCELLED
    if result.status == "requires_payment_method" and result.failure_reason:
        return PaymentStatus.FAILED
    return PaymentStatus.PENDING


def _refund_status(payment: Payment) -> PaymentStatus:
    if payment.amount_refunded <= 0:
        return PaymentStatus.SUCCEEDED
    if payment.amount_refunded >= payment.amount_captured:
        return PaymentStatus.REFUNDED
    return PaymentStatus.PARTIALLY_REFUNDED


def _booking_status_for(payment: Payment) -> str:
    return {PaymentStatus.REFUNDED: "refunded", PaymentStatus.PARTIALLY_REFUNDED: "partially_refunded"}.get(
        payment.status, "paid")


def get_payment(session: Session, payment_id: int, *, lock: bool = False) -> Payment:
    payment = session.get(Payment, payment_id, with_for_update=lock)
    if payment is None:
        raise NotFound(f"There is no payment {payment_id}; check the number on the Payments page.")
    return payment


def _payments(session: Session, booking_id: int, kind: str) -> list[Payment]:
    return list(session.scalars(select(Payment).where(Payment.booking_id == booking_id, Payment.kind == kind)
                                .order_by(Payment.attempt, Payment.id)))


def _next_attempt(payments: list[Payment]) -> int:
    return max((p.attempt for p in payments), default=0) + 1


# --- charging ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChargeResult:
    payment: Payment
    client_secret: str | None  # what a client needs to confirm the payment with Stripe.js
    succeeded: bool


def charge_booking(session: Session, actor: Actor, booking_id: int, *, payment_method_id: str | None = None,
                   confirm: bool = False, gateway: PaymentGateway | None = None) -> ChargeResult:
    """A PaymentIntent for the booking's frozen price, recorded as pending (or succeeded, when confirmed here).

    Without a payment method the intent waits for the client to confirm it with the returned client secret; the
    webhook then confirms the booking. A booking that is already paid is never charged again.
    """
    require_role(actor, UserRole.DESK_AGENT, doing="take payments")
    gw = _gw(gateway)
    booking = get_booking(session, booking_id, lock=True)
    if booking.status not in (BookingStatus.PENDING, BookingStatus.CONFIRMED):
        raise InvalidTransition(f"Booking {booking.reference} is {booking.status.value.replace('_', ' ')}; only a "
                                "pending or confirmed booking can be paid.")
    charges = _payments(session, booking.id, CHARGE)
    paid = next((p for p in charges if p.status in DONE), None)
    if paid is not None:
        return ChargeResult(paid, None, True)
    waiting = next((p for p in charges if p.status == PaymentStatus.PENDING and p.provider_payment_id), None)
    if waiting is not None:
        result = gw.retrieve_intent(waiting.provider_payment_id)
        _apply_intent(session, actor, waiting, result)
        if waiting.status in DONE:
            return ChargeResult(waiting, None, True)
        if waiting.status == PaymentStatus.PENDING and not payment_method_id:
            return ChargeResult(waiting, result.client_secret, False)
        if waiting.status == PaymentStatus.PENDING:  # the desk brings a card instead: drop the waiting intent
            gw.cancel_intent(waiting.provider_payment_id, idempotency_key=f"{waiting.idempotency_key}-cancel")
            waiting.status, waiting.updated_at = PaymentStatus.CANCELLED, _now()
    return _new_intent(session, actor, booking, CHARGE, booking.total_price, booking.currency, charges, gw,
                       payment_method_id=payment_method_id, confirm=confirm, capture_manually=False)


def _new_intent(session: Session, actor: Actor, booking: Booking, kind: str, amount: Decimal, currency: str,
                earlier: list[Payment], gw: PaymentGateway, *, payment_method_id: str | None, confirm: bool,
                capture_manually: bool) -> ChargeResult:
    attempt = _next_attempt(earlier)
    for _ in range(MAX_ATTEMPTS):
        key = f"booking-{booking.id}-{kind}-{attempt}"
        request = IntentRequest(amount=amount, currency=currency, idempotency_key=key,
                                metadata={"fleetdesk_booking_id": str(booking.id),
                                          "fleetdesk_booking": booking.reference, "fleetdesk_kind": kind,
                                          "fleetdesk_attempt": str(attempt)},
                                payment_method_id=payment_method_id, confirm=confirm,
                                capture_manually=capture_manually)
        try:
            result = gw.create_intent(request)
        except IdempotencyKeyReused:
            attempt += 1  # an attempt we lost the record of (rolled back) used this key: take the next
            continue
        except PaymentDeclined as declined:
            _record_decline(session, actor, booking, kind, amount, currency, key, attempt, declined)
            raise
        if result.reused and status_of_intent(result) in (PaymentStatus.FAILED, PaymentStatus.CANCELLED):
            attempt += 1
            continue
        payment = Payment(booking_id=booking.id, kind=kind, method="card", amount=amount, currency=currency,
                          status=PaymentStatus.PENDING, idempotency_key=key, provider="stripe",
                          provider_payment_id=result.intent_id, attempt=attempt, created_by=actor.user_id)
        session.add(payment)
        session.flush()
        audit.record(session, actor, f"payment.{kind}_created", "payment", payment.id, None, _snapshot(payment))
        if kind == CHARGE and booking.payment_status in UNPAID_STATES:
            booking.payment_status = "pending"
        _apply_intent(session, actor, payment, result)
        if payment.status == PaymentStatus.FAILED:
            raise PaymentDeclined(f"{payment.failure_reason} Ask for another card, or take the payment in cash.")
        return ChargeResult(payment, result.client_secret, payment.status in DONE)
    raise Conflict(f"Booking {booking.reference} has had {MAX_ATTEMPTS} payment attempts; look at its payments "
                   "on the Payments page before trying again.")


def _record_decline(session: Session, actor: Actor, booking: Booking, kind: str, amount: Decimal, currency: str,
                    key: str, attempt: int, declined: PaymentDeclined) -> None:
    payment = Payment(booking_id=booking.id, kind=kind, method="card", amount=amount, currency=currency,
                      status=PaymentStatus.FAILED, idempotency_key=key, provider="stripe",
                      provider_payment_id=declined.intent_id, attempt=attempt, failure_reason=str(declined),
                      created_by=actor.user_id)
    session.add(payment)
    if kind == CHARGE and booking.status == BookingStatus.PENDING:
        booking.payment_status = "failed"
    session.flush()
    audit.record(session, actor, f"payment.{kind}_declined", "payment", payment.id, None, _snapshot(payment))
    _event(session, payment, "payment.failed", reason=str(declined))


def _apply_intent(session: Session, actor: Actor, payment: Payment, result: IntentResult) -> None:
    """Bring our payment up to what the gateway says of its intent; never backwards."""
    status = status_of_intent(result)
    payment.provider_charge_id = result.charge_id or payment.provider_charge_id
    if status == PaymentStatus.SUCCEEDED and payment.status not in DONE:
        captured = min(result.amount_captured or payment.amount, payment.amount)
        _succeed(session, actor, payment, captured)
    elif status == PaymentStatus.REQUIRES_CAPTURE and payment.status == PaymentStatus.PENDING:
        payment.status, payment.updated_at = status, _now()
    elif status == PaymentStatus.FAILED and payment.status in (PaymentStatus.PENDING, PaymentStatus.FAILED):
        payment.status, payment.failure_reason, payment.updated_at = status, result.failure_reason, _now()
    elif status == PaymentStatus.CANCELLED and payment.status in OPEN:
        payment.status, payment.updated_at = status, _now()
    session.flush()


def _succeed(session: Session, actor: Actor, payment: Payment, captured: Decimal) -> None:
    before = _snapshot(payment)
    payment.status, payment.amount_captured, payment.failure_reason = PaymentStatus.SUCCEEDED, captured, None
    payment.updated_at = _now()
    session.flush()
    audit.record(session, actor, "payment.succeeded", "payment", payment.id, before, _snapshot(payment))
    _event(session, payment, "payment.succeeded", amount_captured=captured)
    if payment.kind == CHARGE:
        _confirm_paid(session, payment)


def _confirm_paid(session: Session, payment: Payment) -> None:
    """The booking is confirmed only now that its payment has succeeded."""
    booking = get_booking(session, payment.booking_id, lock=True)
    if booking.status == BookingStatus.PENDING:
        try:
            confirm_booking(session, GATEWAY_ACTOR, booking.id, payment="paid")
            return
        except InvalidTransition as exc:  # e.g. the hold ran out while the customer paid
            log.warning("payment %s succeeded but booking %s could not be confirmed: %s", payment.id,
                        booking.reference, exc)
    if booking.payment_status in UNPAID_STATES:
        booking.payment_status = "paid"
        booking.updated_at = _now()
        session.flush()


def pay_at_desk(session: Session, actor: Actor, booking_id: int, *, method: str,
                payment_method_id: str | None = None, gateway: PaymentGateway | None = None) -> Payment:
    """Take the payment at the counter: cash confirms at once; a card confirms when its charge has succeeded.

    Raises PaymentDeclined with the reason (after recording the failed attempt: catch it inside the unit of work),
    GatewayUnavailable when the gateway did not answer (nothing recorded; retrying charges once).
    """
    require_role(actor, UserRole.DESK_AGENT, doing="take payments")
    if method == "cash":
        return _take_cash(session, actor, booking_id)
    if method != "card":
        raise InvalidInput("Payment at the desk is by 'card' or 'cash'.")
    if not payment_method_id:
        raise InvalidInput("Present the card on the terminal first (no payment method was given).")
    return charge_booking(session, actor, booking_id, payment_method_id=payment_method_id, confirm=True,
                          gateway=gateway).payment


def _take_cash(session: Session, actor: Actor, booking_id: int) -> Payment:
    booking = get_booking(session, booking_id, lock=True)
    charges = _payments(session, booking.id, CHARGE)
    paid = next((p for p in charges if p.status in DONE), None)
    if paid is not None:
        return paid
    if booking.status not in (BookingStatus.PENDING, BookingStatus.CONFIRMED):
        raise InvalidTransition(f"Booking {booking.reference} is {booking.status.value.replace('_', ' ')}; only a "
                                "pending or confirmed booking can be paid.")
    attempt = _next_attempt(charges)
    payment = Payment(booking_id=booking.id, kind=CHARGE, method="cash", amount=booking.total_price,
                      currency=booking.currency, status=PaymentStatus.PENDING,
                      idempotency_key=f"booking-{booking.id}-cash-{attempt}", provider="desk", attempt=attempt,
                      created_by=actor.user_id)
    session.add(payment)
    session.flush()
    audit.record(session, actor, "payment.cash_taken", "payment", payment.id, None, _snapshot(payment))
    if booking.status == BookingStatus.PENDING:
        confirm_booking(session, actor, booking.id, payment="paid")
    _succeed(session, actor, payment, payment.amount)
    return payment


# --- deposits ---------------------------------------------------------------------------------------------------

def deposit_amount(session: Session, booking: Booking) -> tuple[Decimal, str]:
    vehicle_type = session.get(VehicleType, booking.vehicle_type_id)
    return vehicle_type.deposit_amount, vehicle_type.currency


def hold_deposit(session: Session, actor: Actor, booking_id: int, *, payment_method_id: str,
                 gateway: PaymentGateway | None = None) -> Payment:
    """At pick-up: hold the vehicle type's deposit on the card (authorised, not taken)."""
    require_role(actor, UserRole.DESK_AGENT, doing="take deposits")
    booking = get_booking(session, booking_id, lock=True)
    if booking.status not in (BookingStatus.CONFIRMED, BookingStatus.PICKED_UP):
        raise InvalidTransition(f"Booking {booking.reference} is {booking.status.value.replace('_', ' ')}; the "
                                "deposit is held at pick-up of a confirmed booking.")
    deposits = _payments(session, booking.id, DEPOSIT)
    held = next((p for p in deposits if p.status in (PaymentStatus.REQUIRES_CAPTURE, *DONE)), None)
    if held is not None:
        return held
    amount, currency = deposit_amount(session, booking)
    result = _new_intent(session, actor, booking, DEPOSIT, amount, currency, deposits, _gw(gateway),
                         payment_method_id=payment_method_id, confirm=True, capture_manually=True)
    if result.payment.status != PaymentStatus.REQUIRES_CAPTURE:
        raise Conflict(f"The deposit hold is {result.payment.status.value}, not held; try the card again.")
    return result.payment


@dataclass(frozen=True)
class DepositSettlement:
    payment: Payment | None
    captured: Decimal
    released: Decimal
    still_due: Decimal  # extra charges beyond the deposit, to be paid separately


def settle_deposit(session: Session, actor: Actor, booking_id: int, *, charges: Decimal,
                   gateway: PaymentGateway | None = None) -> DepositSettlement:
    """At return: capture the extra charges (late, fuel, damage) from the hold and release the rest."""
    require_role(actor, UserRole.DESK_AGENT, doing="settle deposits")
    gw = _gw(gateway)
    charges = _money(charges)
    if charges < 0:
        raise InvalidInput("Extra charges cannot be negative.")
    booking = get_booking(session, booking_id, lock=True)
    deposits = _payments(session, booking.id, DEPOSIT)
    settled = next((p for p in deposits if p.status in DONE or (p.status == PaymentStatus.CANCELLED
                                                                and p.provider_payment_id)), None)
    held = next((p for p in deposits if p.status == PaymentStatus.REQUIRES_CAPTURE), None)
    if held is None:
        if settled is not None:  # settled already (a retry)
            return DepositSettlement(settled, settled.amount_captured, settled.amount - settled.amount_captured,
                                     max(Decimal("0.00"), charges - settled.amount_captured))
        return DepositSettlement(None, Decimal("0.00"), Decimal("0.00"), charges)
    held = session.get(Payment, held.id, with_for_update=True)
    before = _snapshot(held)
    if charges == 0:
        gw.cancel_intent(held.provider_payment_id, idempotency_key=f"{held.idempotency_key}-release")
        held.status, held.updated_at = PaymentStatus.CANCELLED, _now()
        session.flush()
        audit.record(session, actor, "payment.deposit_released", "payment", held.id, before, _snapshot(held))
        _event(session, held, "payment.deposit_released")
        return DepositSettlement(held, Decimal("0.00"), held.amount, Decimal("0.00"))
    capture = min(charges, held.amount)
    result = gw.capture_intent(held.provider_payment_id, capture, idempotency_key=f"{held.idempotency_key}-capture")
    held.provider_charge_id = result.charge_id or held.provider_charge_id
    held.status, held.amount_captured, held.updated_at = PaymentStatus.SUCCEEDED, capture, _now()
    session.flush()
    audit.record(session, actor, "payment.deposit_captured", "payment", held.id, before, _snapshot(held))
    _event(session, held, "payment.deposit_captured", captured=capture)
    return DepositSettlement(held, capture, held.amount - capture, charges - capture)


# --- refunds ----------------------------------------------------------------------------------------------------

def refundable(payment: Payment) -> Decimal:
    if payment.status not in DONE:
        return Decimal("0.00")
    return max(Decimal("0.00"), payment.amount_captured - payment.amount_refunded)


def refund_payment(session: Session, actor: Actor, payment_id: int, amount: Decimal | str, *, reason: str,
                   idempotency_key: str | None = None, gateway: PaymentGateway | None = None) -> Refund:
    """Give money back, at most what was captured less what was refunded; recorded with the gateway's id."""
    require_role(actor, UserRole.DESK_AGENT, doing="refund payments")
    amount = _money(amount)
    if amount <= 0:
        raise InvalidInput("A refund must be more than zero.")
    if not reason.strip():
        raise InvalidInput("Give a reason for the refund; it is kept with the payment.")
    payment = get_payment(session, payment_id, lock=True)
    if idempotency_key:
        done = session.scalar(select(Refund).where(Refund.idempotency_key == idempotency_key))
        if done is not None:
            return done
    left = refundable(payment)
    if amount > left:
        raise InvalidInput(f"At most {left} {payment.currency} can be refunded on payment {payment.id} (captured "
                           f"{payment.amount_captured}, refunded {payment.amount_refunded}); enter a smaller "
                           "amount.")
    count = session.scalar(select(func.count()).select_from(Refund).where(Refund.payment_id == payment.id))
    key = idempotency_key or f"payment-{payment.id}-refund-{count + 1}"
    refund = Refund(payment_id=payment.id, amount=amount, currency=payment.currency, reason=reason.strip()[:500],
                    status="succeeded", idempotency_key=key, created_by=actor.user_id)
    if payment.method == "card":
        result = _gw(gateway).refund(payment.provider_payment_id, amount, payment.currency, idempotency_key=key,
                                     metadata={"fleetdesk_payment_id": str(payment.id)})
        refund.provider_refund_id = result.refund_id
        refund.status = result.status if result.status in ("pending", "succeeded", "failed") else "pending"
    session.add(refund)
    before = _snapshot(payment)
    if refund.status != "failed":
        payment.amount_refunded += amount
        payment.status = _refund_status(payment)
        payment.updated_at = _now()
        _mark_booking_refunded(session, payment)
    session.flush()
    audit.record(session, actor, "payment.refunded", "payment", payment.id, before, _snapshot(payment),
                 note=f"refund {refund.id}: {amount} {payment.currency}, {refund.reason}")
    _event(session, payment, "payment.refunded", refund_id=refund.id, refunded=amount,
           provider_refund_id=refund.provider_refund_id)
    return refund


def _mark_booking_refunded(session: Session, payment: Payment) -> None:
    if payment.kind != CHARGE:
        return
    booking = session.get(Booking, payment.booking_id)
    if booking.payment_status != "disputed":
        booking.payment_status = _booking_status_for(payment)
        booking.updated_at = _now()


def refund_for_cancellation(session: Session, actor: Actor, booking_id: int, *,
                            gateway: PaymentGateway | None = None) -> list[Refund]:
    """After `bookings.cancel_booking`: refund the booking's `refund_due` (by the policy); safe to call twice."""
    booking = get_booking(session, booking_id, lock=True)
    if booking.status != BookingStatus.CANCELLED:
        raise InvalidTransition(f"Booking {booking.reference} is not cancelled; cancel it first, then refund.")
    remaining = booking.refund_due or Decimal("0.00")
    refunds: list[Refund] = []
    for payment in _payments(session, booking.id, CHARGE):
        if remaining <= 0:
            break
        key = f"booking-{booking.id}-cancellation-refund-{payment.id}"
        done = session.scalar(select(Refund).where(Refund.idempotency_key == key))
        portion = done.amount if done is not None else min(remaining, refundable(payment))
        if portion <= 0:
            continue
        refunds.append(done or refund_payment(session, actor, payment.id, portion, reason="booking cancelled",
                                              idempotency_key=key, gateway=gateway))
        remaining -= portion
    return refunds


# --- the gateway's events -------------------------------------------------------------------------------------------

_KEEP = ("id", "object", "status", "amount", "amount_received", "amount_capturable", "amount_captured",
         "amount_refunded", "currency", "metadata", "payment_intent", "charge", "reason", "captured", "refunded",
         "created", "capture_method")


def _safe_payload(event: Mapping[str, Any]) -> dict[str, Any]:
    """What we keep of an event: ids, amounts and statuses — never card details or billing data."""
    obj = (event.get("data") or {}).get("object") or {}
    kept: dict[str, Any] = {}
    for key in _KEEP:
        value = obj.get(key)
        if key == "metadata" and isinstance(value, dict):
            kept[key] = {str(k): str(v) for k, v in value.items()}
        elif key in obj and not isinstance(value, dict | list):
            kept[key] = value
    charge = obj.get("latest_charge")
    if charge:
        kept["latest_charge"] = charge.get("id") if isinstance(charge, dict) else charge
    error = obj.get("last_payment_error")
    if isinstance(error, dict):
        kept["last_payment_error"] = {k: error.get(k) for k in ("code", "decline_code", "message") if error.get(k)}
    refunds = obj.get("refunds")
    if isinstance(refunds, dict):
        kept["refunds"] = [{"id": r.get("id"), "amount": r.get("amount"), "status": r.get("status")}
                           for r in refunds.get("data") or []]
    return {"id": event.get("id"), "type": event.get("type"), "created": event.get("created"),
            "livemode": event.get("livemode"), "object": kept}


def _find_payment(session: Session, obj: Mapping[str, Any]) -> Payment | None:
    intent_id = obj.get("id") if obj.get("object") == "payment_intent" else obj.get("payment_intent")
    if intent_id:
        found = session.scalar(select(Payment).where(Payment.provider_payment_id == intent_id).with_for_update())
        if found is not None:
            return found
    charge_id = obj.get("id") if obj.get("object") == "charge" else obj.get("charge")
    if charge_id:
        found = session.scalar(select(Payment).where(Payment.provider_charge_id == charge_id).with_for_update())
        if found is not None:
            return found
    key = (obj.get("metadata") or {}).get("fleetdesk_key")
    if key:
        return session.scalar(select(Payment).where(Payment.idempotency_key == key).with_for_update())
    return None


def handle_gateway_event(session: Session, event: Mapping[str, Any]) -> str:
    """Apply one verified gateway event, once: a redelivered event id changes nothing. Returns what was done."""
    inserted = session.execute(
        insert(PaymentEvent).values(provider="stripe", provider_event_id=str(event["id"])[:128],
                                    type=str(event.get("type"))[:64], payload=_safe_payload(event))
        .on_conflict_do_nothing(index_elements=["provider_event_id"]).returning(PaymentEvent.id)).scalar()
    if inserted is None:
        return "duplicate: already processed"
    stored = session.get(PaymentEvent, inserted)
    obj = (event.get("data") or {}).get("object") or {}
    handler = _HANDLERS.get(str(event.get("type")))
    if handler is None:
        outcome = "ignored: event type not used"
    else:
        payment = _find_payment(session, obj)
        if payment is None:
            log.warning("gateway event %s (%s) is for a payment we do not know (%s); ignored", event["id"],
                        event.get("type"), obj.get("id"))
            outcome = "ignored: unknown payment"
        else:
            stored.payment_id = payment.id
            outcome = handler(session, payment, obj)
    stored.outcome, stored.processed_at = outcome, _now()
    session.flush()
    return outcome


def _on_intent_succeeded(session: Session, payment: Payment, obj: Mapping[str, Any]) -> str:
    if payment.status in DONE:
        return "no change: already succeeded"
    received = obj.get("amount_received")
    captured = from_minor(received, payment.currency) if received is not None else (
        payment.amount if payment.kind == CHARGE else payment.amount_captured)
    _succeed(session, GATEWAY_ACTOR, payment, min(captured, payment.amount))
    return "payment succeeded" + ("; booking confirmed" if payment.kind == CHARGE else "")


def _on_intent_failed(session: Session, payment: Payment, obj: Mapping[str, Any]) -> str:
    if payment.status not in (PaymentStatus.PENDING, PaymentStatus.FAILED):
        return f"no change: payment is {payment.status.value}"
    reason = ((obj.get("last_payment_error") or {}).get("message")) or "The payment failed."
    before = _snapshot(payment)
    payment.status, payment.failure_reason, payment.updated_at = PaymentStatus.FAILED, reason, _now()
    booking = session.get(Booking, payment.booking_id, with_for_update=True)
    if payment.kind == CHARGE and booking.status == BookingStatus.PENDING:
        booking.payment_status = "failed"
    session.flush()
    audit.record(session, GATEWAY_ACTOR, "payment.failed", "payment", payment.id, before, _snapshot(payment))
    _event(session, payment, "payment.failed", reason=reason)
    return f"payment failed: {reason}"


def _on_intent_capturable(session: Session, payment: Payment, obj: Mapping[str, Any]) -> str:
    if payment.status != PaymentStatus.PENDING:
        return f"no change: payment is {payment.status.value}"
    payment.status, payment.updated_at = PaymentStatus.REQUIRES_CAPTURE, _now()
    session.flush()
    return "deposit held"


def _on_intent_canceled(session: Session, payment: Payment, obj: Mapping[str, Any]) -> str:
    if payment.status not in (*OPEN, PaymentStatus.FAILED):
        return f"no change: payment is {payment.status.value}"
    payment.status, payment.updated_at = PaymentStatus.CANCELLED, _now()
    session.flush()
    return "payment cancelled"


def _on_charge_refunded(session: Session, payment: Payment, obj: Mapping[str, Any]) -> str:
    payment.provider_charge_id = payment.provider_charge_id or obj.get("id")
    if payment.status not in DONE and obj.get("captured"):  # the refund overtook the success event
        captured = obj.get("amount_captured", obj.get("amount"))
        _succeed(session, GATEWAY_ACTOR, payment, min(from_minor(captured, payment.currency), payment.amount))
    known = set(session.scalars(select(Refund.provider_refund_id).where(Refund.payment_id == payment.id)))
    for item in ((obj.get("refunds") or {}).get("data") or []):
        if item.get("id") and item["id"] not in known and item.get("status") != "failed":
            session.add(Refund(payment_id=payment.id, amount=from_minor(item.get("amount"), payment.currency),
                               currency=payment.currency, reason="refunded at the gateway", status="succeeded",
                               idempotency_key=f"gateway-{item['id']}", provider_refund_id=item["id"]))
    theirs = min(from_minor(obj.get("amount_refunded"), payment.currency), payment.amount_captured)
    if theirs <= payment.amount_refunded:
        session.flush()
        return "no change: refund already recorded"
    before = _snapshot(payment)
    payment.amount_refunded = theirs
    payment.status = _refund_status(payment)
    payment.updated_at = _now()
    _mark_booking_refunded(session, payment)
    session.flush()
    audit.record(session, GATEWAY_ACTOR, "payment.refunded", "payment", payment.id, before, _snapshot(payment))
    _event(session, payment, "payment.refunded", refunded_total=theirs)
    return f"refund recorded: {theirs} {payment.currency} refunded in all"


def _on_dispute(session: Session, payment: Payment, obj: Mapping[str, Any]) -> str:
    closed = obj.get("status") in ("won", "lost", "warning_closed")
    if payment.dispute_id == obj.get("id") and payment.dispute_status in ("won", "lost", "warning_closed") \
            and not closed:
        return "no change: dispute already closed"
    before = _snapshot(payment)
    payment.dispute_id = obj.get("id")
    payment.dispute_status = str(obj.get("status") or "")[:32]
    payment.dispute_reason = obj.get("reason")
    payment.dispute_amount = from_minor(obj.get("amount"), payment.currency)
    payment.disputed_at = payment.disputed_at or _now()
    payment.updated_at = _now()
    booking = session.get(Booking, payment.booking_id, with_for_update=True)
    if obj.get("status") in ("won", "warning_closed"):
        booking.disputed = False
        booking.payment_status = _booking_status_for(payment)
    else:  # open, or lost: staff must look at it
        booking.disputed = True
        booking.payment_status = "disputed"
    booking.updated_at = _now()
    session.flush()
    audit.record(session, GATEWAY_ACTOR, "payment.dispute", "payment", payment.id, before, _snapshot(payment))
    _event(session, payment, "payment.dispute_" + ("closed" if closed else "opened"),
           dispute_status=payment.dispute_status)
    return f"dispute {payment.dispute_status}"


_HANDLERS = {
    "payment_intent.succeeded": _on_intent_succeeded,
    "payment_intent.payment_failed": _on_intent_failed,
    "payment_intent.amount_capturable_updated": _on_intent_capturable,
    "payment_intent.canceled": _on_intent_canceled,
    "charge.refunded": _on_charge_refunded,
    "charge.dispute.created": _on_dispute,
    "charge.dispute.updated": _on_dispute,
    "charge.dispute.closed": _on_dispute,
}


# --- reconciliation ---------------------------------------------------------------------------------------------

_COARSE = {PaymentStatus.SUCCEEDED: "succeeded", PaymentStatus.PARTIALLY_REFUNDED: "succeeded",
           PaymentStatus.REFUNDED: "succeeded", PaymentStatus.REQUIRES_CAPTURE: "requires_capture",
           PaymentStatus.CANCELLED: "canceled", PaymentStatus.FAILED: "failed", PaymentStatus.PENDING: "pending"}


def _coarse_intent(result: IntentResult) -> str:
    return _COARSE[status_of_intent(result)]


@dataclass(frozen=True)
class Difference:
    payment_id: int | None
    intent_id: str | None
    what: str  # status, amount, missing_at_gateway, unknown_to_us, no_gateway_id
    ours: str
    theirs: str
    fixed: bool = False

    def __str__(self) -> str:
        who = f"payment {self.payment_id}" if self.payment_id else "no payment of ours"
        fixed = " (fixed)" if self.fixed else ""
        return f"{who} / {self.intent_id or '-'}: {self.what}: ours {self.ours}, gateway {self.theirs}{fixed}"


@dataclass
class ReconcileReport:
    checked: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def fixed(self) -> int:
        return sum(d.fixed for d in self.differences)


def reconcile(session: Session, *, since: datetime | None = None, fix: bool = False,
              actor: Actor | None = None, gateway: PaymentGateway | None = None) -> ReconcileReport:
    """Compare our card payments with the gateway's intents; report every difference, change ours only with fix."""
    gw = _gw(gateway)
    actor = actor or Actor.command_line()
    if fix:
        require_role(actor, UserRole.ADMIN, doing="fix payments from the gateway")
    report = ReconcileReport()
    query = select(Payment).where(Payment.method == "card").order_by(Payment.id)
    if since is not None:
        query = query.where(Payment.created_at >= since)
    ours = list(session.scalars(query.with_for_update() if fix else query))
    seen = set()
    for payment in ours:
        report.checked += 1
        if not payment.provider_payment_id:
            if payment.status != PaymentStatus.FAILED:
                report.differences.append(Difference(payment.id, None, "no_gateway_id", payment.status.value,
                                                     "nothing"))
            continue
        seen.add(payment.provider_payment_id)
        try:
            result = gw.retrieve_intent(payment.provider_payment_id)
        except (InvalidInput, NotFound):
            report.differences.append(Difference(payment.id, payment.provider_payment_id, "missing_at_gateway",
                                                 payment.status.value, "no such payment"))
            continue
        report.differences.extend(_compare(session, actor, payment, result, fix))
    for result in gw.list_intents(since=since):
        if result.intent_id in seen or not result.metadata.get("fleetdesk_key"):
            continue
        known = session.scalar(select(Payment.id).where(
            (Payment.provider_payment_id == result.intent_id)
            | (Payment.idempotency_key == result.metadata["fleetdesk_key"])))
        if known is None and status_of_intent(result) not in (PaymentStatus.FAILED, PaymentStatus.CANCELLED):
            report.differences.append(Difference(None, result.intent_id, "unknown_to_us", "no payment",
                                                 f"{result.status} {result.net_received} {result.currency} "
                                                 f"({result.metadata['fleetdesk_key']})"))
    return report


def _compare(session: Session, actor: Actor, payment: Payment, result: IntentResult, fix: bool) -> list[Difference]:
    found = []
    ours_status, theirs_status = _COARSE[payment.status], _coarse_intent(result)
    if ours_status != theirs_status:
        found.append(("status", payment.status.value, result.status))
    ours_net = payment.amount_captured - payment.amount_refunded if payment.status in DONE else Decimal("0.00")
    theirs_net = result.net_received if theirs_status == "succeeded" else Decimal("0.00")
    if ours_net != theirs_net:
        found.append(("amount", f"{ours_net} {payment.currency}", f"{theirs_net} {result.currency}"))
    if found and fix:
        before = _snapshot(payment)
        if theirs_status == "succeeded":
            if payment.status not in DONE:
                payment.status = PaymentStatus.SUCCEEDED
                payment.amount_captured = min(result.amount_captured, payment.amount)
            payment.amount_refunded = min(payment.amount_captured,
                                          max(Decimal("0.00"), payment.amount_captured - theirs_net))
            payment.status = _refund_status(payment)
        else:
            payment.status = status_of_intent(result)
            payment.failure_reason = result.failure_reason or payment.failure_reason
        payment.updated_at = _now()
        session.flush()
        audit.record(session, actor, "payment.reconciled", "payment", payment.id, before, _snapshot(payment))
    return [Difference(payment.id, payment.provider_payment_id, what, ours, theirs, fix)
            for what, ours, theirs in found]


# --- reading, for the Payments page -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PaymentQuery:
    statuses: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    search: str = ""  # booking reference or a gateway id
    disputed_only: bool = False
    limit: int = 500


def list_payments(session: Session, query: PaymentQuery = PaymentQuery()) -> pd.DataFrame:
    """Payments, newest first, with their booking's reference."""
    clauses, params = ["TRUE"], {"limit": max(1, min(query.limit, 5000))}
    if query.statuses:
        clauses.append("p.status::text = ANY(:statuses)")
        params["statuses"] = list(query.statuses)
    if query.kinds:
        clauses.append("p.kind = ANY(:kinds)")
        params["kinds"] = list(query.kinds)
    if query.methods:
        clauses.append("p.method = ANY(:methods)")
        params["methods"] = list(query.methods)
    if query.search.strip():
        clauses.append("(b.reference = :exact OR p.provider_payment_id = :raw OR p.provider_charge_id = :raw "
                       "OR p.dispute_id = :raw)")
        params["exact"] = query.search.strip().upper()[:20]
        params["raw"] = query.search.strip()[:128]
    if query.disputed_only:
        clauses.append("p.dispute_id IS NOT NULL")
    result = session.execute(text(f"""
        SELECT p.id, p.created_at, b.reference AS booking, b.id AS booking_id, p.kind, p.method, p.amount,
               p.amount_captured AS captured, p.amount_refunded AS refunded, p.currency, p.status::text AS status,
               b.payment_status AS booking_payment, p.provider_payment_id, p.dispute_status, p.failure_reason
        FROM payments p JOIN bookings b ON b.id = p.booking_id
        WHERE {' AND '.join(clauses)} ORDER BY p.created_at DESC, p.id DESC LIMIT :limit
    """), params)
    return result_frame(result)


def disputes(session: Session) -> pd.DataFrame:
    """The disputes queue: open ones first, then lost ones still flagged on their booking."""
    result = session.execute(text("""
        SELECT p.id, b.reference AS booking, p.dispute_id, p.dispute_status, p.dispute_reason, p.dispute_amount,
               p.currency, p.disputed_at, b.disputed AS flagged
        FROM payments p JOIN bookings b ON b.id = p.booking_id
        WHERE p.dispute_id IS NOT NULL
        ORDER BY (p.dispute_status IN ('won', 'lost', 'warning_closed')), p.disputed_at DESC
    """))
    return result_frame(result)


@dataclass(frozen=True)
class PaymentDetail:
    payment: Payment
    booking_reference: str
    refundable: Decimal
    refunds: pd.DataFrame
    events: pd.DataFrame


def payment_detail(session: Session, payment_id: int) -> PaymentDetail:
    """One payment with its gateway ids, its refunds and the gateway events we received for it."""
    payment = get_payment(session, payment_id)
    reference = session.scalar(select(Booking.reference).where(Booking.id == payment.booking_id))
    refunds = session.execute(text("""
        SELECT id, created_at, amount, currency, status, reason, provider_refund_id FROM refunds
        WHERE payment_id = :p ORDER BY id"""), {"p": payment.id})
    events = session.execute(text("""
        SELECT received_at, type, provider_event_id, outcome, processed_at FROM payment_events
        WHERE payment_id = :p ORDER BY received_at, id"""), {"p": payment.id})
    return PaymentDetail(payment, reference, refundable(payment),
                         pd.DataFrame(refunds.fetchall(), columns=list(refunds.keys())),
                         pd.DataFrame(events.fetchall(), columns=list(events.keys())))
