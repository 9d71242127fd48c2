"""Vehicles: add, change, retire and move between statuses by hand; and what the fleet screens read about one car.

Status changes a fleet manager may make by hand, each with a reason (kept in `status_reason`, audited, evented):

    available   -> maintenance, retired
    maintenance -> available (once no maintenance block is in progress), retired
    retired     -> available, maintenance (admins only: bringing a car back is rare and worth a second pair of eyes)

`rented` and `in_transit` are never set by hand (check-out and transfers set them), and a car in either state is not
changed by hand either (check-in and arrival change it back). Retiring is refused while the car has bookings still
to come, listing them; its open maintenance blocks are cancelled with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import ACTIVE_BOOKING_STATUSES, Booking, MaintenanceBlock, UserRole, Vehicle, VehicleStatus
from db.queries import FleetFilter, result_frame
from services import audit
from services.actors import Actor, require_role
from services.errors import Conflict, InvalidInput, NotFound
from services.events import record_event
from services.vehicle_fields import Catalogue, canonical_plate, clean_or_raise, plate_key

REASON_MAX_CHARS = 500
HAND_MOVES = {
    VehicleStatus.AVAILABLE: {VehicleStatus.MAINTENANCE, VehicleStatus.RETIRED},
    VehicleStatus.MAINTENANCE: {VehicleStatus.AVAILABLE, VehicleStatus.RETIRED},
    VehicleStatus.RETIRED: {VehicleStatus.AVAILABLE, VehicleStatus.MAINTENANCE},
}
ON_THE_ROAD = (VehicleStatus.RENTED, VehicleStatus.IN_TRANSIT)
PLATE_KEY_SQL = "upper(regexp_replace(v.license_plate, '[^[:alnum:]]', '', 'g'))"


@dataclass(frozen=True)
class VehicleView:
    """One vehicle as the fleet screens show it."""

    id: int
    vin: str
    plate: str
    make: str
    model: str
    year: int
    status: VehicleStatus
    status_reason: str | None
    vehicle_type: str
    type_name: str
    seats: int
    transmission: str
    fuel_type: str
    branch_id: int | None
    branch_code: str | None
    branch_name: str | None
    branch_lat: float | None
    branch_lon: float | None
    timezone: str
    lat: float | None  # last reported position
    lon: float | None
    last_seen_at: datetime | None
    daily_rate: Decimal
    currency: str
    odometer_km: int
    fuel_level: int
    image_urls: tuple[str, ...]
    last_service_at: datetime | None
    last_service_km: int | None
    created_at: datetime
    updated_at: datetime

    @property
    def title(self) -> str:
        return f"{self.plate} · {self.make} {self.model} ({self.year})"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class BookingRef:
    reference: str
    pickup_at: datetime
    dropoff_at: datetime
    status: str


class DuplicateVehicle(Conflict):
    """The VIN or plate already belongs to another vehicle; `problems` names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.problems = {field: message}
        super().__init__(message)


# --- writing -----------------------------------------------------------------------------------------------------

def add_vehicle(
    session: Session, actor: Actor, *, vin: str, license_plate: str, make: str, model: str, year: int | str,
    vehicle_type: str, branch: str, daily_rate: Decimal | str, odometer_km: int | str | None = None,
    fuel_level: int | str | None = None, image_urls: Sequence[str] | str | None = None,
) -> VehicleView:
    """Add a vehicle, available at its branch, after checking every field (all problems reported at once)."""
    require_role(actor, UserRole.FLEET_MANAGER, doing="add vehicles")
    values = clean_or_raise(dict(vin=vin, license_plate=license_plate, make=make, model=model, year=year,
                                 vehicle_type=vehicle_type, branch=branch, daily_rate=daily_rate,
                                 odometer_km=odometer_km, fuel_level=fuel_level, image_urls=image_urls),
                            Catalogue.load(session))
    refuse_duplicates(session, vin=values["vin"], plate=values["license_plate"])
    vehicle = Vehicle(status=VehicleStatus.AVAILABLE, currency=values["branch"].currency)
    _apply(vehicle, values)
    _flush(session, new=vehicle)
    audit.record(session, actor, "vehicle.created", "vehicle", vehicle.id, None, snapshot(vehicle))
    record_event(session, "vehicle", vehicle.id, "vehicle.created",
                 {"vehicle_id": vehicle.id, "license_plate": vehicle.license_plate,
                  "vehicle_type": values["vehicle_type"].code, "branch": values["branch"].code})
    return get_vehicle(session, vehicle.id)


