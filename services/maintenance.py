"""Maintenance: the time a car spends in the workshop, the service clock of each car, and the queue of cars due.

A maintenance block takes the car like a booking does: it is a row of `vehicle_occupancy`, so the database refuses a
block that overlaps a booking (with its turnaround) or another block. That refusal is the guard; this module only
turns it into a message naming the bookings in the way. A block is scheduled, then in progress (the car's status is
maintenance), then completed (the car is available again; a completed service restarts its service clock) or
cancelled.

The service clock: each vehicle type sets a service interval in kilometres and in days. A car's clock runs from its
last service (`last_service_at`, `last_service_km`) or, if it has never been serviced here, from the day it joined
the fleet (`created_at`) and 0 km. Its urgency is the larger share of either interval used up: 0.5 is half-way, 1.0
is due, above 1 overdue. The due queue holds the cars at DUE_SOON or more, most urgent (so the overdue) first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import MaintenanceBlock, UserRole, Vehicle, VehicleStatus
from db.queries import result_frame
from services import audit
from services.actors import Actor, require_role
from services.errors import Conflict, InvalidInput, NotFound
from services.events import record_event
from services.vehicles import (
    ON_THE_ROAD,
    BookingRef,
    clean_reason,
    describe_bookings,
    describe_period,
    set_status,
    vehicle_zone,
)

DUE_SOON = 0.9
MAX_BLOCK = timedelta(days=60)
PAST_TOLERANCE = timedelta(minutes=15)  # a block "starting now" typed a few minutes ago is not in the past
OPEN_STATUSES = ("scheduled", "in_progress")
EXCLUSION_VIOLATION = "23P01"


@dataclass(frozen=True)
class ServiceStatus:
    vehicle_id: int
    plate: str
    km_since: int
    interval_km: int
    days_since: float
    interval_days: int

    @property
    def km_fraction(self) -> float:
        return self.km_since / self.interval_km

    @property
    def days_fraction(self) -> float:
        return self.days_since / self.interval_days

    @property
    def urgency(self) -> float:
        return max(self.km_fraction, self.days_fraction)

    @property
    def due(self) -> bool:
        return self.urgency >= 1

    @property
    def due_by(self) -> str:
        return "km" if self.km_fraction >= self.days_fraction else "date"


@dataclass(frozen=True)
class BlockView:
    id: int
    vehicle_id: int
    plate: str
    start_at: datetime
    end_at: datetime
    status: str
    reason: str


class MaintenanceConflict(Conflict):
    """The block collides with bookings or other blocks of the car; they are listed in the message and here."""

    def __init__(self, message: str, bookings: list[BookingRef], blocks: list[BlockView]) -> None:
        self.bookings, self.blocks = bookings, blocks
        super().__init__(message)


# --- blocks ------------------------------------------------------------------------------------------------------

def schedule_block(session: Session, actor: Actor, vehicle_id: int, start: datetime, end: datetime, reason: str,
                   *, now: datetime | None = None) -> BlockView:
    """Reserve the car for the workshop from start to end; refused, naming them, when bookings are in the way."""
    require_role(actor, UserRole.FLEET_MANAGER, doing="schedule maintenance")
    now = now or datetime.now(UTC)
    reason = clean_reason(reason, what="the maintenance")
    vehicle = _lock_vehicle(session, vehicle_id)
    zone = vehicle_zone(session, vehicle.id)
    _check_period(start, end, now, zone)
    if vehicle.status == VehicleStatus.RETIRED:
        raise Conflict(f"Vehicle {vehicle.license_plate} is retired; it gets no more maintenance.")
    block = MaintenanceBlock(vehicle_id=vehicle.id, period=Range(start, end, bounds="[)"), reason=reason,
                             status="scheduled")
    _save(session, block, vehicle, block.period, new=True)
    view = _view(block, vehicle)
    audit.record(session, actor, "maintenance.scheduled", "maintenance_block", block.id, None, _snapshot(view))
    record_event(session, "maintenance_block", block.id, "maintenance.scheduled", _payload(view))
    return view


def start_block(session: Session, actor: Actor, block_id: int, *, now: datetime | None = None) -> BlockView:
    """The car is in the workshop: the block is in progress and the car in maintenance (from now, if early)."""
    require_role(actor, UserRole.FLEET_MANAGER, doing="start maintenance")
    now = now or datetime.now(UTC)
    block, vehicle = _lock_block(session, block_id, allowed=("scheduled",), doing="start")
    start, end = block.period.lower, block.period.upper
    if end <= now:
        raise Conflict(f"Block #{block.id} was planned to end on {describe_period(start, end, vehicle_zone(session, vehicle.id))}"
                       ", which has passed; cancel it and schedule a new one.")
    if vehicle.status in ON_THE_ROAD:
        raise Conflict(f"Vehicle {vehicle.license_plate} is {vehicle.status.label.lower()}, not at a branch; start the "
                       "block when it is back.")
    before = _snapshot(_view(block, vehicle))
    if start > now:  # the workshop took the car early: the block starts now, if no booking is in the way
        _save(session, block, vehicle, Range(now, end, bounds="[)"),
              advice=f"start the block at its planned time ({start:%d %b %H:%M})")
    block.status = "in_progress"
    session.flush()
    if vehicle.status != VehicleStatus.MAINTENANCE:
        set_status(session, actor, vehicle, VehicleStatus.MAINTENANCE, f"Maintenance block #{block.id}: {block.reason}")
    view = _view(block, vehicle)
    audit.record(session, actor, "maintenance.started", "maintenance_block", block.id, before, _snapshot(view))
    record_event(session, "maintenance_block", block.id, "maintenance.started", _payload(view))
    return view


def complete_block(session: Session, actor: Actor, block_id: int, *, serviced: bool = True,
                   odometer_km: int | None = None, now: datetime | None = None) -> BlockView:
    """The work is done: the car is available again; when it was serviced, its service clock restarts."""
    require_role(actor, UserRole.FLEET_MANAGER, doing="complete maintenance")
    now = now or datetime.now(UTC)
    block, vehicle = _lock_block(session, block_id, allowed=("in_progress",), doing="complete")
    if odometer_km is not None:
        if isinstance(odometer_km, bool) or not isinstance(odometer_km, int) or odometer_km < vehicle.odometer_km:
            raise InvalidInput(f"The odometer of {vehicle.license_plate} reads at least {vehicle.odometer_km:,} km; "
                               "give the reading from the dashboard, in whole km.")
        vehicle.odometer_km = odometer_km
    before = _snapshot(_view(block, vehicle)) | {"last_service_at": vehicle.last_service_at,
                                                 "last_service_km": vehicle.last_service_km}
    block.period = Range(block.period.lower, max(now, block.period.lower + timedelta(minutes=1)), bounds="[)")
    block.status = "completed"
    if serviced:
        vehicle.last_service_at, vehicle.last_service_km = now, vehicle.odometer_km
    session.flush()
    _release(session, actor, vehicle, f"Maintenance block #{block.id} completed")
    view = _view(block, vehicle)
    audit.record(session, actor, "maintenance.completed", "maintenance_block", block.id, before,
                 _snapshot(view) | {"last_service_at": vehicle.last_service_at,
                                    "last_service_km": vehicle.last_service_km})
    record_event(session, "maintenance_block", block.id, "maintenance.completed",
                 _payload(view) | {"serviced": serviced, "odometer_km": vehicle.odometer_km})
    return view


def cancel_block(session: Session, actor: Actor, block_id: int, reason: str) -> BlockView:
    """Call a block off, saying why; the time is free for bookings again (and the car, if it was in the workshop)."""
    require_role(actor, UserRole.FLEET_MANAGER, doing="cancel maintenance")
    reason = clean_reason(reason, what="cancelling the block")
    block, vehicle = _lock_block(session, block_id, allowed=OPEN_STATUSES, doing="cancel")
    before = _snapshot(_view(block, vehicle))
    was_in_progress = block.status == "in_progress"
    block.status = "cancelled"
    session.flush()
    if was_in_progress:
        _release(session, actor, vehicle, f"Maintenance block #{block.id} cancelled: {reason}")
    view = _view(block, vehicle)
    audit.record(session, actor, "maintenance.cancelled", "maintenance_block", block.id, before, _snapshot(view),
                 note=reason)
    record_event(session, "maintenance_block", block.id, "maintenance.cancelled", _payload(view) | {"reason": reason})
    return view


def _check_period(start: datetime, end: datetime, now: datetime, zone) -> None:
    if not isinstance(start, datetime) or not isinstance(end, datetime) or start.tzinfo is None \
            or end.tzinfo is None:
        raise InvalidInput("Give the start and end of the block as dates with times (and a time zone).")
    if start >= end:
        raise InvalidInput(f"The block ends ({end.astimezone(zone):%d %b %H:%M}) before it starts "
                           f"({start.astimezone(zone):%d %b %H:%M}); choose an end after the start.")
    if start < now - PAST_TOLERANCE:
        raise InvalidInput(f"The block would start on {start.astimezone(zone):%d %b %H:%M}, in the past; "
                           "maintenance is scheduled from now on.")
    if end - start > MAX_BLOCK:
        raise InvalidInput(f"The block is {(end - start).days} days long; a block may last at most "
                           f"{MAX_BLOCK.days} days — schedule a longer absence as several blocks, or retire the car.")


def _save(session: Session, block: MaintenanceBlock, vehicle: Vehicle, period: Range[datetime],
          *, advice: str | None = None, new: bool = False) -> None:
    """Give the block its period in a savepoint (begin_nested flushes what came before, so the change happens
    inside); the database's no-overlap guard becomes a MaintenanceConflict and the caller's transaction lives on."""
    start, end = period.lower, period.upper
    try:
        with session.begin_nested():
            block.period = period
            if new:
                session.add(block)
            session.flush()
    except IntegrityError as exc:
        diag = getattr(exc.orig, "diag", None)
        if getattr(exc.orig, "sqlstate", None) != EXCLUSION_VIOLATION or \
                getattr(diag, "constraint_name", None) != "vehicle_occupancy_no_overlap":
            raise
        raise _conflict(session, vehicle, start, end, block.id if not new else None, advice) from None


def _conflict(session: Session, vehicle: Vehicle, start: datetime, end: datetime, block_id: int | None,
              advice: str | None) -> MaintenanceConflict:
    """What is in the way, found after the database refused the block (it names only its constraint).

    `advice` says what to do instead; by default (scheduling) move the bookings or change the blocks in the way.
    """
    period = {"vehicle": vehicle.id, "start": start, "end": end, "block": block_id}
    bookings = [BookingRef(r.reference, r.pickup_at, r.dropoff_at, r.status) for r in session.execute(text("""
        SELECT reference, pickup_at, dropoff_at, status::text AS status FROM bookings
        WHERE vehicle_id = :vehicle AND status IN ('pending', 'confirmed', 'picked_up')
          AND blocked_period && tstzrange(:start, :end)
        ORDER BY pickup_at
    """), period)]
    blocks = [BlockView(r.id, vehicle.id, vehicle.license_plate, r.start_at, r.end_at, r.status, r.reason)
              for r in session.execute(text("""
        SELECT id, lower(period) AS start_at, upper(period) AS end_at, status, reason FROM maintenance_blocks
        WHERE vehicle_id = :vehicle AND status IN ('scheduled', 'in_progress') AND period && tstzrange(:start, :end)
          AND id IS DISTINCT FROM :block
        ORDER BY lower(period)
    """), period)]
    zone = vehicle_zone(session, vehicle.id)
    parts = []
    if bookings:
        noun = "booking" if len(bookings) == 1 else "bookings"
        parts.append(f"{noun} {describe_bookings(bookings, zone)}")
    if blocks:
        noun = "maintenance block" if len(blocks) == 1 else "maintenance blocks"
        parts.append(f"{noun} " + ", ".join(f"#{b.id} ({describe_period(b.start_at, b.end_at, zone)}, "
                                             f"{b.status.replace('_', ' ')}: {b.reason[:60]})" for b in blocks))
    if not parts:
        return MaintenanceConflict(f"Vehicle {vehicle.license_plate} was just taken for that time by someone else; "
                                   "look at its timeline and try again.", [], [])
    them = "it" if len(bookings) + len(blocks) == 1 else "them"
    if advice is None:
        advice = (f"move {them} to another car or choose other dates" if bookings
                  else f"change {them} or choose other dates")
    turnaround = " (a booking holds the car until the turnaround after its return)" if bookings else ""
    return MaintenanceConflict(f"Vehicle {vehicle.license_plate} has {' and '.join(parts)} in that time{turnaround}; "
                               f"{advice}.", bookings, blocks)


def _release(session: Session, actor: Actor, vehicle: Vehicle, reason: str) -> None:
    """Back to available when the car's last block in progress has ended."""
    still_in = session.scalar(select(MaintenanceBlock.id).where(MaintenanceBlock.vehicle_id == vehicle.id,
                                                                MaintenanceBlock.status == "in_progress"))
    if vehicle.status == VehicleStatus.MAINTENANCE and still_in is None:
        set_status(session, actor, vehicle, VehicleStatus.AVAILABLE, reason)


