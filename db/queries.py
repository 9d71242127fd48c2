"""Read queries for screens, returning DataFrames. Aggregation happens in PostgreSQL, not in Python."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy import Result, text
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class FleetFilter:
    """Which vehicles a screen shows; an empty tuple means no restriction."""

    statuses: tuple[str, ...] = ()
    type_codes: tuple[str, ...] = ()
    location_ids: tuple[int, ...] = ()
    include_retired: bool = field(default=False)

    def where(self) -> tuple[str, dict]:
        clauses, params = ["TRUE"], {}
        if self.statuses:
            clauses.append("v.status::text = ANY(:statuses)")
            params["statuses"] = list(self.statuses)
        elif not self.include_retired:
            clauses.append("v.status <> 'retired'")
        if self.type_codes:
            clauses.append("vt.code = ANY(:type_codes)")
            params["type_codes"] = list(self.type_codes)
        if self.location_ids:
            clauses.append("v.current_location_id = ANY(:location_ids)")
            params["location_ids"] = list(self.location_ids)
        return " AND ".join(clauses), params


def result_frame(result: Result) -> pd.DataFrame:
    """The rows of an executed statement as a DataFrame, with its column names (also when there are no rows)."""
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def like_escape(value: str) -> str:
    """Text to match literally inside a LIKE pattern written with ESCAPE '\\'."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _frame(session: Session, sql: str, params: dict | None = None) -> pd.DataFrame:
    return result_frame(session.execute(text(sql), params or {}))


def fleet_vehicles(session: Session, fleet_filter: FleetFilter, *, limit: int | None = None) -> pd.DataFrame:
    """One row per vehicle with where it is: its last reported position, else its branch."""
    where, params = fleet_filter.where()
    params["limit"] = limit
    return _frame(session, f"""
        SELECT v.id, v.license_plate AS plate, v.make, v.model, v.year, vt.code AS vehicle_type,
               v.status::text AS status, l.code AS branch_code, l.name AS branch, v.fuel_level, v.odometer_km,
               ST_Y(COALESCE(v.last_position, l.geog)::geometry) AS lat,
               ST_X(COALESCE(v.last_position, l.geog)::geometry) AS lon,
               v.last_seen_at
        FROM vehicles v
        JOIN vehicle_types vt ON vt.id = v.vehicle_type_id
        LEFT JOIN locations l ON l.id = v.current_location_id
        WHERE {where}
        ORDER BY l.code NULLS LAST, vt.rank, v.license_plate
        LIMIT :limit
    """, params)


def count_vehicles(session: Session, fleet_filter: FleetFilter) -> int:
    where, params = fleet_filter.where()
    return session.execute(text(f"""
        SELECT count(*) FROM vehicles v JOIN vehicle_types vt ON vt.id = v.vehicle_type_id WHERE {where}
    """), params).scalar_one()


def status_counts(session: Session, fleet_filter: FleetFilter) -> pd.DataFrame:
    """Vehicles per status (every status present, zero where none)."""
    where, params = fleet_filter.where()
    return _frame(session, f"""
        SELECT s.status::text AS status, count(v.id)::int AS vehicles
        FROM unnest(enum_range(NULL::vehicle_status)) AS s(status)
        LEFT JOIN (vehicles v JOIN vehicle_types vt ON vt.id = v.vehicle_type_id)
               ON v.status = s.status AND {where}
        GROUP BY s.status ORDER BY s.status
    """, params)


def branch_fleet(session: Session, fleet_filter: FleetFilter) -> pd.DataFrame:
    """Per branch: position and the filtered cars on hand (available or in maintenance there) — the map's aggregate."""
    where, params = fleet_filter.where()
    location_clause = "TRUE"
    if fleet_filter.location_ids:
        location_clause = "l.id = ANY(:location_ids)"
    return _frame(session, f"""
        SELECT l.id, l.code, l.name, l.kind, l.city,
               ST_Y(l.geog::geometry) AS lat, ST_X(l.geog::geometry) AS lon, l.parking_capacity,
               count(v.id)::int AS on_hand,
               count(v.id) FILTER (WHERE v.status = 'available')::int AS available,
               count(v.id) FILTER (WHERE v.status = 'maintenance')::int AS maintenance
        FROM locations l
        LEFT JOIN (vehicles v JOIN vehicle_types vt ON vt.id = v.vehicle_type_id)
               ON v.current_location_id = l.id AND v.status IN ('available', 'maintenance')
              AND {where}
        WHERE {location_clause}
        GROUP BY l.id ORDER BY l.code
    """, params)


