"""Bookings: the lifecycle from a held car to keys handed back, with no overbooking ever.

pending (held until `hold_expires_at`) → confirmed (payment secured, or recorded as due) → picked_up (check-out) →
completed (check-in). pending/confirmed → cancelled (by the cancellation policy); confirmed → no_show after the
grace period. Any other transition is refused with a message naming the booking's current state.

PostgreSQL is the guard against overbooking (the exclusion constraint on vehicle_occupancy); this module turns its
refusal into a sentence for the person, and re-checks where the car will stand with the car's row locked.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached

from db.config import turnaround_minutes
from db.driver import DriverQuery
from db.models import Booking, BookingStatus, UserRole, Vehicle, VehicleStatus
from services import audit, availability, maintenance, pricing, promotions
from services.actors import Actor, require_role
from services.eligibility_rules import CarType, Driver, check_rental_dates, ineligibility_reasons
from services.errors import Conflict, InvalidInput, NotFound
from services.events import record_event
from services.opening_hours import closed_reason

REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out over a counter
STATE_LABELS = {"pending": "pending", "confirmed": "confirmed", "picked_up": "picked up", "completed": "completed",
                "cancelled": "cancelled", "no_show": "a no-show"}


def _env_number(name: str, default: str) -> Decimal:
    raw = os.environ.get(name, default)
    try:
        value = Decimal(raw)
    except ArithmeticError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


@dataclass(frozen=True)
class Policy:
    """The desk's rules, from the environment (documented in the README)."""

    hold_minutes: int
    no_show_grace_minutes: int
    free_cancellation_hours: int
    late_cancellation_fee_pct: Decimal
    late_return_grace_minutes: int
    late_fee_per_hour_pct: Decimal  # of the daily rate, per started hour late, capped at the daily rate a day
    fuel_price_per_percent: Decimal  # per percent of a tank short, refuelling service included
    early_checkout_minutes: int

    @classmethod
    def from_environment(cls) -> Policy:
        return cls(
            hold_minutes=int(_env_number("FLEETDESK_HOLD_MINUTES", "15")),
            no_show_grace_minutes=int(_env_number("FLEETDESK_NO_SHOW_GRACE_MINUTES", "120")),
            free_cancellation_hours=int(_env_number("FLEETDESK_FREE_CANCELLATION_HOURS", "48")),
            late_cancellation_fee_pct=_env_number("FLEETDESK_LATE_CANCELLATION_FEE_PCT", "50"),
            late_return_grace_minutes=int(_env_number("FLEETDESK_LATE_RETURN_GRACE_MINUTES", "29")),
            late_fee_per_hour_pct=_env_number("FLEETDESK_LATE_FEE_PER_HOUR_PCT", "25"),
            fuel_price_per_percent=_env_number("FLEETDESK_FUEL_PRICE_PER_PERCENT", "0.90"),
            early_checkout_minutes=int(_env_number("FLEETDESK_EARLY_CHECKOUT_MINUTES", "60")),
        )


class InvalidTransition(Conflict):
    """The booking is not in a state that allows this."""


@dataclass(frozen=True)
class BookingResult:
    booking: Booking
    created: bool  # False when an idempotent retry returned the booking made the first time


# --- reading ----------------------------------------------------------------------------------------------------------

def get_booking(session: Session, booking_id: int, *, lock: bool = False) -> Booking:
    booking = session.get(Booking, booking_id, with_for_update=lock)
    if booking is None:
        raise NotFound(f"There is no booking {booking_id}; check the number or search by reference.")
    return booking


def find_by_reference(session: Session, reference: str) -> Booking:
    cleaned = reference.strip().upper().replace(" ", "")[:20]
    booking = session.scalar(select(Booking).where(Booking.reference == cleaned))
    if booking is None:
        raise NotFound(f"There is no booking with reference {cleaned!r}; check it with the customer, or search by "
                       "plate or name.")
    return booking


def _require_state(booking: Booking, allowed: tuple[BookingStatus, ...], doing: str) -> None:
    if booking.status not in allowed:
        wanted = " or ".join(STATE_LABELS[s.value] for s in allowed)
        raise InvalidTransition(f"Booking {booking.reference} is {STATE_LABELS[booking.status.value]}; only a "
                                f"{wanted} booking can be {doing}.")


