"""Where the fleet is and in what state."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy.orm import Session

from db import queries
from db.models import VehicleStatus
from db.queries import FleetFilter
from services.errors import InvalidInput

# Above this many vehicles a browser map of single cars gets sluggish; show per-branch aggregates instead.
POINT_LIMIT = 5_000


@dataclass(frozen=True)
class FleetSnapshot:
    total: int
    counts: pd.DataFrame  # status, vehicles
    branches: pd.DataFrame  # per branch: position and cars on hand by status
    vehicles: pd.DataFrame  # at most `row_limit` rows
    aggregated: bool  # True when too many vehicles to draw one by one

    @property
    def truncated(self) -> bool:
        return len(self.vehicles) < self.total


def make_filter(
    session: Session,
    *,
    statuses: list[str] | tuple[str, ...] = (),
    type_codes: list[str] | tuple[str, ...] = (),
    location_ids: list[int] | tuple[int, ...] = (),
) -> FleetFilter:
    """A checked filter: unknown statuses, types or branches are named, never silently ignored."""
    unknown_status = sorted(set(statuses) - {s.value for s in VehicleStatus})
    if unknown_status:
        raise InvalidInput(f"Unknown vehicle status {', '.join(unknown_status)}; "
                           f"use one of {', '.join(s.value for s in VehicleStatus)}.")
    unknown_types = sorted(set(type_codes) - set(queries.vehicle_type_codes(session)))
    if unknown_types:
        raise InvalidInput(f"Unknown vehicle type {', '.join(unknown_types)}; pick one from the list.")
    missing = sorted(set(location_ids) - queries.known_ids(session, "locations", list(location_ids)))
    if missing:
        raise InvalidInput(f"Unknown branch id {', '.join(map(str, missing))}; pick a branch from the list.")
    return FleetFilter(tuple(statuses), tuple(type_codes), tuple(int(i) for i in location_ids))


def fleet_snapshot(
    session: Session, fleet_filter: FleetFilter, *, row_limit: int = POINT_LIMIT
) -> FleetSnapshot:
    """Counts by status, cars per branch, and the vehicles themselves up to row_limit."""
    total = queries.count_vehicles(session, fleet_filter)
    return FleetSnapshot(
        total=total,
        counts=queries.status_counts(session, fleet_filter),
        branches=queries.branch_fleet(session, fleet_filter),
        vehicles=queries.fleet_vehicles(session, fleet_filter, limit=row_limit),
        aggregated=total > POINT_LIMIT,
    )
