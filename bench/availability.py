"""Benchmark of the availability search: the service at 1 and 4 clients against the naive way, in the same run.

The company: 500 branches, 100,000 cars and over 1,000,000 bookings (bench/dataset.py), built once in its own
database. The queries: random but seeded — three in five at a branch, two in five around a point near a branch
(10–50 km), a quarter of them for one or two vehicle types; pick-ups over the next 60 days at a time the branch is
open, rentals of 1–14 days. Every query goes through `services.availability.find_available` in its own transaction,
each client thread on its own connection; latencies include the session, the transaction and building the result.

The naive way answers the same questions as one plain query, the way one would write it without the search's
derived table and indexes: where every car will be (its last active booking before the pick-up, found by sorting
all the active bookings), the distance from the point computed for every car, and overlaps with bookings and
maintenance checked by comparing timestamps, with index scans switched off (`SET LOCAL enable_indexscan = off`
and friends) so neither the GiST range indexes nor the booking indexes can help. Its answers are checked against
the service's, so the comparison is between two ways of getting the same rows.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.dataset import ensure_dataset
from bench.results_io import write_results
from db.config import turnaround_minutes
from db.session import make_engine
from services.availability import AvailabilityQuery, find_available
from services.branches import is_open

SEED = 2026
FAST_QUERIES = 2000  # per concurrency level
NAIVE_QUERIES = 24
WARM_UP = 300
P95_TARGET_MS = 10.0
SPEED_UP_TARGET = 20.0


@dataclass(frozen=True)
class Branch:
    id: int
    lat: float
    lon: float
    zone: ZoneInfo
    hours: dict[str, Any]


def make_queries(branches: list[Branch], types: list[str], present: datetime, count: int,
                 rng: random.Random) -> list[AvailabilityQuery]:
    """Seeded random searches a desk or the API would make (never at a time the branch is closed)."""
    queries = []
    while len(queries) < count:
        branch = rng.choice(branches)
        pickup = _open_time(branch, present + timedelta(days=rng.uniform(0.05, 60)), rng)
        if pickup is None:
            continue
        dropoff = _open_time(branch, pickup + timedelta(days=rng.randint(1, 14)), rng)
        if dropoff is None or dropoff <= pickup:
            continue
        chosen = tuple(rng.sample(types, rng.choice((1, 2)))) if rng.random() < 0.25 else ()
        if rng.random() < 0.6:
            queries.append(AvailabilityQuery(pickup, dropoff, pickup_location_id=branch.id, vehicle_types=chosen))
        else:
            bearing, km = rng.uniform(0, 360), rng.uniform(0, 8)
            lat = branch.lat + km / 111.32 * math.cos(math.radians(bearing))
            lon = branch.lon + km / (111.32 * math.cos(math.radians(branch.lat))) * math.sin(math.radians(bearing))
            queries.append(AvailabilityQuery(pickup, dropoff, lat=round(lat, 5), lon=round(lon, 5),
                                             radius_km=rng.choice((10, 15, 25, 50)), vehicle_types=chosen))
    return queries


def _open_time(branch: Branch, around: datetime, rng: random.Random) -> datetime | None:
    """A quarter-hour on the same local day as `around` at which the branch is open (None if closed all day)."""
    local = around.astimezone(branch.zone)
    slots = [local.replace(hour=h, minute=m, second=0, microsecond=0) for h in range(24) for m in (0, 15, 30, 45)]
    open_slots = [slot for slot in slots if is_open(branch.hours, slot)]
    if not open_slots:
        return None
    # most rentals start or end in the working day
    daytime = [slot for slot in open_slots if 7 <= slot.hour < 20] or open_slots
    return rng.choice(daytime if rng.random() < 0.9 else open_slots)


# --- the naive way --------------------------------------------------------------------------------------------------

NAIVE_SQL = """
    WITH last_before AS (   -- every car's last active booking before the pick-up
        SELECT DISTINCT ON (vehicle_id) vehicle_id, dropoff_location_id FROM bookings
        WHERE status IN ('pending', 'confirmed', 'picked_up') AND pickup_at < :pickup
        ORDER BY vehicle_id, pickup_at DESC
    ), first_after AS (     -- and its first one from the pick-up on
        SELECT DISTINCT ON (vehicle_id) vehicle_id, pickup_location_id FROM bookings
        WHERE status IN ('pending', 'confirmed', 'picked_up') AND pickup_at >= :pickup
        ORDER BY vehicle_id, pickup_at
    ), busy AS (            -- overlaps by comparing the ends, turnarounds included
        SELECT vehicle_id FROM bookings
        WHERE status IN ('pending', 'confirmed', 'picked_up') AND pickup_at < :free_until
          AND dropoff_at + make_interval(mins => turnaround_minutes) > :pickup
        UNION
        SELECT vehicle_id FROM maintenance_blocks
        WHERE status IN ('scheduled', 'in_progress') AND lower(period) < :free_until AND upper(period) > :pickup
    ), placed AS (
        SELECT v.id, v.daily_rate, v.vehicle_type_id, l.id AS location_id, l.opening_minutes, l.timezone,
               ST_Distance(l.geog, ST_GeogFromText(:here), false) AS distance_m, nxt.pickup_location_id AS next_from
        FROM vehicles v
        LEFT JOIN last_before prev ON prev.vehicle_id = v.id
        LEFT JOIN first_after nxt ON nxt.vehicle_id = v.id
        JOIN locations l ON l.id = coalesce(prev.dropoff_location_id, v.current_location_id)
        WHERE v.status NOT IN ('retired', 'in_transit')
          AND v.id NOT IN (SELECT vehicle_id FROM busy)
    )
    SELECT id FROM placed
    WHERE (next_from IS NULL OR next_from = coalesce(CAST(:dropoff_id AS int), location_id))
      AND (CAST(:types AS int[]) IS NULL OR vehicle_type_id = ANY(CAST(:types AS int[])))
      AND (CAST(:branch AS int) IS NULL OR location_id = :branch)
      AND (CAST(:branch AS int) IS NOT NULL OR (
            distance_m <= :radius_m
            AND opening_minutes @> fd_minute_of_week(:pickup, timezone)
            AND opening_minutes @> fd_minute_of_week(:dropoff, timezone)))
    ORDER BY distance_m, daily_rate, id
    LIMIT :n