def update_vehicle(session: Session, actor: Actor, vehicle_id: int, **changes: Any) -> VehicleView:
    """Change some fields of a vehicle (any of vehicle_fields.FIELDS); audited with the values before and after."""
    require_role(actor, UserRole.FLEET_MANAGER, doing="change vehicles")
    required = tuple(field for field in changes if field != "image_urls")  # a field being changed cannot be blank
    values = clean_or_raise(changes, Catalogue.load(session), required=required)
    vehicle = _load_for_update(session, vehicle_id)
    if "branch" in values and values["branch"].id != vehicle.current_location_id:
        if vehicle.status in ON_THE_ROAD:
            raise Conflict(f"Vehicle {vehicle.license_plate} is {vehicle.status.label.lower()}, not at a branch; its "
                           "branch is set when it is returned or arrives.")
        if values["branch"].currency != vehicle.currency and "daily_rate" not in values:
            raise InvalidInput(f"Branch {values['branch'].code} prices in {values['branch'].currency}, the car in "
                               f"{vehicle.currency}; give its daily rate in {values['branch'].currency} too.")
    refuse_duplicates(session, vin=values.get("vin"), plate=values.get("license_plate"), exclude_id=vehicle.id)
    before = snapshot(vehicle)

    def change() -> None:
        _apply(vehicle, values)
        if "branch" in values:
            vehicle.currency = values["branch"].currency
        if snapshot(vehicle) != before:
            vehicle.updated_at = func.now()

    _flush(session, change)
    after = snapshot(vehicle)
    changed = sorted(field for field in after if after[field] != before[field])
    if changed:
        audit.record(session, actor, "vehicle.updated", "vehicle", vehicle.id, before, after)
        record_event(session, "vehicle", vehicle.id, "vehicle.updated", {"vehicle_id": vehicle.id, "changed": changed})
    return get_vehicle(session, vehicle.id)


def change_status(session: Session, actor: Actor, vehicle_id: int, status: VehicleStatus | str, reason: str,
                  *, now: datetime | None = None) -> VehicleView:
    """Move a vehicle to another status by hand, saying why (see the module docstring for the allowed moves)."""
    require_role(actor, UserRole.FLEET_MANAGER, doing="change the status of vehicles")
    target = _as_status(status)
    reason = clean_reason(reason, what="the status change")
    now = now or datetime.now(UTC)
    vehicle = _load_for_update(session, vehicle_id)
    plate, current = vehicle.license_plate, vehicle.status
    if target in ON_THE_ROAD:
        job = "checking the car out to a booking" if target == VehicleStatus.RENTED else "starting a transfer"
        raise InvalidInput(f"A vehicle becomes {target.label.lower()} by {job}, not by hand; choose available, "
                           "maintenance or retired.")
    if current == target:
        raise Conflict(f"Vehicle {plate} is already {current.label.lower()}.")
    if current in ON_THE_ROAD:
        back = "checked in" if current == VehicleStatus.RENTED else "arrives at its branch"
        raise Conflict(f"Vehicle {plate} is {current.label.lower()}; its status changes when it is {back}, "
                       "not by hand.")
    if current == VehicleStatus.RETIRED:
        require_role(actor, UserRole.ADMIN, doing="bring retired vehicles back into service")
    cancelled_blocks: list[int] = []
    if target == VehicleStatus.RETIRED:
        _refuse_future_bookings(session, vehicle, now)
        cancelled_blocks = _cancel_open_blocks(session, vehicle.id)
    if current == VehicleStatus.MAINTENANCE and target == VehicleStatus.AVAILABLE:
        in_progress = session.scalar(select(MaintenanceBlock.id).where(
            MaintenanceBlock.vehicle_id == vehicle.id, MaintenanceBlock.status == "in_progress"))
        if in_progress is not None:
            raise Conflict(f"Vehicle {plate} is in maintenance block #{in_progress}; complete or cancel that block "
                           "on the Maintenance page, and the car becomes available with it.")
    set_status(session, actor, vehicle, target, reason,
               note=f"open maintenance blocks cancelled: {', '.join(f'#{b}' for b in cancelled_blocks)}"
               if cancelled_blocks else None)
    return get_vehicle(session, vehicle.id)


