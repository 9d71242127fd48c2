"""The booking lifecycle on the real database: holds, confirmation, hand-over, return, cancellation, jobs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from db.models import AuditEntry, BookingStatus, DomainEvent, UserRole, VehicleStatus
from services import bookings
from services.actors import Actor, Forbidden
from services.bookings import InvalidTransition
from services.customers import create_customer
from services.errors import Conflict, InvalidInput, NotFound
from tests import factories as f

NOW = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)
PICKUP = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in London
DROPOFF = PICKUP + timedelta(days=3)
AGENT = Actor(None, "desk@example.test", UserRole.DESK_AGENT, "Desk")
POLICY = f.desk_policy()


@pytest.fixture(autouse=True)
def turnaround(monkeypatch):
    monkeypatch.setenv("FLEETDESK_TURNAROUND_MINUTES", "60")  # the encryption key is the run's (tests/conftest.py)


@pytest.fixture
def desk(session):
    vtype = f.vehicle_type(session, code="compact_t", min_driver_age=21)
    branch = f.location(session)
    other = f.location(session, lat=51.4700, lon=-0.4543)  # Heathrow, ~25 km away
    car = f.vehicle(session, vtype, branch, daily_rate=Decimal("40.00"), odometer_km=12_000, fuel_level=100,
                    last_service_at=NOW - timedelta(days=30), last_service_km=11_000)
    driver = create_customer(session, AGENT, email="dana@example.test", first_name="Dana", last_name="Driver",
                             date_of_birth=date(1990, 1, 1), licence_number="DRIVE901019DD9AB",
                             licence_country="GB", licence_expiry=date(2035, 1, 1))
    return {"car": car, "branch": branch, "other": other, "driver": driver.id, "type": vtype}


def book(session, desk, **overrides):
    values = dict(customer_id=desk["driver"], vehicle_id=desk["car"].id, pickup_location_id=desk["branch"].id,
                  dropoff_location_id=desk["branch"].id, pickup_at=PICKUP, dropoff_at=DROPOFF, now=NOW, policy=POLICY)
    values.update(overrides)
    return bookings.create_booking(session, AGENT, **values).booking


def test_a_booking_starts_as_a_hold_with_its_price_frozen(session, desk):
    booking = book(session, desk, extras=["child_seat", "cdw"])
    assert booking.status == BookingStatus.PENDING
    assert booking.hold_expires_at == NOW + timedelta(minutes=15)
    assert booking.total_price == Decimal("120.00") + Decimal("24.00") + Decimal("45.00")
    lines = {line["code"]: line["amount"] for line in booking.price_breakdown["lines"]}
    assert lines == {"base": "120.00", "child_seat": "24.00", "cdw": "45.00"}
    assert booking.reference.startswith("FD") and len(booking.reference) == 8
    events = session.scalars(select(DomainEvent.event_type).where(DomainEvent.aggregate_type == "booking",
                                                                  DomainEvent.aggregate_id == str(booking.id))).all()
    assert events == ["booking.created"]
    assert session.scalar(select(AuditEntry.action).where(AuditEntry.entity_type == "booking",
                                                          AuditEntry.entity_id == str(booking.id))) == "booking.created"


def test_a_one_way_booking_pays_a_one_way_fee(session, desk):
    booking = book(session, desk, dropoff_location_id=desk["other"].id)
    codes = [line["code"] for line in booking.price_breakdown["lines"]]
    assert codes == ["base", "one_way"]


def test_an_overlapping_booking_of_the_same_car_is_refused_with_the_period(session, desk):
    book(session, desk)
    with pytest.raises(Conflict, match=r"taken by booking .* \(turnaround included\); pick another car"):
        book(session, desk, pickup_at=PICKUP + timedelta(days=1), dropoff_at=DROPOFF + timedelta(days=1))


def test_the_whole_rental_from_hold_to_return(session, desk):
    booking = book(session, desk)
    bookings.confirm_booking(session, AGENT, booking.id, payment="due", now=NOW)
    assert booking.status == BookingStatus.CONFIRMED and booking.payment_status == "due"
    bookings.check_out(session, AGENT, booking.id, odometer_km=12_010, fuel_level=100, licence_checked=True,
                       notes="scratch on rear bumper", now=PICKUP, policy=POLICY)
    car = desk["car"]
    session.refresh(car)
    assert (car.status, car.current_location_id) == (VehicleStatus.RENTED, None)
    returned = DROPOFF + timedelta(hours=2, minutes=10)
    done, charges = bookings.check_in(session, AGENT, booking.id, odometer_km=12_400, fuel_level=75,
                                      returned_at=returned, now=returned + timedelta(minutes=5), policy=POLICY)
    assert done.status == BookingStatus.COMPLETED
    assert (charges.late_hours, charges.late_fee) == (3, Decimal("30.00"))  # 3 started hours × 25% of £40
    assert (charges.fuel_short_pct, charges.fuel_charge) == (25, Decimal("22.50"))
    session.refresh(car)
    assert (car.status, car.current_location_id, car.odometer_km) == (VehicleStatus.AVAILABLE, desk["branch"].id,
                                                                      12_400)
    actions = session.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "booking",
                                                              AuditEntry.entity_id == str(booking.id))
                              .order_by(AuditEntry.id)).all()
    assert actions == ["booking.created", "booking.confirmed", "booking.checked_out", "booking.checked_in"]


def test_a_damaged_return_sends_the_car_to_maintenance(session, desk):
    booking = book(session, desk)
    bookings.confirm_booking(session, AGENT, booking.id, now=NOW)
    bookings.check_out(session, AGENT, booking.id, odometer_km=12_000, fuel_level=100, licence_checked=True,
                       now=PICKUP, policy=POLICY)
    with pytest.raises(InvalidInput, match="Describe the damage"):
        bookings.check_in(session, AGENT, booking.id, odometer_km=12_100, fuel_level=100, damaged=True,
                          returned_at=DROPOFF, now=DROPOFF, policy=POLICY)
    bookings.check_in(session, AGENT, booking.id, odometer_km=12_100, fuel_level=100, damaged=True,
                      notes="dent in driver's door", damage_charge=Decimal("150"), returned_at=DROPOFF,
                      now=DROPOFF, policy=POLICY)
    session.refresh(desk["car"])
    assert desk["car"].status == VehicleStatus.MAINTENANCE


def test_a_car_due_for_service_goes_to_maintenance_on_return(session, desk):
    booking = book(session, desk)
    bookings.confirm_booking(session, AGENT, booking.id, now=NOW)
    bookings.check_out(session, AGENT, booking.id, odometer_km=12_000, fuel_level=100, licence_checked=True,
                       now=PICKUP, policy=POLICY)
    bookings.check_in(session, AGENT, booking.id, odometer_km=30_000, fuel_level=100, returned_at=DROPOFF,
                      now=DROPOFF, policy=POLICY)  # past the type's 15,000 km interval
    session.refresh(desk["car"])
    assert desk["car"].status == VehicleStatus.MAINTENANCE


@pytest.mark.parametrize("when, fee, refund", [
    (PICKUP - timedelta(days=3), "0.00", "120.00"),
    (PICKUP - timedelta(hours=10), "60.00", "60.00"),
])
def test_cancellation_follows_the_policy(session, desk, when, fee, refund):
    booking = book(session, desk)
    bookings.confirm_booking(session, AGENT, booking.id, payment="paid", now=NOW)
    bookings.cancel_booking(session, AGENT, booking.id, reason="plans changed", now=when, policy=POLICY)
    assert booking.status == BookingStatus.CANCELLED
    assert (str(booking.cancellation_fee), str(booking.refund_due)) == (fee, refund)
    book(session, desk)  # the car is free again


def test_transitions_that_make_no_sense_name_the_current_state(session, desk):
    booking = book(session, desk)
    with pytest.raises(InvalidTransition, match="is pending; only a confirmed booking can be checked out"):
        bookings.check_out(session, AGENT, booking.id, odometer_km=12_000, fuel_level=100, licence_checked=True,
                           now=PICKUP, policy=POLICY)
    bookings.confirm_booking(session, AGENT, booking.id, now=NOW)
    bookings.check_out(session, AGENT, booking.id, odometer_km=12_000, fuel_level=100, licence_checked=True,
                       now=PICKUP, policy=POLICY)
    with pytest.raises(InvalidTransition, match="is picked up; only a pending or confirmed booking can be cancelled"):
        bookings.cancel_booking(session, AGENT, booking.id, reason="x", now=PICKUP, policy=POLICY)


def test_confirming_twice_changes_nothing_and_an_expired_hold_cannot_be_confirmed(session, desk):
    booking = book(session, desk)
    bookings.confirm_booking(session, AGENT, booking.id, now=NOW)
    bookings.confirm_booking(session, AGENT, booking.id, now=NOW)
    assert session.scalar(text("SELECT count(*) FROM audit_log WHERE entity_id = :id AND action = 'booking.confirmed'"),
                          {"id": str(booking.id)}) == 1
    late = book(session, desk, pickup_at=PICKUP + timedelta(days=10), dropoff_at=DROPOFF + timedelta(days=10))
    with pytest.raises(InvalidTransition, match="hold on booking .* expired"):
        bookings.confirm_booking(session, AGENT, late.id, now=NOW + timedelta(minutes=20))


def test_the_same_idempotency_key_returns_the_same_booking(session, desk):
    first = bookings.create_booking(session, AGENT, customer_id=desk["driver"], vehicle_id=desk["car"].id,
                                    pickup_location_id=desk["branch"].id, dropoff_location_id=desk["branch"].id,
                                    pickup_at=PICKUP, dropoff_at=DROPOFF, idempotency_key="click-1", now=NOW)
    again = bookings.create_booking(session, AGENT, customer_id=desk["driver"], vehicle_id=desk["car"].id,
                                    pickup_location_id=desk["branch"].id, dropoff_location_id=desk["branch"].id,
                                    pickup_at=PICKUP, dropoff_at=DROPOFF, idempotency_key="click-1", now=NOW)
    assert (first.created, again.created) == (True, False)
    assert first.booking.id == again.booking.id
    with pytest.raises(InvalidInput, match="already used for a different booking request"):
        bookings.create_booking(session, AGENT, customer_id=desk["driver"], vehicle_id=desk["car"].id,
                                pickup_location_id=desk["branch"].id, dropoff_location_id=desk["branch"].id,
                                pickup_at=PICKUP, dropoff_at=DROPOFF + timedelta(days=1), idempotency_key="click-1",
                                now=NOW)


@pytest.mark.parametrize("changes, message", [
    ({"pickup_at": NOW - timedelta(days=1), "dropoff_at": NOW + timedelta(days=1)}, "is in the past"),
    ({"dropoff_at": PICKUP - timedelta(hours=1)}, "drop-off must be after the pick-up"),
    ({"pickup_at": datetime(2030, 5, 6, 2, 0, tzinfo=UTC)}, "closed"),
    ({"dropoff_at": PICKUP + timedelta(days=400)}, "at most"),
    ({"extras": ["jetpack"]}, "Unknown extra jetpack"),
])
def test_bad_requests_get_a_specific_message(session, desk, changes, message):
    with pytest.raises(InvalidInput, match=message):
        book(session, desk, **changes)


def test_an_ineligible_driver_is_told_why(session, desk):
    young = create_customer(session, AGENT, email="young@example.test", first_name="Yan", last_name="Young",
                            date_of_birth=date(2009, 6, 1), licence_number="YOUNG9901019YY9AB",
                            licence_country="GB", licence_expiry=date(2030, 5, 7))
    with pytest.raises(InvalidInput, match="at least 21") as caught:
        book(session, desk, customer_id=young.id)
    assert "expire" in str(caught.value)


def test_retired_and_maintenance_cars_cannot_be_booked(session, desk):
    desk["car"].status = VehicleStatus.RETIRED
    session.flush()
    with pytest.raises(Conflict, match="retired"):
        book(session, desk)
    desk["car"].status = VehicleStatus.AVAILABLE
    f.maintenance(session, desk["car"], PICKUP - timedelta(days=1), PICKUP + timedelta(days=1))
    with pytest.raises(Conflict, match="maintenance"):
        book(session, desk)


def test_unknown_references_and_ids_are_named(session, desk):
    with pytest.raises(NotFound, match="no booking with reference 'FDNOPE'"):
        bookings.find_by_reference(session, "fd nope")
    with pytest.raises(NotFound, match="no customer"):
        book(session, desk, customer_id=999_999)


def test_a_change_of_dates_is_rechecked_and_repriced(session, desk):
    first = book(session, desk)
    second = book(session, desk, pickup_at=PICKUP + timedelta(days=5), dropoff_at=DROPOFF + timedelta(days=5))
    with pytest.raises(Conflict):
        bookings.change_booking(session, AGENT, second.id, pickup_at=DROPOFF, now=NOW)
    bookings.change_booking(session, AGENT, first.id, dropoff_at=DROPOFF + timedelta(days=1), now=NOW)
    assert first.total_price == Decimal("160.00")


def test_jobs_expire_holds_and_mark_no_shows(session, desk):
    held = book(session, desk)
    assert bookings.expire_holds(session, now=NOW + timedelta(minutes=16)) >= 1
    assert held.status == BookingStatus.CANCELLED and held.cancel_reason == "hold expired unconfirmed"
    again = book(session, desk)
    bookings.confirm_booking(session, AGENT, again.id, now=NOW)
    assert bookings.mark_no_shows(session, now=PICKUP + timedelta(minutes=60), policy=POLICY) == 0
    assert bookings.mark_no_shows(session, now=PICKUP + timedelta(minutes=121), policy=POLICY) >= 1
    assert again.status == BookingStatus.NO_SHOW


def test_only_desk_staff_book(session, desk):
    analyst = Actor(None, "p@example.test", UserRole.PRICING_ANALYST)
    with pytest.raises(Forbidden):
        bookings.create_booking(session, analyst, customer_id=desk["driver"], vehicle_id=desk["car"].id,
                                pickup_location_id=desk["branch"].id, dropoff_location_id=desk["branch"].id,
                                pickup_at=PICKUP, dropoff_at=DROPOFF, now=NOW)
