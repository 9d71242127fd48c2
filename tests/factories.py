"""Small builders of valid rows for tests (ORM, flushed, never committed)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy.orm import Session

from db.models import (
    Booking,
    BookingStatus,
    Location,
    MaintenanceBlock,
    User,
    UserRole,
    Vehicle,
    VehicleStatus,
    VehicleType,
)

_seq = itertools.count(1)
WEEK_HOURS = {day: [["07:00", "21:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def point(lat: float, lon: float):
    return from_shape(Point(lon, lat), srid=4326)


def vehicle_type(session: Session, **overrides) -> VehicleType:
    n = next(_seq)
    values = dict(code=f"type_{n}", name=f"Type {n}", rank=1, seats=5, transmission="manual", fuel="petrol",
                  base_daily_rate=Decimal("40.00"), deposit_amount=Decimal("200.00"), currency="GBP",
                  min_driver_age=21, service_interval_km=15000, service_interval_days=365)
    values.update(overrides)
    row = VehicleType(**values)
    session.add(row)
    session.flush()
    return row


def location(session: Session, lat: float = 51.5308, lon: float = -0.1238, **overrides) -> Location:
    n = next(_seq)
    values = dict(code=f"T{n:04d}", name=f"Test branch {n}", kind="city", address=f"{n} Test Street", city="London",
                  country="GB", geog=point(lat, lon), operating_hours=WEEK_HOURS, contact_phone="+44 20 7946 0000",
                  timezone="Europe/London", parking_capacity=50, currency="GBP")
    values.update(overrides)
    row = Location(**values)
    session.add(row)
    session.flush()
    return row


def vin(n: int) -> str:
    digits = []
    for _ in range(17):
        n, r = divmod(n, len(VIN_CHARS))
        digits.append(VIN_CHARS[r])
    return "".join(reversed(digits))


def vehicle(session: Session, vtype: VehicleType, at: Location | None, **overrides) -> Vehicle:
    n = next(_seq)
    values = dict(vin=vin(10_000_000 + n), license_plate=f"TS{n:05d}", make="Ford", model="Fiesta", year=2023,
                  vehicle_type_id=vtype.id, current_location_id=at.id if at else None,
                  status=VehicleStatus.AVAILABLE, daily_rate=vtype.base_daily_rate, currency="GBP",
                  odometer_km=12000, fuel_level=100)
    values.update(overrides)
    row = Vehicle(**values)
    session.add(row)
    session.flush()
    return row


def customer(session: Session, **overrides) -> User:
    n = next(_seq)
    values = dict(email=f"driver{n}@example.test", first_name="Dana", last_name=f"Driver{n}", role=UserRole.CUSTOMER)
    values.update(overrides)
    row = User(**values)
    session.add(row)
    session.flush()
    return row


def booking(session: Session, car: Vehicle, driver: User, start: datetime, end: datetime, **overrides) -> Booking:
    n = next(_seq)
    values = dict(reference=f"T{n:07d}", user_id=driver.id, vehicle_id=car.id, vehicle_type_id=car.vehicle_type_id,
                  pickup_location_id=car.current_location_id, dropoff_location_id=car.current_location_id,
                  pickup_at=start, dropoff_at=end, turnaround_minutes=60, total_price=Decimal("120.00"),
                  currency="GBP", price_breakdown={}, status=BookingStatus.CONFIRMED, channel="desk",
                  hold_expires_at=None)
    values.update(overrides)
    if values["status"] == BookingStatus.PENDING and values["hold_expires_at"] is None:
        values["hold_expires_at"] = datetime.now(UTC) + timedelta(minutes=15)
    row = Booking(**values)
    session.add(row)
    session.flush()
    return row


def maintenance(session: Session, car: Vehicle, start: datetime, end: datetime, **overrides) -> MaintenanceBlock:
    from sqlalchemy.dialects.postgresql import Range

    row = MaintenanceBlock(vehicle_id=car.id, period=Range(start, end, bounds="[)"), reason="Service", **overrides)
    session.add(row)
    session.flush()
    return row


def desk_policy():
    """The booking policy with its documented defaults, fixed for tests whatever the environment says."""
    from services.bookings import Policy

    return Policy(hold_minutes=15, no_show_grace_minutes=120, free_cancellation_hours=48,
                  late_cancellation_fee_pct=Decimal("50"), late_return_grace_minutes=29,
                  late_fee_per_hour_pct=Decimal("25"), fuel_price_per_percent=Decimal("0.90"),
                  early_checkout_minutes=60)
