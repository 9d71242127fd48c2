"""Telematics: readings from the cars' boxes — checked, stored as history, and folded into each car's last state.

A reading is rejected (with its line and the reason) when its vehicle is unknown, it is older than what we already
know of that vehicle, or it is physically impossible: the odometer going back, or a move faster than a car drives.
The good readings of the same batch are kept.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.events import record_event

MAX_SPEED_KMH = 250.0  # nothing we rent goes faster; a faster jump is a bad fix or a wrong vehicle
FUTURE_TOLERANCE = timedelta(minutes=5)  # clocks in the boxes drift a little
LOW_FUEL = 15
EARTH_RADIUS_KM = 6371.0
FIELDS = ("vehicle", "recorded_at", "lat", "lon", "fuel_level", "odometer_km")


@dataclass(frozen=True)
class Reading:
    line: int
    vehicle: str  # our id, or a VIN
    recorded_at: datetime
    lat: float
    lon: float
    fuel_level: int
    odometer_km: int


@dataclass
class IngestReport:
    accepted: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    vehicles_updated: int = 0
    events: int = 0

    def summary(self) -> str:
        return (f"accepted {self.accepted:,} readings for {self.vehicles_updated:,} vehicles, "
                f"rejected {len(self.rejected):,}")


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, a)))


def _parse_time(raw: str) -> datetime:
    value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"time {raw!r} has no UTC offset; write it like 2026-11-26T08:30:00Z")
    return value.astimezone(UTC)


def parse_row(line: int, raw: dict[str, Any]) -> Reading:
    """One reading from a CSV row or JSON object, or ValueError saying what is wrong with it."""
    missing = [name for name in FIELDS if raw.get(name) in (None, "")]
    if "vehicle" in missing and (raw.get("vin") or raw.get("vehicle_id")):
        missing.remove("vehicle")
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    vehicle = str(raw.get("vehicle") or raw.get("vin") or raw.get("vehicle_id")).strip()
    try:
        lat, lon = float(raw["lat"]), float(raw["lon"])
        fuel, odometer = float(raw["fuel_level"]), float(raw["odometer_km"])
    except (TypeError, ValueError):
        raise ValueError("lat, lon, fuel_level and odometer_km must be numbers") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or math.isnan(lat) or math.isnan(lon):
        raise ValueError(f"position ({lat}, {lon}) is off the globe")
    if not 0 <= fuel <= 100:
        raise ValueError(f"fuel level {fuel:g} is not a percentage between 0 and 100")
    if odometer < 0 or odometer > 2_000_000:
        raise ValueError(f"odometer {odometer:g} km is not plausible")
    return Reading(line, vehicle, _parse_time(str(raw["recorded_at"])), lat, lon, round(fuel), round(odometer))


def read_file(path: Path) -> tuple[list[Reading], list[tuple[int, str]]]:
    """Readings from a CSV (with a header) or JSON-lines file; unparseable lines become rejections."""
    content = path.read_text(encoding="utf-8")
    rows: Iterable[tuple[int, dict | str]]
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        rows = ((n, line) for n, line in enumerate(content.splitlines(), start=1) if line.strip())
    else:
        rows = ((n + 1, row) for n, row in enumerate(csv.DictReader(io.StringIO(content)), start=1))
    readings, rejected = [], []
    for line, row in rows:
        try:
            raw = json.loads(row) if isinstance(row, str) else row
            if not isinstance(raw, dict):
                raise ValueError("expected a JSON object")
            readings.append(parse_row(line, raw))
        except (ValueError, json.JSONDecodeError) as exc:
            rejected.append((line, str(exc)))
    return readings, rejected


@dataclass
class _State:
    vehicle_id: int
    recorded_at: datetime | None
    lat: float | None
    lon: float | None
    fuel_level: int
    odometer_km: int
    due_km: int | None


def _known_state(session: Session, refs: set[str]) -> dict[str, _State]:
    ids = [int(r) for r in refs if r.isdigit()]
    vins = [r.upper() for r in refs if not r.isdigit()]
    rows = session.execute(text("""
        SELECT v.id, v.vin, v.last_seen_at, ST_Y(v.last_position::geometry), ST_X(v.last_position::geometry),
               v.fuel_level, v.odometer_km, coalesce(v.last_service_km, 0) + t.service_interval_km
        FROM vehicles v JOIN vehicle_types t ON t.id = v.vehicle_type_id
        WHERE v.id = ANY(:ids) OR v.vin = ANY(:vins)
    """), {"ids": ids, "vins": vins}).all()
    known: dict[str, _State] = {}
    for vid, vin, seen, lat, lon, fuel, odo, due in rows:
        state = _State(vid, seen, lat, lon, fuel, odo, due)
        known[str(vid)] = known[vin] = state
    return known


def _check(reading: Reading, state: _State, now: datetime) -> str | None:
    if reading.recorded_at > now + FUTURE_TOLERANCE:
        return f"recorded at {reading.recorded_at:%Y-%m-%d %H:%M} UTC, which is in the future"
    if state.recorded_at is not None and reading.recorded_at <= state.recorded_at:
        return (f"out of order: vehicle {state.vehicle_id} already has a reading at "
                f"{state.recorded_at:%Y-%m-%d %H:%M:%S} UTC")
    if reading.odometer_km < state.odometer_km:
        return f"odometer went back from {state.odometer_km:,} km to {reading.odometer_km:,} km"
    if state.recorded_at is not None and state.lat is not None:
        hours = (reading.recorded_at - state.recorded_at).total_seconds() / 3600
        moved = haversine_km(state.lat, state.lon, reading.lat, reading.lon)
        if moved > 0.5 and moved / hours > MAX_SPEED_KMH:
            return f"moved {moved:,.1f} km in {hours * 60:,.0f} min ({moved / hours:,.0f} km/h), faster than a car"
        driven = reading.odometer_km - state.odometer_km
        if driven > 1 and driven / hours > MAX_SPEED_KMH:
            return f"odometer rose {driven:,} km in {hours * 60:,.0f} min, faster than a car"
    return None


def ingest(session: Session, readings: Iterable[Reading], *, now: datetime | None = None) -> IngestReport:
    """Check and store readings; update each vehicle's last known state and record what changed as events."""
    now = now or datetime.now(UTC)
    ordered = sorted(readings, key=lambda r: (r.vehicle, r.recorded_at, r.line))
    known = _known_state(session, {r.vehicle.upper() if not r.vehicle.isdigit() else r.vehicle for r in ordered})
    report = IngestReport()
    accepted: list[Reading] = []
    accepted_ids: list[int] = []
    before: dict[int, _State] = {}
    for reading in ordered:
        key = reading.vehicle if reading.vehicle.isdigit() else reading.vehicle.upper()
        state = known.get(key)
        if state is None:
            report.rejected.append((reading.line, f"unknown vehicle {reading.vehicle!r}"))
            continue
        problem = _check(reading, state, now)
        if problem:
            report.rejected.append((reading.line, problem))
            continue
        before.setdefault(state.vehicle_id, _State(**vars(state)))
        state.recorded_at, state.lat, state.lon = reading.recorded_at, reading.lat, reading.lon
        state.fuel_level, state.odometer_km = reading.fuel_level, reading.odometer_km
        accepted.append(reading)
        accepted_ids.append(state.vehicle_id)
    report.rejected.sort()
    if accepted:
        _store(session, accepted, accepted_ids)
        latest = {vid: known[str(vid)] for vid in set(accepted_ids)}
        _update_vehicles(session, latest.values())
        report.events = _record_changes(session, before, latest)
    report.accepted = len(accepted)
    report.vehicles_updated = len(set(accepted_ids))
    return report


