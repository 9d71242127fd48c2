"""No overbooking, ever: 32 desks booking 3 hot cars at once for 20 seconds (FLEETDESK_STRESS_SECONDS).

Every attempt is its own transaction on its own thread's connection, through `services.bookings.create_booking`,
against a committed database of its own. Afterwards no two active bookings of one car overlap, every refusal was
a Conflict saying the car is taken and to choose another car or other dates, and nothing is left waiting or idle
in a transaction. The test asserts correctness only, never speed.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from db.models import UserRole
from db.session import make_engine, session_scope
from services import bookings
from services.actors import Actor
from services.customers import create_customer
from services.errors import Conflict
from tests import factories as f
from tests.conftest import recreate_database

THREADS = 32
CARS = 3
DRIVERS = 8
KEY = "8t9s83BB4gZrz8HlbtH7FQ9vyQBHIHi50iNKgjItCmM="
LONDON = ZoneInfo("Europe/London")  # the factories' branches: open 07:00–21:00 London time, every day
AGENT = Actor(None, "desk@example.test", UserRole.DESK_AGENT, "Desk")
ACTIVE = "('pending', 'confirmed', 'picked_up')"

# The database guard's refusal (services.bookings), and the availability pre-check's when it sees the clash first.
GUARD_REFUSAL = re.compile(r"^\S+ is already booked from .+ to .+ \(turnaround included\); "
                           r"choose another car or other dates\.$")
PRECHECK_REFUSAL = re.compile(r"^\S+ is taken by booking FD\w+ from .+ to .+ \(turnaround included\); "
                              r"pick another car or other dates\.$")


def stress_seconds() -> float:
    return float(os.environ.get("FLEETDESK_STRESS_SECONDS", "20"))


@pytest.fixture(scope="module")
def hot_cars(database_url):
    """A committed database of its own: one branch, three cars, eligible drivers."""
    url = database_url.set(database=f"{database_url.database}_stress")
    recreate_database(url)
    engine = make_engine(url)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("FLEETDESK_ENCRYPTION_KEYS", KEY)
            with session_scope(engine) as session:
                vtype = f.vehicle_type(session, code="hot_compact", min_driver_age=21)
                branch = f.location(session)
                cars = [f.vehicle(session, vtype, branch).id for _ in range(CARS)]
                drivers = [create_customer(session, AGENT, email=f"hot{n}@example.test", first_name="Hot",
                                           last_name=f"Driver{n}", date_of_birth=date(1985, 1, 1),
                                           licence_number=f"HOTDR{n:03d}85AB9CD", licence_country="GB",
                                           licence_expiry=date.today() + timedelta(days=3650)).id
                           for n in range(DRIVERS)]
                branch_id = branch.id
    finally:
        engine.dispose()
    return {"url": url, "branch": branch_id, "cars": cars, "drivers": drivers}


def random_period(rng: random.Random, today: date) -> tuple[datetime, datetime]:
    """A rental in the next fortnight, picked up and dropped off in opening hours (07:00–21:00 London time)."""
    day = today + timedelta(days=rng.randint(2, 15))
    pickup = datetime(day.year, day.month, day.day, rng.randint(7, 18), rng.choice((0, 15, 30, 45)), tzinfo=LONDON)
    if rng.random() < 0.5:  # back the same day
        latest = 20 * 60 + 45 - (pickup.hour * 60 + pickup.minute)
        dropoff = pickup + timedelta(minutes=rng.randrange(60, latest + 1, 15))
    else:
        back = day + timedelta(days=rng.randint(1, 3))
        dropoff = datetime(back.year, back.month, back.day, rng.randint(7, 20), rng.choice((0, 15, 30, 45)),
                           tzinfo=LONDON)
    return pickup.astimezone(UTC), dropoff.astimezone(UTC)


def test_thirty_two_desks_on_three_hot_cars_never_overbook(hot_cars, capsys):
    engine = make_engine(hot_cars["url"], pool_size=THREADS, max_overflow=0,
                         connect_args={"connect_timeout": 5, "options": "-c lock_timeout=30s"})
    today = datetime.now(LONDON).date()
    outcomes: Counter[str] = Counter()
    unexpected: list[str] = []
    lock = threading.Lock()
    start_line = threading.Barrier(THREADS + 1)
    deadline: list[float] = []

    def desk(index: int) -> None:
        rng = random.Random(index)
        start_line.wait()
        while time.monotonic() < deadline[0]:
            pickup, dropoff = random_period(rng, today)
            try:
                with session_scope(engine) as session:
                    bookings.create_booking(session, AGENT, customer_id=rng.choice(hot_cars["drivers"]),
                                            vehicle_id=rng.choice(hot_cars["cars"]),
                                            pickup_location_id=hot_cars["branch"],
                                            dropoff_location_id=hot_cars["branch"],
                                            pickup_at=pickup, dropoff_at=dropoff)
                outcome = "booked"
            except Conflict as refusal:
                message = str(refusal)
                if GUARD_REFUSAL.match(message):
                    outcome = "refused by the database guard"
                elif PRECHECK_REFUSAL.match(message):
                    outcome = "refused by the availability check"
                else:
                    outcome = "unexpected"
                    with lock:
                        unexpected.append(f"Conflict: {message}")
            except Exception as error:  # noqa: BLE001 - anything but a clear refusal fails the test, below
                outcome = "unexpected"
                with lock:
                    unexpected.append(f"{type(error).__module__}.{type(error).__name__}: {error}")
            with lock:
                outcomes[outcome] += 1

    desks = [threading.Thread(target=desk, args=(i,), daemon=True) for i in range(THREADS)]
    try:
        for thread in desks:
            thread.start()
        deadline.append(time.monotonic() + stress_seconds())
        start_line.wait()
        for thread in desks:
            thread.join(timeout=stress_seconds() + 120)
        assert not any(thread.is_alive() for thread in desks), "a desk thread never finished its last attempt"

        with engine.connect() as conn:
            overlaps = conn.execute(text(f"""
                SELECT count(*) FROM bookings a JOIN bookings b
                  ON a.vehicle_id = b.vehicle_id AND a.id < b.id AND a.blocked_period && b.blocked_period
                WHERE a.status IN {ACTIVE} AND b.status IN {ACTIVE}
            """)).scalar_one()
            stored = conn.execute(text(f"SELECT count(*) FROM bookings WHERE status IN {ACTIVE}")).scalar_one()
            occupancy = conn.execute(text("SELECT count(*) FROM vehicle_occupancy")).scalar_one()
            idle_in_transaction = conn.execute(text("""
                SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND state LIKE 'idle in transaction%'
            """)).scalar_one()
            waiting_locks = conn.execute(text("""
                SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE NOT l.granted AND a.datname = current_database()
            """)).scalar_one()
            deadlocks = conn.execute(text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
                                          )).scalar_one()
    finally:
        engine.dispose()

    with capsys.disabled():
        print(f"\nstress: {sum(outcomes.values()):,} attempts in {stress_seconds():g} s by {THREADS} threads on "
              f"{CARS} cars: " + ", ".join(f"{n:,} {what}" for what, n in sorted(outcomes.items())))
    assert unexpected == [], f"{len(unexpected)} attempts failed other than with a clear refusal: {unexpected[:5]}"
    assert overlaps == 0, f"{overlaps} pairs of active bookings of one car overlap"
    assert stored == outcomes["booked"], "every booking reported made is stored, and no other"
    assert occupancy == stored, "every active booking holds its car in vehicle_occupancy"
    assert outcomes["booked"] > 0
    assert outcomes["refused by the database guard"] + outcomes["refused by the availability check"] > 0
    assert idle_in_transaction == 0, "a session was left idle in a transaction"
    assert waiting_locks == 0, "a lock is still being waited for"
    assert deadlocks == 0
