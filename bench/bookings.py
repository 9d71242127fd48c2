"""Benchmark of making bookings: the service layer against a raw INSERT and a naive check-then-insert, in one run.

The company: 50 branches and 10,000 cars (the demo generator), 1,000 eligible drivers, built once in its own
database (`fleetdesk_bench_bookings`). Every phase starts from the same state: no bookings, holds or maintenance,
every car free. Each phase runs 8 workers for FLEETDESK_BENCH_SECONDS (default 15) seconds:

- **service, 10,000 cars**: `services.bookings.create_booking` on a random car that stands at a branch, for a random
  round-trip rental of 1–7 days in the next year, picked up and dropped off in the branch's opening hours; each
  attempt its own unit of work (`db.session.session_scope`, the app's engine settings), so the figure includes
  checking the driver, the car (locked) and the period, pricing, the booking with its hold on the car, its audit
  entry and its outbox event, and the commit. Run by 8 threads of one process (the headline figure), then by 8
  processes of one thread each, as several app server processes would run it, to show what the GIL costs.
- **service, 3 hot cars**: the same on three cars (8 threads), so most attempts are refused (by the availability
  check, or by the database guard when two desks race): attempts, bookings and refusals per second.
- **raw INSERT**: one plain `INSERT INTO bookings` per transaction through psycopg (the same row the service
  writes, triggers and the exclusion constraint included; no checks, audit or event), on periods that cannot
  overlap because each worker books its own cars end to end.
- **naive check-then-insert**: what one would write without the database guard: `SELECT` for an overlapping
  booking, then `INSERT`, in one READ COMMITTED transaction, into `bookings_naive` (a copy of the bookings table
  without the exclusion constraint), on the three hot cars. It is fast and it lets overlaps through.

Overlaps are counted afterwards by a self-join of the table on (car, overlapping blocked period, both active).
Results go to bench/results/bookings.{json,md}.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import URL

from bench.results_io import write_results
from data import bulk
from data.demo import DemoSpec, load_demo
from db import migrate
from db.config import database_target, turnaround_minutes
from db.models import UserRole
from db.session import make_engine, session_scope
from services.actors import Actor
from services.bookings import create_booking
from services.branches import is_open
from services.crypto import LicenceCipher
from services.errors import Conflict

BENCH_DATABASE = "fleetdesk_bench_bookings"
SPEC = DemoSpec(branches=50, vehicles=10_000, history_days=0, seed=29)
DRIVERS = 1_000
WORKERS = 8
HOT_CARS = 3
SEED = 2026
RATE_TARGET = 1_000.0  # bookings/s through the service layer
SHARE_OF_RAW_TARGET = 0.25
ACTIVE = "('pending', 'confirmed', 'picked_up')"
AGENT = Actor(None, "bench:desk", UserRole.DESK_AGENT, "benchmark desk")
_META_KEY = "bench_bookings"


def phase_seconds() -> float:
    return float(os.environ.get("FLEETDESK_BENCH_SECONDS", "15"))


@dataclass(frozen=True)
class Branch:
    id: int
    zone: ZoneInfo
    open_slots: tuple[tuple[tuple[int, int], ...], ...]  # per weekday (Monday first): (hour, minute) open 07–20


@dataclass(frozen=True)
class Car:
    id: int
    type_id: int
    branch: Branch


# --- the company ----------------------------------------------------------------------------------------------------

def bench_url() -> URL:
    return database_target().url.set(database=BENCH_DATABASE)


def _connect(url: URL, *, autocommit: bool = True, dbname: str | None = None) -> psycopg.Connection:
    return psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                           dbname=dbname or url.database, autocommit=autocommit)


def ensure_dataset(url: URL, log=print) -> float | None:
    """Build the company at SPEC with DRIVERS eligible drivers on the first run; the seconds it took, or None."""
    with _connect(url, dbname="postgres") as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone():
            conn.execute(f'CREATE DATABASE "{url.database}"')
    migrate.upgrade(url)
    wanted = {"spec": asdict(SPEC), "drivers": DRIVERS}
    with _connect(url) as conn:
        built = conn.execute("SELECT value FROM app_meta WHERE key = %s", (_META_KEY,)).fetchone()
    if built is not None and built[0] == wanted:
        return None
    log(f"building the bookings benchmark company ({SPEC.describe()}, {DRIVERS:,} drivers) in {url.database}…")
    started = time.monotonic()
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            load_demo(session, SPEC, force=True)
            _load_drivers(bulk.driver_connection(session), DRIVERS)
            session.execute(text("""INSERT INTO app_meta (key, value) VALUES (:key, CAST(:value AS jsonb))
                                    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"""),
                            {"key": _META_KEY, "value": json.dumps(wanted)})
    finally:
        engine.dispose()
    return time.monotonic() - started


def _load_drivers(conn: psycopg.Connection, count: int) -> None:
    """Drivers anyone may rent to: of age, licence on file (encrypted, as the service stores it) and valid; COPYed
    in the caller's transaction."""
    cipher = LicenceCipher.from_environment()
    columns = ("email", "first_name", "last_name", "date_of_birth", "status", "role", "licence_number_encrypted",
               "licence_number_hash", "licence_country", "licence_expiry", "identity_status")
    expiry = date.today() + timedelta(days=3 * 365)
    with conn.cursor() as cursor, cursor.copy(f"COPY users ({', '.join(columns)}) FROM STDIN") as copy:
        for n in range(count):
            number = f"BENCH{n:06d}AB9CD"
            copy.write_row((f"bench.driver{n}@example.test", "Bench", f"Driver{n}", date(1980, 1, 1) + timedelta(n),
                            "active", "customer", cipher.encrypt(number), cipher.lookup_hash(number), "GB", expiry,
                            "verified"))


