"""Transfers on a real PostGIS: planned -> in transit -> arrived (or cancelled), the car leaving its branch and
arriving at the new one; refused transitions name the state; the database refuses a transfer over a booking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from db import queries
from db.models import AuditEntry, DomainEvent, Transfer, TransferStatus, UserRole, VehicleStatus
from db.queries import FleetFilter
from services import transfers
from services.actors import Actor, Forbidden
from services.errors import Conflict, InvalidInput
from tests import factories as f

NOW = datetime(2030, 5, 1, 18, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def fleet(session) -> Actor:
    user = f.customer(session, role=UserRole.FLEET_MANAGER)
    return Actor(user.id, user.email, UserRole.FLEET_MANAGER, user.full_name)


@pytest.fixture
def world(session):
    vtype = f.vehicle_type(session)
    origin, destination = f.location(session, 51.47, -0.45), f.location(session, 51.15, -0.18)
    car = f.vehicle(session, vtype, origin, license_plate="TR30 ABC")
    return car, origin, destination


def _plan(session, fleet, world, depart=NOW + 2 * HOUR):
    car, origin, destination = world
    return transfers.schedule_transfer(session, fleet, car.id, origin.id, destination.id, depart, depart + 2 * HOUR,
                                       distance_km=Decimal("38.2"), cost=Decimal("51.74"), currency="GBP")


def _free_at(session, vehicle_id: int, at: datetime) -> str | None:
    return session.execute(text("""
        SELECT l.code FROM vehicle_free_periods p JOIN locations l ON l.id = p.location_id
        WHERE p.vehicle_id = :v AND p.period @> CAST(:at AS timestamptz)"""), {"v": vehicle_id, "at": at}).scalar()


def test_a_planned_transfer_takes_the_car_and_moves_it_to_the_destination_in_availability(session, fleet, world):
    car, origin, destination = world
    planned = _plan(session, fleet, world)
    assert (planned.status, planned.from_code, planned.to_code) == (TransferStatus.PLANNED, origin.code,
                                                                    destination.code)
    period = session.execute(text("SELECT lower(period), upper(period) FROM vehicle_occupancy "
                                  "WHERE transfer_id = :id"), {"id": planned.id}).one()
    assert tuple(period) == (planned.depart_at, planned.arrive_at)
    assert _free_at(session, car.id, NOW) == origin.code
    assert _free_at(session, car.id, NOW + 3 * HOUR) is None  # on the road
    assert _free_at(session, car.id, NOW + 5 * HOUR) == destination.code
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "transfer.planned"))
    assert entry.entity_id == str(planned.id) and entry.changes["to"]["after"] == destination.code
    event = session.scalar(select(DomainEvent).where(DomainEvent.event_type == "transfer.planned"))
    assert event.payload["license_plate"] == "TR30 ABC"


def test_depart_then_arrive_moves_the_car_with_audit_and_events(session, fleet, world):
    car, origin, destination = world
    planned = _plan(session, fleet, world)
    left_at = NOW + HOUR  # an hour early: the whole trip moves with it
    moving = transfers.depart(session, fleet, planned.id, now=left_at)
    session.refresh(car)
    assert moving.status == TransferStatus.IN_TRANSIT
    assert (moving.depart_at, moving.arrive_at) == (left_at, left_at + 2 * HOUR)
    assert car.status == VehicleStatus.IN_TRANSIT
    assert _free_at(session, car.id, left_at + 5 * HOUR) is None  # not on hand anywhere: no free stretch
    on_hand = queries.branch_fleet(session, FleetFilter(location_ids=(origin.id,)))
    assert int(on_hand["on_hand"].iloc[0]) == 0
    arrived = transfers.arrive(session, fleet, planned.id, now=left_at + 90 * timedelta(minutes=1))
    session.refresh(car)
    assert arrived.status == TransferStatus.ARRIVED
    assert car.status == VehicleStatus.AVAILABLE and car.current_location_id == destination.id
    assert session.scalar(text("SELECT count(*) FROM vehicle_occupancy WHERE transfer_id = :id"),
                          {"id": planned.id}) == 0
    assert _free_at(session, car.id, left_at + 3 * HOUR) == destination.code
    actions = session.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "transfer")
                              .order_by(AuditEntry.id)).all()
    assert actions == ["transfer.planned", "transfer.departed", "transfer.arrived"]
    statuses = session.scalars(select(DomainEvent.payload["to"].astext).where(
        DomainEvent.event_type == "vehicle.status_changed", DomainEvent.aggregate_id == str(car.id))
        .order_by(DomainEvent.id)).all()
    assert statuses == ["in_transit", "available"]


def test_refused_transitions_name_the_current_state(session, fleet, world):
    planned = _plan(session, fleet, world)
    with pytest.raises(Conflict, match=f"T{planned.id} is planned, so it cannot arrive"):
        transfers.arrive(session, fleet, planned.id, now=NOW)
    transfers.depart(session, fleet, planned.id, now=NOW + 2 * HOUR)
    with pytest.raises(Conflict, match="is in transit, so it cannot cancel"):
        transfers.cancel(session, fleet, planned.id, "changed our mind")
    with pytest.raises(Conflict, match="is in transit, so it cannot depart"):
        transfers.depart(session, fleet, planned.id, now=NOW + 2 * HOUR)
    transfers.arrive(session, fleet, planned.id, now=NOW + 4 * HOUR)
    with pytest.raises(Conflict, match=r"is complete \(arrived\), so it cannot depart: it has already arrived"):
        transfers.depart(session, fleet, planned.id, now=NOW + 5 * HOUR)


def test_cancel_needs_a_reason_and_frees_the_car(session, fleet, world):
    car, origin, _ = world
    planned = _plan(session, fleet, world)
    with pytest.raises(InvalidInput, match="Give a reason"):
        transfers.cancel(session, fleet, planned.id, "   ")
    cancelled = transfers.cancel(session, fleet, planned.id, "Branch needs it after all")
    assert cancelled.status == TransferStatus.CANCELLED
    assert _free_at(session, car.id, NOW + 3 * HOUR) == origin.code
    with pytest.raises(Conflict, match="is cancelled, so it cannot depart"):
        transfers.depart(session, fleet, planned.id, now=NOW + 2 * HOUR)
    row = session.get(Transfer, planned.id)
    assert row.cancel_reason == "Branch needs it after all" and row.cancelled_at is not None


def test_a_transfer_over_a_booking_is_refused_naming_it(session, fleet, world):
    car, _, _ = world
    booking = f.booking(session, car, f.customer(session), NOW + HOUR, NOW + 26 * HOUR)
    with pytest.raises(Conflict, match=f"booking {booking.reference}"):
        _plan(session, fleet, world)
    assert session.scalar(select(Transfer.id).where(Transfer.vehicle_id == car.id)) is None


def test_two_overlapping_transfers_of_one_car_are_refused_by_the_database(session, fleet, world):
    car, origin, destination = world
    first = _plan(session, fleet, world)
    with pytest.raises(IntegrityError) as caught, session.begin_nested():
        session.add(Transfer(vehicle_id=car.id, from_location_id=origin.id, to_location_id=destination.id,
                             depart_at=NOW + 3 * HOUR, arrive_at=NOW + 5 * HOUR, status=TransferStatus.PLANNED))
        session.flush()
    assert "vehicle_occupancy_no_overlap" in str(caught.value.orig)
    with pytest.raises(Conflict, match=f"transfer T{first.id}"):
        _plan(session, fleet, world, depart=NOW + 3 * HOUR)


def test_a_booking_over_a_planned_transfer_is_refused_by_the_database(session, fleet, world):
    car, _, _ = world
    _plan(session, fleet, world)
    with pytest.raises(IntegrityError) as caught, session.begin_nested():
        f.booking(session, car, f.customer(session), NOW + 3 * HOUR, NOW + 30 * HOUR)
    assert "vehicle_occupancy_no_overlap" in str(caught.value.orig)


def test_a_rented_car_cannot_depart(session, fleet, world):
    car, _, _ = world
    planned = _plan(session, fleet, world)
    car.status = VehicleStatus.RENTED
    session.flush()
    with pytest.raises(Conflict, match="TR30 ABC is rented"):
        transfers.depart(session, fleet, planned.id, now=NOW + 2 * HOUR)
    assert transfers.get_transfer(session, planned.id).status == TransferStatus.PLANNED


def test_the_transfer_starts_where_the_car_will_be(session, fleet, world):
    car, origin, destination = world
    elsewhere = f.location(session, 51.5, -0.1)
    with pytest.raises(Conflict, match=f"will be at {origin.code} then, not at {elsewhere.code}"):
        transfers.schedule_transfer(session, fleet, car.id, elsewhere.id, destination.id, NOW, NOW + HOUR)


def test_desk_agents_cannot_move_cars(session, world):
    desk = Actor(None, "desk@example.test", UserRole.DESK_AGENT)
    car, origin, destination = world
    with pytest.raises(Forbidden):
        transfers.schedule_transfer(session, desk, car.id, origin.id, destination.id, NOW, NOW + HOUR)


def test_list_transfers_shows_open_ones_soonest_first(session, fleet, world):
    later = _plan(session, fleet, world, depart=NOW + 30 * HOUR)
    sooner = _plan(session, fleet, world)
    listed = transfers.list_transfers(session)
    mine = listed[listed["id"].isin([later.id, sooner.id])]
    assert list(mine["id"]) == [sooner.id, later.id]
    with pytest.raises(InvalidInput, match="Unknown transfer status"):
        transfers.list_transfers(session, statuses=("lost",))


def test_a_transfer_past_its_departure_or_arrival_is_listed_as_overdue(session, fleet, world):
    planned = _plan(session, fleet, world)  # departs NOW + 2 h, arrives NOW + 4 h

    def overdue(now):
        listed = transfers.list_transfers(session, now=now)
        row = listed[listed["id"] == planned.id].iloc[0]
        return row["status"], row["overdue_minutes"]

    assert pd.isna(overdue(NOW + HOUR)[1])  # not due yet
    assert overdue(NOW + 2 * HOUR + timedelta(minutes=40)) == ("planned", 40)
    transfers.depart(session, fleet, planned.id, now=NOW + 3 * HOUR)  # arrival expected 2 h later: NOW + 5 h
    assert pd.isna(overdue(NOW + 4 * HOUR)[1])
    assert overdue(NOW + 7 * HOUR + timedelta(minutes=5)) == ("in_transit", 125)
    assert transfers.overdue_text("in_transit", 125) == "Arrival 2 h 05 min overdue"
    assert transfers.overdue_text("planned", 40) == "Departure 40 min overdue"
    assert transfers.overdue_text("planned", None) == ""


def test_drive_time_counts_road_distance_and_handovers():
    assert transfers.drive_time(Decimal("0")) == timedelta(minutes=20)
    assert transfers.drive_time(Decimal("45")) == timedelta(minutes=100)  # 58.5 road km at 45 km/h + 20