_SNAPSHOT_FIELDS = ("status", "vehicle_id", "pickup_location_id", "dropoff_location_id", "pickup_at", "dropoff_at",
                    "total_price", "payment_status", "hold_expires_at", "actual_return_at", "odometer_out_km",
                    "fuel_out", "odometer_in_km", "fuel_in", "late_fee", "fuel_charge", "damage_charge",
                    "cancellation_fee", "refund_due", "cancel_reason", "extras")


def _snapshot(booking: Booking) -> dict[str, Any]:
    return {name: getattr(booking, name) for name in _SNAPSHOT_FIELDS}


def _event(session: Session, booking: Booking, event_type: str, **extra: Any) -> None:
    payload = {"booking_id": booking.id, "reference": booking.reference, "status": booking.status.value,
               "vehicle_id": booking.vehicle_id, "pickup_location_id": booking.pickup_location_id,
               "dropoff_location_id": booking.dropoff_location_id, "pickup_at": booking.pickup_at.isoformat(),
               "dropoff_at": booking.dropoff_at.isoformat(), **extra}
    record_event(session, "booking", booking.id, event_type, json.loads(json.dumps(payload, default=str)))


def _local(session: Session, location_id: int, at: datetime) -> str:
    zone = session.execute(text("SELECT timezone FROM locations WHERE id = :id"), {"id": location_id}).scalar_one()
    return at.astimezone(ZoneInfo(zone)).strftime("%a %-d %b %H:%M")


# --- making a booking ---------------------------------------------------------------------------------------------

def _new_reference() -> str:
    return "FD" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(6))