def reset(url: URL) -> None:
    """Every phase starts here: no bookings, holds or maintenance; every car free from now on."""
    with _connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS bookings_naive")
        conn.execute("TRUNCATE bookings, vehicle_occupancy, maintenance_blocks, audit_log, domain_events "
                     "RESTART IDENTITY CASCADE")
        conn.execute("SELECT fd_refresh_free_periods(ARRAY(SELECT id FROM vehicles))")
        conn.execute("VACUUM ANALYZE bookings, vehicle_occupancy, vehicle_free_periods, audit_log, domain_events")


def _fleet(url: URL) -> tuple[list[Car], list[int]]:
    """The cars standing at a branch, ready to rent, and the benchmark's drivers."""
    with _connect(url) as conn:
        branches = {row[0]: Branch(row[0], ZoneInfo(row[1]), _open_slots(row[2]))
                    for row in conn.execute("SELECT id, timezone, operating_hours FROM locations")}
        cars = [Car(row[0], row[1], branches[row[2]]) for row in conn.execute("""
            SELECT id, vehicle_type_id, current_location_id FROM vehicles
            WHERE status = 'available' AND current_location_id IS NOT NULL ORDER BY id""")]
        drivers = [row[0] for row in conn.execute(
            "SELECT id FROM users WHERE email LIKE 'bench.driver%%@example.test' ORDER BY id")]
    return cars, drivers


def _open_slots(hours: dict[str, Any]) -> tuple[tuple[tuple[int, int], ...], ...]:
    """The quarter-hours from 07:00 to 19:45 at which a branch with these hours is open, per weekday."""
    monday = date(2024, 1, 1)
    return tuple(
        tuple((hour, minute) for hour in range(7, 20) for minute in (0, 15, 30, 45)
              if is_open(hours, datetime.combine(monday + timedelta(days=weekday), datetime.min.time())
                         .replace(hour=hour, minute=minute)))
        for weekday in range(7))


def random_period(rng: random.Random, branch: Branch, today: date) -> tuple[datetime, datetime]:
    """A round trip of 1–7 days in the next year, picked up and dropped off while the branch is open."""
    pickup = _open_time(rng, branch, today + timedelta(days=rng.randint(1, 365)))
    dropoff = _open_time(rng, branch, pickup.date() + timedelta(days=rng.randint(1, 7)))
    return pickup.astimezone(UTC), dropoff.astimezone(UTC)


