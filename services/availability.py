"""Which cars are free for a rental, where they will stand when it starts, and what the period costs.

A car is free for a rental from pick-up to drop-off when all of these hold:

- it is not retired, and not in transit (cars being moved between branches come back with the transfers of the
  rebalancing issue; a car in maintenance is taken only by its maintenance blocks, like any other car);
- nothing takes it from the pick-up until the drop-off plus the turnaround (FLEETDESK_TURNAROUND_MINUTES): no active
  booking (with its own turnaround) and no open maintenance block, i.e. no overlapping row of vehicle_occupancy;
- it will stand at the pick-up branch: the drop-off branch of its last active booking before the pick-up or, with
  none, its current branch (a car out on a rental is only found through the booking that brings it back);
- its next active booking after the drop-off, if any, starts at the drop-off branch, so that a one-way rental never
  strands a car away from where the next customer expects it.

A search at a branch also needs the pick-up branch open at the pick-up and the drop-off branch open at the drop-off
(each in its own time zone) and says when they open if not; a search around a point skips the branches that are
closed and lists the ones it skipped (`Availability.closed_branches`).

The search reads `vehicle_free_periods` (migration 0004): every stretch between the periods a car is taken, with the
branch it stands at and where its next booking starts, kept by triggers. Its index holds each branch's stretches in
price order, so a branch is one index range scan that stops at the cheapest `limit` stretches containing the rental;
a radius search walks the branches outwards from the point (a KNN scan of the locations' geography index) and stops
at the branch that completes the nearest `limit` cars.

`find_available` answers an `Availability`: the cars as frozen `AvailableVehicle` rows (nearest, then cheapest, then
by id; `Availability.frame()` gives them as a DataFrame), the days charged, whether more were free, the closed
branches a radius search skipped, and a hint when nothing was found. Money is Decimal.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from psycopg.rows import dict_row
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.config import turnaround_minutes
from db.queries import result_frame
from services.errors import InvalidInput, NotFound
from services.opening_hours import closed_reason

DEFAULT_RADIUS_KM = 25.0
MAX_RADIUS_KM = 500.0
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
DEFAULT_MAX_RENTAL_DAYS = 90
PAST_TOLERANCE = timedelta(minutes=15)  # "now", typed a few minutes ago, is not in the past
ACTIVE = "('pending', 'confirmed', 'picked_up')"


def max_rental_days() -> int:
    """The longest rental anyone can search for (FLEETDESK_MAX_RENTAL_DAYS, default 90)."""
    raw = os.environ.get("FLEETDESK_MAX_RENTAL_DAYS", str(DEFAULT_MAX_RENTAL_DAYS))
    try:
        days = int(raw)
    except ValueError:
        raise ValueError(f"FLEETDESK_MAX_RENTAL_DAYS must be whole days, not {raw!r}") from None
    if not 1 <= days <= 3650:
        raise ValueError("FLEETDESK_MAX_RENTAL_DAYS must be between 1 and 3650")
    return days


# --- the question ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AvailabilityQuery:
    """A search: when, where (a pick-up branch, or a point and a radius), optional drop-off branch and types.

    Construction checks everything that needs neither the clock nor the database and raises InvalidInput with a
    message saying what to change; `find_available` checks the rest (the past, the longest rental, unknown branches
    and types, opening hours). The drop-off branch defaults to the pick-up branch (for a point: each car's own).
    """

    pickup_at: datetime
    dropoff_at: datetime
    pickup_location_id: int | None = None
    lat: float | None = None
    lon: float | None = None
    radius_km: float = DEFAULT_RADIUS_KM
    dropoff_location_id: int | None = None
    vehicle_types: tuple[str, ...] = ()
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        check_period(self.pickup_at, self.dropoff_at)
        has_point = self.lat is not None or self.lon is not None
        if self.pickup_location_id is not None and has_point:
            raise InvalidInput("Search either at a pick-up branch or around a point (lat and lon), not both; "
                               "leave one of them out.")
        if self.pickup_location_id is None and not has_point:
            raise InvalidInput("Say where to search: a pick-up branch, or a point (lat and lon) and a radius.")
        if self.pickup_location_id is not None:
            _check_id(self.pickup_location_id, "pick-up branch")
        else:
            _check_point(self.lat, self.lon)
        if self.dropoff_location_id is not None:
            _check_id(self.dropoff_location_id, "drop-off branch")
        _check_radius(self.radius_km)
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidInput(f"The limit must be a whole number from 1 to {MAX_LIMIT}, not {self.limit!r}.")
        if isinstance(self.vehicle_types, str):
            object.__setattr__(self, "vehicle_types", (self.vehicle_types,))
        codes = tuple(dict.fromkeys(str(code).strip() for code in self.vehicle_types))
        if any(not code for code in codes):
            raise InvalidInput("A vehicle type is blank; give type codes such as 'compact', or none for all types.")
        object.__setattr__(self, "vehicle_types", codes)

    @property
    def around_point(self) -> bool:
        return self.pickup_location_id is None


def check_period(pickup_at: Any, dropoff_at: Any) -> None:
    """Raise InvalidInput unless both are moments with a time zone and the drop-off comes after the pick-up."""
    for value, name in ((pickup_at, "pick-up"), (dropoff_at, "drop-off")):
        if not isinstance(value, datetime):
            raise InvalidInput(f"The {name} must be a date and time, not {value!r}.")
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInput(f"The {name} time {value:%Y-%m-%d %H:%M} has no time zone; give it with one "
                               f"(for example {value:%Y-%m-%dT%H:%M}+00:00).")
    if dropoff_at <= pickup_at:
        what = "the same as" if dropoff_at == pickup_at else "before"
        raise InvalidInput(f"The drop-off ({_when(dropoff_at)}) is {what} the pick-up ({_when(pickup_at)}); "
                           "choose a drop-off after the pick-up.")


def _check_id(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"The {name} must be a branch id (a whole number), not {value!r}.")


def _check_point(lat: Any, lon: Any) -> None:
    if lat is None or lon is None:
        missing = "latitude (lat)" if lat is None else "longitude (lon)"
        raise InvalidInput(f"The point has no {missing}; give both lat and lon.")
    for value, name, bound in ((lat, "Latitude", 90), (lon, "Longitude", 180)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidInput(f"{name} must be a number of degrees, not {value!r}.")
        if not -bound <= value <= bound:
            raise InvalidInput(f"{name} {value} is off the globe; it must be between -{bound} and {bound} degrees.")


def _check_radius(radius_km: Any) -> None:
    if isinstance(radius_km, bool) or not isinstance(radius_km, int | float) or not math.isfinite(radius_km):
        raise InvalidInput(f"The radius must be a number of kilometres, not {radius_km!r}.")
    if radius_km <= 0:
        raise InvalidInput(f"The radius must be more than 0 km, not {radius_km:g} km; try {DEFAULT_RADIUS_KM:g} km.")
    if radius_km > MAX_RADIUS_KM:
        raise InvalidInput(f"A radius of {radius_km:g} km is more than the {MAX_RADIUS_KM:g} km a search can cover; "
                           "search around a point nearer the customer, or at a branch.")


# --- the answer -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AvailableVehicle:
    """A free car, where it will stand at the pick-up, and its price for the period (daily rate × days)."""

    id: int
    make: str
    model: str
    year: int
    license_plate: str
    vehicle_type: str
    location_id: int
    location_code: str
    location_name: str
    lat: float  # of the branch it stands at
    lon: float
    distance_km: float  # from the point searched (0 for a search at a branch)
    daily_rate: Decimal
    total_price: Decimal
    currency: str


@dataclass(frozen=True)
class ClosedBranch:
    """A branch a radius search skipped because it is closed at the pick-up or drop-off time."""

    location_id: int
    code: str
    name: str
    distance_km: float
    reason: str  # 'closed at 03:00 on Sunday 6 December (the pick-up); it opens at 05:00'


@dataclass(frozen=True)
class Availability:
    """The free cars nearest first (then cheapest, then by id), and what the search left out and why.

    `closed_branches` are the branches nearer than the farthest car shown (or within the radius, when fewer than
    `limit` cars were found) that were skipped because they are closed. `more` says there are more free cars than
    the limit. `hint` explains an empty answer (no branch in reach, all closed, nothing free).
    """

    query: AvailabilityQuery
    vehicles: tuple[AvailableVehicle, ...]
    rental_days: int
    more: bool = False
    closed_branches: tuple[ClosedBranch, ...] = ()
    hint: str | None = None

    def frame(self) -> pd.DataFrame:
        """One row per car, in order, with every field of AvailableVehicle as a column."""
        columns = list(AvailableVehicle.__dataclass_fields__)
        return pd.DataFrame([vars(v) for v in self.vehicles], columns=columns)


def rental_days(pickup_at: datetime, dropoff_at: datetime) -> int:
    """Days charged: every started 24 hours, at least one."""
    return max(1, math.ceil((dropoff_at - pickup_at) / timedelta(days=1)))


def price_for(daily_rate: Decimal, days: int) -> Decimal:
    """The list price of a rental until the pricing rules land: the car's daily rate times the days."""
    return (Decimal(daily_rate) * days).quantize(Decimal("0.01"))


# --- the search -----------------------------------------------------------------------------------------------------

_FOUND_AT_BRANCH = """
    SELECT f.location_id, 0::float8 AS distance_m, f.vehicle_id, f.daily_rate
    FROM vehicle_free_periods f
    WHERE f.location_id = %(pickup_id)s::int AND f.period @> tstzrange(%(pickup)s, %(free_until)s, '[)')
      AND (f.next_pickup_location_id IS NULL OR f.next_pickup_location_id = %(dropoff_id)s::int)
      {types}
    ORDER BY f.daily_rate, f.vehicle_id
    LIMIT %(n)s::int
"""

# The branches are read in distance order by a KNN scan of the geography index (the LIMIT keeps it a subquery the
# planner does not flatten) and joined one by one; with the incremental sort above the join, the walk stops at the
# branch that fills the limit. Closed branches are skipped inside the join, so only the branches walked are checked.
# No bounding-box filter in the scan: its selectivity cannot be estimated for a prepared statement, and with it the
# generic plan sorts every free car in the radius instead of walking (twenty times slower); the distance filter
# above the scan is exact and costs one comparison per branch.
_FOUND_AROUND_POINT = """
    SELECT b.id AS location_id, b.distance_m, c.vehicle_id, c.daily_rate
    FROM (
        SELECT n.* FROM (
            SELECT l.id, l.timezone, l.opening_minutes, l.geog <-> %(here)s::geography AS distance_m
            FROM locations l
            ORDER BY l.geog <-> %(here)s::geography
            LIMIT 1000000
        ) n
        WHERE n.distance_m <= %(radius_m)s::float8
    ) b
    CROSS JOIN LATERAL (
        SELECT f.vehicle_id, f.daily_rate
        FROM vehicle_free_periods f
        WHERE f.location_id = b.id AND f.period @> tstzrange(%(pickup)s, %(free_until)s, '[)')
          AND (f.next_pickup_location_id IS NULL
               OR f.next_pickup_location_id = coalesce(%(dropoff_id)s::int, b.id))
          AND b.opening_minutes @> fd_minute_of_week(%(pickup)s, b.timezone)
          {dropoff_open}
          {types}
        ORDER BY f.daily_rate, f.vehicle_id
        LIMIT %(n)s::int
    ) c
    ORDER BY b.distance_m, c.daily_rate, c.vehicle_id
    LIMIT %(n)s::int
"""

_DETAILS = """
    WITH found AS ({found})
    SELECT v.id, v.make, v.model, v.year, v.license_plate, t.code AS vehicle_type, found.location_id,
           l.code AS location_code, l.name AS location_name, ST_Y(l.geog::geometry) AS lat,
           ST_X(l.geog::geometry) AS lon, found.distance_m, v.daily_rate, v.currency
    FROM found
    JOIN vehicles v ON v.id = found.vehicle_id
    JOIN vehicle_types t ON t.id = v.vehicle_type_id
    JOIN locations l ON l.id = found.location_id
    ORDER BY found.distance_m, found.daily_rate, found.vehicle_id
"""


def find_available(session: Session, query: AvailabilityQuery, *, now: datetime | None = None) -> Availability:
    """The cars free for the whole period where the query asks, nearest first, with their price for the period."""
    now = _aware_now(now)
    _check_timing(query.pickup_at, query.dropoff_at, now)
    branches = _branches(session, [query.pickup_location_id, query.dropoff_location_id])
    type_ids = _type_ids(session, query.vehicle_types)
    days = rental_days(query.pickup_at, query.dropoff_at)
    params: dict[str, Any] = {
        "pickup": query.pickup_at, "dropoff": query.dropoff_at, "free_until": _free_until(query.dropoff_at),
        "dropoff_id": query.dropoff_location_id, "types": type_ids, "n": query.limit + 1,
    }
    types_clause = "AND f.vehicle_type_id = ANY(%(types)s::int[])" if type_ids else ""
    if query.around_point:
        if query.dropoff_location_id is not None:
            _require_open(branches[query.dropoff_location_id], query.dropoff_at, "drop-off")
            dropoff_open = ""
        else:
            dropoff_open = "AND b.opening_minutes @> fd_minute_of_week(%(dropoff)s, b.timezone)"
        params |= {"here": _point_wkt(query.lat, query.lon), "radius_m": query.radius_km * 1000}
        found = _FOUND_AROUND_POINT.format(types=types_clause, dropoff_open=dropoff_open)
    else:
        pickup_branch = branches[query.pickup_location_id]
        dropoff_branch = branches[query.dropoff_location_id or query.pickup_location_id]
        _require_open(pickup_branch, query.pickup_at, "pick-up")
        _require_open(dropoff_branch, query.dropoff_at, "drop-off")
        params |= {"pickup_id": query.pickup_location_id, "dropoff_id": dropoff_branch["id"]}
        found = _FOUND_AT_BRANCH.format(types=types_clause)

    rows = _fetch(session, _DETAILS.format(found=found), params)
    vehicles = tuple(_vehicle(row, days) for row in rows[:query.limit])
    more = len(rows) > query.limit
    closed: tuple[ClosedBranch, ...] = ()
    if query.around_point:
        reach_m = rows[query.limit - 1]["distance_m"] if more else query.radius_km * 1000
        closed = _closed_branches(session, query, reach_m)
    hint = None if vehicles else _why_empty(session, query, branches, closed)
    return Availability(query=query, vehicles=vehicles, rental_days=days, more=more, closed_branches=closed,
                        hint=hint)


def _vehicle(row: dict[str, Any], days: int) -> AvailableVehicle:
    return AvailableVehicle(
        id=row["id"], make=row["make"], model=row["model"], year=row["year"], license_plate=row["license_plate"],
        vehicle_type=row["vehicle_type"], location_id=row["location_id"], location_code=row["location_code"],
        location_name=row["location_name"], lat=row["lat"], lon=row["lon"],
        distance_km=round(row["distance_m"] / 1000, 3), daily_rate=row["daily_rate"],
        total_price=price_for(row["daily_rate"], days), currency=row["currency"].strip(),
    )


def _fetch(session: Session, sql: str, params: dict[str, Any], *, prepare: bool | None = None
           ) -> list[dict[str, Any]]:
    """Rows of a query run on the session's connection, in its transaction, as dicts (psycopg's own cursor: the
    search runs thousands of times a minute, and this skips a layer). prepare=False plans the query for these very
    parameters every time; None lets psycopg prepare a query it sees often.
    """
    session.flush()  # what the caller added must be seen, as session.execute would
    connection = session.connection().connection.driver_connection
    with connection.cursor(row_factory=dict_row) as cursor:
        cursor.execute(sql, params, prepare=prepare)
        return cursor.fetchall()


def _point_wkt(lat: float, lon: float) -> str:
    return f"SRID=4326;POINT({float(lon)!r} {float(lat)!r})"


def _free_until(dropoff_at: datetime) -> datetime:
    return dropoff_at + timedelta(minutes=turnaround_minutes())


def _aware_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return now


def _check_timing(pickup_at: datetime, dropoff_at: datetime, now: datetime) -> None:
    if pickup_at < now - PAST_TOLERANCE:
        raise InvalidInput(f"The pick-up ({_when(pickup_at)}) is in the past; choose a pick-up from now on.")
    longest = max_rental_days()
    if dropoff_at - pickup_at > timedelta(days=longest):
        length = (dropoff_at - pickup_at) / timedelta(days=1)
        raise InvalidInput(f"A rental of {length:.4g} days is longer than the {longest}-day maximum; choose an "
                           f"earlier drop-off, or split the rental into rentals of at most {longest} days.")


def _branches(session: Session, ids: Iterable[int | None]) -> dict[int, dict[str, Any]]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = _fetch(session, "SELECT id, code, name, timezone, operating_hours FROM locations WHERE id = ANY(%(ids)s)",
                  {"ids": wanted})
    found = {row["id"]: row for row in rows}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise NotFound(f"There is no branch with id {', '.join(map(str, missing))}; pick a branch from the list.")
    return found


def _type_ids(session: Session, codes: Sequence[str]) -> list[int]:
    if not codes:
        return []
    known = {row["code"]: row["id"] for row in _fetch(session, "SELECT code, id FROM vehicle_types ORDER BY rank", {})}
    unknown = [code for code in codes if code not in known]
    if unknown:
        listed = ", ".join(repr(code) for code in unknown)
        raise InvalidInput(f"Unknown vehicle type {listed}; use one of {', '.join(known) or 'the fleet’s types'}.")
    return [known[code] for code in codes]


def _require_open(branch: dict[str, Any], at: datetime, what: str) -> None:
    reason = closed_reason(branch["operating_hours"], branch["timezone"], at, what)
    if reason:
        raise InvalidInput(f"{branch['name']} is {reason}. Choose a time when it is open, or another branch.")


def _closed_branches(session: Session, query: AvailabilityQuery, reach_m: float) -> tuple[ClosedBranch, ...]:
    dropoff_closed = "" if query.dropoff_location_id is not None else \
        "OR NOT l.opening_minutes @> fd_minute_of_week(%(dropoff)s, l.timezone)"
    rows = _fetch(session, f"""
        SELECT l.id, l.code, l.name, l.timezone, l.operating_hours::text AS hours,
               l.geog <-> %(here)s::geography AS distance_m
        FROM locations l
        WHERE l.geog && _ST_Expand(%(here)s::geography, %(reach_m)s::float8)
          AND l.geog <-> %(here)s::geography <= %(reach_m)s::float8
          AND (NOT l.opening_minutes @> fd_minute_of_week(%(pickup)s, l.timezone) {dropoff_closed})
        ORDER BY distance_m, l.id
    """, {"here": _point_wkt(query.lat, query.lon), "reach_m": reach_m, "pickup": query.pickup_at,
          "dropoff": query.dropoff_at}, prepare=False)
    reasons: dict[tuple[str, str], str] = {}  # a night search may skip hundreds of branches with a few kinds of hours

    def reason(hours_text: str, zone: str) -> str:
        if (hours_text, zone) not in reasons:
            hours = json.loads(hours_text)
            said = [closed_reason(hours, zone, query.pickup_at, "pick-up")]
            if query.dropoff_location_id is None:
                said.append(closed_reason(hours, zone, query.dropoff_at, "drop-off"))
            reasons[(hours_text, zone)] = " and ".join(r for r in said if r)
        return reasons[(hours_text, zone)]

    return tuple(ClosedBranch(row["id"], row["code"], row["name"], round(row["distance_m"] / 1000, 3),
                              reason(row["hours"], row["timezone"])) for row in rows)


def _why_empty(session: Session, query: AvailabilityQuery, branches: dict[int, dict[str, Any]],
               closed: Sequence[ClosedBranch]) -> str:
    types = f" of type {', '.join(query.vehicle_types)}" if query.vehicle_types else ""
    if not query.around_point:
        name = branches[query.pickup_location_id]["name"]
        return (f"No car{types} is free at {name} for the whole period; try other dates or types, "
                "or search around the branch.")
    in_reach = session.execute(text("""
        SELECT count(*) FROM locations
        WHERE ST_DWithin(geog, ST_GeogFromText(:here), :radius_m, false)
    """), {"here": _point_wkt(query.lat, query.lon), "radius_m": query.radius_km * 1000}).scalar_one()
    where = f"within {query.radius_km:g} km of {query.lat:.4f}, {query.lon:.4f}"
    if in_reach == 0:
        nearest = session.execute(text("""
            SELECT name, code, (geog <-> ST_GeogFromText(:here)) / 1000 AS km FROM locations
            ORDER BY geog <-> ST_GeogFromText(:here) LIMIT 1
        """), {"here": _point_wkt(query.lat, query.lon)}).mappings().first()
        if nearest is None:
            return "There are no branches yet."
        return (f"No branch lies {where}; the nearest, {nearest['name']} ({nearest['code']}), is "
                f"{nearest['km']:.1f} km away. Widen the radius or search at a branch.")
    if len(closed) == in_reach:
        return f"All {in_reach} branches {where} are closed at the pick-up or drop-off time; choose other times."
    open_count = in_reach - len(closed)
    branches_word = "branch" if open_count == 1 else "branches"
    return (f"No car{types} is free for the whole period at the {open_count} open {branches_word} {where}; "
            "try other dates or types, or a wider radius.")


def _when(at: datetime) -> str:
    return f"{at:%a} {at.day} {at:%b %Y %H:%M} {at.tzname() or ''}".strip()


# --- one car --------------------------------------------------------------------------------------------------------

# Why one car cannot take a rental, read from bookings and vehicle_occupancy themselves (not from the search's derived
# table), so a booking can re-check a car inside its own transaction. Parameters :vehicle, :pickup, :free_until
# (`_free_until` of the drop-off) and :ignore (a booking left out, or NULL). `CAR_CHECK_LOCKED` also holds the car's
# row until the transaction ends, so a concurrent check of the same car waits for this one. A caller may run it as a
# LATERAL subquery of its own query (as creating a booking does) and pass the row to `reason_from_check`.
CAR_CHECK = f"""
    SELECT v.license_plate, v.status::text AS status, v.current_location_id,
           prev.dropoff_location_id AS arrives_at, prev.reference AS arriving_with,
           nxt.pickup_location_id AS next_from, nxt.reference AS next_reference, nxt.pickup_at AS next_at,
           clash.period AS clash_period, clash_booking.reference AS clash_reference
    FROM vehicles v
    LEFT JOIN LATERAL (
        SELECT b.dropoff_location_id, b.reference FROM bookings b
        WHERE b.vehicle_id = v.id AND b.status IN {ACTIVE} AND b.pickup_at < :pickup
          AND b.id IS DISTINCT FROM :ignore
        ORDER BY b.pickup_at DESC LIMIT 1
    ) prev ON true
    LEFT JOIN LATERAL (
        SELECT b.pickup_location_id, b.reference, b.pickup_at FROM bookings b
        WHERE b.vehicle_id = v.id AND b.status IN {ACTIVE} AND b.pickup_at >= :pickup
          AND b.id IS DISTINCT FROM :ignore
        ORDER BY b.pickup_at LIMIT 1
    ) nxt ON true
    LEFT JOIN LATERAL (
        SELECT o.period, o.booking_id FROM vehicle_occupancy o
        WHERE o.vehicle_id = v.id AND o.period && tstzrange(:pickup, :free_until, '[)')
          AND (CAST(:ignore AS bigint) IS NULL OR o.booking_id IS DISTINCT FROM CAST(:ignore AS bigint))
        ORDER BY lower(o.period) LIMIT 1
    ) clash ON true
    LEFT JOIN bookings clash_booking ON clash_booking.id = clash.booking_id
    WHERE v.id = :vehicle
"""
CAR_CHECK_LOCKED = CAR_CHECK + "    FOR NO KEY UPDATE OF v\n"


def car_check_params(vehicle_id: int, pickup_at: datetime, dropoff_at: datetime,
                     ignore_booking_id: int | None = None) -> dict[str, Any]:
    """The parameters of `CAR_CHECK` for this car and rental."""
    check_period(pickup_at, dropoff_at)
    return {"vehicle": vehicle_id, "pickup": pickup_at, "free_until": _free_until(dropoff_at),
            "ignore": ignore_booking_id}


def unavailable_reason(session: Session, vehicle_id: int, pickup_location_id: int, dropoff_location_id: int,
                       pickup_at: datetime, dropoff_at: datetime, *, ignore_booking_id: int | None = None,
                       lock: bool = False, branches: dict[int, dict[str, Any]] | None = None) -> str | None:
    """Why this car cannot take this rental, or None when it can (see `CAR_CHECK`).

    `ignore_booking_id` leaves one booking out (the one being changed). `lock` holds the car's row until the
    transaction ends. Opening hours are not checked here (see `check_opening_hours`); nor are the past and the
    longest rental (a booking being extended may have begun). `branches`, when the caller has read them already, are
    both branches by id, each with its name and timezone.
    """
    params = car_check_params(vehicle_id, pickup_at, dropoff_at, ignore_booking_id)
    if branches is None:
        branches = _branches(session, [pickup_location_id, dropoff_location_id])
    row = session.execute(text(CAR_CHECK_LOCKED if lock else CAR_CHECK), params).mappings().first()
    if row is None:
        raise NotFound(f"There is no vehicle with id {vehicle_id}; pick a car from the search.")
    return reason_from_check(session, row, pickup_location_id, dropoff_location_id, branches)


def reason_from_check(session: Session, row: Mapping[str, Any], pickup_location_id: int, dropoff_location_id: int,
                      branches: dict[int, dict[str, Any]]) -> str | None:
    """What a `CAR_CHECK` row says against the rental, or None when nothing does."""
    plate = row["license_plate"]
    zone = ZoneInfo(branches[pickup_location_id]["timezone"])
    if row["status"] == "retired":
        return f"{plate} is retired; pick another car."
    if row["status"] == "in_transit":
        return f"{plate} is being moved between branches; pick another car."
    if row["clash_period"] is not None:
        period = row["clash_period"]
        taken = f"booking {row['clash_reference']}" if row["clash_reference"] else "maintenance"
        return (f"{plate} is taken by {taken} from {_when(period.lower.astimezone(zone))} to "
                f"{_when(period.upper.astimezone(zone))} (turnaround included); pick another car or other dates.")
    stands_at = row["arrives_at"] if row["arriving_with"] else row["current_location_id"]
    if stands_at is None:
        return f"{plate} is out on a rental with no return booked before the pick-up; pick another car."
    if stands_at != pickup_location_id:
        name = _location_name(session, stands_at)
        return (f"{plate} will be at {name}, not at {branches[pickup_location_id]['name']}, at the pick-up; "
                "pick a car there.")
    if row["next_from"] is not None and row["next_from"] != dropoff_location_id:
        name = _location_name(session, row["next_from"])
        return (f"{plate} has its next booking {row['next_reference']} from {name} at "
                f"{_when(row['next_at'].astimezone(zone))}; a drop-off at {branches[dropoff_location_id]['name']} "
                f"would leave it in the wrong place. Drop it off at {name}, or pick another car.")
    return None


def is_available(session: Session, vehicle_id: int, pickup_location_id: int, dropoff_location_id: int,
                 pickup_at: datetime, dropoff_at: datetime, *, ignore_booking_id: int | None = None,
                 lock: bool = False) -> bool:
    """Whether this car can take this rental (see `unavailable_reason` for why not)."""
    return unavailable_reason(session, vehicle_id, pickup_location_id, dropoff_location_id, pickup_at, dropoff_at,
                              ignore_booking_id=ignore_booking_id, lock=lock) is None


def check_opening_hours(session: Session, pickup_location_id: int, dropoff_location_id: int, pickup_at: datetime,
                        dropoff_at: datetime) -> None:
    """Raise InvalidInput, saying when it opens, if the pick-up or drop-off branch is closed at that time."""
    check_period(pickup_at, dropoff_at)
    branches = _branches(session, [pickup_location_id, dropoff_location_id])
    _require_open(branches[pickup_location_id], pickup_at, "pick-up")
    _require_open(branches[dropoff_location_id], dropoff_at, "drop-off")


def _location_name(session: Session, location_id: int) -> str:
    return session.execute(text("SELECT name FROM locations WHERE id = :id"), {"id": location_id}).scalar_one()


# --- the aggregate --------------------------------------------------------------------------------------------------

def free_counts(session: Session, pickup_at: datetime, dropoff_at: datetime, *,
                location_ids: Iterable[int] | None = None, type_codes: Iterable[str] | None = None,
                now: datetime | None = None) -> pd.DataFrame:
    """Cars free for the whole period per branch and vehicle type, for maps and the optimisers.

    A car counts at the branch it will stand at when the period starts, if it is free until the drop-off plus the
    turnaround and its next booking (if any) starts at that same branch (a round trip). Opening hours do not matter
    here. One row per branch and type, zeros included: location_id, code, name, lat, lon, vehicle_type, free. No
    location_ids or type_codes (None or empty) means every branch or every type.
    """
    check_period(pickup_at, dropoff_at)
    _check_timing(pickup_at, dropoff_at, _aware_now(now))
    ids = sorted({int(i) for i in location_ids or ()}) or None  # none given: every branch
    if ids is not None:
        _branches(session, ids)
    codes = tuple(dict.fromkeys(type_codes or ())) or None  # none given: every type
    if codes is not None:
        _type_ids(session, codes)
    result = session.execute(text(f"""
        SELECT l.id AS location_id, l.code, l.name, ST_Y(l.geog::geometry) AS lat, ST_X(l.geog::geometry) AS lon,
               t.code AS vehicle_type, count(f.vehicle_id)::int AS free
        FROM locations l
        CROSS JOIN vehicle_types t
        LEFT JOIN vehicle_free_periods f
               ON f.location_id = l.id AND f.vehicle_type_id = t.id
              AND f.period @> tstzrange(:pickup, :free_until, '[)')
              AND (f.next_pickup_location_id IS NULL OR f.next_pickup_location_id = l.id)
        WHERE {"l.id = ANY(:ids)" if ids is not None else "TRUE"}
          AND {"t.code = ANY(:codes)" if codes is not None else "TRUE"}
        GROUP BY l.id, t.id
        ORDER BY l.code, t.rank
    """), {"pickup": pickup_at, "free_until": _free_until(dropoff_at), "ids": ids,
           "codes": list(codes) if codes is not None else None})
    return result_frame(result)


# --- for the screens ------------------------------------------------------------------------------------------------

def search_places(session: Session) -> pd.DataFrame:
    """Every branch with its position and time zone: id, code, name, city, timezone, lat, lon."""
    result = session.execute(text("""
        SELECT id, code, name, city, timezone, ST_Y(geog::geometry) AS lat, ST_X(geog::geometry) AS lon
        FROM locations ORDER BY code
    """))
    return result_frame(result)


def time_zone_near(session: Session, lat: float, lon: float) -> str:
    """The time zone of the branch nearest a point (times around a point are that branch's local times); UTC if
    there are no branches."""
    _check_point(lat, lon)
    zone = session.execute(text("""
        SELECT timezone FROM locations ORDER BY geog <-> ST_GeogFromText(:here) LIMIT 1
    """), {"here": _point_wkt(lat, lon)}).scalar()
    return zone or "UTC"
