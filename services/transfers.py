"""Transfers: a car driven from one branch to another, for rebalancing.

    planned -> in_transit (the car leaves its branch and is InTransit) -> arrived (Available at the new branch)
    planned -> cancelled (with a reason)

A planned or moving transfer takes its car from departure to arrival as a row of `vehicle_occupancy` (migration
0010), so the database refuses a transfer over a booking, a maintenance block or another transfer of the same car;
this module turns that refusal into a message naming what is in the way. Every change is audited and evented in the
caller's transaction. Any other transition is refused, naming the transfer's current state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import func, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import Transfer, TransferStatus, UserRole, Vehicle, VehicleStatus
from db.queries import result_frame
from services import audit
from services.actors import Actor, require_role
from services.errors import Conflict, InvalidInput, NotFound
from services.events import record_event
from services.vehicles import BookingRef, clean_reason, describe_bookings, set_status, vehicle_zone

ROAD_FACTOR = Decimal("1.3")  # road distance over great-circle distance (as the demo company's drivers find)
DRIVE_KMH = 45
HANDOVER_MINUTES = 20  # keys, walk-round check and paperwork at both ends
OPEN_STATUSES = (TransferStatus.PLANNED, TransferStatus.IN_TRANSIT)
EXCLUSION_VIOLATION = "23P01"


@dataclass(frozen=True)
class TransferView:
    id: int
    vehicle_id: int
    plate: str
    vehicle_type: str
    from_location_id: int
    from_code: str
    to_location_id: int
    to_code: str
    depart_at: datetime
    arrive_at: datetime
    status: TransferStatus
    plan_id: int | None
    distance_km: Decimal | None
    cost: Decimal | None
    currency: str | None

    @property
    def ref(self) -> str:
        return f"T{self.id}"


def drive_time(distance_km: Decimal | float) -> timedelta:
    """How long a driver takes between two branches this far apart as the crow flies, handovers included."""
    road_km = Decimal(str(distance_km)) * ROAD_FACTOR
    minutes = int(road_km * 60 / DRIVE_KMH) + HANDOVER_MINUTES
    return timedelta(minutes=-(-minutes // 5) * 5)  # whole five minutes, rounded up


def schedule_transfer(session: Session, actor: Actor, vehicle_id: int, from_location_id: int, to_location_id: int,
                      depart_at: datetime, arrive_at: datetime, *, plan_id: int | None = None,
                      move_id: int | None = None, distance_km: Decimal | None = None, cost: Decimal | None = None,
                      currency: str | None = None) -> TransferView:
    """Plan a car's drive from one branch to another; refused, naming them, when bookings or blocks are in the way.

    The caller holds the vehicle's row lock (or the database makes a concurrent planner wait, then refuses)."""
    require_role(actor, UserRole.FLEET_MANAGER, doing="plan transfers")
    if from_location_id == to_location_id:
        raise InvalidInput("A transfer goes between two different branches; pick another destination.")
    if depart_at.tzinfo is None or arrive_at <= depart_at:
        raise InvalidInput("A transfer arrives after it departs; give both times with a time zone.")
    vehicle = session.get(Vehicle, vehicle_id)
    if vehicle is None:
        raise NotFound(f"There is no vehicle {vehicle_id}; pick one from the list.")
    if vehicle.status == VehicleStatus.RETIRED:
        raise Conflict(f"Vehicle {vehicle.license_plate} is retired; it is not moved any more.")
    where = session.execute(text("""
        SELECT l.code FROM vehicle_free_periods p JOIN locations l ON l.id = p.location_id
        WHERE p.vehicle_id = :vehicle AND p.period @> CAST(:at AS timestamptz)
    """), {"vehicle": vehicle.id, "at": depart_at}).scalar()
    if where is not None and where != _code(session, from_location_id):
        raise Conflict(f"Vehicle {vehicle.license_plate} will be at {where} then, not at "
                       f"{_code(session, from_location_id)}; plan the transfer from {where}.")
    transfer = Transfer(vehicle_id=vehicle.id, from_location_id=from_location_id, to_location_id=to_location_id,
                        depart_at=depart_at, arrive_at=arrive_at, status=TransferStatus.PLANNED, plan_id=plan_id,
                        move_id=move_id, distance_km=distance_km, cost=cost, currency=currency,
                        created_by=actor.user_id)
    _save(session, vehicle, depart_at, arrive_at, lambda: session.add(transfer), exclude=None)
    view = get_transfer(session, transfer.id)
    audit.record(session, actor, "transfer.planned", "transfer", transfer.id, None, _snapshot(view))
    record_event(session, "transfer", transfer.id, "transfer.planned", _payload(view))
    return view