def _lock_vehicle(session: Session, vehicle_id: int) -> Vehicle:
    vehicle = session.get(Vehicle, vehicle_id, with_for_update=True, populate_existing=True)
    if vehicle is None:
        raise NotFound(f"There is no vehicle {vehicle_id}; pick one from the list.")
    return vehicle


def _lock_block(session: Session, block_id: int, *, allowed: tuple[str, ...],
                doing: str) -> tuple[MaintenanceBlock, Vehicle]:
    block = session.get(MaintenanceBlock, block_id, with_for_update=True, populate_existing=True)
    if block is None:
        raise NotFound(f"There is no maintenance block #{block_id}; pick one from the list.")
    if block.status not in allowed:
        hint = " start it first" if block.status == "scheduled" else " there is nothing left to do"
        raise Conflict(f"Block #{block.id} is {block.status.replace('_', ' ')}, so you cannot {doing} it;{hint}.")
    return block, _lock_vehicle(session, block.vehicle_id)


def _view(block: MaintenanceBlock, vehicle: Vehicle) -> BlockView:
    return BlockView(block.id, vehicle.id, vehicle.license_plate, block.period.lower, block.period.upper,
                     block.status, block.reason)


def _snapshot(view: BlockView) -> dict[str, Any]:
    return {"vehicle_id": view.vehicle_id, "start_at": view.start_at, "end_at": view.end_at, "status": view.status,
            "reason": view.reason}


