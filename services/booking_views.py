"""Read-only views of bookings for the desk screens: search, one booking in full, its history, previews.

Nothing here writes. The views carry what a person needs to read a booking (names, the car, the branches with their
time zones, the frozen price lines) so that screens and the rental agreement never go back to the database.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.models import UserRole
from db.queries import result_frame
from services import audit, bookings, customers
from services.actors import Actor, require_role
from services.bookings import Policy, ReturnCharges
from services.errors import InvalidInput, NotFound
from services.pricing import QuoteLine

STATUS_LABELS = {"pending": "Pending (held)", "confirmed": "Confirmed", "picked_up": "Picked up",
                 "completed": "Completed", "cancelled": "Cancelled", "no_show": "No-show"}
PAYMENT_LABELS = {"unpaid": "unpaid", "due": "due at the desk", "pending": "payment pending", "paid": "paid",
                  "failed": "payment failed", "refunded": "refunded", "partially_refunded": "partly refunded",
                  "disputed": "disputed"}
ACTION_LABELS = {"booking.created": "Held", "booking.confirmed": "Confirmed", "booking.checked_out": "Keys handed over",
                 "booking.checked_in": "Returned", "booking.cancelled": "Cancelled", "booking.changed": "Changed",
                 "booking.hold_expired": "Hold expired", "booking.no_show": "No-show"}
CREATED_FIELDS = ("status", "total_price", "extras", "payment_status")
CURRENCY_SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$"}
SEARCH_LIMIT = 200
_PLATE = re.compile(r"[^A-Z0-9]")


def format_money(amount: Decimal | int | str | None, currency: str = "GBP") -> str:
    """'£1,234.50' (or '1,234.50 CHF' for a currency without a symbol here); '—' for nothing."""
    if amount is None:
        return "—"
    value = f"{abs(Decimal(amount)):,.2f}"
    sign = "-" if Decimal(amount) < 0 else ""
    symbol = CURRENCY_SYMBOLS.get(currency.strip().upper())
    return f"{sign}{symbol}{value}" if symbol else f"{sign}{value} {currency}"


def local_time(at: datetime | None, zone: str, *, with_zone: bool = False) -> str:
    """'Mon 6 May 2030 10:00' in the branch's own time zone (with its abbreviation when asked)."""
    if at is None:
        return "—"
    local = at.astimezone(ZoneInfo(zone))
    said = f"{local:%a} {local.day} {local:%b %Y %H:%M}"
    return f"{said} {local.tzname()}" if with_zone else said


@dataclass(frozen=True)
class Branch:
    id: int
    code: str
    name: str
    address: str
    city: str
    phone: str
    timezone: str


@dataclass(frozen=True)
class BookingView:
    """One booking as people read it: who, which car, where and when (aware UTC; show in the branch's zone)."""

    id: int
    reference: str
    status: str
    payment_status: str
    channel: str
    customer_id: int
    customer_name: str
    customer_email: str
    customer_phone: str | None
    customer_born: date | None
    licence_masked: str | None
    licence_country: str | None
    licence_expiry: date | None
    vehicle_id: int
    plate: str
    make: str
    model: str
    year: int
    vehicle_type: str  # its name, e.g. 'Compact'
    vehicle_type_code: str
    vehicle_odometer_km: int
    vehicle_fuel_level: int
    vehicle_status: str
    pickup: Branch
    dropoff: Branch
    pickup_at: datetime
    dropoff_at: datetime
    currency: str
    days: int | None
    daily_rate: Decimal | None
    lines: tuple[QuoteLine, ...]
    total: Decimal
    vat_included: Decimal | None
    deposit: Decimal
    extras: tuple[str, ...]
    created_at: datetime
    created_by: str | None
    hold_expires_at: datetime | None
    confirmed_at: datetime | None
    picked_up_at: datetime | None
    odometer_out_km: int | None
    fuel_out: int | None
    checkout_notes: str | None
    actual_return_at: datetime | None
    odometer_in_km: int | None
    fuel_in: int | None
    late_fee: Decimal | None
    fuel_charge: Decimal | None
    damage_charge: Decimal | None
    damage_reported: bool
    checkin_notes: str | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    cancellation_fee: Decimal | None
    refund_due: Decimal | None

    @property
    def car(self) -> str:
        return f"{self.make} {self.model} · {self.plate}"

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def payment_label(self) -> str:
        return PAYMENT_LABELS.get(self.payment_status, self.payment_status)

    @property
    def extra_charges(self) -> Decimal:
        return sum((c or Decimal("0") for c in (self.late_fee, self.fuel_charge, self.damage_charge)), Decimal("0.00"))

    def money(self, amount: Decimal | None) -> str:
        return format_money(amount, self.currency)

    def pickup_local(self, *, with_zone: bool = False) -> str:
        return local_time(self.pickup_at, self.pickup.timezone, with_zone=with_zone)

    def dropoff_local(self, *, with_zone: bool = False) -> str:
        return local_time(self.dropoff_at, self.dropoff.timezone, with_zone=with_zone)