def depart(session: Session, actor: Actor, transfer_id: int, *, now: datetime | None = None) -> TransferView:
    """The driver leaves with the car: it is InTransit, so no longer on hand at its branch (which stays its last
    branch until it arrives, as for the demo fleet); arrival is expected after the planned driving time from now."""
    require_role(actor, UserRole.FLEET_MANAGER, doing="record transfers")
    now = now or datetime.now(UTC)
    transfer, vehicle = _lock(session, transfer_id, doing="depart")
    ref = f"T{transfer.id}"
    if vehicle.status != VehicleStatus.AVAILABLE or vehicle.current_location_id != transfer.from_location_id:
        raise Conflict(_not_ready(session, vehicle, transfer))
    before = _snapshot(get_transfer(session, transfer.id))
    duration = transfer.arrive_at - transfer.depart_at
    _save(session, vehicle, now, now + duration, lambda: _set_times(transfer, now, now + duration),
          exclude=transfer.id, advice=f"depart at the planned time, or cancel {ref}")
    set_status(session, actor, vehicle, VehicleStatus.IN_TRANSIT, f"Transfer {ref} to {_code(session, transfer.to_location_id)}")
    transfer.status, transfer.updated_at = TransferStatus.IN_TRANSIT, func.now()
    session.flush()
    view = get_transfer(session, transfer.id)
    audit.record(session, actor, "transfer.departed", "transfer", transfer.id, before, _snapshot(view))
    record_event(session, "transfer", transfer.id, "transfer.departed", _payload(view))
    return view


def arrive(session: Session, actor: Actor, transfer_id: int, *, now: datetime | None = None) -> TransferView:
    """The car is at its new branch, available there."""
    require_role(actor, UserRole.FLEET_MANAGER, doing="record transfers")
    now = now or datetime.now(UTC)
    transfer, vehicle = _lock(session, transfer_id, doing="arrive")
    before = _snapshot(get_transfer(session, transfer.id))
    transfer.status, transfer.updated_at = TransferStatus.ARRIVED, func.now()
    transfer.arrived_at = now
    transfer.arrive_at = max(now, transfer.depart_at + timedelta(minutes=1))
    session.flush()
    vehicle.current_location_id = transfer.to_location_id
    set_status(session, actor, vehicle, VehicleStatus.AVAILABLE,
               f"Arrived at {_code(session, transfer.to_location_id)} (transfer T{transfer.id})")
    view = get_transfer(session, transfer.id)
    audit.record(session, actor, "transfer.arrived", "transfer", transfer.id, before, _snapshot(view))
    record_event(session, "transfer", transfer.id, "transfer.arrived", _payload(view))
    return view


def cancel(session: Session, actor: Actor, transfer_id: int, reason: str, *,
           now: datetime | None = None) -> TransferView:
    """Call off a planned transfer, saying why; the car stays where it is and is free for bookings again."""
    require_role(actor, UserRole.FLEET_MANAGER, doing="cancel transfers")
    reason = clean_reason(reason, what="cancelling the transfer")
    transfer, _ = _lock(session, transfer_id, doing="cancel")
    before = _snapshot(get_transfer(session, transfer.id))
    transfer.status, transfer.updated_at = TransferStatus.CANCELLED, func.now()
    transfer.cancelled_at, transfer.cancel_reason = now or datetime.now(UTC), reason
    session.flush()
    view = get_transfer(session, transfer.id)
    audit.record(session, actor, "transfer.cancelled", "transfer", transfer.id, before, _snapshot(view), note=reason)
    record_event(session, "transfer", transfer.id, "transfer.cancelled", _payload(view) | {"reason": reason})
    return view


# --- reading -------------------------------------------------------------------------------------------------------

_VIEW_SQL = """
    SELECT t.id, t.vehicle_id, v.license_plate AS plate, vt.code AS vehicle_type,
           t.from_location_id, f.code AS from_code, t.to_location_id, o.code AS to_code,
           t.depart_at, t.arrive_at, t.status::text AS status, t.plan_id, t.distance_km, t.cost, t.currency
    FROM transfers t
    JOIN vehicles v ON v.id = t.vehicle_id
    JOIN vehicle_types vt ON vt.id = v.vehicle_type_id
    JOIN locations f ON f.id = t.from_location_id
    JOIN locations o ON o.id = t.to_location_id
"""


def get_transfer(session: Session, transfer_id: int) -> TransferView:
    row = session.execute(text(_VIEW_SQL + " WHERE t.id = :id"), {"id": transfer_id}).mappings().first()
    if row is None:
        raise NotFound(f"There is no transfer T{transfer_id}; pick one from the Transfers list.")
    return TransferView(**(dict(row) | {"status": TransferStatus(row["status"])}))