def _open_time(rng: random.Random, branch: Branch, day: date) -> datetime:
    """A time the branch is open on `day`, or on the next day it opens, on its own clock."""
    for offset in range(7):
        on = day + timedelta(days=offset)
        slots = branch.open_slots[on.weekday()]
        if slots:
            hour, minute = rng.choice(slots)
            return datetime(on.year, on.month, on.day, hour, minute, tzinfo=branch.zone)
    raise ValueError(f"branch {branch.id} is never open between 07:00 and 20:00; the benchmark needs it to be")


# --- running a phase ------------------------------------------------------------------------------------------------

Attempt = Callable[[random.Random], str]  # one try; returns its outcome ('booked', 'refused', 'inserted', ...)
MakeAttempt = Callable[[int, ExitStack], Attempt]  # a worker's attempt; what it opens goes on the stack


@dataclass
class WorkerLog:
    """What one worker did: outcomes, latency per outcome (ms), errors, and when its clock started and stopped."""

    outcomes: Counter[str]
    latencies: dict[str, list[float]]
    errors: list[str]
    started: float = 0.0
    stopped: float = 0.0


def _work(attempt: Attempt, index: int, seconds: float, start_line) -> WorkerLog:
    """Wait for the others at the start line, then attempt in a loop for `seconds`."""
    rng = random.Random(SEED * 100 + index)
    log = WorkerLog(Counter(), {}, [])
    start_line.wait()
    log.started = time.perf_counter()  # CLOCK_MONOTONIC: comparable between threads and processes
    deadline = log.started + seconds
    while (began := time.perf_counter()) < deadline:
        try:
            outcome = attempt(rng)
        except Exception as error:  # noqa: BLE001 - counted and reported, never hidden
            outcome = "error"
            log.errors.append(f"{type(error).__name__}: {error}"[:300])
        log.latencies.setdefault(outcome, []).append((time.perf_counter() - began) * 1000)
        log.outcomes[outcome] += 1
    log.stopped = time.perf_counter()
    return log


def _drive(make_attempt: MakeAttempt, seconds: float, workers: int = WORKERS) -> dict[str, Any]:
    """Run `workers` threads for `seconds`, each with its own attempt (and connection) in a loop."""
    logs: list[WorkerLog | None] = [None] * workers
    cpu_before = time.process_time()
    start_line = threading.Barrier(workers)

    def worker(index: int) -> None:
        with ExitStack() as stack:
            logs[index] = _work(make_attempt(index, stack), index, seconds, start_line)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = _merge([log for log in logs if log is not None], workers)
    result["python_cpu_ms_per_attempt"] = (time.process_time() - cpu_before) * 1000 / max(1, result["attempts"])
    return result


def _merge(logs: list[WorkerLog], workers: int) -> dict[str, Any]:
    wall = max(log.stopped for log in logs) - min(log.started for log in logs)
    merged: dict[str, list[float]] = {}
    for log in logs:
        for outcome, values in log.latencies.items():
            merged.setdefault(outcome, []).extend(values)
    every = [ms for values in merged.values() for ms in values]
    errors = [error for log in logs for error in log.errors]
    return {
        "workers": workers, "wall_s": round(wall, 2), "attempts": len(every),
        "outcomes": dict(sum((log.outcomes for log in logs), Counter())), "attempts_per_s": len(every) / wall,
        "latency_ms": {outcome: _summary(values) for outcome, values in merged.items()} | {"all": _summary(every)},
        "errors": len(errors), "error_examples": errors[:3],
    }


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": _percentile(ordered, 50), "p95": _percentile(ordered, 95), "p99": _percentile(ordered, 99),
            "mean": statistics.fmean(ordered) if ordered else float("nan")}


def _percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def overlaps(url: URL, table: str) -> int:
    """Pairs of active bookings of one car whose blocked periods (turnaround included) overlap."""
    with _connect(url) as conn:
        return conn.execute(f"""
            SELECT count(*) FROM {table} a JOIN {table} b
              ON a.vehicle_id = b.vehicle_id AND a.id < b.id AND a.blocked_period && b.blocked_period
            WHERE a.status IN {ACTIVE} AND b.status IN {ACTIVE}""").fetchone()[0]