# --- one booking ------------------------------------------------------------------------------------------------------

_DETAIL = """
    SELECT b.*, v.license_plate AS plate, v.make, v.model, v.year, v.odometer_km AS vehicle_odometer_km,
           v.fuel_level AS vehicle_fuel_level, v.status::text AS vehicle_status, t.name AS vehicle_type,
           t.code AS vehicle_type_code, t.deposit_amount, creator.email AS created_by_email,
           p.code AS p_code, p.name AS p_name, p.address AS p_address, p.city AS p_city, p.contact_phone AS p_phone,
           p.timezone AS p_timezone,
           d.code AS d_code, d.name AS d_name, d.address AS d_address, d.city AS d_city, d.contact_phone AS d_phone,
           d.timezone AS d_timezone
    FROM bookings b
    JOIN vehicles v ON v.id = b.vehicle_id
    JOIN vehicle_types t ON t.id = b.vehicle_type_id
    JOIN locations p ON p.id = b.pickup_location_id
    JOIN locations d ON d.id = b.dropoff_location_id
    LEFT JOIN users creator ON creator.id = b.created_by
    WHERE b.id = :id
"""


def booking_detail(session: Session, actor: Actor, booking_id: int) -> BookingView:
    """The booking in full, with the driver (licence masked), the car and both branches."""
    require_role(actor, UserRole.DESK_AGENT, doing="look up bookings")
    row = session.execute(text(_DETAIL), {"id": int(booking_id)}).mappings().first()
    if row is None:
        raise NotFound(f"There is no booking {booking_id}; search by reference, plate or customer.")
    driver = customers.get_customer(session, actor, row["user_id"])
    breakdown = row["price_breakdown"] or {}
    lines = tuple(QuoteLine(line.get("code", ""), line.get("label", ""), Decimal(line["amount"]))
                  for line in breakdown.get("lines", []))
    return BookingView(
        id=row["id"], reference=row["reference"], status=row["status"], payment_status=row["payment_status"],
        channel=row["channel"], customer_id=driver.id, customer_name=driver.full_name,
        customer_email=driver.email, customer_phone=driver.phone, customer_born=driver.date_of_birth,
        licence_masked=driver.licence_masked, licence_country=driver.licence_country,
        licence_expiry=driver.licence_expiry, vehicle_id=row["vehicle_id"], plate=row["plate"], make=row["make"],
        model=row["model"], year=row["year"], vehicle_type=row["vehicle_type"],
        vehicle_type_code=row["vehicle_type_code"], vehicle_odometer_km=row["vehicle_odometer_km"],
        vehicle_fuel_level=row["vehicle_fuel_level"], vehicle_status=row["vehicle_status"],
        pickup=_branch(row, "p", row["pickup_location_id"]), dropoff=_branch(row, "d", row["dropoff_location_id"]),
        pickup_at=row["pickup_at"], dropoff_at=row["dropoff_at"], currency=row["currency"].strip(),
        days=breakdown.get("days"), daily_rate=_decimal(breakdown.get("daily_rate")), lines=lines,
        total=row["total_price"], vat_included=_decimal(breakdown.get("vat_included")),
        deposit=row["deposit_amount"], extras=tuple(row["extras"] or ()), created_at=row["created_at"],
        created_by=row["created_by_email"], hold_expires_at=row["hold_expires_at"],
        confirmed_at=row["confirmed_at"], picked_up_at=row["picked_up_at"], odometer_out_km=row["odometer_out_km"],
        fuel_out=row["fuel_out"], checkout_notes=row["checkout_notes"], actual_return_at=row["actual_return_at"],
        odometer_in_km=row["odometer_in_km"], fuel_in=row["fuel_in"], late_fee=row["late_fee"],
        fuel_charge=row["fuel_charge"], damage_charge=row["damage_charge"],
        damage_reported=bool(row["damage_reported"]), checkin_notes=row["checkin_notes"],
        cancelled_at=row["cancelled_at"], cancel_reason=row["cancel_reason"],
        cancellation_fee=row["cancellation_fee"], refund_due=row["refund_due"],
    )


def _branch(row: Any, prefix: str, location_id: int) -> Branch:
    return Branch(id=location_id, code=row[f"{prefix}_code"], name=row[f"{prefix}_name"],
                  address=row[f"{prefix}_address"], city=row[f"{prefix}_city"], phone=row[f"{prefix}_phone"],
                  timezone=row[f"{prefix}_timezone"])


def _decimal(value: Any) -> Decimal | None:
    return Decimal(str(value)) if value not in (None, "") else None