def list_transfers(session: Session, *, statuses: tuple[str, ...] = ("planned", "in_transit"),
                   plan_id: int | None = None, location_id: int | None = None, limit: int = 2000,
                   now: datetime | None = None) -> pd.DataFrame:
    """Transfers for the drivers' coordinator, soonest departure first: car, route, times (with the origin's time
    zone), plan and cost; `overdue_minutes` says how long a planned car is past its departure, or a car on the road
    past its arrival (else empty)."""
    unknown = sorted(set(statuses) - {s.value for s in TransferStatus})
    if unknown:
        raise InvalidInput(f"Unknown transfer status {', '.join(unknown)}; use one of "
                           f"{', '.join(s.value for s in TransferStatus)}.")
    result = session.execute(text("""
        SELECT t.id, 'T' || t.id AS ref, t.status::text AS status, v.license_plate AS plate, v.make, v.model,
               vt.code AS vehicle_type, f.code AS from_code, f.name AS from_name, o.code AS to_code,
               o.name AS to_name, t.depart_at, t.arrive_at, f.timezone, t.distance_km, t.cost, t.currency,
               t.plan_id, v.status::text AS vehicle_status,
               floor(extract(epoch FROM CAST(:now AS timestamptz) - CASE t.status
                   WHEN 'planned' THEN t.depart_at WHEN 'in_transit' THEN t.arrive_at END) / 60)::integer
                   AS overdue_minutes
        FROM transfers t
        JOIN vehicles v ON v.id = t.vehicle_id
        JOIN vehicle_types vt ON vt.id = v.vehicle_type_id
        JOIN locations f ON f.id = t.from_location_id
        JOIN locations o ON o.id = t.to_location_id
        WHERE (cardinality(CAST(:statuses AS text[])) = 0 OR t.status::text = ANY (CAST(:statuses AS text[])))
          AND (CAST(:plan AS bigint) IS NULL OR t.plan_id = :plan)
          AND (CAST(:location AS integer) IS NULL OR :location IN (t.from_location_id, t.to_location_id))
        ORDER BY t.status = 'in_transit' DESC, t.depart_at, t.id
        LIMIT :limit
    """), {"statuses": list(statuses), "plan": plan_id, "location": location_id, "limit": limit,
           "now": now or datetime.now(UTC)})
    table = result_frame(result)
    table["overdue_minutes"] = table["overdue_minutes"].where(table["overdue_minutes"] > 0).astype("Int64")
    return table


def overdue_text(status: str, minutes: int | None) -> str:
    """'Arrival 2 h 05 min overdue', 'Departure 40 min overdue', or '' when on time."""
    if minutes is None or pd.isna(minutes) or minutes <= 0:
        return ""
    hours, rest = divmod(int(minutes), 60)
    late = f"{hours} h {rest:02d} min" if hours else f"{rest} min"
    return f"{'Arrival' if status == 'in_transit' else 'Departure'} {late} overdue"


# --- helpers -------------------------------------------------------------------------------------------------------

_REFUSALS = {
    TransferStatus.PLANNED: "it has not left yet; record its departure first",
    TransferStatus.IN_TRANSIT: "it is on the road; record its arrival when it gets there",
    TransferStatus.ARRIVED: "it has already arrived; there is nothing left to do",
    TransferStatus.CANCELLED: "it was cancelled; plan a new transfer if the car is still to move",
}
_STATE_WORDS = {TransferStatus.PLANNED: "planned", TransferStatus.IN_TRANSIT: "in transit",
                TransferStatus.ARRIVED: "complete (arrived)", TransferStatus.CANCELLED: "cancelled"}
_ALLOWED = {"depart": (TransferStatus.PLANNED,), "arrive": (TransferStatus.IN_TRANSIT,),
            "cancel": (TransferStatus.PLANNED,)}


def _lock(session: Session, transfer_id: int, *, doing: str) -> tuple[Transfer, Vehicle]:
    transfer = session.get(Transfer, transfer_id, with_for_update=True, populate_existing=True)
    if transfer is None:
        raise NotFound(f"There is no transfer T{transfer_id}; pick one from the Transfers list.")
    if transfer.status not in _ALLOWED[doing]:
        raise Conflict(f"Transfer T{transfer.id} is {_STATE_WORDS[transfer.status]}, so it cannot {doing}: "
                       f"{_REFUSALS[transfer.status]}.")
    vehicle = session.get(Vehicle, transfer.vehicle_id, with_for_update=True, populate_existing=True)
    assert vehicle is not None  # a foreign key
    return transfer, vehicle


