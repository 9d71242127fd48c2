"""The benchmark's own company, built once in its own database and reused by every later run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import URL

from data.demo import DemoSpec, load_demo
from db import migrate
from db.config import database_target
from db.session import make_engine, session_scope

BENCH_DATABASE = "fleetdesk_bench"
# 100,000 cars over 500 branches; 60 days of history plus the booked-ahead future give well over 1,000,000 bookings.
SPEC = DemoSpec(branches=500, vehicles=100_000, history_days=60, seed=11)
MIN_BOOKINGS = 1_000_000


@dataclass(frozen=True)
class Dataset:
    url: URL
    present: datetime  # the company's "now": queries are made as of this moment
    counts: dict[str, int]
    build_seconds: float | None  # None when an earlier run's data was reused


def bench_url() -> URL:
    return database_target().url.set(database=BENCH_DATABASE)


def _create_database(url: URL) -> None:
    with psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                         dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{url.database}"')


def load_company(url: URL, spec: DemoSpec, label: str, log=print) -> tuple[dict[str, Any], float | None]:
    """The demo generator's company at `spec` in the database at `url`: created, migrated and loaded (timed) on the
    first run, reused afterwards. Returns its app_meta 'demo' record and the build time (None when reused)."""
    _create_database(url)
    migrate.upgrade(url)
    engine = make_engine(url)
    build_seconds = None
    try:
        with session_scope(engine) as session:
            loaded = session.execute(text("SELECT value FROM app_meta WHERE key = 'demo'")).scalar()
        if loaded is None or DemoSpec(**loaded["spec"]) != spec:
            log(f"building the {label} ({spec.describe()}) in {url.database}; this takes minutes…")
            started = time.monotonic()
            with session_scope(engine) as session:
                log(load_demo(session, spec, force=True))
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
            build_seconds = time.monotonic() - started
            log(f"built in {build_seconds:.0f} s")
        with session_scope(engine) as session:
            meta = session.execute(text("SELECT value FROM app_meta WHERE key = 'demo'")).scalar_one()
    finally:
        engine.dispose()
    return meta, build_seconds


def ensure_dataset(log=print) -> Dataset:
    """The benchmark company at SPEC: loaded (and timed) on the first run, reused afterwards."""
    url = bench_url()
    meta, build_seconds = load_company(url, SPEC, "benchmark company", log)
    counts = meta["counts"]
    if counts["bookings"] < MIN_BOOKINGS:
        raise RuntimeError(f"the benchmark company has {counts['bookings']:,} bookings, fewer than "
                           f"{MIN_BOOKINGS:,}; raise SPEC.history_days")
    return Dataset(url=url, present=datetime.fromisoformat(meta["present"]), counts=counts,
                   build_seconds=build_seconds)
