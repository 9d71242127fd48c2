"""Benchmark of the REST API through HTTP: availability searches and bookings per second, with concurrent clients.

The server is the real thing: `uvicorn app.api:app` with 2 worker processes on the benchmark company
(bench/dataset.py: 500 branches, 100,000 cars, over 1,000,000 bookings). The clients are threads of this process,
each with its own keep-alive `httpx` connection and a desk agent's bearer token, so every request is authenticated,
validated, answered by the services in its own unit of work and serialised to JSON. Latencies are measured by the
client, from the request to the last byte of the answer.

The searches are the availability benchmark's seeded random mix (three in five at a branch, two in five around a
point), moved to start after today. The bookings take the first car of distinct search answers and book it for that
search's period for one new customer; a 409 (the car was taken by an earlier booking of the run) counts apart.
Every booking made is cancelled through the API at the end, so the benchmark company is left as it was found.
`FLEETDESK_BENCH_API_DATABASE=fleetdesk python -m bench api` runs it on another database of the same server
(the demo company) instead.
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select, text

from bench.availability import SEED, Branch, make_queries
from bench.dataset import Dataset, bench_url, ensure_dataset
from bench.results_io import write_results
from db.config import PROJECT_ROOT
from db.models import User
from db.session import make_engine, session_scope
from services import staff, tokens
from services.actors import Actor
from services.customers import create_customer

WORKERS = 2
CLIENTS = 16
SEARCHES = 4000
WARM_UP = 400
BOOKINGS = 400
QPS_TARGET = 500.0
P95_TARGET_MS = 50.0
STAFF_EMAIL = "bench-api@fleetdesk.bench"
CUSTOMER_EMAIL = "bench-api-customer@fleetdesk.bench"
BENCH_KEYS = "8t9s83BB4gZrz8HlbtH7FQ9vyQBHIHi50iNKgjItCmM="  # only when none is configured: bench data only


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(engine) -> tuple[str, int]:
    """A desk agent's token and an eligible customer in the benchmark company."""
    operator = Actor.command_line()
    with session_scope(engine) as session:
        if session.scalar(select(User.id).where(User.email == STAFF_EMAIL)) is None:
            staff.add_staff(session, operator, email=STAFF_EMAIL, role="desk_agent", name="Bench Client",
                            password=f"Bench-Client-{random.randrange(10**9)}")
        plain = tokens.create_token(session, operator, STAFF_EMAIL, expires_days=1)[1]
        customer = session.scalar(select(User.id).where(User.email == CUSTOMER_EMAIL))
        if customer is None:
            customer = create_customer(session, operator, email=CUSTOMER_EMAIL, first_name="Bench",
                                       last_name="Customer", date_of_birth=date(1985, 6, 1),
                                       licence_number="BENCH806015BC9AB", licence_country="GB",
                                       licence_expiry=date.today() + timedelta(days=3650)).id
    return plain, customer


def _params(query) -> dict[str, Any]:
    params: dict[str, Any] = {"pickup_at": query.pickup_at.isoformat(), "dropoff_at": query.dropoff_at.isoformat()}
    if query.pickup_location_id is not None:
        params["pickup_location_id"] = query.pickup_location_id
    else:
        params |= {"lat": query.lat, "lon": query.lon, "radius_km": query.radius_km}
    if query.vehicle_types:
        params["vehicle_type"] = query.vehicle_types[0]
    return params


def _drive(base: str, token: str, jobs: list[Any], clients: int,
           call: Callable[[httpx.Client, Any], httpx.Response]) -> dict[str, Any]:
    """Run the jobs on `clients` threads; latency of each request, answers by status, wall-clock rate."""
    latencies: list[float] = []
    answers: list[tuple[Any, httpx.Response]] = []
    lock, cursor = threading.Lock(), iter(jobs)

    def client() -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            while True:
                with lock:
                    job = next(cursor, None)
                if job is None:
                    return
                started = time.perf_counter()
                response = call(http, job)
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    answers.append((job, response))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ms = sorted(x * 1000 for x in latencies)
    statuses: dict[str, int] = {}
    for _, response in answers:
        statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
    return {"requests": len(ms), "clients": clients, "seconds": round(wall, 2), "per_second": len(ms) / wall,
            "p50_ms": statistics.median(ms), "p95_ms": ms[int(0.95 * (len(ms) - 1))],
            "p99_ms": ms[int(0.99 * (len(ms) - 1))], "statuses": statuses, "answers": answers}


def _dataset(log) -> Dataset:
    """The benchmark company, or the database FLEETDESK_BENCH_API_DATABASE names on the same server (e.g. a demo)."""
    name = os.environ.get("FLEETDESK_BENCH_API_DATABASE")
    if not name:
        return ensure_dataset(log)
    url = bench_url().set(database=name)
    engine = make_engine(url, pool_size=1, max_overflow=0)
    with engine.connect() as connection:
        counts = {table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                  for table in ("locations", "vehicles", "bookings")}
    engine.dispose()
    return Dataset(url=url, present=datetime.now(UTC), counts=counts, build_seconds=None)