def _payload(view: BlockView) -> dict[str, Any]:
    return {"block_id": view.id, "vehicle_id": view.vehicle_id, "license_plate": view.plate,
            "start_at": view.start_at.isoformat(), "end_at": view.end_at.isoformat(), "status": view.status}


# --- the service clock -------------------------------------------------------------------------------------------

_SERVICE_SQL = """
    SELECT v.id AS vehicle_id, v.license_plate AS plate, v.make, v.model, vt.code AS vehicle_type,
           v.status::text AS status, l.code AS branch_code, coalesce(l.timezone, 'UTC') AS timezone,
           v.odometer_km, v.last_service_at,
           greatest(coalesce(CAST(:odometer AS integer), v.odometer_km) - coalesce(v.last_service_km, 0), 0)
               AS km_since,
           vt.service_interval_km AS interval_km,
           greatest(extract(epoch FROM CAST(:now AS timestamptz) - coalesce(v.last_service_at, v.created_at)), 0)::float8
               / 86400 AS days_since,
           vt.service_interval_days AS interval_days
    FROM vehicles v
    JOIN vehicle_types vt ON vt.id = v.vehicle_type_id
    LEFT JOIN locations l ON l.id = v.current_location_id
"""


def service_status(session: Session, vehicle_id: int, *, odometer_km: int | None = None,
                   now: datetime | None = None) -> ServiceStatus:
    """How far a vehicle is through its service intervals (optionally with a fresher odometer reading)."""
    row = session.execute(text(_SERVICE_SQL + " WHERE v.id = :id"),
                          {"id": vehicle_id, "odometer": odometer_km, "now": now or datetime.now(UTC)}).first()
    if row is None:
        raise NotFound(f"There is no vehicle {vehicle_id}; pick one from the list.")
    return ServiceStatus(row.vehicle_id, row.plate, row.km_since, row.interval_km, row.days_since, row.interval_days)