# --- the four ways --------------------------------------------------------------------------------------------------

def _service_attempt(engine, cars: list[Car], drivers: list[int]) -> Attempt:
    today = datetime.now(UTC).date()

    def attempt(rng: random.Random) -> str:
        car = rng.choice(cars)
        pickup, dropoff = random_period(rng, car.branch, today)
        try:
            with session_scope(engine) as session:
                create_booking(session, AGENT, customer_id=rng.choice(drivers), vehicle_id=car.id,
                               pickup_location_id=car.branch.id, dropoff_location_id=car.branch.id,
                               pickup_at=pickup, dropoff_at=dropoff)
        except Conflict as refusal:
            return "refused by the guard" if "already booked" in str(refusal) else "refused"
        return "booked"
    return attempt


def service_phase(url: URL, cars: list[Car], drivers: list[int], seconds: float) -> dict[str, Any]:
    """create_booking through the app's engine and unit of work, one transaction per attempt, 8 threads."""
    engine = make_engine(url, pool_size=WORKERS, max_overflow=0)

    def make_attempt(index: int, stack: ExitStack) -> Attempt:
        with engine.connect():
            pass  # the pool's connection for this worker, opened before the clock starts
        return _service_attempt(engine, cars, drivers)

    try:
        result = _drive(make_attempt, seconds)
    finally:
        engine.dispose()
    return _booked(url, result)


def service_processes_phase(url: URL, cars: list[Car], drivers: list[int], seconds: float) -> dict[str, Any]:
    """The same with 8 worker processes of one thread each (as several app servers would run): no shared GIL."""
    context = multiprocessing.get_context("spawn")
    start_line = context.Barrier(WORKERS)
    results = context.Queue()
    address = url.render_as_string(hide_password=False)
    processes = [context.Process(target=_service_process, args=(i, address, cars, drivers, seconds, start_line,
                                                                  results)) for i in range(WORKERS)]
    for process in processes:
        process.start()
    logs = [results.get(timeout=seconds + 300) for _ in processes]
    for process in processes:
        process.join()
    return _booked(url, _merge(logs, WORKERS))


def _service_process(index: int, address: str, cars: list[Car], drivers: list[int], seconds: float, start_line,
                     results) -> None:
    engine = make_engine(address, pool_size=1, max_overflow=0)
    try:
        attempt = _service_attempt(engine, cars, drivers)
        warm_up = random.Random(-index)
        for _ in range(20):  # this process's statement caches and imports, before the clock starts
            attempt(warm_up)
        results.put(_work(attempt, index, seconds, start_line))
    finally:
        engine.dispose()


def _booked(url: URL, result: dict[str, Any]) -> dict[str, Any]:
    result["per_s"] = result["outcomes"].get("booked", 0) / result["wall_s"]
    result["overlaps"] = overlaps(url, "bookings")
    return result


_RAW_INSERT = """
    INSERT INTO bookings (reference, user_id, vehicle_id, vehicle_type_id, pickup_location_id, dropoff_location_id,
                          pickup_at, dropoff_at, turnaround_minutes, total_price, currency, price_breakdown, status,
                          payment_status, channel, hold_expires_at, extras, request_fingerprint)
    VALUES (%(reference)s, %(user_id)s, %(vehicle_id)s, %(type_id)s, %(branch)s, %(branch)s, %(pickup)s,
            %(dropoff)s, %(turnaround)s, %(price)s, 'GBP', %(breakdown)s, 'pending', 'unpaid', 'desk',
            %(hold)s, '{}', %(fingerprint)s)
"""
_BREAKDOWN = json.dumps({"currency": "GBP", "days": 3, "daily_rate": "40.00", "lines": [
    {"code": "base", "label": "3 days × £40.00", "amount": "120.00"}], "total": "120.00", "vat_included": "20.00",
    "vat_rate": "0.20"})