def booking_history(session: Session, actor: Actor, booking_id: int) -> pd.DataFrame:
    """What happened to the booking, oldest first: at, actor, action (in words), changes (in words)."""
    require_role(actor, UserRole.DESK_AGENT, doing="look up bookings")
    entries = audit.search(session, audit.AuditQuery(entity_type="booking", entity_id=str(int(booking_id)),
                                                     limit=1000))
    entries = entries.iloc[::-1].reset_index(drop=True)
    return pd.DataFrame({
        "at": entries["at"], "actor": entries["actor"],
        "action": entries["action"].map(lambda a: ACTION_LABELS.get(a, a)),
        "changes": entries["changes"].map(describe_changes),
    }, columns=["at", "actor", "action", "changes"])


def describe_changes(changes: dict[str, Any] | None) -> str:
    """'status: pending → confirmed; payment_status: unpaid → due' (a note last)."""
    if not changes:
        return ""
    fields = {k: v for k, v in changes.items() if k != "_note"}
    if fields and all(isinstance(c, dict) and c.get("before") is None for c in fields.values()):
        changes = {k: v for k, v in changes.items() if k in CREATED_FIELDS or k == "_note"}  # a new booking
    parts = []
    for field, change in changes.items():
        if field == "_note":
            continue
        if isinstance(change, dict) and "after" in change:
            before = change.get("before")
            parts.append(f"{field}: {_short(before)} → {_short(change['after'])}" if before is not None
                         else f"{field}: {_short(change['after'])}")
        else:
            parts.append(f"{field}: changed")
    if changes.get("_note"):
        parts.append(f"note: {changes['_note']}")
    return "; ".join(parts)


def _short(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?([+-]\d\d:\d\d)?", value):
        return value[:16].replace("T", " ")
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value)


# --- finding bookings -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BookingSearch:
    """Filters of the bookings list; empty means no restriction. Dates are local days at the pick-up branch."""

    statuses: tuple[str, ...] = ()
    location_ids: tuple[int, ...] = ()  # pick-up or drop-off branch
    starts_from: date | None = None  # the rental overlaps these days
    ends_by: date | None = None
    customer: str = ""  # name or email, contains
    reference: str = ""  # reference or plate, starts with
    limit: int = SEARCH_LIMIT


def search_bookings(session: Session, actor: Actor, search: BookingSearch) -> pd.DataFrame:
    """Bookings matching the filters, by pick-up time: id, reference, status, customer, email, car, plate,
    pickup_branch, dropoff_branch, pickup_local, dropoff_local (wall-clock times of each branch), total, currency."""
    require_role(actor, UserRole.DESK_AGENT, doing="look up bookings")
    unknown = sorted(set(search.statuses) - set(STATUS_LABELS))
    if unknown:
        raise InvalidInput(f"Unknown booking status {', '.join(unknown)}; use {', '.join(STATUS_LABELS)}.")
    if search.starts_from and search.ends_by and search.ends_by < search.starts_from:
        raise InvalidInput("The end of the date range is before its start; swap the dates.")
    clauses, params = ["TRUE"], {"limit": max(1, min(int(search.limit), 2000))}
    if search.statuses:
        clauses.append("b.status::text = ANY(:statuses)")
        params["statuses"] = list(search.statuses)
    if search.location_ids:
        clauses.append("(b.pickup_location_id = ANY(:locations) OR b.dropoff_location_id = ANY(:locations))")
        params["locations"] = [int(i) for i in search.location_ids]
    if search.starts_from:
        clauses.append("b.dropoff_at >= (CAST(:starts_from AS date)::timestamp AT TIME ZONE p.timezone)")
        params["starts_from"] = search.starts_from
    if search.ends_by:
        clauses.append("b.pickup_at < ((CAST(:ends_by AS date) + 1)::timestamp AT TIME ZONE p.timezone)")
        params["ends_by"] = search.ends_by
    if who := " ".join(search.customer.split())[:200]:
        clauses.append("(lower(u.first_name || ' ' || u.last_name) LIKE :who ESCAPE '\\' "
                       "OR lower(u.email) LIKE :who ESCAPE '\\')")
        params["who"] = "%" + like_escape(who.lower()) + "%"
    if ref := _PLATE.sub("", search.reference.upper())[:20]:
        clauses.append("(b.reference LIKE :ref ESCAPE '\\' "
                       "OR regexp_replace(upper(v.license_plate), '[^A-Z0-9]', '', 'g') LIKE :ref ESCAPE '\\')")
        params["ref"] = like_escape(ref) + "%"
    result = session.execute(text(f"""
        SELECT b.id, b.reference, b.status::text AS status, b.payment_status,
               u.first_name || ' ' || u.last_name AS customer, u.email,
               v.make || ' ' || v.model AS car, v.license_plate AS plate,
               p.code AS pickup_branch, d.code AS dropoff_branch,
               (b.pickup_at AT TIME ZONE p.timezone) AS pickup_local,
               (b.dropoff_at AT TIME ZONE d.timezone) AS dropoff_local,
               b.total_price AS total, b.currency
        FROM bookings b
        JOIN users u ON u.id = b.user_id
        JOIN vehicles v ON v.id = b.vehicle_id
        JOIN locations p ON p.id = b.pickup_location_id
        JOIN locations d ON d.id = b.dropoff_location_id
        WHERE {' AND '.join(clauses)}
        ORDER BY b.pickup_at, b.id
        LIMIT :limit
    """), params)
    return result_frame(result)