def retire_vehicle(session: Session, actor: Actor, vehicle_id: int, reason: str,
                   *, now: datetime | None = None) -> VehicleView:
    """Take a vehicle out of the fleet for good (sold, written off); refused while it has bookings to come."""
    return change_status(session, actor, vehicle_id, VehicleStatus.RETIRED, reason, now=now)


def set_status(session: Session, actor: Actor, vehicle: Vehicle, status: VehicleStatus, reason: str | None,
               *, note: str | None = None) -> None:
    """Record a status change of a locked vehicle: the row, its audit entry and its event (no rule checks here)."""
    before = {"status": vehicle.status, "status_reason": vehicle.status_reason}
    vehicle.status, vehicle.status_reason, vehicle.updated_at = status, reason, func.now()
    session.flush()
    audit.record(session, actor, "vehicle.status_changed", "vehicle", vehicle.id, before,
                 {"status": status, "status_reason": reason}, note=note)
    record_event(session, "vehicle", vehicle.id, "vehicle.status_changed",
                 {"vehicle_id": vehicle.id, "license_plate": vehicle.license_plate,
                  "from": before["status"].value, "to": status.value, "reason": reason})


def clean_reason(reason: str | None, *, what: str) -> str:
    cleaned = " ".join((reason or "").split())
    if not cleaned:
        raise InvalidInput(f"Give a reason for {what} (e.g. 'windscreen chipped'), so colleagues know why.")
    if len(cleaned) > REASON_MAX_CHARS:
        raise InvalidInput(f"The reason is {len(cleaned)} characters long; keep it under {REASON_MAX_CHARS}.")
    return cleaned


def refuse_duplicates(session: Session, *, vin: str | None, plate: str | None, exclude_id: int | None = None) -> None:
    """Raise DuplicateVehicle naming the vehicle that already has this VIN or (however spaced) this plate."""
    if not vin and not plate:
        return
    row = session.execute(text(f"""
        SELECT v.id, v.vin, v.license_plate, v.make, v.model,
               (v.vin = :vin) AS same_vin
        FROM vehicles v
        WHERE (v.vin = :vin OR v.license_plate = :plate OR {PLATE_KEY_SQL} = :key)
          AND v.id IS DISTINCT FROM :exclude
        ORDER BY same_vin DESC LIMIT 1
    """), {"vin": vin or "", "plate": plate or "", "key": plate_key(plate) if plate else "",
           "exclude": exclude_id}).first()
    if row is None:
        return
    owner = f"vehicle {row.license_plate} ({row.make} {row.model}, id {row.id})"
    if row.same_vin:
        raise DuplicateVehicle("vin", f"The VIN {vin} already belongs to {owner}; open that vehicle instead, or "
                                      "check the VIN.")
    raise DuplicateVehicle("license_plate", f"The number plate {plate} already belongs to {owner}; open that "
                                            "vehicle instead, or check the plate.")


def _apply(vehicle: Vehicle, values: dict[str, Any]) -> None:
    for field, value in values.items():
        if field == "vehicle_type":
            vehicle.vehicle_type_id = value.id
        elif field == "branch":
            vehicle.current_location_id = value.id
        elif field == "image_urls":
            vehicle.image_urls = list(value)
        else:
            setattr(vehicle, field, value)