def branches_overview(session: Session) -> pd.DataFrame:
    """Every branch with address, hours, phone and cars on hand per vehicle type (one column per type)."""
    frame = _frame(session, """
        SELECT l.id, l.code, l.name, l.kind, l.city, l.address, l.contact_phone, l.timezone, l.operating_hours,
               l.parking_capacity, ST_Y(l.geog::geometry) AS lat, ST_X(l.geog::geometry) AS lon,
               vt.code AS vehicle_type, count(v.id)::int AS cars
        FROM locations l
        CROSS JOIN vehicle_types vt
        LEFT JOIN vehicles v ON v.current_location_id = l.id AND v.vehicle_type_id = vt.id
                            AND v.status IN ('available', 'maintenance')
        GROUP BY l.id, vt.id ORDER BY l.code, vt.rank
    """)
    keys = ["id", "code", "name", "kind", "city", "address", "contact_phone", "timezone", "parking_capacity",
            "lat", "lon"]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "operating_hours", "on_hand"])
    hours = frame.drop_duplicates("id").set_index("id")["operating_hours"]
    wide = frame.pivot_table(index=keys, columns="vehicle_type", values="cars", aggfunc="sum", sort=False)
    wide = wide.reset_index()
    wide.columns.name = None
    type_columns = [c for c in wide.columns if c not in keys]
    wide["on_hand"] = wide[type_columns].sum(axis=1)
    wide["operating_hours"] = wide["id"].map(hours)
    return wide


def branch(session: Session, location_id: int) -> dict | None:
    row = session.execute(text("""
        SELECT l.id, l.code, l.name, l.kind, l.city, l.address, l.country, l.contact_phone, l.timezone,
               l.operating_hours, l.parking_capacity, l.currency,
               ST_Y(l.geog::geometry) AS lat, ST_X(l.geog::geometry) AS lon
        FROM locations l WHERE l.id = :id
    """), {"id": location_id}).mappings().first()
    return dict(row) if row else None


def branch_cars_by_type_and_status(session: Session, location_id: int) -> pd.DataFrame:
    return _frame(session, """
        SELECT vt.code AS vehicle_type, vt.rank, v.status::text AS status, count(*)::int AS cars
        FROM vehicles v JOIN vehicle_types vt ON vt.id = v.vehicle_type_id
        WHERE v.current_location_id = :id AND v.status IN ('available', 'maintenance')
        GROUP BY vt.code, vt.rank, v.status ORDER BY vt.rank, v.status
    """, {"id": location_id})


def branch_movements(session: Session, location_id: int, since: datetime, until: datetime) -> pd.DataFrame:
    """Active bookings picking up at or returning to a branch in a window, per local day."""
    return _frame(session, """
        WITH tz AS (SELECT timezone FROM locations WHERE id = :id)
        SELECT d.day, coalesce(p.pickups, 0)::int AS pickups, coalesce(r.returns, 0)::int AS returns
        FROM tz, generate_series((:since AT TIME ZONE tz.timezone)::date,
                                 (:until AT TIME ZONE tz.timezone)::date, interval '1 day') AS d(day)
        LEFT JOIN (SELECT (b.pickup_at AT TIME ZONE t.timezone)::date AS day, count(*) AS pickups
                   FROM bookings b, tz t WHERE b.pickup_location_id = :id
                   AND b.status IN ('pending', 'confirmed') AND b.pickup_at >= :since AND b.pickup_at < :until
                   GROUP BY 1) p ON p.day = d.day
        LEFT JOIN (SELECT (b.dropoff_at AT TIME ZONE t.timezone)::date AS day, count(*) AS returns
                   FROM bookings b, tz t WHERE b.dropoff_location_id = :id
                   AND b.status IN ('confirmed', 'picked_up') AND b.dropoff_at >= :since AND b.dropoff_at < :until
                   GROUP BY 1) r ON r.day = d.day
        ORDER BY d.day
    """, {"id": location_id, "since": since, "until": until})


def nearby_branches(session: Session, location_id: int, radius_km: float, limit: int = 10) -> pd.DataFrame:
    return _frame(session, """
        SELECT o.id, o.code, o.name, o.kind, round((ST_Distance(l.geog, o.geog) / 1000)::numeric, 1) AS distance_km
        FROM locations l JOIN locations o ON o.id <> l.id AND ST_DWithin(l.geog, o.geog, :radius_m)
        WHERE l.id = :id
        ORDER BY ST_Distance(l.geog, o.geog) LIMIT :limit
    """, {"id": location_id, "radius_m": radius_km * 1000, "limit": limit})


def vehicle_type_codes(session: Session) -> list[str]:
    return list(session.execute(text("SELECT code FROM vehicle_types ORDER BY rank")).scalars())


def location_choices(session: Session) -> pd.DataFrame:
    return _frame(session, "SELECT id, code, name FROM locations ORDER BY code")


def known_ids(session: Session, table: str, ids: Sequence[int]) -> set[int]:
    assert table in {"locations", "vehicles", "users", "bookings"}
    return set(session.execute(text(f"SELECT id FROM {table} WHERE id = ANY(:ids)"), {"ids": list(ids)}).scalars())
