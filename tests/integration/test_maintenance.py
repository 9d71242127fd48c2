"""Maintenance on a real PostGIS: the database refuses a block over a booking and the message names the bookings;
blocks move through their states with the car; the service clock and the due queue; the status after a return."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from db.models import AuditEntry, DomainEvent, MaintenanceBlock, UserRole, Vehicle, VehicleStatus
from services import maintenance
from services.actors import Actor, Forbidden
from services.errors import Conflict, InvalidInput
from services.maintenance import MaintenanceConflict
from tests import factories as f

NOW = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)  # times are passed in: nothing here depends on the clock
DAY = timedelta(days=1)


@pytest.fixture
def fleet(session) -> Actor:
    user = f.customer(session, role=UserRole.FLEET_MANAGER)
    return Actor(user.id, user.email, UserRole.FLEET_MANAGER, user.full_name)


@pytest.fixture
def place(session):
    return f.vehicle_type(session, service_interval_km=15_000, service_interval_days=365), f.location(session)


@pytest.fixture
def car(session, place):
    vtype, branch = place
    return f.vehicle(session, vtype, branch, license_plate="AB21 CDE", odometer_km=10_000,
                     last_service_km=5_000, last_service_at=NOW - 100 * DAY)


def at(day: int, hour: int = 9) -> datetime:
    """A time in May 2026 (London is UTC+1 then)."""
    return datetime(2026, 5, day, hour, 0, tzinfo=UTC)


def test_a_block_is_scheduled_audited_evented_and_takes_the_car(session, fleet, car):
    block = maintenance.schedule_block(session, fleet, car.id, at(4), at(5), " Scheduled   service ", now=NOW)
    assert (block.status, block.reason, block.plate) == ("scheduled", "Scheduled service", "AB21 CDE")
    occupied = session.execute(text("SELECT lower(period), upper(period) FROM vehicle_occupancy "
                                    "WHERE maintenance_block_id = :id"), {"id": block.id}).one()
    assert tuple(occupied) == (at(4), at(5))
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "maintenance.scheduled"))
    assert entry.entity_id == str(block.id) and entry.changes["reason"]["after"] == "Scheduled service"
    event = session.scalar(select(DomainEvent).where(DomainEvent.event_type == "maintenance.scheduled"))
    assert event.payload["block_id"] == block.id and event.payload["license_plate"] == "AB21 CDE"


def test_a_block_over_bookings_is_refused_naming_them_and_the_transaction_survives(session, fleet, car):
    driver = f.customer(session)
    first = f.booking(session, car, driver, at(3, 8), at(5, 16))
    second = f.booking(session, car, driver, at(7, 10), at(8, 10), status="pending")
    f.booking(session, car, driver, at(4), at(6), status="cancelled")  # not in the way
    with pytest.raises(MaintenanceConflict) as caught:
        maintenance.schedule_block(session, fleet, car.id, at(4), at(7, 12), "Brake pads", now=NOW)
    assert str(caught.value) == (
        f"Vehicle AB21 CDE has bookings {first.reference} (3–5 May, confirmed) and {second.reference} "
        "(7–8 May, pending) in that time (a booking holds the car until the turnaround after its return); "
        "move them to another car or choose other dates.")
    assert [b.reference for b in caught.value.bookings] == [first.reference, second.reference]
    # the caller's transaction goes on: nothing was stored, and another period can be scheduled in it
    assert session.scalar(select(MaintenanceBlock.id).where(MaintenanceBlock.vehicle_id == car.id)) is None
    block = maintenance.schedule_block(session, fleet, car.id, at(10), at(11), "Brake pads", now=NOW)
    assert block.id is not None
    assert session.scalar(select(Vehicle.license_plate).where(Vehicle.id == car.id)) == "AB21 CDE"


def test_the_turnaround_after_a_return_is_part_of_the_booking(session, fleet, car):
    booking = f.booking(session, car, f.customer(session), at(3), at(4, 10), turnaround_minutes=60)
    with pytest.raises(MaintenanceConflict) as caught:
        maintenance.schedule_block(session, fleet, car.id, at(4, 10) + timedelta(minutes=30), at(5), "Tyres",
                                   now=NOW)
    assert str(caught.value) == (f"Vehicle AB21 CDE has booking {booking.reference} (3–4 May, confirmed) in that "
                                 "time (a booking holds the car until the turnaround after its return); move it to "
                                 "another car or choose other dates.")
    assert maintenance.schedule_block(session, fleet, car.id, at(4, 11), at(5), "Tyres", now=NOW).id


def test_a_block_over_another_block_names_it(session, fleet, car):
    other = maintenance.schedule_block(session, fleet, car.id, at(4), at(6), "Bodywork", now=NOW)
    with pytest.raises(MaintenanceConflict) as caught:
        maintenance.schedule_block(session, fleet, car.id, at(5), at(7), "Service", now=NOW)
    assert str(caught.value) == (f"Vehicle AB21 CDE has maintenance block #{other.id} (4–6 May, scheduled: Bodywork) "
                                 "in that time; change it or choose other dates.")
    assert caught.value.bookings == [] and [b.id for b in caught.value.blocks] == [other.id]


@pytest.mark.parametrize(("start", "end", "message"), [
    (at(5), at(4), "The block ends (04 May 10:00) before it starts (05 May 10:00); choose an end after the start."),
    (at(5), at(5), "before it starts"),
    (NOW - timedelta(hours=2), at(5), "The block would start on 01 May 07:00, in the past"),
    (at(2), at(2) + 61 * DAY, "The block is 61 days long; a block may last at most 60 days"),
    (datetime(2026, 5, 4, 9), datetime(2026, 5, 5, 9), "dates with times (and a time zone)"),
])
def test_impossible_blocks_are_refused(session, fleet, car, start, end, message):
    with pytest.raises(InvalidInput) as caught:
        maintenance.schedule_block(session, fleet, car.id, start, end, "Service", now=NOW)
    assert message in str(caught.value)


def test_a_block_starting_a_few_minutes_ago_is_fine(session, fleet, car):
    assert maintenance.schedule_block(session, fleet, car.id, NOW - timedelta(minutes=10), at(2), "Service",
                                      now=NOW).id


def test_a_block_needs_a_reason_a_car_in_the_fleet_and_a_fleet_manager(session, fleet, car, place):
    with pytest.raises(InvalidInput, match="Give a reason for the maintenance"):
        maintenance.schedule_block(session, fleet, car.id, at(4), at(5), "", now=NOW)
    retired = f.vehicle(session, *place, status=VehicleStatus.RETIRED)
    with pytest.raises(Conflict, match="is retired; it gets no more maintenance"):
        maintenance.schedule_block(session, fleet, retired.id, at(4), at(5), "Service", now=NOW)
    desk = Actor(None, "desk@example.test", UserRole.DESK_AGENT)
    with pytest.raises(Forbidden, match="cannot schedule maintenance"):
        maintenance.schedule_block(session, desk, car.id, at(4), at(5), "Service", now=NOW)


def test_start_and_complete_move_the_car_and_restart_its_service_clock(session, fleet, car):
    block = maintenance.schedule_block(session, fleet, car.id, at(4), at(5), "Service", now=NOW)
    started = maintenance.start_block(session, fleet, block.id, now=at(4, 10))
    assert started.status == "in_progress"
    session.refresh(car)
    assert (car.status, car.status_reason) == (VehicleStatus.MAINTENANCE, f"Maintenance block #{block.id}: Service")
    done = maintenance.complete_block(session, fleet, block.id, odometer_km=10_020, now=at(4, 15))
    assert (done.status, done.end_at) == ("completed", at(4, 15))
    session.refresh(car)
    assert (car.status, car.odometer_km, car.last_service_km, car.last_service_at) == \
        (VehicleStatus.AVAILABLE, 10_020, 10_020, at(4, 15))
    assert session.scalar(text("SELECT count(*) FROM vehicle_occupancy WHERE maintenance_block_id = :id"),
                          {"id": block.id}) == 0
    actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["maintenance.scheduled", "vehicle.status_changed", "maintenance.started",
                       "vehicle.status_changed", "maintenance.completed"]
    completed = session.scalar(select(AuditEntry).where(AuditEntry.action == "maintenance.completed"))
    assert completed.changes["last_service_km"] == {"before": 5_000, "after": 10_020}


def test_a_repair_that_is_not_a_service_leaves_the_service_clock_alone(session, fleet, car):
    block = maintenance.schedule_block(session, fleet, car.id, at(4), at(5), "Windscreen", now=NOW)
    maintenance.start_block(session, fleet, block.id, now=at(4, 10))
    maintenance.complete_block(session, fleet, block.id, serviced=False, now=at(4, 12))
    session.refresh(car)
    assert (car.status, car.last_service_km) == (VehicleStatus.AVAILABLE, 5_000)


def test_starting_early_moves_the_start_unless_a_booking_is_in_the_way(session, fleet, car):
    block = maintenance.schedule_block(session, fleet, car.id, at(10), at(11), "Service", now=NOW)
    started = maintenance.start_block(session, fleet, block.id, now=at(8))
    assert started.start_at == at(8)
    other = maintenance.schedule_block(session, fleet, car.id, at(20), at(21), "Tyres", now=NOW)
    booking = f.booking(session, car, f.customer(session), at(15), at(16))
    with pytest.raises(MaintenanceConflict, match=f"{booking.reference}.*start the block at its planned time"):
        maintenance.start_block(session, fleet, other.id, now=at(14))
    session.refresh(session.get(MaintenanceBlock, other.id))
    assert session.get(MaintenanceBlock, other.id).status == "scheduled"


def test_blocks_move_only_forward(session, fleet, car):
    block = maintenance.schedule_block(session, fleet, car.id, at(4), at(5), "Service", now=NOW)
    with pytest.raises(Conflict, match="is scheduled, so you cannot complete it; start it first"):
        maintenance.complete_block(session, fleet, block.id, now=at(4))
    maintenance.cancel_block(session, fleet, block.id, "workshop closed")
    with pytest.raises(Conflict, match="is cancelled, so you cannot start it; there is nothing left to do"):
        maintenance.start_block(session, fleet, block.id, now=at(4))


def test_a_stale_block_cannot_be_started(session, fleet, car):
    block = maintenance.schedule_block(session, fleet, car.id, at(4), at(5), "Service", now=NOW)
    with pytest.raises(Conflict, match="was planned to end on .*which has passed; cancel it and schedule a new one"):
        maintenance.start_block(session, fleet, block.id, now=at(6))


def test_a_rented_car_cannot_go_into_the_workshop(session, fleet, place):
    vtype, _ = place
    rented = f.vehicle(session, vtype, None, status=VehicleStatus.RENTED)
    block = f.maintenance(session, rented, at(4), at(5))
    with pytest.raises(Conflict, match="is rented, not at a branch; start the block when it is back"):
        maintenance.start_block(session, fleet, block.id, now=at(4))


def test_cancelling_a_block_in_progress_frees_the_car(session, fleet, car):
    block = maintenance.schedule_block(session, fleet, car.id, at(4), at(5), "Service", now=NOW)
    maintenance.start_block(session, fleet, block.id, now=at(4, 10))
    with pytest.raises(InvalidInput, match="Give a reason for cancelling the block"):
        maintenance.cancel_block(session, fleet, block.id, " ")
    cancelled = maintenance.cancel_block(session, fleet, block.id, "part not delivered")
    assert cancelled.status == "cancelled"
    session.refresh(car)
    assert (car.status, car.status_reason) == (VehicleStatus.AVAILABLE,
                                               f"Maintenance block #{block.id} cancelled: part not delivered")
    event = session.scalar(select(DomainEvent).where(DomainEvent.event_type == "maintenance.cancelled"))
    assert event.payload["reason"] == "part not delivered"


# --- the service clock and the queue --------------------------------------------------------------------------------

@pytest.fixture
def queue_fleet(session):
    """Hand-built cars whose urgency is known: km interval 10,000, day interval 100."""
    vtype = f.vehicle_type(session, service_interval_km=10_000, service_interval_days=100)
    branch = f.location(session)

    def make(plate, odometer, last_km, days_ago, **extra):
        return f.vehicle(session, vtype, branch, license_plate=plate, odometer_km=odometer, last_service_km=last_km,
                         last_service_at=NOW - days_ago * DAY if days_ago is not None else None, **extra)

    cars = {
        "KM120": make("QKM120", 22_000, 10_000, 10),    # 120 % of km, 10 % of days
        "DAY150": make("QDAY150", 1_000, 0, 150),       # 10 % of km, 150 % of days
        "SOON95": make("QSOON95", 9_500, 0, 20),        # 95 % of km
        "FINE30": make("QFINE30", 3_000, 0, 30),        # 30 %: not in the queue
        "NEVER": make("QNEVER", 4_000, None, None, created_at=NOW - 110 * DAY),  # never serviced: 110 % of days
        "RETIRED": make("QRETIRED", 99_000, 0, 400, status=VehicleStatus.RETIRED),  # not in the queue
    }
    session.flush()
    return cars


def test_the_due_queue_is_sorted_by_urgency_with_the_overdue_first(session, queue_fleet):
    queue = maintenance.service_queue(session, now=NOW)
    ours = queue[queue["plate"].str.startswith("Q")]
    assert list(ours["plate"]) == ["QDAY150", "QKM120", "QNEVER", "QSOON95"]
    assert list(ours["urgency"].round(2)) == [1.5, 1.2, 1.1, 0.95]
    assert list(ours["due_by"]) == ["date", "km", "date", "km"]
    assert ours.set_index("plate").loc["QKM120", "km_since"] == 12_000


def test_the_queue_shows_a_booked_service(session, fleet, queue_fleet):
    block = maintenance.schedule_block(session, fleet, queue_fleet["KM120"].id, at(4), at(5), "Service", now=NOW)
    row = maintenance.service_queue(session, now=NOW).set_index("plate").loc["QKM120"]
    assert (row["block_id"], row["block_start"], row["block_status"]) == (block.id, at(4), "scheduled")


def test_one_cars_service_status_agrees_with_the_queue(session, queue_fleet):
    never = maintenance.service_status(session, queue_fleet["NEVER"].id, now=NOW)
    assert (never.km_since, round(never.days_since), round(never.urgency, 2), never.due, never.due_by) == \
        (4_000, 110, 1.1, True, "date")
    soon = maintenance.service_status(session, queue_fleet["SOON95"].id, now=NOW)
    assert (soon.due, soon.due_by, round(soon.urgency, 2)) == (False, "km", 0.95)


def test_a_returned_car_goes_to_maintenance_when_due_or_damaged(session, queue_fleet):
    ids = {name: car.id for name, car in queue_fleet.items()}
    assert maintenance.status_after_return(session, ids["KM120"], now=NOW) == VehicleStatus.MAINTENANCE
    assert maintenance.status_after_return(session, ids["DAY150"], now=NOW) == VehicleStatus.MAINTENANCE
    assert maintenance.status_after_return(session, ids["NEVER"], now=NOW) == VehicleStatus.MAINTENANCE
    assert maintenance.status_after_return(session, ids["SOON95"], now=NOW) == VehicleStatus.AVAILABLE
    assert maintenance.status_after_return(session, ids["FINE30"], now=NOW) == VehicleStatus.AVAILABLE
    assert maintenance.status_after_return(session, ids["FINE30"], damaged=True, now=NOW) == VehicleStatus.MAINTENANCE
    # the odometer read at check-in counts: 9,500 km + the 600 km of this rental passes 10,000
    assert maintenance.status_after_return(session, ids["SOON95"], odometer_km=10_100, now=NOW) \
        == VehicleStatus.MAINTENANCE


def test_the_open_blocks_list_puts_the_workshop_first(session, fleet, car, place):
    later = maintenance.schedule_block(session, fleet, car.id, at(20), at(21), "Tyres", now=NOW)
    other = f.vehicle(session, *place)
    now_block = maintenance.schedule_block(session, fleet, other.id, at(2), at(3), "Service", now=NOW)
    maintenance.start_block(session, fleet, now_block.id, now=at(2, 10))
    far = maintenance.schedule_block(session, fleet, car.id, at(30) + 30 * DAY, at(30) + 31 * DAY, "MOT", now=NOW)
    listed = maintenance.open_blocks(session, now=NOW, days=30)
    ours = list(listed[listed["id"].isin([later.id, now_block.id, far.id])]["id"])
    assert ours == [now_block.id, later.id]