def _store(session: Session, readings: list[Reading], vehicle_ids: list[int]) -> None:
    months = {r.recorded_at.date().replace(day=1) for r in readings}
    for month in sorted(months):
        session.execute(text("SELECT fd_ensure_telematics_partition(:m)"), {"m": month})
    cursor = session.connection().connection.driver_connection.cursor()
    with cursor.copy("COPY telematics_readings (vehicle_id, recorded_at, position, fuel_level, odometer_km) "
                     "FROM STDIN") as copy:
        for reading, vid in zip(readings, vehicle_ids, strict=True):
            copy.write_row((vid, reading.recorded_at, f"SRID=4326;POINT({reading.lon} {reading.lat})",
                            reading.fuel_level, reading.odometer_km))


def _update_vehicles(session: Session, states: Iterable[_State]) -> None:
    rows = [{"id": s.vehicle_id, "at": s.recorded_at, "lat": s.lat, "lon": s.lon, "fuel": s.fuel_level,
             "odo": s.odometer_km} for s in states]
    session.execute(text("""
        UPDATE vehicles v SET last_seen_at = u.at, fuel_level = u.fuel, odometer_km = u.odo,
               last_position = ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326)::geography, updated_at = now()
        FROM jsonb_to_recordset(CAST(:rows AS jsonb))
             AS u(id int, at timestamptz, lat float8, lon float8, fuel int, odo int)
        WHERE v.id = u.id
    """), {"rows": json.dumps(rows, default=str)})