"""


def naive_find(session: Session, query: AvailabilityQuery, type_ids: dict[str, int]) -> list[int]:
    for setting in ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"):
        session.execute(text(f"SET LOCAL {setting} = off"))
    here = (f"SRID=4326;POINT({query.lon} {query.lat})" if query.around_point else
            "SRID=4326;POINT(0 0)")
    rows = session.execute(text(NAIVE_SQL), {
        "pickup": query.pickup_at, "dropoff": query.dropoff_at,
        "free_until": query.dropoff_at + timedelta(minutes=turnaround_minutes()),
        "here": here, "radius_m": query.radius_km * 1000, "branch": query.pickup_location_id,
        "dropoff_id": query.dropoff_location_id,
        "types": [type_ids[code] for code in query.vehicle_types] or None, "n": query.limit,
    })
    return [row.id for row in rows]


# --- running ----------------------------------------------------------------------------------------------------------

def _run(engine, queries: list[AvailabilityQuery], clients: int, present: datetime, ask) -> dict[str, Any]:
    """Run the queries split over `clients` threads, each with its own connection; latencies in ms and QPS."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    answers: list[dict[int, Any]] = [{} for _ in range(clients)]
    errors: list[str] = []
    start_line = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        with engine.connect() as connection:
            mine = list(range(index, len(queries), clients))
            start_line.wait()
            for i in mine:
                started = time.perf_counter()
                try:
                    with Session(bind=connection) as session, session.begin():
                        answers[index][i] = ask(session, queries[i], present)
                except Exception as error:  # noqa: BLE001 - counted and reported, never hidden
                    errors.append(f"{type(error).__name__}: {error}")
                latencies[index].append((time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    everything = sorted(ms for per_client in latencies for ms in per_client)
    merged = {i: answer for per_client in answers for i, answer in per_client.items()}
    return {
        "clients": clients, "queries": len(everything), "errors": len(errors), "error_examples": errors[:3],
        "p50_ms": _percentile(everything, 50), "p95_ms": _percentile(everything, 95),
        "p99_ms": _percentile(everything, 99), "mean_ms": statistics.fmean(everything),
        "qps": len(everything) / wall, "wall_s": wall, "answers": merged,
    }


def _percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def _fast(session: Session, query: AvailabilityQuery, present: datetime) -> list[int]:
    return [vehicle.id for vehicle in find_available(session, query, now=present).vehicles]


def run(log=print) -> dict[str, Any]:
    """Build or reuse the dataset, run both ways at 1 and 4 clients, write bench/results/availability.{json,md}."""
    started = time.monotonic()
    machine = _machine()  # the load others put on the machine before this run adds its own
    dataset = ensure_dataset(log)
    engine = make_engine(dataset.url, pool_size=8, max_overflow=0)
    try:
        with engine.connect() as connection:
            branches = [Branch(r.id, r.lat, r.lon, ZoneInfo(r.timezone), r.operating_hours)
                        for r in connection.execute(text("""
                            SELECT id, ST_Y(geog::geometry) AS lat, ST_X(geog::geometry) AS lon, timezone,
                                   operating_hours FROM locations ORDER BY id"""))]
            type_ids = dict(connection.execute(text("SELECT code, id FROM vehicle_types ORDER BY rank")).all())
            build = connection.execute(text("SELECT value FROM app_meta WHERE key = 'bench'")).scalar()
        if dataset.build_seconds is not None:
            build = {"build_seconds": round(dataset.build_seconds, 1), "built_at": datetime.now().isoformat()}
            with engine.begin() as connection:
                connection.execute(text("""INSERT INTO app_meta (key, value) VALUES ('bench', CAST(:v AS jsonb))
                                           ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"""),
                                   {"v": json.dumps(build)})
        rng = random.Random(SEED)
        warm = make_queries(branches, list(type_ids), dataset.present, WARM_UP, rng)
        fast_queries = make_queries(branches, list(type_ids), dataset.present, FAST_QUERIES, rng)
        naive_queries = make_queries(branches, list(type_ids), dataset.present, NAIVE_QUERIES, rng)

        log(f"warming up with {len(warm)} searches on 4 connections…")
        _run(engine, warm, 4, dataset.present, _fast)
        runs = {}
        for clients in (1, 4):
            log(f"service, {clients} client(s): {len(fast_queries)} searches…")
            runs[f"service_{clients}"] = _run(engine, fast_queries, clients, dataset.present, _fast)
        naive = lambda session, query, present: naive_find(session, query, type_ids)  # noqa: E731
        for clients in (1, 4):
            log(f"naive, {clients} client(s): {len(naive_queries)} searches…")
            runs[f"naive_{clients}"] = _run(engine, naive_queries, clients, dataset.present, naive)
        log("checking the service gives the naive answers…")
        with engine.connect() as connection, Session(bind=connection) as session:
            service_answers = {i: _fast(session, q, dataset.present) for i, q in enumerate(naive_queries)}
        disagreements = [i for i, ids in runs["naive_1"]["answers"].items() if ids != service_answers[i]]
    finally:
        engine.dispose()

    for result in runs.values():
        result.pop("answers")
    report = {
        "dataset": {"database": dataset.url.database, "present": dataset.present.isoformat(), **dataset.counts,
                    **(build or {})},
        "machine": machine,
        "queries": {"service": len(fast_queries), "naive": len(naive_queries), "warm_up": len(warm),
                    "seed": SEED},
        "runs": runs,
        "speed_up": {f"{c}_clients": runs[f"service_{c}"]["qps"] / runs[f"naive_{c}"]["qps"] for c in (1, 4)},
        "naive_agrees": not disagreements, "disagreements": disagreements,
        "targets": {"p95_ms": P95_TARGET_MS, "speed_up": SPEED_UP_TARGET},
        "total_seconds": round(time.monotonic() - started, 1),
    }
    write_results("availability", report, markdown(report))
    log(markdown(report))
    return report


def _machine() -> dict[str, Any]:
    import os
    import platform

    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_average": os.getloadavg()}


def markdown(report: dict[str, Any]) -> str:
    runs, data = report["runs"], report["dataset"]
    lines = [
        "# Availability search benchmark",
        "",
        f"{data['locations']:,} branches, {data['vehicles']:,} vehicles, {data['bookings']:,} bookings, "
        f"{data['maintenance_blocks']:,} maintenance blocks (database `{data['database']}`, "
        f"built in {data.get('build_seconds', '?')} s). {report['queries']['service']:,} random searches per "
        f"concurrency level for the service, {report['queries']['naive']} for the naive query; "
        f"{report['machine']['cpus']} CPUs, load average before the run "
        f"{', '.join(f'{x:.1f}' for x in report['machine']['load_average'])}.",
        "",
        "| way | clients | p50 ms | p95 ms | p99 ms | queries/s | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, label in (("service_1", "service"), ("service_4", "service"), ("naive_1", "naive"),
                       ("naive_4", "naive")):
        r = runs[key]
        lines.append(f"| {label} | {r['clients']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['qps']:,.1f} | {r['errors']} |")
    speed = report["speed_up"]
    lines += [
        "",
        f"Speed-up in throughput over the naive query: {speed['1_clients']:,.0f}× at 1 client, "
        f"{speed['4_clients']:,.0f}× at 4 clients (target ≥ {report['targets']['speed_up']:g}×). "
        f"Target p95 ≤ {report['targets']['p95_ms']:g} ms. The naive query "
        f"{'gave the same cars as the service for every search' if report['naive_agrees'] else 'DISAGREED on searches ' + str(report['disagreements'])}. "
        f"Whole run: {report['total_seconds']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    run()
