"""Small random rental companies for the availability tests, and a brute-force oracle of the search's rules.

The oracle reads nothing from the database and shares no code with the service: it applies the rules as written in
services/availability.py's docstring to plain Python lists, car by car.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import strategies as st
from sqlalchemy.orm import Session

from db.models import BookingStatus, VehicleStatus
from services.branches import is_open
from tests import factories as f

NOW = datetime(2030, 6, 3, 8, 0, tzinfo=UTC)  # a Monday
ACTIVE = {"pending", "confirmed", "picked_up"}
OPEN_BLOCKS = {"scheduled", "in_progress"}
SPHERE_RADIUS_M = 6371008.7714  # PostGIS's sphere for geography distances (WGS 84 mean radius)
# Far from any real branch another test might have committed, so a radius search sees only this world.
ORIGIN_LAT, ORIGIN_LON = 10.0, 20.0
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOURS = {
    "24h": {day: [["00:00", "24:00"]] for day in DAYS},
    "day": {day: [["07:00", "21:00"]] for day in DAYS},
    "city": {**{day: [["08:00", "18:00"]] for day in DAYS[:5]}, "sat": [["09:00", "13:00"]], "sun": []},
    "split": {day: [["06:00", "12:00"], ["13:00", "22:30"]] for day in DAYS},
}
ZONES = ("Europe/London", "Asia/Tokyo", "America/New_York")


@dataclass
class Branch:
    id: int
    code: str
    name: str
    lat: float
    lon: float
    hours: dict
    zone: str

    def open_at(self, at: datetime) -> bool:
        return is_open(self.hours, at.astimezone(ZoneInfo(self.zone)))


@dataclass
class Car:
    id: int
    type_code: str
    location_id: int | None
    status: str
    daily_rate: Decimal


@dataclass
class Rental:
    id: int
    vehicle_id: int
    status: str
    pickup_location_id: int
    dropoff_location_id: int
    pickup_at: datetime
    dropoff_at: datetime
    turnaround: int


@dataclass
class Block:
    vehicle_id: int
    start: datetime
    end: datetime
    status: str


@dataclass
class World:
    branches: dict[int, Branch] = field(default_factory=dict)
    type_codes: list[str] = field(default_factory=list)
    cars: dict[int, Car] = field(default_factory=dict)
    rentals: list[Rental] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)


# --- random worlds --------------------------------------------------------------------------------------------------

BOOKING_STATUSES = [s.value for s in BookingStatus]
BLOCK_STATUSES = ["scheduled", "in_progress", "completed", "cancelled"]
grid = st.integers(0, 40).map(lambda n: round(n * 0.01, 2))  # 0.01° steps, about 1 km


@st.composite
def world_specs(draw, *, max_branches: int = 4, max_cars: int = 6) -> dict:
    """A plain description of a small company: branches, two vehicle types, cars with bookings and blocks."""
    branches = [
        {"lat": ORIGIN_LAT + draw(grid), "lon": ORIGIN_LON + draw(grid),
         "hours": draw(st.sampled_from(["24h", "24h", "day", "day", "city", "split"])),
         "zone": draw(st.sampled_from(ZONES))}
        for _ in range(draw(st.integers(1, max_branches)))
    ]
    n = len(branches)
    cars = []
    for _ in range(draw(st.integers(1, max_cars))):
        status = draw(st.sampled_from(["available", "available", "available", "rented", "maintenance", "in_transit",
                                       "retired"]))
        on_the_road = status in ("rented", "in_transit")
        location = draw(st.none() | st.integers(0, n - 1)) if on_the_road else draw(st.integers(0, n - 1))
        rentals = draw(st.lists(st.fixed_dictionaries({
            "start_h": st.integers(-72, 400), "hours": st.integers(1, 120), "turnaround": st.sampled_from([0, 30, 60]),
            "status": st.sampled_from(BOOKING_STATUSES + ["confirmed", "confirmed", "picked_up"]),
            "pickup": st.integers(0, n - 1), "dropoff": st.integers(0, n - 1),
        }), max_size=4))
        blocks = draw(st.lists(st.fixed_dictionaries({
            "start_h": st.integers(-24, 400), "hours": st.integers(1, 72), "status": st.sampled_from(BLOCK_STATUSES),
        }), max_size=2))
        cars.append({"type": draw(st.integers(0, 1)), "status": status, "location": location,
                     "rate": draw(st.sampled_from(["30.00", "45.00", "45.00", "62.50"])),
                     "rentals": rentals, "blocks": blocks})
    return {"branches": branches, "cars": cars}


def build_world(session: Session, spec: dict) -> World:
    """The spec's rows in the database (flushed, in the caller's transaction) and the same facts in Python.

    Active bookings and open blocks that would overlap one already placed for the car are made cancelled instead,
    as the database would refuse them; everything else is kept exactly as drawn.
    """
    world = World()
    types = [f.vehicle_type(session), f.vehicle_type(session)]
    world.type_codes = [t.code for t in types]
    driver = f.customer(session)
    rows = []
    for b in spec["branches"]:
        row = f.location(session, lat=b["lat"], lon=b["lon"], operating_hours=HOURS[b["hours"]], timezone=b["zone"])
        rows.append(row)
        world.branches[row.id] = Branch(row.id, row.code, row.name, b["lat"], b["lon"], HOURS[b["hours"]], b["zone"])
    for c in spec["cars"]:
        at = rows[c["location"]] if c["location"] is not None else None
        car = f.vehicle(session, types[c["type"]], at, status=VehicleStatus(c["status"]), daily_rate=Decimal(c["rate"]))
        world.cars[car.id] = Car(car.id, types[c["type"]].code, at.id if at else None, c["status"], Decimal(c["rate"]))
        taken: list[tuple[datetime, datetime]] = []
        for r in c["rentals"]:
            start = NOW + timedelta(hours=r["start_h"])
            end = start + timedelta(hours=r["hours"])
            status = r["status"]
            if status in ACTIVE:
                blocked = (start, end + timedelta(minutes=r["turnaround"]))
                if _overlaps(blocked, taken):
                    status = "cancelled"
                else:
                    taken.append(blocked)
            pickup, dropoff = rows[r["pickup"]].id, rows[r["dropoff"]].id
            booking = f.booking(session, car, driver, start, end, status=BookingStatus(status),
                                turnaround_minutes=r["turnaround"], pickup_location_id=pickup,
                                dropoff_location_id=dropoff)
            world.rentals.append(Rental(booking.id, car.id, status, pickup, dropoff, start, end, r["turnaround"]))
        for m in c["blocks"]:
            start = NOW + timedelta(hours=m["start_h"])
            end = start + timedelta(hours=m["hours"])
            status = m["status"]
            if status in OPEN_BLOCKS:
                if _overlaps((start, end), taken):
                    status = "cancelled"
                else:
                    taken.append((start, end))
            f.maintenance(session, car, start, end, status=status)
            world.blocks.append(Block(car.id, start, end, status))
    return world


def _overlaps(period: tuple[datetime, datetime], taken: list[tuple[datetime, datetime]]) -> bool:
    return any(start < period[1] and period[0] < end for start, end in taken)


# --- the oracle -----------------------------------------------------------------------------------------------------

def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * SPHERE_RADIUS_M * math.asin(math.sqrt(a))


def placement(world: World, car: Car, pickup_at: datetime, dropoff_at: datetime,
              turnaround: int) -> tuple[int, int | None] | None:
    """(branch the car stands at for the pick-up, branch its next booking starts from) if it is free for the whole
    period plus turnaround and not retired or in transit; else None."""
    if car.status in ("retired", "in_transit"):
        return None
    free_until = dropoff_at + timedelta(minutes=turnaround)
    active = [r for r in world.rentals if r.vehicle_id == car.id and r.status in ACTIVE]
    taken = [(r.pickup_at, r.dropoff_at + timedelta(minutes=r.turnaround)) for r in active]
    taken += [(b.start, b.end) for b in world.blocks if b.vehicle_id == car.id and b.status in OPEN_BLOCKS]
    if _overlaps((pickup_at, free_until), taken):
        return None
    before = [r for r in active if r.pickup_at < pickup_at]
    stands_at = max(before, key=lambda r: r.pickup_at).dropoff_location_id if before else car.location_id
    if stands_at is None:
        return None
    after = [r for r in active if r.pickup_at >= pickup_at]
    next_from = min(after, key=lambda r: r.pickup_at).pickup_location_id if after else None
    return stands_at, next_from


@dataclass(frozen=True)
class Expected:
    error: str | None = None  # a word the refusal must contain
    ids: tuple[int, ...] = ()
    distances_m: tuple[float, ...] = ()
    more: bool = False
    closed_ids: frozenset[int] = frozenset()
    near_tie: bool = False  # two branches at (almost, not exactly) the same distance: order may differ by a hair


def expect(world: World, query, turnaround: int) -> Expected:
    """What find_available must answer for this query, car by car."""
    pickup, dropoff = query.pickup_at, query.dropoff_at
    if not query.around_point:
        start = world.branches[query.pickup_location_id]
        end = world.branches[query.dropoff_location_id or query.pickup_location_id]
        if not start.open_at(pickup) or not end.open_at(dropoff):
            return Expected(error="closed")
    elif query.dropoff_location_id is not None and not world.branches[query.dropoff_location_id].open_at(dropoff):
        return Expected(error="closed")

    distance = {b.id: (0.0 if not query.around_point else distance_m(query.lat, query.lon, b.lat, b.lon))
                for b in world.branches.values()}
    found = []
    for car in world.cars.values():
        if query.vehicle_types and car.type_code not in query.vehicle_types:
            continue
        placed = placement(world, car, pickup, dropoff, turnaround)
        if placed is None:
            continue
        stands_at, next_from = placed
        dropoff_at = query.dropoff_location_id or stands_at
        if next_from is not None and next_from != dropoff_at:
            continue
        if query.around_point:
            branch = world.branches[stands_at]
            if distance[stands_at] > query.radius_km * 1000:
                continue
            if not branch.open_at(pickup) or (query.dropoff_location_id is None and not branch.open_at(dropoff)):
                continue
        elif stands_at != query.pickup_location_id:
            continue
        found.append((distance[stands_at], car.daily_rate, car.id))
    found.sort()
    shown = found[:query.limit]
    more = len(found) > query.limit
    closed: frozenset[int] = frozenset()
    if query.around_point:
        reach = shown[-1][0] if more else query.radius_km * 1000
        closed = frozenset(
            b.id for b in world.branches.values()
            if distance[b.id] <= reach
            and (not b.open_at(pickup) or (query.dropoff_location_id is None and not b.open_at(dropoff))))
    values = sorted(set(distance.values()))
    near_tie = any(0 < b - a < 1.0 for a, b in zip(values, values[1:], strict=False))
    return Expected(ids=tuple(c for _, _, c in shown), distances_m=tuple(d for d, _, _ in shown), more=more,
                    closed_ids=closed, near_tie=near_tie)


def expected_free_counts(world: World, pickup_at: datetime, dropoff_at: datetime,
                         turnaround: int) -> dict[tuple[int, str], int]:
    counts = {(b, t): 0 for b in world.branches for t in world.type_codes}
    for car in world.cars.values():
        placed = placement(world, car, pickup_at, dropoff_at, turnaround)
        if placed and placed[1] in (None, placed[0]):
            counts[(placed[0], car.type_code)] += 1
    return counts