def _flush(session: Session, change: Callable[[], None] | None = None, *, new: Vehicle | None = None) -> None:
    """Make the change and flush it in a savepoint (begin_nested flushes what came before, so the change happens
    inside), turning a lost race on a unique VIN or plate into the same Conflict as the check."""
    try:
        with session.begin_nested():
            if change is not None:
                change()
            if new is not None:
                session.add(new)
            session.flush()
    except IntegrityError as exc:
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        if constraint in ("vehicles_vin_key", "vehicles_license_plate_key"):
            field = "vin" if constraint == "vehicles_vin_key" else "license_plate"
            raise DuplicateVehicle(field, "That VIN or plate was just given to another vehicle; search for it "
                                          "before adding it again.") from None
        raise


def _refuse_future_bookings(session: Session, vehicle: Vehicle, now: datetime) -> None:
    coming = future_bookings(session, vehicle.id, now=now)
    if coming:
        raise Conflict(f"Vehicle {vehicle.license_plate} still has {_count(len(coming), 'booking')} to come: "
                       f"{describe_bookings(coming, vehicle_zone(session, vehicle.id))}; move them to another car "
                       "first, then retire it.")


def _cancel_open_blocks(session: Session, vehicle_id: int) -> list[int]:
    return list(session.scalars(
        update(MaintenanceBlock).where(MaintenanceBlock.vehicle_id == vehicle_id,
                                       MaintenanceBlock.status.in_(("scheduled", "in_progress")))
        .values(status="cancelled").returning(MaintenanceBlock.id)
    ))


def _load_for_update(session: Session, vehicle_id: int) -> Vehicle:
    vehicle = session.get(Vehicle, _as_id(vehicle_id), with_for_update=True, populate_existing=True)
    if vehicle is None:
        raise NotFound(f"There is no vehicle {vehicle_id}; pick one from the Vehicles list.")
    return vehicle


def snapshot(vehicle: Vehicle) -> dict[str, Any]:
    """The audited fields of a vehicle."""
    fields = ("vin", "license_plate", "make", "model", "year", "vehicle_type_id", "current_location_id", "daily_rate",
              "currency", "odometer_km", "fuel_level", "status", "status_reason")
    return {field: getattr(vehicle, field) for field in fields} | {"image_urls": list(vehicle.image_urls or [])}


def _as_status(status: VehicleStatus | str) -> VehicleStatus:
    try:
        return VehicleStatus(status)
    except ValueError:
        raise InvalidInput(f"There is no vehicle status {str(status)[:20]!r}; use one of "
                           f"{', '.join(s.value for s in VehicleStatus)}.") from None


def _as_id(vehicle_id: Any) -> int:
    try:
        value = int(vehicle_id)
    except (TypeError, ValueError):
        raise InvalidInput(f"{str(vehicle_id)[:40]!r} is not a vehicle number; pick one from the list.") from None
    if not 0 < value < 2**31:
        raise NotFound(f"There is no vehicle {value}; pick one from the Vehicles list.")
    return value


# --- reading -----------------------------------------------------------------------------------------------------

_DETAIL_SQL = """
    SELECT v.id, v.vin, v.license_plate AS plate, v.make, v.model, v.year, v.status::text AS status,
           v.status_reason, vt.code AS vehicle_type, vt.name AS type_name, vt.seats, vt.transmission,
           vt.fuel AS fuel_type, l.id AS branch_id, l.code AS branch_code, l.name AS branch_name,
           ST_Y(l.geog::geometry) AS branch_lat, ST_X(l.geog::geometry) AS branch_lon,
           COALESCE(l.timezone, (SELECT d.timezone FROM bookings b JOIN locations d ON d.id = b.dropoff_location_id
                                 WHERE b.vehicle_id = v.id ORDER BY b.pickup_at DESC LIMIT 1), 'UTC') AS timezone,
           ST_Y(v.last_position::geometry) AS lat, ST_X(v.last_position::geometry) AS lon, v.last_seen_at,
           v.daily_rate, v.currency, v.odometer_km, v.fuel_level, v.image_urls, v.last_service_at,
           v.last_service_km, v.created_at, v.updated_at
    FROM vehicles v
    JOIN vehicle_types vt ON vt.id = v.vehicle_type_id
    LEFT JOIN locations l ON l.id = v.current_location_id
"""