def _serve(url, port: int) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url.render_as_string(hide_password=False)}
    env.setdefault("FLEETDESK_ENCRYPTION_KEYS", BENCH_KEYS)
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.api:app", "--host", "127.0.0.1", "--port",
                               str(port), "--workers", str(WORKERS), "--log-level", "warning", "--no-access-log"],
                              cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError("the API server did not start")
        time.sleep(0.2)


def run(log=print) -> dict[str, Any]:
    """Serve the API on the benchmark company, search and book through HTTP, write bench/results/api.{json,md}."""
    os.environ.setdefault("FLEETDESK_ENCRYPTION_KEYS", BENCH_KEYS)
    dataset = _dataset(log)
    engine = make_engine(dataset.url, pool_size=2, max_overflow=0)
    with engine.connect() as connection:
        branches = [Branch(r.id, r.lat, r.lon, ZoneInfo(r.timezone), r.operating_hours)
                    for r in connection.execute(text("""
                        SELECT id, ST_Y(geog::geometry) AS lat, ST_X(geog::geometry) AS lon, timezone,
                               operating_hours FROM locations ORDER BY id"""))]
        types = list(connection.execute(text("SELECT code FROM vehicle_types ORDER BY rank")).scalars())
    token, customer = _prepare(engine)
    present = max(dataset.present, datetime.now(UTC)) + timedelta(hours=2)
    rng = random.Random(SEED + 1)
    warm = make_queries(branches, types, present, WARM_UP, rng)
    searches = make_queries(branches, types, present, SEARCHES, rng)

    def search(http: httpx.Client, query) -> httpx.Response:
        return http.get("/api/v1/vehicles/available", params=_params(query))

    port = _free_port()
    server = _serve(dataset.url, port)
    base = f"http://127.0.0.1:{port}"
    try:
        log(f"API on {base} with {WORKERS} workers; warming up with {len(warm)} searches…")
        _drive(base, token, warm, CLIENTS, search)
        log(f"{len(searches)} searches on {CLIENTS} clients…")
        searched = _drive(base, token, searches, CLIENTS, search)
        picks, cars = [], set()
        for query, response in searched["answers"]:
            found = response.json() if response.status_code == 200 else []
            if found and found[0]["id"] not in cars and query.pickup_location_id is not None:
                cars.add(found[0]["id"])
                picks.append({"user_id": customer, "vehicle_id": found[0]["id"],
                              "pickup_location_id": query.pickup_location_id,
                              "dropoff_location_id": query.pickup_location_id,
                              "pickup_at": query.pickup_at.isoformat(), "dropoff_at": query.dropoff_at.isoformat()})
        picks = picks[:BOOKINGS]
        log(f"{len(picks)} bookings on {CLIENTS} clients…")
        booked = _drive(base, token, picks, CLIENTS, lambda http, body: http.post("/api/v1/bookings", json=body))
        made = [r.json()["id"] for _, r in booked["answers"] if r.status_code == 201]
        log(f"cancelling the {len(made)} bookings made…")
        cancelled = _drive(base, token, made, CLIENTS,
                           lambda http, booking_id: http.patch(f"/api/v1/bookings/{booking_id}/cancel",
                                                               json={"reason": "benchmark clean-up"}))
    finally:
        server.terminate()
        server.wait(timeout=30)
        engine.dispose()
    runs = {"searches": searched, "bookings": booked, "cancellations": cancelled}
    for result in runs.values():
        result.pop("answers")
    report = {
        "dataset": {"database": dataset.url.database, **dataset.counts},
        "server": {"workers": WORKERS, "clients": CLIENTS},
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "runs": runs, "targets": {"searches_per_second": QPS_TARGET, "p95_ms": P95_TARGET_MS},
        "met": searched["per_second"] >= QPS_TARGET and searched["p95_ms"] <= P95_TARGET_MS,
    }
    write_results("api", report, markdown(report))
    log(markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    data, runs = report["dataset"], report["runs"]
    lines = [
        "# REST API benchmark",
        "",
        f"`uvicorn app.api:app`, {report['server']['workers']} workers, {report['server']['clients']} concurrent "
        f"keep-alive HTTP clients on the same machine ({report['machine']['cpus']} CPUs, load average before "
        f"{', '.join(f'{x:.1f}' for x in report['machine']['load_average'])}); {data['locations']:,} branches, "
        f"{data['vehicles']:,} vehicles, {data['bookings']:,} bookings (database `{data['database']}`).",
        "",
        "| requests | count | per second | p50 ms | p95 ms | p99 ms | answers |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for key, label in (("searches", "GET /vehicles/available"), ("bookings", "POST /bookings"),
                       ("cancellations", "PATCH /bookings/{id}/cancel")):
        r = runs[key]
        answers = ", ".join(f"{n}× {code}" for code, n in sorted(r["statuses"].items()))
        lines.append(f"| {label} | {r['requests']:,} | {r['per_second']:.0f} | {r['p50_ms']:.1f} | "
                     f"{r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {answers} |")
    verdict = "met" if report["met"] else "NOT met"
    lines += ["", f"Target: at least {report['targets']['searches_per_second']:.0f} searches/s with p95 at most "
                  f"{report['targets']['p95_ms']:.0f} ms — {verdict}.", ""]
    return "\n".join(lines)


def main() -> None:
    run()
