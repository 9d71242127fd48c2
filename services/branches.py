"""Branches: where they are, when they are open, what they hold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy.orm import Session

from db import queries
from services.errors import NotFound

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _parse(hhmm: str) -> time | None:
    """'24:00' is the end of the day: returned as None, meaning midnight at the end."""
    if hhmm == "24:00":
        return None
    hours, minutes = hhmm.split(":")
    return time(int(hours), int(minutes))


def is_open(operating_hours: dict[str, Any], local: datetime) -> bool:
    """Whether a branch with these weekly hours is open at this local wall-clock time."""
    for opens, closes in operating_hours.get(WEEKDAYS[local.weekday()], []):
        start, end = _parse(opens) or time(0), _parse(closes)
        if start <= local.time() and (end is None or local.time() < end):
            return True
    return False


def describe_hours(operating_hours: dict[str, Any]) -> dict[str, str]:
    """Per weekday, e.g. {'mon': '07:00–21:00', 'sun': 'closed'}."""
    described = {}
    for day in WEEKDAYS:
        spans = operating_hours.get(day, [])
        if not spans:
            described[day] = "closed"
        elif spans == [["00:00", "24:00"]]:
            described[day] = "24 hours"
        else:
            described[day] = ", ".join(f"{a}–{b}" for a, b in spans)
    return described


def summarise_week(operating_hours: dict[str, Any]) -> str:
    """A compact one-liner such as 'Mon–Fri 08:00–18:00 · Sat 09:00–13:00 · Sun closed'."""
    described = describe_hours(operating_hours)
    runs: list[tuple[str, str, str]] = []
    for day in WEEKDAYS:
        if runs and runs[-1][2] == described[day]:
            runs[-1] = (runs[-1][0], day, described[day])
        else:
            runs.append((day, day, described[day]))
    if len(runs) == 1:
        return f"Daily {runs[0][2]}"
    parts = [(a.title() if a == b else f"{a.title()}–{b.title()}") + f" {hours}" for a, b, hours in runs]
    return " · ".join(parts)


def list_branches(session: Session) -> pd.DataFrame:
    """Every branch with its address, hours, phone and cars on hand by vehicle type."""
    overview = queries.branches_overview(session)
    if not overview.empty:
        overview["hours"] = overview["operating_hours"].map(summarise_week)
    return overview


@dataclass(frozen=True)
class BranchDetail:
    branch: dict[str, Any]
    local_time: datetime
    open_now: bool
    hours: dict[str, str]
    cars: pd.DataFrame  # vehicle_type, status, cars
    movements: pd.DataFrame  # day, pickups, returns over the next week
    nearby: pd.DataFrame  # code, name, distance_km

    @property
    def on_hand(self) -> int:
        return int(self.cars["cars"].sum()) if not self.cars.empty else 0


def branch_detail(session: Session, location_id: int, *, now: datetime | None = None,
                  nearby_km: float = 30.0) -> BranchDetail:
    branch = queries.branch(session, location_id)
    if branch is None:
        raise NotFound(f"There is no branch with id {location_id}; pick one from the branch list.")
    now = now or datetime.now(UTC)
    local = now.astimezone(ZoneInfo(branch["timezone"]))
    return BranchDetail(
        branch=branch,
        local_time=local,
        open_now=is_open(branch["operating_hours"], local),
        hours=describe_hours(branch["operating_hours"]),
        cars=queries.branch_cars_by_type_and_status(session, location_id),
        movements=queries.branch_movements(session, location_id, now, now + timedelta(days=7)),
        nearby=queries.nearby_branches(session, location_id, nearby_km),
    )


def search_branches(overview: pd.DataFrame, query: str) -> pd.DataFrame:
    """Branches whose code, name or city contains the text (case-insensitive, literal)."""
    needle = query.strip().lower()[:100]
    if not needle or overview.empty:
        return overview
    haystack = (overview["code"] + " " + overview["name"] + " " + overview["city"]).str.lower()
    return overview[haystack.str.contains(needle, regex=False)]