def get_vehicle(session: Session, vehicle_id: int) -> VehicleView:
    row = session.execute(text(_DETAIL_SQL + " WHERE v.id = :id"), {"id": _as_id(vehicle_id)}).mappings().first()
    if row is None:
        raise NotFound(f"There is no vehicle {vehicle_id}; pick one from the Vehicles list.")
    return _view(row)


def find_vehicle(session: Session, plate: str) -> VehicleView:
    """The vehicle with this number plate, however it is spaced or cased."""
    key = plate_key(plate or "")
    row = session.execute(text(_DETAIL_SQL + f" WHERE v.license_plate = :plate OR {PLATE_KEY_SQL} = :key"),
                          {"plate": canonical_plate(plate or ""), "key": key}).mappings().first()
    if row is None:
        raise NotFound(f"There is no vehicle with the plate {(plate or '').strip()[:20]!r}; search the list by plate, "
                       "VIN, make or model.")
    return _view(row)


def _view(row: Any) -> VehicleView:
    values = dict(row)
    values["status"] = VehicleStatus(values["status"])
    values["image_urls"] = tuple(values["image_urls"] or ())
    return VehicleView(**values)


def vehicle_zone(session: Session, vehicle_id: int) -> ZoneInfo:
    return get_vehicle(session, vehicle_id).zone


def list_vehicles(session: Session, *, search: str = "", statuses: Iterable[str] = (), type_codes: Iterable[str] = (),
                  location_ids: Iterable[int] = (), include_retired: bool = False, limit: int = 5000) -> pd.DataFrame:
    """Vehicles matching a search (plate, VIN, make or model) and filters; retired ones only when asked."""
    where, params = FleetFilter(tuple(statuses), tuple(type_codes), tuple(location_ids),
                                include_retired=include_retired).where()
    needle = " ".join((search or "").split())[:60]
    if needle:
        where += (f" AND ({PLATE_KEY_SQL} LIKE :key OR v.vin LIKE :vin"
                  " OR (v.make || ' ' || v.model) ILIKE :words ESCAPE '\\')")
        params.update(key=f"%{like_escape(plate_key(needle))}%" if plate_key(needle) else "-",
                      vin=f"%{like_escape(needle.upper())}%",
                      words=f"%{like_escape(needle)}%")
    params["limit"] = max(1, min(int(limit), 50_000))
    result = session.execute(text(f"""
        SELECT v.id, v.license_plate AS plate, v.vin, v.make, v.model, v.year, vt.code AS vehicle_type,
               v.status::text AS status, v.status_reason, l.code AS branch_code, l.name AS branch,
               v.daily_rate, v.currency, v.odometer_km, v.fuel_level, v.last_seen_at
        FROM vehicles v
        JOIN vehicle_types vt ON vt.id = v.vehicle_type_id
        LEFT JOIN locations l ON l.id = v.current_location_id
        WHERE {where}
        ORDER BY v.license_plate
        LIMIT :limit
    """), params)
    return result_frame(result)


def future_bookings(session: Session, vehicle_id: int, *, now: datetime | None = None) -> list[BookingRef]:
    """Active bookings of a vehicle that have not ended yet, earliest first."""
    rows = session.execute(
        select(Booking.reference, Booking.pickup_at, Booking.dropoff_at, Booking.status)
        .where(Booking.vehicle_id == vehicle_id, Booking.status.in_(ACTIVE_BOOKING_STATUSES),
               Booking.dropoff_at > (now or datetime.now(UTC)))
        .order_by(Booking.pickup_at)
    ).all()
    return [BookingRef(r.reference, r.pickup_at, r.dropoff_at, r.status.value) for r in rows]