def _fingerprint(**request: Any) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def _check_times(pickup_at: datetime, dropoff_at: datetime, now: datetime) -> None:
    for name, value in (("pick-up", pickup_at), ("drop-off", dropoff_at)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise InvalidInput(f"The {name} time must include its time zone.")
    if dropoff_at <= pickup_at:
        raise InvalidInput("The drop-off must be after the pick-up; swap the times or pick other dates.")
    if pickup_at < now - availability.PAST_TOLERANCE:
        raise InvalidInput(f"The pick-up ({pickup_at:%d %b %Y %H:%M} UTC) is in the past; pick a time from now on.")
    longest = availability.max_rental_days()
    if dropoff_at - pickup_at > timedelta(days=longest):
        raise InvalidInput(f"A rental can last at most {longest} days; split it into two bookings.")


def create_booking(session: Session, actor: Actor, *, customer_id: int, vehicle_id: int, pickup_location_id: int,
                   dropoff_location_id: int, pickup_at: datetime, dropoff_at: datetime,
                   extras: tuple[str, ...] | list[str] = (), channel: str = "desk",
                   idempotency_key: str | None = None, now: datetime | None = None,
                   policy: Policy | None = None, promo_code: str | None = None) -> BookingResult:
    """Hold a car for a customer: a pending booking with its price frozen, released if not confirmed in time.

    With an idempotency key, a retry of the same request returns the booking made the first time, and the same key
    with a different request is refused. A promotion code is redeemed in the same transaction, once per booking.
    """
    require_role(actor, UserRole.DESK_AGENT, doing="make bookings")
    policy = policy or Policy.from_environment()
    now = now or datetime.now(UTC)
    extras = tuple(dict.fromkeys(extras))
    fingerprint = _fingerprint(customer_id=customer_id, vehicle_id=vehicle_id, pickup=pickup_location_id,
                               dropoff=dropoff_location_id, pickup_at=pickup_at, dropoff_at=dropoff_at,
                               extras=sorted(extras),
                               **({"promo": promo_code.strip().upper()} if promo_code and promo_code.strip() else {}))
    if idempotency_key:
        existing = _by_idempotency_key(session, idempotency_key, fingerprint)
        if existing is not None:
            return BookingResult(existing, created=False)
    _check_times(pickup_at, dropoff_at, now)
    facts = _load_facts(session, customer_id, vehicle_id, pickup_location_id, dropoff_location_id, pickup_at,
                        dropoff_at)
    if facts.customer_role != UserRole.CUSTOMER.value:
        raise NotFound(f"There is no customer {customer_id}; find or create the customer first.")
    if facts.car_id is None:
        raise NotFound(f"There is no vehicle {vehicle_id}; pick a car from the search.")
    branches = _loaded_branches(facts, pickup_location_id, dropoff_location_id)
    _require_open(branches[pickup_location_id], pickup_at, "pick-up")
    _require_open(branches[dropoff_location_id], dropoff_at, "drop-off")
    pickup_date = pickup_at.astimezone(ZoneInfo(branches[pickup_location_id]["timezone"])).date()
    dropoff_date = dropoff_at.astimezone(ZoneInfo(branches[dropoff_location_id]["timezone"])).date()
    check_rental_dates(pickup_date, dropoff_date)  # dates as the branches' own calendars see them
    reasons = ineligibility_reasons(
        Driver(status=facts.customer_status, erased_at=facts.erased_at, date_of_birth=facts.date_of_birth,
               has_licence=facts.has_licence, licence_expiry=facts.licence_expiry,
               identity_status=facts.identity_status),
        CarType(facts.vehicle_type_name, facts.min_driver_age), pickup_date, dropoff_date)
    if reasons:
        raise InvalidInput("This driver cannot take this car: " + " ".join(reasons))
    reason = availability.reason_from_check(session, facts._asdict(), pickup_location_id, dropoff_location_id,
                                            branches)
    if reason:
        raise Conflict(reason)
    price = pricing.quote(session, vehicle_id, pickup_location_id, dropoff_location_id, pickup_at, dropoff_at,
                          extras, customer_id=customer_id, promo_code=promo_code, terms=facts)
    values = {
        "user_id": customer_id, "vehicle_id": vehicle_id, "vehicle_type_id": facts.vehicle_type_id,
        "pickup_location_id": pickup_location_id, "dropoff_location_id": dropoff_location_id,
        "pickup_at": pickup_at, "dropoff_at": dropoff_at, "turnaround_minutes": turnaround_minutes(),
        "total_price": price.total, "currency": price.currency, "price_breakdown": price.as_breakdown(),
        "status": BookingStatus.PENDING, "payment_status": "unpaid", "channel": channel,
        "hold_expires_at": now + timedelta(minutes=policy.hold_minutes), "extras": list(extras),
        "idempotency_key": idempotency_key, "request_fingerprint": fingerprint, "created_by": actor.user_id,
    }
    try:
        booking = _insert(session, actor, values)
    except _DuplicateKey:
        existing = _by_idempotency_key(session, idempotency_key or "", fingerprint)
        if existing is None:  # pragma: no cover - the unique violation means it exists
            raise
        return BookingResult(existing, created=False)
    if price.promotion is not None:
        promotions.redeem(session, price.promotion.id, booking_id=booking.id, customer_id=customer_id,
                          discount=price.discount)
    return BookingResult(booking, created=True)


# Everything a booking checks before it takes the car, in one round trip: the customer, the car's type, both branches
# (hours, time zone), the car's own check (`availability.CAR_CHECK_LOCKED`, which locks the car's row until the
# booking is written) and what its price is made of (`pricing.TERMS`, the car's rate and type among them). Left
# joins, so a missing customer, car or branch reads as NULLs and is refused in the order the checks run.
_FACTS = DriverQuery(" ".join(f"""
    SELECT c.role::text AS customer_role, c.status AS customer_status, c.erased_at, c.date_of_birth,
           coalesce(octet_length(c.licence_number_encrypted), 0) > 0 AS has_licence, c.licence_expiry,
           c.identity_status,
           v.id AS car_id, t.name AS vehicle_type_name, t.min_driver_age,
           p.id AS pickup_id, p.code AS pickup_code, p.name AS pickup_name, p.timezone AS pickup_timezone,
           p.operating_hours AS pickup_hours,
           d.id AS dropoff_id, d.code AS dropoff_code, d.name AS dropoff_name, d.timezone AS dropoff_timezone,
           d.operating_hours AS dropoff_hours,
           car.*, terms.*
    FROM (SELECT 1) one
    LEFT JOIN users c ON c.id = :customer
    LEFT JOIN vehicles v ON v.id = :vehicle
    LEFT JOIN vehicle_types t ON t.id = v.vehicle_type_id
    LEFT JOIN locations p ON p.id = :pickup_location
    LEFT JOIN locations d ON d.id = :dropoff_location
    LEFT JOIN LATERAL ({availability.CAR_CHECK_LOCKED}) car ON true
    LEFT JOIN LATERAL ({pricing.TERMS}) terms ON true
""".split()))  # on one line: psycopg caches the parsing of statements up to 4 kB only


def _load_facts(session: Session, customer_id: int, vehicle_id: int, pickup_location_id: int,
                dropoff_location_id: int, pickup_at: datetime, dropoff_at: datetime) -> Any:
    return _FACTS.one_or_none(session, {
        **pricing.terms_params(vehicle_id, pickup_location_id, dropoff_location_id, pickup_at, dropoff_at, customer_id),
        **availability.car_check_params(vehicle_id, pickup_at, dropoff_at)})


def _loaded_branches(facts: Any, pickup_location_id: int, dropoff_location_id: int) -> dict[int, dict[str, Any]]:
    found = {}
    for side, location_id in (("pickup", pickup_location_id), ("dropoff", dropoff_location_id)):
        if getattr(facts, f"{side}_id") is not None:
            found[location_id] = {"id": location_id, "code": getattr(facts, f"{side}_code"),
                                  "name": getattr(facts, f"{side}_name"),
                                  "timezone": getattr(facts, f"{side}_timezone"),
                                  "operating_hours": getattr(facts, f"{side}_hours")}
    missing = sorted({pickup_location_id, dropoff_location_id} - set(found))
    if missing:
        raise NotFound(f"There is no branch with id {', '.join(map(str, missing))}; pick a branch from the list.")
    return found


def _require_open(branch: dict[str, Any], at: datetime, what: str) -> None:
    reason = closed_reason(branch["operating_hours"], branch["timezone"], at, what)
    if reason:  # worded as availability.check_opening_hours words it
        raise InvalidInput(f"{branch['name']} is {reason}. Choose a time when it is open, or another branch.")


class _DuplicateKey(Exception):
    pass


# The booking, its audit entry and its event in one round trip (migration 0013); the booking's columns come back, so
# its ORM object is made without reading it again. A clash with the guard comes back as an outcome, not an error.
_INSERT = DriverQuery("""
    SELECT (o.booking).*, o.outcome
    FROM fd_insert_booking(CAST(:booking AS jsonb), CAST(:actor_id AS integer), :actor_label,
                           CAST(:changes AS jsonb), CAST(:payload AS jsonb)) o
""")


def _insert(session: Session, actor: Actor, values: dict[str, Any]) -> Booking:
    """The new booking, with its audit entry and event, or Conflict when the car was taken meanwhile."""
    row = {**values, "status": values["status"].value}
    changes = json.dumps(audit.changes(None, {name: values.get(name) for name in _SNAPSHOT_FIELDS}))
    for _ in range(5):
        row["reference"] = _new_reference()
        payload = {"reference": row["reference"], "status": row["status"], "vehicle_id": values["vehicle_id"],
                   "pickup_location_id": values["pickup_location_id"],
                   "dropoff_location_id": values["dropoff_location_id"],
                   "pickup_at": values["pickup_at"].isoformat(), "dropoff_at": values["dropoff_at"].isoformat(),
                   "total_price": str(values["total_price"]), "currency": values["currency"]}
        made = _INSERT.one_or_none(session, {
            "booking": json.dumps(row, default=_json_value), "actor_id": actor.user_id, "actor_label": actor.label,
            "changes": changes, "payload": json.dumps(payload)})
        outcome = made.outcome if made is not None else None
        if outcome == "created":
            return _attach(session, made)
        if outcome == "taken":
            raise Conflict(_clash_message(session, values["vehicle_id"], values["pickup_location_id"],
                                          values["pickup_at"], values["dropoff_at"]))
        if outcome == "same_key":
            raise _DuplicateKey()
        # "same_reference": a reference drawn twice, draw again
    raise Conflict("Could not draw a unique booking reference; try again.")


def _attach(session: Session, row: Any) -> Booking:
    """The ORM object of a booking row just written, as if a query had loaded it (its generated period is read
    only if asked for)."""
    values = row._asdict()
    del values["outcome"], values["blocked_period"]
    booking = Booking(**{**values, "status": BookingStatus(values["status"])})
    make_transient_to_detached(booking)
    session.add(booking)
    return booking


def _json_value(value: Any) -> str:
    """Decimals exact, moments in ISO 8601 with their offset (for jsonb_populate_record)."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _clash_message(session: Session, vehicle_id: int, location_id: int, pickup_at: datetime,
                   dropoff_at: datetime) -> str:
    """What the car is already taken for — periods only, never another customer's details."""
    until = dropoff_at + timedelta(minutes=turnaround_minutes())
    row = session.execute(text("""
        SELECT v.license_plate, lower(o.period) AS starts, upper(o.period) AS ends, o.maintenance_block_id
        FROM vehicle_occupancy o JOIN vehicles v ON v.id = o.vehicle_id
        WHERE o.vehicle_id = :v AND o.period && tstzrange(:a, :b, '[)') ORDER BY lower(o.period) LIMIT 1
    """), {"v": vehicle_id, "a": pickup_at, "b": until}).first()
    if row is None:
        plate = session.execute(text("SELECT license_plate FROM vehicles WHERE id = :v"), {"v": vehicle_id}).scalar()
        return f"{plate} was just booked by someone else for these dates; choose another car or other dates."
    what = "in maintenance" if row.maintenance_block_id else "already booked"
    return (f"{row.license_plate} is {what} from {_local(session, location_id, row.starts)} to "
            f"{_local(session, location_id, row.ends)} (turnaround included); choose another car or other dates.")


def _by_idempotency_key(session: Session, key: str, fingerprint: str) -> Booking | None:
    if len(key) > 128 or not key.strip():
        raise InvalidInput("An idempotency key must be 1 to 128 characters.")
    existing = session.scalar(select(Booking).where(Booking.idempotency_key == key))
    if existing is not None and existing.request_fingerprint != fingerprint:
        raise InvalidInput("This idempotency key was already used for a different booking request; use a new key "
                           "for a new request.")
    return existing


# --- moving along the lifecycle ----------------------------------------------------------------------------------

def confirm_booking(session: Session, actor: Actor, booking_id: int, *, payment: str = "due",
                    now: datetime | None = None) -> Booking:
    """Secure a held booking. `payment` is 'due' (to be paid at the desk) or 'paid' (cash taken, or the gateway)."""
    require_role(actor, UserRole.DESK_AGENT, doing="confirm bookings")
    now = now or datetime.now(UTC)
    if payment not in ("due", "paid"):
        raise InvalidInput("Payment must be recorded as 'due' or 'paid'.")
    booking = get_booking(session, booking_id, lock=True)
    if booking.status == BookingStatus.CONFIRMED:
        return booking  # a double click, or a webhook after the desk: confirming twice changes nothing
    _require_state(booking, (BookingStatus.PENDING,), "confirmed")
    if booking.hold_expires_at and booking.hold_expires_at < now:
        raise InvalidTransition(f"The hold on booking {booking.reference} expired at "
                                f"{_local(session, booking.pickup_location_id, booking.hold_expires_at)}; search "
                                "again and make a new booking.")
    before = _snapshot(booking)
    booking.status = BookingStatus.CONFIRMED
    booking.payment_status = payment
    booking.confirmed_at = now
    booking.updated_at = now
    session.flush()
    audit.record(session, actor, "booking.confirmed", "booking", booking.id, before, _snapshot(booking))
    _event(session, booking, "booking.confirmed", payment_status=payment)
    return booking


def check_out(session: Session, actor: Actor, booking_id: int, *, odometer_km: int, fuel_level: int,
              licence_checked: bool, notes: str = "", photo_urls: tuple[str, ...] = (),
              now: datetime | None = None, policy: Policy | None = None) -> Booking:
    """Hand over the keys: record odometer, fuel, the state of the car and that the licence was checked."""
    require_role(actor, UserRole.DESK_AGENT, doing="hand over cars")
    policy = policy or Policy.from_environment()
    now = now or datetime.now(UTC)
    booking = get_booking(session, booking_id, lock=True)
    _require_state(booking, (BookingStatus.CONFIRMED,), "checked out")
    if not licence_checked:
        raise InvalidInput("Check the driver's licence in person before handing over the keys, then tick the box.")
    if now < booking.pickup_at - timedelta(minutes=policy.early_checkout_minutes):
        raise InvalidInput(f"Booking {booking.reference} starts at "
                           f"{_local(session, booking.pickup_location_id, booking.pickup_at)}; hand the car over "
                           "then, or change the booking's times first.")
    vehicle = session.get(Vehicle, booking.vehicle_id, with_for_update=True)
    _check_reading(odometer_km, fuel_level, vehicle.odometer_km)
    if vehicle.status != VehicleStatus.AVAILABLE or vehicle.current_location_id != booking.pickup_location_id:
        state = {"maintenance": "in maintenance", "in_transit": "being moved between branches",
                 "rented": "out on a rental", "retired": "retired"}.get(vehicle.status.value, "not at the branch")
        raise Conflict(f"{vehicle.license_plate} is {state} and not ready at the pick-up branch; change the booking "
                       "to another car (Bookings page) before handing over.")
    before = _snapshot(booking)
    booking.status = BookingStatus.PICKED_UP
    booking.picked_up_at = now
    booking.odometer_out_km, booking.fuel_out = odometer_km, fuel_level
    booking.licence_checked_by = actor.user_id
    booking.checkout_notes = notes.strip()[:2000] or None
    booking.photo_urls = list(photo_urls)
    booking.updated_at = now
    vehicle.status, vehicle.current_location_id = VehicleStatus.RENTED, None
    vehicle.odometer_km, vehicle.fuel_level, vehicle.updated_at = odometer_km, fuel_level, now
    session.flush()
    audit.record(session, actor, "booking.checked_out", "booking", booking.id, before, _snapshot(booking))
    _event(session, booking, "booking.picked_up", odometer_km=odometer_km, fuel_level=fuel_level)
    record_event(session, "vehicle", vehicle.id, "vehicle.status_changed",
                 {"vehicle_id": vehicle.id, "status": "rented", "booking_id": booking.id})
    return booking


def _check_reading(odometer_km: int, fuel_level: int, known_odometer: int) -> None:
    if not 0 <= fuel_level <= 100:
        raise InvalidInput(f"Fuel must be a percentage from 0 to 100, not {fuel_level}.")
    if odometer_km < known_odometer:
        raise InvalidInput(f"The odometer reads {odometer_km:,} km but the car was last at {known_odometer:,} km; "
                           "read it again.")


@dataclass(frozen=True)
class ReturnCharges:
    late_hours: int
    late_fee: Decimal
    fuel_short_pct: int
    fuel_charge: Decimal
    damage_charge: Decimal

    @property
    def total(self) -> Decimal:
        return self.late_fee + self.fuel_charge + self.damage_charge

    def explain(self, currency: str = "GBP") -> list[str]:
        """The charges in sentences for the customer, amounts in the booking's currency."""
        sign = {"GBP": "£", "EUR": "€", "USD": "$"}.get(currency, f"{currency} ")
        lines = []
        if self.late_fee:
            lines.append(f"Late return: {self.late_hours} started hour{'s' if self.late_hours != 1 else ''} "
                         f"after the grace period, {sign}{self.late_fee}.")
        if self.fuel_charge:
            lines.append(f"Fuel: {self.fuel_short_pct}% of a tank short, £{self.fuel_charge} including refuelling.")
        if self.damage_charge:
            lines.append(f"Damage: {sign}{self.damage_charge}.")
        return lines or ["No extra charges."]


def return_charges(booking: Booking, *, returned_at: datetime, fuel_level: int, damage_charge: Decimal,
                   daily_rate: Decimal, policy: Policy) -> ReturnCharges:
    """Late fee (per started hour past the grace period, capped at the daily rate per started day) and fuel."""
    late = returned_at - booking.dropoff_at
    late_hours = 0
    late_fee = Decimal("0.00")
    if late > timedelta(minutes=policy.late_return_grace_minutes):
        late_hours = math.ceil(late.total_seconds() / 3600)
        per_hour = daily_rate * policy.late_fee_per_hour_pct / 100
        cap = daily_rate * math.ceil(late.total_seconds() / 86400)
        late_fee = pricing.money(min(per_hour * late_hours, cap))
    short = max(0, (booking.fuel_out or 0) - fuel_level)
    fuel_charge = pricing.money(policy.fuel_price_per_percent * short)
    if damage_charge < 0:
        raise InvalidInput("A damage charge cannot be negative.")
    return ReturnCharges(late_hours, late_fee, short, fuel_charge, pricing.money(damage_charge))


def check_in(session: Session, actor: Actor, booking_id: int, *, odometer_km: int, fuel_level: int,
             returned_at: datetime | None = None, damaged: bool = False, damage_charge: Decimal = Decimal("0"),
             notes: str = "", now: datetime | None = None, policy: Policy | None = None) -> tuple[Booking, ReturnCharges]:
    """Take the car back: charges computed, the car free at the drop-off branch (or in maintenance when due)."""
    require_role(actor, UserRole.DESK_AGENT, doing="take cars back")
    policy = policy or Policy.from_environment()
    now = now or datetime.now(UTC)
    returned_at = returned_at or now
    booking = get_booking(session, booking_id, lock=True)
    _require_state(booking, (BookingStatus.PICKED_UP,), "checked in")
    if returned_at.tzinfo is None or returned_at < (booking.picked_up_at or booking.pickup_at):
        raise InvalidInput("The return time must be after the car was picked up.")
    if returned_at > now + timedelta(minutes=5):
        raise InvalidInput("The return time is in the future; enter when the car actually came back.")
    vehicle = session.get(Vehicle, booking.vehicle_id, with_for_update=True)
    _check_reading(odometer_km, fuel_level, booking.odometer_out_km or 0)
    if damaged and not notes.strip():
        raise InvalidInput("Describe the damage in the notes so the workshop knows what to fix.")
    charges = return_charges(booking, returned_at=returned_at, fuel_level=fuel_level,
                             damage_charge=Decimal(damage_charge), daily_rate=vehicle.daily_rate, policy=policy)
    before = _snapshot(booking)
    booking.status = BookingStatus.COMPLETED
    booking.actual_return_at = returned_at
    booking.odometer_in_km, booking.fuel_in = odometer_km, fuel_level
    booking.late_fee, booking.fuel_charge, booking.damage_charge = (charges.late_fee, charges.fuel_charge,
                                                                    charges.damage_charge)
    booking.damage_reported = damaged
    booking.checkin_notes = notes.strip()[:2000] or None
    booking.updated_at = now
    new_status = maintenance.status_after_return(session, vehicle.id, damaged=damaged, odometer_km=odometer_km,
                                                 now=now)
    vehicle.status = new_status
    vehicle.status_reason = ("damaged on return" if damaged else "due for service") \
        if new_status == VehicleStatus.MAINTENANCE else None
    vehicle.current_location_id = booking.dropoff_location_id
    vehicle.odometer_km, vehicle.fuel_level, vehicle.updated_at = odometer_km, fuel_level, now
    session.flush()
    audit.record(session, actor, "booking.checked_in", "booking", booking.id, before, _snapshot(booking))
    _event(session, booking, "booking.completed", extra_charges=str(charges.total),
           late_fee=str(charges.late_fee), fuel_charge=str(charges.fuel_charge))
    record_event(session, "vehicle", vehicle.id, "vehicle.status_changed",
                 {"vehicle_id": vehicle.id, "status": new_status.value, "location_id": booking.dropoff_location_id})
    return booking, charges


def cancellation_terms(booking: Booking, now: datetime, policy: Policy) -> tuple[Decimal, Decimal]:
    """(fee, refund due): free until `free_cancellation_hours` before pick-up, then a percentage, then all of it.

    The refund due is what was paid less the fee; an unpaid booking is owed nothing back.
    """
    if now <= booking.pickup_at - timedelta(hours=policy.free_cancellation_hours):
        fee = Decimal("0.00")
    elif now < booking.pickup_at:
        fee = pricing.money(booking.total_price * policy.late_cancellation_fee_pct / 100)
    else:
        fee = pricing.money(booking.total_price)
    paid = booking.total_price if booking.payment_status == "paid" else Decimal("0.00")
    return fee, pricing.money(max(Decimal("0"), paid - fee))


def cancel_booking(session: Session, actor: Actor, booking_id: int, *, reason: str, now: datetime | None = None,
                   policy: Policy | None = None) -> Booking:
    """Cancel a pending or confirmed booking; the fee and the refund due follow the cancellation policy."""
    require_role(actor, UserRole.DESK_AGENT, doing="cancel bookings")
    policy = policy or Policy.from_environment()
    now = now or datetime.now(UTC)
    if not reason.strip():
        raise InvalidInput("Give a reason for the cancellation; it is kept with the booking.")
    booking = get_booking(session, booking_id, lock=True)
    _require_state(booking, (BookingStatus.PENDING, BookingStatus.CONFIRMED), "cancelled")
    before = _snapshot(booking)
    fee, refund = cancellation_terms(booking, now, policy)
    booking.status = BookingStatus.CANCELLED
    booking.cancel_reason = reason.strip()[:500]
    booking.cancelled_at = now
    booking.cancellation_fee, booking.refund_due = fee, refund
    booking.updated_at = now
    promotions.release(session, booking.id)
    session.flush()
    audit.record(session, actor, "booking.cancelled", "booking", booking.id, before, _snapshot(booking))
    _event(session, booking, "booking.cancelled", refund_due=str(refund), cancellation_fee=str(fee))
    return booking


def change_booking(session: Session, actor: Actor, booking_id: int, *, vehicle_id: int | None = None,
                   pickup_at: datetime | None = None, dropoff_at: datetime | None = None,
                   now: datetime | None = None) -> Booking:
    """Move a pending or confirmed booking to other dates or another car, re-checked and re-priced atomically."""
    require_role(actor, UserRole.DESK_AGENT, doing="change bookings")
    now = now or datetime.now(UTC)
    booking = get_booking(session, booking_id, lock=True)
    _require_state(booking, (BookingStatus.PENDING, BookingStatus.CONFIRMED), "changed")
    new_vehicle = vehicle_id or booking.vehicle_id
    new_pickup, new_dropoff = pickup_at or booking.pickup_at, dropoff_at or booking.dropoff_at
    _check_times(new_pickup, new_dropoff, now)
    availability.check_opening_hours(session, booking.pickup_location_id, booking.dropoff_location_id, new_pickup,
                                     new_dropoff)
    reason = availability.unavailable_reason(session, new_vehicle, booking.pickup_location_id,
                                             booking.dropoff_location_id, new_pickup, new_dropoff,
                                             ignore_booking_id=booking.id, lock=True)
    if reason:
        raise Conflict(reason)
    redeemed = promotions.redemption_of(session, booking.id)
    price = pricing.quote(session, new_vehicle, booking.pickup_location_id, booking.dropoff_location_id, new_pickup,
                          new_dropoff, tuple(booking.extras), customer_id=booking.user_id,
                          promotion=redeemed[1] if redeemed else None)
    before = _snapshot(booking)
    try:
        with session.begin_nested():
            booking.vehicle_id, booking.pickup_at, booking.dropoff_at = new_vehicle, new_pickup, new_dropoff
            booking.vehicle_type_id = session.execute(
                text("SELECT vehicle_type_id FROM vehicles WHERE id = :v"), {"v": new_vehicle}).scalar_one()
            booking.total_price, booking.price_breakdown = price.total, price.as_breakdown()
            booking.updated_at = now
            session.flush()
            if redeemed:
                promotions.reprice(session, booking.id, price.discount if price.promotion else None)
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) == "23P01":
            session.refresh(booking)
            raise Conflict(_clash_message(session, new_vehicle, booking.pickup_location_id, new_pickup,
                                          new_dropoff)) from None
        raise
    audit.record(session, actor, "booking.changed", "booking", booking.id, before, _snapshot(booking))
    _event(session, booking, "booking.changed", total_price=str(booking.total_price))
    return booking


