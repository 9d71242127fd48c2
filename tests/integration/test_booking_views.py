"""Read views of bookings on the real database: detail, history, search, look-ups and the previews."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from db.models import AuditEntry, Booking, BookingStatus, UserRole, Vehicle, VehicleStatus
from services import booking_views, bookings
from services.actors import Actor, Forbidden
from services.booking_views import BookingSearch
from services.customers import create_customer
from services.errors import InvalidInput, NotFound
from tests import factories as f

NOW = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)
PICKUP = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in London
DROPOFF = PICKUP + timedelta(days=3)
AGENT = Actor(None, "desk@example.test", UserRole.DESK_AGENT, "Desk")
ANALYST = Actor(None, "pricing@example.test", UserRole.PRICING_ANALYST, "Pricing")
POLICY = f.desk_policy()


@pytest.fixture(autouse=True)
def turnaround(monkeypatch):
    monkeypatch.setenv("FLEETDESK_TURNAROUND_MINUTES", "60")  # the encryption key is the run's (tests/conftest.py)


@pytest.fixture
def desk(session):
    vtype = f.vehicle_type(session, code="compact_v", name="Compact V", min_driver_age=21)
    branch = f.location(session, name="Views King's Cross")
    other = f.location(session, lat=51.4700, lon=-0.4543, name="Views Heathrow")
    car = f.vehicle(session, vtype, branch, daily_rate=Decimal("40.00"), make="Toyota", model="Yaris",
                    license_plate="VW30 ABC", odometer_km=12_000, fuel_level=100,
                    last_service_at=NOW - timedelta(days=30), last_service_km=11_000)
    driver = create_customer(session, AGENT, email="zoe.views@example.test", first_name="Zoë", last_name="Views",
                             date_of_birth=date(1990, 1, 1), licence_number="VIEWS901019ZV9AB",
                             licence_country="GB", licence_expiry=date(2035, 1, 1))
    return {"car": car, "branch": branch, "other": other, "driver": driver.id, "type": vtype}


def book(session, desk, **overrides) -> Booking:
    values = dict(customer_id=desk["driver"], vehicle_id=desk["car"].id, pickup_location_id=desk["branch"].id,
                  dropoff_location_id=desk["branch"].id, pickup_at=PICKUP, dropoff_at=DROPOFF, now=NOW,
                  policy=POLICY, extras=["child_seat"])
    values.update(overrides)
    booking = bookings.create_booking(session, AGENT, **values).booking
    bookings.confirm_booking(session, AGENT, booking.id, payment="due", now=NOW)
    return booking


def hand_over(session, booking: Booking) -> None:
    bookings.check_out(session, AGENT, booking.id, odometer_km=12_010, fuel_level=100, licence_checked=True,
                       notes="scratch on rear bumper", now=PICKUP, policy=POLICY)


def test_the_detail_names_the_driver_the_car_the_branches_and_the_frozen_price(session, desk):
    booking = book(session, desk)
    view = booking_views.booking_detail(session, AGENT, booking.id)
    assert (view.reference, view.status, view.payment_status) == (booking.reference, "confirmed", "due")
    assert view.customer_name == "Zoë Views" and view.licence_masked == "•••• V9AB"
    assert "VIEWS901019ZV9AB" not in repr(view)
    assert (view.plate, view.make, view.model, view.vehicle_type) == ("VW30 ABC", "Toyota", "Yaris", "Compact V")
    assert view.pickup.name == "Views King's Cross" and view.pickup.timezone == "Europe/London"
    assert [(line.code, line.amount) for line in view.lines] == [("base", Decimal("120.00")),
                                                                  ("child_seat", Decimal("24.00"))]
    assert view.total == Decimal("144.00") and view.vat_included == Decimal("24.00") and view.days == 3
    assert view.pickup_local(with_zone=True) == "Mon 6 May 2030 10:00 BST"
    assert view.money(view.total) == "£144.00"


def test_the_history_tells_the_story_in_order_and_in_words(session, desk):
    booking = book(session, desk)
    hand_over(session, booking)
    history = booking_views.booking_history(session, AGENT, booking.id)
    assert list(history["action"]) == ["Held", "Confirmed", "Keys handed over"]
    assert set(history["actor"]) == {"desk@example.test"}
    assert "status: pending → confirmed" in history["changes"][1]
    assert "payment_status: unpaid → due" in history["changes"][1]
    assert history["changes"][0].startswith("extras: child_seat")  # a new booking: only what matters
    assert "pickup_at" not in history["changes"][0]


def test_search_filters_by_status_branch_dates_customer_and_reference(session, desk):
    first = book(session, desk)
    one_way = book(session, desk, pickup_at=DROPOFF + timedelta(days=2), dropoff_at=DROPOFF + timedelta(days=4),
                   dropoff_location_id=desk["other"].id, extras=[])
    bookings.cancel_booking(session, AGENT, one_way.id, reason="plans changed", now=NOW, policy=POLICY)

    def refs(**filters) -> set[str]:
        found = booking_views.search_bookings(session, AGENT, BookingSearch(**filters))
        return set(found["reference"]) & {first.reference, one_way.reference}

    assert refs() == {first.reference, one_way.reference}
    assert refs(statuses=("cancelled",)) == {one_way.reference}
    assert refs(location_ids=(desk["other"].id,)) == {one_way.reference}  # its drop-off branch
    assert refs(starts_from=date(2030, 5, 9), ends_by=date(2030, 5, 9)) == {first.reference}  # ends on the 9th
    assert refs(starts_from=date(2030, 5, 10), ends_by=date(2030, 5, 30)) == {one_way.reference}
    assert refs(customer="zoë vi") == {first.reference, one_way.reference}
    assert refs(customer="ZOE.VIEWS@") == {first.reference, one_way.reference}
    assert refs(customer="nobody at all") == set()
    assert refs(reference=first.reference.lower()[:5]) >= {first.reference}
    assert refs(reference="vw30 a") == {first.reference, one_way.reference}  # plate, spaces and case ignored
    assert refs(customer="%", reference="_") == set()  # typed text is literal, never a pattern
    row = booking_views.search_bookings(session, AGENT, BookingSearch(reference=first.reference)).iloc[0]
    assert (row["customer"], row["pickup_branch"], str(row["pickup_local"])) == (
        "Zoë Views", desk["branch"].code, "2030-05-06 10:00:00")  # London wall-clock time


def test_search_refuses_nonsense_and_other_roles(session, desk):
    with pytest.raises(InvalidInput, match="Unknown booking status"):
        booking_views.search_bookings(session, AGENT, BookingSearch(statuses=("lost",)))
    with pytest.raises(InvalidInput, match="before its start"):
        booking_views.search_bookings(session, AGENT, BookingSearch(starts_from=date(2030, 5, 9),
                                                                    ends_by=date(2030, 5, 1)))
    with pytest.raises(Forbidden):
        booking_views.search_bookings(session, ANALYST, BookingSearch())
    with pytest.raises(Forbidden):
        booking_views.booking_detail(session, ANALYST, 1)


def test_a_rental_is_found_by_reference_or_by_the_plate_of_the_car_out_on_it(session, desk):
    booking = book(session, desk)
    spaced = " ".join(booking.reference.lower())
    assert booking_views.find_booking(session, AGENT, spaced).id == booking.id
    with pytest.raises(NotFound, match="VW30 ABC is not out on a rental \\(it is available at Views King's Cross"):
        booking_views.find_booking(session, AGENT, "vw30abc")
    hand_over(session, booking)
    assert booking_views.find_booking(session, AGENT, "vw30 abc").id == booking.id
    with pytest.raises(NotFound, match="No booking has the reference 'FDNOPE99' and no car has that plate"):
        booking_views.find_booking(session, AGENT, "FDNOPE99")
    with pytest.raises(InvalidInput, match="Type the booking reference"):
        booking_views.find_booking(session, AGENT, "   ")


def test_the_next_walk_in_starts_at_the_branch_of_the_agents_last_booking(session, desk):
    staff = f.customer(session, role=UserRole.DESK_AGENT, email="agent.views@example.test")
    agent = Actor(staff.id, staff.email, UserRole.DESK_AGENT, "Agent")
    assert booking_views.last_pickup_branch(session, staff.id) is None
    assert booking_views.last_pickup_branch(session, None) is None
    bookings.create_booking(session, agent, customer_id=desk["driver"], vehicle_id=desk["car"].id,
                            pickup_location_id=desk["branch"].id, dropoff_location_id=desk["branch"].id,
                            pickup_at=PICKUP, dropoff_at=DROPOFF, now=NOW, policy=POLICY)
    assert booking_views.last_pickup_branch(session, staff.id) == desk["branch"].id


def test_the_return_preview_charges_what_the_check_in_will_and_leaves_nothing_behind(session, desk):
    booking = book(session, desk)
    hand_over(session, booking)
    returned = DROPOFF + timedelta(hours=2, minutes=10)
    audit_rows = session.scalar(select(func.count()).select_from(AuditEntry))
    readings = dict(odometer_km=12_400, fuel_level=75, returned_at=returned, now=returned, policy=POLICY)
    preview = booking_views.return_preview(session, AGENT, booking.id, **readings)
    assert (preview.late_hours, preview.late_fee, preview.fuel_charge) == (3, Decimal("30.00"), Decimal("22.50"))
    session.expire_all()
    assert session.get(Booking, booking.id).status == BookingStatus.PICKED_UP
    assert session.get(Vehicle, desk["car"].id).status == VehicleStatus.RENTED
    assert session.scalar(select(func.count()).select_from(AuditEntry)) == audit_rows
    with pytest.raises(InvalidInput, match="read it again"):
        booking_views.return_preview(session, AGENT, booking.id, **{**readings, "odometer_km": 10})
    _, charges = bookings.check_in(session, AGENT, booking.id, **readings)
    assert charges == preview
    view = booking_views.booking_detail(session, AGENT, booking.id)
    assert booking_views.charges_of(view) == charges
    assert charges.explain()[0].startswith("Late return: 3 started hours")


def test_the_cancellation_preview_follows_the_policy(session, desk):
    booking = book(session, desk)
    assert booking_views.cancellation_preview(session, booking.id, now=NOW, policy=POLICY) == (
        Decimal("0.00"), Decimal("0.00"))
    late = PICKUP - timedelta(hours=2)
    assert booking_views.cancellation_preview(session, booking.id, now=late, policy=POLICY) == (
        Decimal("72.00"), Decimal("0.00"))


def test_money_and_times_read_as_people_write_them():
    assert booking_views.format_money(Decimal("1234.5"), "GBP") == "£1,234.50"
    assert booking_views.format_money(Decimal("10"), "CHF") == "10.00 CHF"
    assert booking_views.format_money(None) == "—"
    winter = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
    assert booking_views.local_time(winter, "Europe/Paris", with_zone=True) == "Mon 7 Jan 2030 10:00 CET"