def _raw_inserts(url: URL, cars: list[Car], drivers: list[int]) -> MakeAttempt:
    """Plain INSERTs on a worker's own cars (every WORKERS-th), each car booked end to end: nothing can overlap."""
    turnaround = turnaround_minutes()
    start = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=1)

    def make_attempt(index: int, stack: ExitStack) -> Attempt:
        conn = stack.enter_context(_connect(url))
        mine = cars[index::WORKERS]
        free_from = {car.id: start for car in mine}
        counter = iter(range(10**9))

        def attempt(rng: random.Random) -> str:
            car = rng.choice(mine)
            pickup = free_from[car.id]
            dropoff = pickup + timedelta(days=rng.randint(1, 7), minutes=15 * rng.randint(0, 40))
            free_from[car.id] = dropoff + timedelta(minutes=turnaround)
            conn.execute(_RAW_INSERT, {
                "reference": f"R{index}{next(counter):09d}", "user_id": rng.choice(drivers), "vehicle_id": car.id,
                "type_id": car.type_id, "branch": car.branch.id, "pickup": pickup, "dropoff": dropoff,
                "turnaround": turnaround, "price": "120.00", "breakdown": _BREAKDOWN,
                "hold": datetime.now(UTC) + timedelta(minutes=15), "fingerprint": f"{rng.getrandbits(256):064x}"})
            return "inserted"
        attempt.backend_pid = conn.info.backend_pid  # type: ignore[attr-defined]  # for cpu_budget
        return attempt
    return make_attempt


def raw_phase(url: URL, cars: list[Car], drivers: list[int], seconds: float) -> dict[str, Any]:
    """One plain INSERT per transaction (autocommit), 8 connections."""
    result = _drive(_raw_inserts(url, cars, drivers), seconds)
    result["per_s"] = result["outcomes"].get("inserted", 0) / result["wall_s"]
    result["overlaps"] = overlaps(url, "bookings")
    return result


def naive_phase(url: URL, hot: list[Car], drivers: list[int], seconds: float) -> dict[str, Any]:
    """SELECT for an overlap, then INSERT, in one transaction, on a copy of bookings without the guard."""
    with _connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS bookings_naive")
        conn.execute("CREATE TABLE bookings_naive (LIKE bookings INCLUDING DEFAULTS INCLUDING GENERATED "
                     "INCLUDING IDENTITY)")
        conn.execute("CREATE INDEX ON bookings_naive (vehicle_id, pickup_at)")
    turnaround = turnaround_minutes()
    today = datetime.now(UTC).date()
    insert = _RAW_INSERT.replace("bookings", "bookings_naive", 1)

    def make_attempt(index: int, stack: ExitStack) -> Attempt:
        conn = stack.enter_context(_connect(url))
        counter = iter(range(10**9))

        def attempt(rng: random.Random) -> str:
            car = rng.choice(hot)
            pickup, dropoff = random_period(rng, car.branch, today)
            with conn.transaction():
                taken = conn.execute(f"""
                    SELECT 1 FROM bookings_naive
                    WHERE vehicle_id = %s AND status IN {ACTIVE} AND pickup_at < %s
                      AND dropoff_at + make_interval(mins => turnaround_minutes) > %s
                    LIMIT 1""", (car.id, dropoff + timedelta(minutes=turnaround), pickup)).fetchone()
                if taken:
                    return "refused"
                conn.execute(insert, {
                    "reference": f"N{index}{next(counter):09d}", "user_id": rng.choice(drivers),
                    "vehicle_id": car.id, "type_id": car.type_id, "branch": car.branch.id, "pickup": pickup,
                    "dropoff": dropoff, "turnaround": turnaround, "price": "120.00", "breakdown": _BREAKDOWN,
                    "hold": datetime.now(UTC) + timedelta(minutes=15),
                    "fingerprint": f"{rng.getrandbits(256):064x}"})
            return "inserted"
        return attempt

    result = _drive(make_attempt, seconds)
    result["per_s"] = result["outcomes"].get("inserted", 0) / result["wall_s"]
    result["overlaps"] = overlaps(url, "bookings_naive")
    with _connect(url) as conn:
        result["cars_overbooked"] = conn.execute(f"""
            SELECT count(DISTINCT a.vehicle_id) FROM bookings_naive a JOIN bookings_naive b
              ON a.vehicle_id = b.vehicle_id AND a.id < b.id AND a.blocked_period && b.blocked_period
            WHERE a.status IN {ACTIVE} AND b.status IN {ACTIVE}""").fetchone()[0]
    return result