def _not_ready(session: Session, vehicle: Vehicle, transfer: Transfer) -> str:
    origin = _code(session, transfer.from_location_id)
    plate, ref = vehicle.license_plate, f"T{transfer.id}"
    if vehicle.status == VehicleStatus.RENTED:
        return f"Vehicle {plate} is rented; {ref} can depart once it has been checked in at {origin}."
    if vehicle.status == VehicleStatus.MAINTENANCE:
        return f"Vehicle {plate} is in maintenance; {ref} can depart when the workshop releases it."
    if vehicle.status == VehicleStatus.IN_TRANSIT:
        return f"Vehicle {plate} is already on another transfer; {ref} can depart after it has arrived."
    if vehicle.status == VehicleStatus.RETIRED:
        return f"Vehicle {plate} is retired; cancel {ref}."
    here = _code(session, vehicle.current_location_id) if vehicle.current_location_id else "no branch"
    return f"Vehicle {plate} stands at {here}, not at {origin}; cancel {ref} and plan a transfer from {here}."


def _set_times(transfer: Transfer, depart_at: datetime, arrive_at: datetime) -> None:
    transfer.depart_at, transfer.arrive_at = depart_at, arrive_at


def _save(session: Session, vehicle: Vehicle, start: datetime, end: datetime, change, *, exclude: int | None,
          advice: str | None = None) -> None:
    """Make the change in a savepoint; the database's no-overlap guard becomes a Conflict naming what is in the
    way, and the caller's transaction lives on."""
    try:
        with session.begin_nested():
            change()
            session.flush()
    except IntegrityError as exc:
        diag = getattr(exc.orig, "diag", None)
        if getattr(exc.orig, "sqlstate", None) != EXCLUSION_VIOLATION or \
                getattr(diag, "constraint_name", None) != "vehicle_occupancy_no_overlap":
            raise
        raise Conflict(_in_the_way(session, vehicle, start, end, exclude, advice)) from None


def _in_the_way(session: Session, vehicle: Vehicle, start: datetime, end: datetime, exclude: int | None,
                advice: str | None) -> str:
    params = {"vehicle": vehicle.id, "start": start, "end": end, "exclude": exclude}
    bookings = [BookingRef(r.reference, r.pickup_at, r.dropoff_at, r.status) for r in session.execute(text("""
        SELECT reference, pickup_at, dropoff_at, status::text AS status FROM bookings
        WHERE vehicle_id = :vehicle AND status IN ('pending', 'confirmed', 'picked_up')
          AND blocked_period && tstzrange(:start, :end) ORDER BY pickup_at
    """), params)]
    others = session.execute(text("""
        SELECT 'maintenance block #' || m.id FROM maintenance_blocks m
        WHERE m.vehicle_id = :vehicle AND m.status IN ('scheduled', 'in_progress') AND m.period && tstzrange(:start, :end)
        UNION ALL
        SELECT 'transfer T' || t.id FROM transfers t
        WHERE t.vehicle_id = :vehicle AND t.status IN ('planned', 'in_transit')
          AND tstzrange(t.depart_at, t.arrive_at) && tstzrange(:start, :end) AND t.id IS DISTINCT FROM :exclude
    """), params).scalars().all()
    parts = []
    if bookings:
        noun = "booking" if len(bookings) == 1 else "bookings"
        parts.append(f"{noun} {describe_bookings(bookings, vehicle_zone(session, vehicle.id))}")
    parts += list(others)
    if not parts:
        return (f"Vehicle {vehicle.license_plate} was just taken for that time by someone else; look at its "
                "timeline and try again.")
    return (f"Vehicle {vehicle.license_plate} has {' and '.join(parts)} in that time; "
            f"{advice or 'pick another car or another night'}.")


def _code(session: Session, location_id: int | None) -> str:
    return session.execute(text("SELECT code FROM locations WHERE id = :id"), {"id": location_id}).scalar() or "?"


def _snapshot(view: TransferView) -> dict[str, Any]:
    return {"vehicle_id": view.vehicle_id, "from": view.from_code, "to": view.to_code, "depart_at": view.depart_at,
            "arrive_at": view.arrive_at, "status": view.status, "plan_id": view.plan_id}


def _payload(view: TransferView) -> dict[str, Any]:
    return {"transfer_id": view.id, "vehicle_id": view.vehicle_id, "license_plate": view.plate,
            "vehicle_type": view.vehicle_type, "from": view.from_code, "to": view.to_code,
            "depart_at": view.depart_at.isoformat(), "arrive_at": view.arrive_at.isoformat(),
            "status": view.status.value, "plan_id": view.plan_id}