def status_after_return(session: Session, vehicle_id: int, *, damaged: bool = False, odometer_km: int | None = None,
                        now: datetime | None = None) -> VehicleStatus:
    """The status a vehicle gets when it is checked in: MAINTENANCE if damaged or due for service, else AVAILABLE.

    Due means at or past either service interval of its type (urgency >= 1), counting the odometer reading taken at
    check-in when given. Reads only; the caller (the booking check-in) sets the status. Stable public API.
    """
    if damaged:
        return VehicleStatus.MAINTENANCE
    due = service_status(session, vehicle_id, odometer_km=odometer_km, now=now).due
    return VehicleStatus.MAINTENANCE if due else VehicleStatus.AVAILABLE


def service_queue(session: Session, *, now: datetime | None = None, threshold: float = DUE_SOON,
                  limit: int = 2000) -> pd.DataFrame:
    """Vehicles (not retired) at `threshold` or more of a service interval, most urgent first, with any open block."""
    result = session.execute(text(f"""
        WITH s AS ({_SERVICE_SQL} WHERE v.status <> 'retired'),
        u AS (
            SELECT s.*, km_since::float8 / interval_km AS km_fraction, days_since / interval_days AS days_fraction
            FROM s
        )
        SELECT u.*, greatest(km_fraction, days_fraction) AS urgency,
               CASE WHEN km_fraction >= days_fraction THEN 'km' ELSE 'date' END AS due_by,
               b.id AS block_id, b.start_at AS block_start, b.status AS block_status
        FROM u
        LEFT JOIN LATERAL (
            SELECT m.id, lower(m.period) AS start_at, m.status FROM maintenance_blocks m
            WHERE m.vehicle_id = u.vehicle_id AND m.status IN ('scheduled', 'in_progress')
            ORDER BY lower(m.period) LIMIT 1
        ) b ON TRUE
        WHERE greatest(km_fraction, days_fraction) >= :threshold
        ORDER BY urgency DESC, plate
        LIMIT :limit
    """), {"now": now or datetime.now(UTC), "odometer": None, "threshold": threshold, "limit": limit})
    return result_frame(result)


def open_blocks(session: Session, *, now: datetime | None = None, days: int = 30) -> pd.DataFrame:
    """Blocks in progress, and those scheduled to start within `days`; in progress first, then by start."""
    result = session.execute(text("""
        SELECT m.id, m.vehicle_id, v.license_plate AS plate, v.make, v.model, l.code AS branch_code,
               lower(m.period) AS start_at, upper(m.period) AS end_at, m.status, m.reason,
               v.status::text AS vehicle_status, coalesce(l.timezone, 'UTC') AS timezone
        FROM maintenance_blocks m
        JOIN vehicles v ON v.id = m.vehicle_id
        LEFT JOIN locations l ON l.id = v.current_location_id
        WHERE m.status = 'in_progress' OR (m.status = 'scheduled' AND lower(m.period) < :until)
        ORDER BY m.status = 'scheduled', lower(m.period), m.id
    """), {"until": (now or datetime.now(UTC)) + timedelta(days=days)})
    return result_frame(result)