def vehicle_timeline(session: Session, vehicle_id: int, since: datetime, until: datetime) -> pd.DataFrame:
    """What the vehicle does in a window: bookings, maintenance blocks and transfers (not cancelled ones)."""
    result = session.execute(text("""
        SELECT 'Bookings' AS lane, b.reference AS ref, b.status::text AS status, b.pickup_at AS start_at,
               b.dropoff_at AS end_at, p.code || ' → ' || d.code AS detail
        FROM bookings b JOIN locations p ON p.id = b.pickup_location_id JOIN locations d ON d.id = b.dropoff_location_id
        WHERE b.vehicle_id = :id AND b.status <> 'cancelled' AND b.pickup_at < :until AND b.dropoff_at > :since
        UNION ALL
        SELECT 'Maintenance', '#' || m.id, m.status, lower(m.period), upper(m.period), m.reason
        FROM maintenance_blocks m
        WHERE m.vehicle_id = :id AND m.status <> 'cancelled' AND m.period && tstzrange(:since, :until)
        UNION ALL
        SELECT 'Transfers', 'T' || t.id, t.status::text, t.depart_at, t.arrive_at, f.code || ' → ' || o.code
        FROM transfers t JOIN locations f ON f.id = t.from_location_id JOIN locations o ON o.id = t.to_location_id
        WHERE t.vehicle_id = :id AND t.status <> 'cancelled' AND t.depart_at < :until AND t.arrive_at > :since
        ORDER BY start_at
    """), {"id": vehicle_id, "since": since, "until": until})
    return result_frame(result)


def telematics_history(session: Session, vehicle_id: int, since: datetime, until: datetime,
                       *, max_points: int = 2000) -> pd.DataFrame:
    """Readings in a window (fuel, odometer, position), thinned evenly to at most max_points (the last one kept)."""
    result = session.execute(text("""
        WITH r AS (
            SELECT recorded_at, ST_Y(position::geometry) AS lat, ST_X(position::geometry) AS lon, fuel_level,
                   odometer_km, row_number() OVER (ORDER BY recorded_at) AS n, count(*) OVER () AS total
            FROM telematics_readings
            WHERE vehicle_id = :id AND recorded_at >= :since AND recorded_at < :until
        )
        SELECT recorded_at, lat, lon, fuel_level, odometer_km FROM r
        WHERE total <= :max OR n % ceil(total::numeric / :max)::int = 0 OR n = total
        ORDER BY recorded_at
    """), {"id": vehicle_id, "since": since, "until": until, "max": max(2, max_points)})
    return result_frame(result)


# --- words for people ----------------------------------------------------------------------------------------------

def describe_period(start: datetime, end: datetime, zone: ZoneInfo) -> str:
    """'3–5 May', '30 Apr–2 May', '3 May 09:00–17:00' or '30 Dec 2026–2 Jan 2027', in the branch's time zone."""
    a, b = start.astimezone(zone), end.astimezone(zone)
    if a.date() == b.date():
        return f"{a.day} {a:%b} {a:%H:%M}–{b:%H:%M}"
    if a.year != b.year:
        return f"{a.day} {a:%b %Y}–{b.day} {b:%b %Y}"
    if a.month != b.month:
        return f"{a.day} {a:%b}–{b.day} {b:%b}"
    return f"{a.day}–{b.day} {b:%b}"


def describe_bookings(bookings: Sequence[BookingRef], zone: ZoneInfo, *, at_most: int = 5) -> str:
    """'FD3K9Q (3–5 May, confirmed) and FD7PX2 (8–9 May, pending)', the rest counted."""
    parts = [f"{b.reference} ({describe_period(b.pickup_at, b.dropoff_at, zone)}, {b.status.replace('_', ' ')})"
             for b in bookings[:at_most]]
    if len(bookings) > at_most:
        parts.append(f"{len(bookings) - at_most} more")
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