# --- where the CPU goes ------------------------------------------------------------------------------------------

def cpu_budget(url: URL, cars: list[Car], drivers: list[int], attempts: int = 400) -> dict[str, Any]:
    """CPU per booking made, one connection, one attempt at a time: this Python thread's, and the PostgreSQL
    backend's (read from /proc, so only when the server runs on this machine; None otherwise). CPU
    times depend much less than rates on what else the machine is doing."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        service = _measure_cpu(_service_attempt(engine, cars, drivers), pid, attempts, "booked")
    finally:
        engine.dispose()
    reset(url)
    with ExitStack() as stack:
        attempt = _raw_inserts(url, cars, drivers)(0, stack)
        raw = _measure_cpu(attempt, attempt.backend_pid, attempts, "inserted")  # type: ignore[attr-defined]
    return {"service": service, "raw_insert": raw}


def _measure_cpu(attempt: Attempt, pid: int | None, attempts: int, made_as: str) -> dict[str, Any]:
    rng = random.Random(SEED)
    for _ in range(50):  # statement and plan caches
        attempt(rng)
    server_before, python_before = _process_cpu(pid), time.thread_time()
    made = sum(attempt(rng) == made_as for _ in range(attempts))
    server_after, python_after = _process_cpu(pid), time.thread_time()
    per = 1000 / max(1, made)
    return {"made": made, "python_ms": (python_after - python_before) * per,
            "postgres_ms": None if server_before is None or server_after is None
            else (server_after - server_before) * per}


def _process_cpu(pid: int | None) -> float | None:
    """User + system CPU seconds of a local process, or None when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError):
        return None


# --- the run --------------------------------------------------------------------------------------------------------