def _record_changes(session: Session, before: dict[int, _State], after: dict[int, _State]) -> int:
    """One event per vehicle whose telematics state changed, plus low-fuel and service-due crossings."""
    count = 0
    for vid, new in after.items():
        old = before[vid]
        payload = {"vehicle_id": vid, "recorded_at": new.recorded_at.isoformat(), "lat": new.lat, "lon": new.lon,
                   "fuel_level": new.fuel_level, "odometer_km": new.odometer_km}
        record_event(session, "vehicle", vid, "vehicle.telematics_updated", payload)
        count += 1
        if old.fuel_level >= LOW_FUEL > new.fuel_level:
            record_event(session, "vehicle", vid, "vehicle.fuel_low", {"vehicle_id": vid, "fuel_level": new.fuel_level})
            count += 1
        if new.due_km is not None and old.odometer_km < new.due_km <= new.odometer_km:
            record_event(session, "vehicle", vid, "vehicle.service_due",
                         {"vehicle_id": vid, "odometer_km": new.odometer_km, "due_km": new.due_km})
            count += 1
    return count


def simulate_step(session: Session, *, minutes: float = 5.0, now: datetime | None = None,
                  seed: int | None = None, limit: int | None = None) -> IngestReport:
    """One tick of the demo fleet: rented cars drive on (about 50 km/h), parked cars report where they stand."""
    now = now or datetime.now(UTC)
    rows = session.execute(text("""
        SELECT v.id, v.status::text, ST_Y(COALESCE(v.last_position, l.geog)::geometry),
               ST_X(COALESCE(v.last_position, l.geog)::geometry), v.fuel_level, v.odometer_km, v.last_seen_at
        FROM vehicles v LEFT JOIN locations l ON l.id = v.current_location_id
        WHERE v.status IN ('rented', 'in_transit', 'available')
          AND COALESCE(v.last_position, l.geog) IS NOT NULL
          AND (v.last_seen_at IS NULL OR v.last_seen_at < :now)
        ORDER BY v.status DESC, v.id LIMIT :limit
    """), {"now": now, "limit": limit}).all()
    rng = np.random.default_rng(seed)
    readings = []
    for n, (vid, status, lat, lon, fuel, odo, _seen) in enumerate(rows, start=1):
        if status == "available":
            readings.append(Reading(n, str(vid), now, lat, lon, fuel, odo))
            continue
        km = max(0.0, rng.normal(50, 15)) * minutes / 60
        bearing = rng.uniform(0, 2 * math.pi)
        dlat = km * math.cos(bearing) / 111.0
        dlon = km * math.sin(bearing) / (111.0 * max(0.2, math.cos(math.radians(lat))))
        new_fuel = max(5, fuel - int(rng.random() < km / 8))
        readings.append(Reading(n, str(vid), now, lat + dlat, lon + dlon, new_fuel, odo + round(km)))
    return ingest(session, readings, now=now)
