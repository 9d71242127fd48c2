"""Load a believable car rental company, deterministically for a seed: `fleetdesk demo-data`.

Forty branches at real airports, stations and town centres of London and the South East (more become satellite
depots), a fleet of real models, customers, and a year of bookings whose demand follows the week, the season and
the price charged. The same spec, seed and day always give the same rows.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from data import bulk
from data.pricing_demo import load_pricing
from data.tables import build_tables
from db.config import turnaround_minutes
from services.errors import Conflict

MAX_BRANCHES = 500
MAX_VEHICLES = 100_000
MAX_HISTORY_DAYS = 730
_META_KEY = "demo"
_LOAD_ORDER = ("vehicle_types", "locations", "users", "vehicles", "bookings", "maintenance_blocks", "transfers",
               "turned_away")
_BIG_TABLES = ("bookings",)  # millions of rows at the largest sizes


@dataclass(frozen=True)
class DemoSpec:
    """How big a company to make, how much history, and the seed that makes it reproducible."""

    branches: int = 40
    vehicles: int = 2000
    history_days: int = 365
    seed: int = 7

    def validate(self) -> None:
        """Raise ValueError with one line saying which size is impossible and what is allowed."""
        if not 1 <= self.branches <= MAX_BRANCHES:
            raise ValueError(f"branches must be between 1 and {MAX_BRANCHES}, not {self.branches:,}")
        if not self.branches <= self.vehicles <= MAX_VEHICLES:
            raise ValueError(
                f"vehicles must be between the number of branches ({self.branches:,}) and {MAX_VEHICLES:,}, "
                f"not {self.vehicles:,}"
            )
        if not 0 <= self.history_days <= MAX_HISTORY_DAYS:
            raise ValueError(f"history days must be between 0 and {MAX_HISTORY_DAYS}, not {self.history_days:,}")
        if self.seed < 0:
            raise ValueError(f"the seed must be a whole number of 0 or more, not {self.seed}")

    def describe(self) -> str:
        return (f"{self.branches:,} branches, {self.vehicles:,} vehicles, {self.history_days:,} days of history, "
                f"seed {self.seed}")


def load_demo(session: Session, spec: DemoSpec, *, force: bool = False, now: datetime | None = None) -> str:
    """Replace the business tables with the demo company for spec and say what was loaded; never commits.

    Loading the spec already loaded does nothing. Another spec, or data that is not demo data, is only replaced
    with force. `now` is the company's present (default: the start of today, UTC, so a day's loads are identical).
    """
    spec.validate()
    loaded = _loaded_demo(session)
    if loaded is not None and not force:
        loaded_spec = DemoSpec(**loaded["spec"])
        if loaded_spec == spec:
            return f"demo data already loaded ({_describe_loaded(loaded)}); nothing to do"
        raise Conflict(
            f"demo data for {loaded_spec.describe()} is already loaded; "
            f"add --force to replace it with {spec.describe()}"
        )
    if loaded is None and not force:
        existing = _business_rows(session)
        if existing:
            raise Conflict(f"the database already holds data that is not demo data ({existing}); "
                           "add --force to replace everything with the demo company")

    started = time.monotonic()
    present = _present(now)
    demo = build_tables(branches=spec.branches, vehicles=spec.vehicles, history_days=spec.history_days,
                        seed=spec.seed, now=present, turnaround=turnaround_minutes())
    bulk.empty_business_tables(session)
    connection = bulk.driver_connection(session)
    for table in _LOAD_ORDER:
        with bulk.checked_once(session, table) if table in _BIG_TABLES else nullcontext():
            bulk.copy_frame(connection, table, demo.tables[table])
    bulk.restart_identities(session, list(_LOAD_ORDER))
    load_pricing(session, present)  # tiers, rules and codes (0008)
    session.execute(text(f"ANALYZE {', '.join(_LOAD_ORDER)}"))

    counts = {table: len(demo.tables[table]) for table in _LOAD_ORDER}
    meta = {
        "spec": asdict(spec),
        "counts": counts,
        "facts": demo.facts,
        "present": present.isoformat(),
        "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    session.execute(
        text("INSERT INTO app_meta (key, value) VALUES (:key, CAST(:value AS jsonb)) "
             "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"),
        {"key": _META_KEY, "value": json.dumps(meta, sort_keys=True)},
    )
    return (
        f"loaded the demo company in {time.monotonic() - started:.1f} s ({_describe_loaded(meta)}); "
        f"as of {present:%Y-%m-%d %H:%M} UTC {demo.facts['in_progress']:,} cars are out on rental and "
        f"{demo.facts['upcoming']:,} bookings are upcoming"
    )


def _present(now: datetime | None) -> datetime:
    if now is None:
        today = datetime.now(UTC)
        return today.replace(hour=0, minute=0, second=0, microsecond=0)
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime (with a time zone)")
    return now.astimezone(UTC)


def _loaded_demo(session: Session) -> dict[str, Any] | None:
    return session.execute(text("SELECT value FROM app_meta WHERE key = :key"), {"key": _META_KEY}).scalar()


def _business_rows(session: Session) -> str:
    """'12 vehicles and 3 users' for the core tables that have rows, '' when they are all empty."""
    counts = session.execute(text(
        "SELECT (SELECT count(*) FROM locations), (SELECT count(*) FROM vehicles), (SELECT count(*) FROM users), "
        "(SELECT count(*) FROM bookings)"
    )).one()
    nouns = (("branch", "branches"), ("vehicle", "vehicles"), ("user", "users"), ("booking", "bookings"))
    parts = [f"{count:,} {one if count == 1 else many}" for count, (one, many) in zip(counts, nouns, strict=True)
             if count]
    return " and ".join([", ".join(parts[:-1]), parts[-1]]) if len(parts) > 1 else "".join(parts)


def _describe_loaded(meta: dict[str, Any]) -> str:
    spec, counts = DemoSpec(**meta["spec"]), meta["counts"]
    return (f"{spec.describe()}; {counts['users']:,} customers, {counts['bookings']:,} bookings, "
            f"{counts['maintenance_blocks']:,} maintenance blocks")