# --- scheduled jobs --------------------------------------------------------------------------------------------

def expire_holds(session: Session, *, now: datetime | None = None) -> int:
    """Release pending bookings whose hold has run out; returns how many."""
    now = now or datetime.now(UTC)
    expired = session.scalars(select(Booking).where(Booking.status == BookingStatus.PENDING,
                                                    Booking.hold_expires_at < now)
                              .with_for_update(skip_locked=True)).all()
    system = Actor(None, "job:expire-holds", UserRole.ADMIN, "scheduled job")
    for booking in expired:
        before = _snapshot(booking)
        booking.status, booking.cancel_reason, booking.cancelled_at = (BookingStatus.CANCELLED,
                                                                       "hold expired unconfirmed", now)
        booking.cancellation_fee, booking.refund_due = Decimal("0.00"), Decimal("0.00")
        promotions.release(session, booking.id)
        audit.record(session, system, "booking.hold_expired", "booking", booking.id, before, _snapshot(booking))
        _event(session, booking, "booking.hold_expired")
    session.flush()
    return len(expired)


def mark_no_shows(session: Session, *, now: datetime | None = None, policy: Policy | None = None) -> int:
    """Confirmed bookings not picked up within the grace period become no-shows; returns how many."""
    policy = policy or Policy.from_environment()
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(minutes=policy.no_show_grace_minutes)
    late = session.scalars(select(Booking).where(Booking.status == BookingStatus.CONFIRMED,
                                                 Booking.pickup_at < cutoff)
                           .with_for_update(skip_locked=True)).all()
    system = Actor(None, "job:no-shows", UserRole.ADMIN, "scheduled job")
    for booking in late:
        before = _snapshot(booking)
        booking.status = BookingStatus.NO_SHOW
        booking.updated_at = now
        audit.record(session, system, "booking.no_show", "booking", booking.id, before, _snapshot(booking))
        _event(session, booking, "booking.no_show")
    session.flush()
    return len(late)