def find_booking(session: Session, actor: Actor, reference_or_plate: str) -> BookingView:
    """A booking by its reference, or the rental a car is out on by its plate; NotFound says which was tried."""
    require_role(actor, UserRole.DESK_AGENT, doing="look up bookings")
    typed = " ".join(str(reference_or_plate or "").split())[:40]
    if not typed:
        raise InvalidInput("Type the booking reference (e.g. FDK3M9QZ) or the car's number plate.")
    compact = _PLATE.sub("", typed.upper())
    booking_id = session.execute(text("SELECT id FROM bookings WHERE reference = :r"), {"r": compact}).scalar()
    if booking_id is None:
        booking_id = _rental_of_plate(session, typed, compact)
    return booking_detail(session, actor, booking_id)


def _rental_of_plate(session: Session, typed: str, compact: str) -> int:
    car = session.execute(text("""
        SELECT v.id, v.license_plate, v.status::text AS status, l.name AS branch
        FROM vehicles v LEFT JOIN locations l ON l.id = v.current_location_id
        WHERE regexp_replace(upper(v.license_plate), '[^A-Z0-9]', '', 'g') = :plate
    """), {"plate": compact}).mappings().first()
    if car is None:
        raise NotFound(f"No booking has the reference {typed!r} and no car has that plate; check it with the "
                       "customer, or find the booking on the Bookings page by name.")
    booking_id = session.execute(text("""
        SELECT id FROM bookings WHERE vehicle_id = :v AND status = 'picked_up' ORDER BY pickup_at DESC LIMIT 1
    """), {"v": car["id"]}).scalar()
    if booking_id is None:
        where = f" at {car['branch']}" if car["branch"] else ""
        raise NotFound(f"{car['license_plate']} is not out on a rental (it is {car['status'].replace('_', ' ')}"
                       f"{where}); search by the booking reference instead.")
    return booking_id


def last_pickup_branch(session: Session, staff_id: int | None) -> int | None:
    """The pick-up branch of the last booking this staff member made, to start the next one there."""
    if staff_id is None:
        return None
    return session.execute(text("""
        SELECT pickup_location_id FROM bookings WHERE created_by = :who ORDER BY created_at DESC, id DESC LIMIT 1
    """), {"who": staff_id}).scalar()


# --- what an action would do, before it is done -----------------------------------------------------------------------

def cancellation_preview(session: Session, booking_id: int, *, now: datetime | None = None,
                         policy: Policy | None = None) -> tuple[Decimal, Decimal]:
    """(fee, refund due) if the booking were cancelled now, by the cancellation policy."""
    booking = bookings.get_booking(session, booking_id)
    return bookings.cancellation_terms(booking, now or datetime.now(UTC), policy or Policy.from_environment())


def return_preview(session: Session, actor: Actor, booking_id: int, *, odometer_km: int, fuel_level: int,
                   returned_at: datetime, damaged: bool = False, damage_charge: Decimal = Decimal("0"),
                   notes: str = "", now: datetime | None = None, policy: Policy | None = None) -> ReturnCharges:
    """The charges the check-in would make, with the same checks: the check-in itself, in a savepoint that is
    rolled back, so nothing of it stays (booking, car, audit entry, event)."""
    savepoint = session.begin_nested()
    try:
        _, charges = bookings.check_in(session, actor, booking_id, odometer_km=odometer_km, fuel_level=fuel_level,
                                       returned_at=returned_at, damaged=damaged, damage_charge=damage_charge,
                                       notes=notes, now=now, policy=policy)
    finally:
        savepoint.rollback()
    return charges


def charges_of(view: BookingView) -> ReturnCharges | None:
    """The return charges of a completed booking, to explain them again."""
    if view.status != "completed" or view.actual_return_at is None:
        return None
    zero = Decimal("0.00")
    late = view.actual_return_at - view.dropoff_at
    late_hours = math.ceil(late.total_seconds() / 3600) if (view.late_fee or zero) > 0 else 0
    return ReturnCharges(late_hours, view.late_fee or zero, max(0, (view.fuel_out or 0) - (view.fuel_in or 0)),
                         view.fuel_charge or zero, view.damage_charge or zero)


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