def run(log=print) -> dict[str, Any]:
    """Build or reuse the company, run the four ways, write bench/results/bookings.{json,md}."""
    started = time.monotonic()
    url = bench_url()
    build_seconds = ensure_dataset(url, log)
    cars, drivers = _fleet(url)
    hot = random.Random(SEED).sample(cars, HOT_CARS)
    seconds = phase_seconds()
    load_before = os.getloadavg()

    phases: dict[str, dict[str, Any]] = {}
    reset(url)
    log("warming up the service for 2 s…")
    service_phase(url, cars, drivers, 2.0)
    for name, label, run_phase, fleet in (
        ("service_fleet", f"service, {len(cars):,} cars, {WORKERS} threads", service_phase, cars),
        ("service_hot", f"service, {HOT_CARS} hot cars, {WORKERS} threads", service_phase, hot),
        ("service_fleet_processes", f"service, {len(cars):,} cars, {WORKERS} processes", service_processes_phase,
         cars),
        ("raw_insert", f"raw INSERT, {len(cars):,} cars, {WORKERS} connections", raw_phase, cars),
        ("naive_hot", f"naive check-then-insert, {HOT_CARS} hot cars, {WORKERS} connections", naive_phase, hot),
    ):
        reset(url)
        log(f"{label}, {seconds:g} s…")
        phases[name] = {"label": label, **run_phase(url, fleet, drivers, seconds)}
        log(f"  {phases[name]['per_s']:,.0f}/s, {phases[name]['outcomes']}, overlaps {phases[name]['overlaps']}")
    reset(url)
    log("CPU per booking, one connection…")
    budget = cpu_budget(url, cars, drivers)
    reset(url)

    service, raw = phases["service_fleet"], phases["raw_insert"]
    report = {
        "dataset": {"database": url.database, "spec": asdict(SPEC), "drivers": len(drivers),
                    "cars_used": len(cars), "hot_cars": [car.id for car in hot],
                    "build_seconds": round(build_seconds, 1) if build_seconds is not None else None},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_before": load_before},
        "phase_seconds": seconds, "workers": WORKERS,
        "phases": phases,
        "cpu_per_booking_ms": budget,
        "service_share_of_raw": service["per_s"] / raw["per_s"],
        "targets": {"service_per_s": RATE_TARGET, "share_of_raw": SHARE_OF_RAW_TARGET, "overlaps": 0},
        "met": {"service_per_s": service["per_s"] >= RATE_TARGET,
                "share_of_raw": service["per_s"] / raw["per_s"] >= SHARE_OF_RAW_TARGET,
                "no_overlaps": all(phases[name]["overlaps"] == 0 for name in
                                   ("service_fleet", "service_hot", "service_fleet_processes", "raw_insert"))},
        "total_seconds": round(time.monotonic() - started, 1),
    }
    write_results("bookings", report, markdown(report))
    log(markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    phases, data = report["phases"], report["dataset"]
    lines = [
        "# Booking benchmark",
        "",
        f"{data['spec']['branches']} branches, {data['cars_used']:,} cars ready to rent, {data['drivers']:,} "
        f"eligible drivers (database `{data['database']}`); {report['workers']} workers per way, "
        f"{report['phase_seconds']:g} s per way, each way from an empty bookings table; "
        f"{report['machine']['cpus']} CPUs shared with PostgreSQL (and with whatever else runs), load average "
        f"before the run {', '.join(f'{x:.1f}' for x in report['machine']['load_average_before'])}.",
        "",
        "| way | made/s | attempts/s | made | refused (by the guard) | errors | p50 ms | p95 ms | overlaps |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for phase in phases.values():
        outcomes = phase["outcomes"]
        made = outcomes.get("booked", 0) + outcomes.get("inserted", 0)
        guard = outcomes.get("refused by the guard", 0)
        key = next((k for k in ("booked", "inserted") if k in phase["latency_ms"]), "all")
        latency = phase["latency_ms"][key]
        lines.append(f"| {phase['label']} | {phase['per_s']:,.0f} | {phase['attempts_per_s']:,.0f} | {made:,} | "
                     f"{outcomes.get('refused', 0) + guard:,} ({guard:,}) | {phase['errors']} | "
                     f"{latency['p50']:.2f} | {latency['p95']:.2f} | {phase['overlaps']:,} |")
    share, met, targets = report["service_share_of_raw"], report["met"], report["targets"]
    budget = report["cpu_per_booking_ms"]
    naive, processes = phases["naive_hot"], phases["service_fleet_processes"]
    lines += [
        "",
        "Latencies are per booking made (per row inserted for the baselines), transaction and commit included.",
        "",
        f"- Service layer over the fleet, {report['workers']} threads: **{phases['service_fleet']['per_s']:,.0f} bookings/s** "
        f"(target ≥ {targets['service_per_s']:,.0f}: {'met' if met['service_per_s'] else 'NOT met'}), "
        f"**{share:.0%} of the raw INSERT rate** (target ≥ {targets['share_of_raw']:.0%}: "
        f"{'met' if met['share_of_raw'] else 'NOT met'}); with 8 processes {processes['per_s']:,.0f} bookings/s "
        f"({processes['per_s'] / phases['raw_insert']['per_s']:.0%} of raw).",
        f"- Overlapping active bookings: {phases['service_fleet']['overlaps']} over the fleet, "
        f"{phases['service_hot']['overlaps']} on the hot cars, {processes['overlaps']} with processes "
        f"({'met' if met['no_overlaps'] else 'NOT met'}); the naive check-then-insert let "
        f"**{naive['overlaps']:,} overlapping pairs** through on {naive['cars_overbooked']} of the "
        f"{len(data['hot_cars'])} hot cars.",
        f"- CPU per booking made, one connection at a time: the service spends {_ms(budget['service']['python_ms'])} "
        f"in Python and {_ms(budget['service']['postgres_ms'])} in its PostgreSQL backend; the raw INSERT "
        f"{_ms(budget['raw_insert']['python_ms'])} and {_ms(budget['raw_insert']['postgres_ms'])}. "
        f"{report['machine']['cpus']} CPUs making {targets['service_per_s']:,.0f} bookings/s have "
        f"{report['machine']['cpus'] * 1000 / targets['service_per_s']:.1f} ms of CPU per booking in all.",
        f"- Whole run: {report['total_seconds']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "? ms (server not on this machine)" if value is None else f"{value:.2f} ms"


def main() -> None:
    run()
