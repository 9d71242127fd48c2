"""Lost demand: customers the desk had to turn away. The bookings never show them; the analytics summary counts
them by the pick-up day asked for (`services.analytics`, "Turned away"), beside the branch's utilisation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Location, TurnedAway, UserRole, VehicleType
from services import audit
from services.actors import Actor, require_role
from services.availability import check_period
from services.errors import InvalidInput, NotFound
from services.events import record_event

REASONS = {"no_car": "No suitable car free", "price": "The price", "other": "Something else"}
NOTE_MAX_CHARS = 500


@dataclass(frozen=True)
class TurnedAwayView:
    id: int
    branch: str
    vehicle_type: str
    reason: str


def record_turned_away(session: Session, actor: Actor, *, location_id: int, vehicle_type: str,
                       pickup_at: datetime, dropoff_at: datetime, reason: str, note: str = "",
                       channel: str = "desk") -> TurnedAwayView:
    """Record a customer who left without a car: where, which type (its code), the times asked for, and why."""
    require_role(actor, UserRole.DESK_AGENT, doing="record customers turned away")
    if reason not in REASONS:
        raise InvalidInput(f"Say why the customer left: one of {', '.join(REASONS)}.")
    check_period(pickup_at, dropoff_at)
    if dropoff_at - pickup_at > timedelta(days=731):
        raise InvalidInput("A rental asked for lasts at most two years; check the dates.")
    note = (note or "").strip()
    if len(note) > NOTE_MAX_CHARS:
        raise InvalidInput(f"The note is {len(note)} characters long; keep it under {NOTE_MAX_CHARS}.")
    branch = session.get(Location, location_id)
    if branch is None:
        raise NotFound(f"There is no branch with id {location_id}; pick one from the list.")
    vtype = session.scalar(select(VehicleType).where(VehicleType.code == vehicle_type))
    if vtype is None:
        raise NotFound(f"There is no vehicle type {vehicle_type!r}; pick one from the list.")
    row = TurnedAway(location_id=location_id, vehicle_type_id=vtype.id, pickup_at=pickup_at,
                     dropoff_at=dropoff_at, reason=reason, note=note or None, channel=channel,
                     recorded_by=actor.user_id)
    session.add(row)
    session.flush()
    facts = {"location_id": location_id, "vehicle_type_id": vtype.id, "pickup_at": pickup_at,
             "dropoff_at": dropoff_at, "reason": reason}
    audit.record(session, actor, "demand.turned_away", "turned_away", row.id, None, facts, note=note or None)
    record_event(session, "turned_away", row.id, "demand.turned_away", audit.plain({"id": row.id, **facts}))
    return TurnedAwayView(row.id, branch.code, vtype.code, REASONS[reason])
