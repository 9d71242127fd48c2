"""The booking history as the demand model reads it: bookings per branch, type and local day, the price charged,
and the exposure of each day, the share of its demand that came while a car of the type stood free at the branch.

Customers who came when no car was free were turned away and left no booking, so a day's bookings are its demand
times its exposure. Whether a car is free is known before each customer arrives (it depends on earlier pick-ups
and returns only), which makes bookings Poisson with mean demand x exposure (independent censoring). The idle
stretches of every car are rebuilt from the bookings; the time of day customers come is read from the pick-ups
over the time cars were free, so that afternoons that often sell out are not mistaken for quiet ones.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session


def frame(session: Session, sql: str, params: dict | None = None) -> pd.DataFrame:
    """The rows of a query as a DataFrame, built column by column (far faster than from row objects)."""
    result = session.execute(text(sql), params or {})
    columns = list(result.keys())
    rows = result.fetchall()
    return pd.DataFrame(dict(zip(columns, map(list, zip(*rows, strict=True)), strict=True)) if rows
                        else {column: [] for column in columns})


def observations(session: Session, first: date, today: date) -> pd.DataFrame:
    """One row per (branch, type, local day) that had a car of the type or a booking: y (bookings), m (the price
    multiplier, NaN when unknown), exposure (the share of the day's demand that came while a car was free)."""
    since = datetime.combine(first, datetime.min.time(), UTC) - timedelta(days=1)
    until = datetime.combine(today, datetime.min.time(), UTC) + timedelta(days=1)
    params = {"first": first, "today": today, "since": since, "until": until}
    counts = frame(session, """
        SELECT b.pickup_location_id AS location_id, b.vehicle_type_id,
               (b.pickup_at AT TIME ZONE l.timezone)::date AS day, count(*) AS y,
               mode() WITHIN GROUP (ORDER BY COALESCE((b.price_breakdown->>'multiplier')::numeric, 1)) AS m
        FROM bookings b JOIN locations l ON l.id = b.pickup_location_id
        WHERE b.pickup_at >= :since AND b.pickup_at < :until
        GROUP BY 1, 2, 3
    """, params)
    counts = counts[(counts["day"] >= first) & (counts["day"] < today)]
    idle = frame(session, _IDLE_SQL, params)
    zones = frame(session, "SELECT id AS location_id, timezone FROM locations")
    cells = pd.concat([counts[["location_id", "vehicle_type_id"]],
                       idle[["location_id", "vehicle_type_id"]]]).drop_duplicates()
    day_list = [first + timedelta(days=i) for i in range((today - first).days)]
    grid = cells.merge(pd.DataFrame({"day": day_list}), how="cross")
    grid = grid.merge(counts, how="left", on=["location_id", "vehicle_type_id", "day"])
    grid["y"] = grid["y"].fillna(0).astype(np.int64)
    grid["m"] = grid["m"].astype(float)
    exposure = _exposure(idle, zones, day_list, _pickups_by_time_of_day(session, since, until))
    grid = grid.merge(exposure, how="left", on=["location_id", "vehicle_type_id", "day"])
    # No stretch with a free car that day: nobody could have been served. A cell that never shows an idle car at
    # all (its cars are not traceable) is taken as always open.
    traced = grid.set_index(["location_id", "vehicle_type_id"]).index.isin(
        pd.MultiIndex.from_frame(idle[["location_id", "vehicle_type_id"]].drop_duplicates()))
    grid["exposure"] = grid["exposure"].fillna(0.0).where(traced, 1.0).clip(0.0, 1.0)
    return grid


# Every stretch during which a car stood idle, and where: before its next booking it stood where that booking
# picks it up; after its last one, where that one dropped it off; a car without bookings, at its branch.
_IDLE_SQL = """
WITH busy AS (
    SELECT b.vehicle_id, b.pickup_location_id AS picked_at, b.dropoff_location_id AS dropped_at,
           b.pickup_at AS busy_from,
           GREATEST(b.dropoff_at, COALESCE(b.actual_return_at, b.dropoff_at))
               + make_interval(mins => b.turnaround_minutes) AS busy_until
    FROM bookings b
    WHERE b.status IN ('pending', 'confirmed', 'picked_up', 'completed')
      AND b.pickup_at < :until AND b.dropoff_at > :since - interval '60 days'
), ordered AS (
    SELECT busy.*, lag(busy_until) OVER w AS previous_until, lead(busy_from) OVER w AS next_from
    FROM busy WINDOW w AS (PARTITION BY vehicle_id ORDER BY busy_from)
)
SELECT v.vehicle_type_id, o.picked_at AS location_id,
       GREATEST(COALESCE(o.previous_until, v.created_at), :since) AS idle_from, o.busy_from AS idle_until
FROM ordered o JOIN vehicles v ON v.id = o.vehicle_id
WHERE o.busy_from > GREATEST(COALESCE(o.previous_until, v.created_at), :since)
UNION ALL
SELECT v.vehicle_type_id, o.dropped_at, GREATEST(o.busy_until, :since),
       CASE WHEN v.status = 'retired' THEN LEAST(v.updated_at, :until) ELSE CAST(:until AS timestamptz) END
FROM ordered o JOIN vehicles v ON v.id = o.vehicle_id
WHERE o.next_from IS NULL AND o.busy_until < :until
  AND (v.status <> 'retired' OR v.updated_at > o.busy_until)
UNION ALL
SELECT v.vehicle_type_id, v.current_location_id, GREATEST(v.created_at, :since), CAST(:until AS timestamptz)
FROM vehicles v
WHERE v.current_location_id IS NOT NULL AND v.status <> 'retired'
  AND NOT EXISTS (SELECT 1 FROM busy WHERE busy.vehicle_id = v.id)
"""


_BIN_MINUTES = 15
_BINS = 24 * 60 // _BIN_MINUTES
_POOLED_WEIGHT = 50.0  # cell-days of the company's time-of-day shape mixed into each branch's own


def _pickups_by_time_of_day(session: Session, since: datetime, until: datetime) -> pd.DataFrame:
    """Pick-ups per branch (rows) and quarter hour of the local day (columns 0..95)."""
    counts = frame(session, f"""
        SELECT b.pickup_location_id AS location_id,
               floor(extract(epoch FROM (b.pickup_at AT TIME ZONE l.timezone)::time) / {_BIN_MINUTES * 60})::int AS bin,
               count(*) AS n
        FROM bookings b JOIN locations l ON l.id = b.pickup_location_id
        WHERE b.pickup_at >= :since AND b.pickup_at < :until
        GROUP BY 1, 2
    """, {"since": since, "until": until})
    table = counts.pivot_table(index="location_id", columns="bin", values="n", fill_value=0, aggfunc="sum")
    return table.reindex(columns=range(_BINS), fill_value=0).astype(float)


def _exposure(idle: pd.DataFrame, zones: pd.DataFrame, day_list: list[date],
              pickups: pd.DataFrame) -> pd.DataFrame:
    """Per (branch, type, local day) the share of the day's demand, by time of day, that came while a car of the
    type stood idle at the branch (customers per quarter hour: pick-ups over the cell-days open then)."""
    columns = ["location_id", "vehicle_type_id", "day", "exposure"]
    segments = _open_segments(idle, zones, day_list)
    if segments.empty:
        return pd.DataFrame(columns=columns)
    branches = np.sort(segments["location_id"].unique())
    row = np.searchsorted(branches, segments["location_id"].to_numpy())
    # Cell-days open, per branch and minute of the day, then per quarter hour.
    change = np.zeros((len(branches), 1441))
    np.add.at(change, (row, np.floor(segments["begin"].to_numpy()).astype(np.int64)), 1.0)
    np.add.at(change, (row, np.floor(segments["end"].to_numpy()).astype(np.int64)), -1.0)
    open_minutes = np.cumsum(change, axis=1)[:, :1440]
    open_days = open_minutes.reshape(len(branches), _BINS, _BIN_MINUTES).mean(axis=2)
    served = pickups.reindex(index=branches, fill_value=0.0).to_numpy()
    pooled = served.sum(axis=0) / np.maximum(open_days.sum(axis=0), 1e-9)
    intensity = (served + _POOLED_WEIGHT * pooled) / (open_days + _POOLED_WEIGHT)
    shape = intensity / np.maximum(intensity.sum(axis=1, keepdims=True), 1e-12)
    share = (_cumulative(shape, row, segments["end"].to_numpy())
             - _cumulative(shape, row, segments["begin"].to_numpy()))
    return (segments[["location_id", "vehicle_type_id", "day"]].assign(exposure=share)
            .groupby(["location_id", "vehicle_type_id", "day"], as_index=False)["exposure"].sum())


def _open_segments(idle: pd.DataFrame, zones: pd.DataFrame, day_list: list[date]) -> pd.DataFrame:
    """Stretches of each local day (begin, end in minutes of the day) during which a car of the type was idle."""
    idle = idle[idle["idle_until"] > idle["idle_from"]]
    keys = ["location_id", "vehicle_type_id"]
    if idle.empty or not day_list:
        return pd.DataFrame(columns=[*keys, "day", "begin", "end"])
    cells = idle[keys].drop_duplicates().merge(zones, on="location_id")
    found = []
    for zone, zone_cells in cells.groupby("timezone"):
        bounds = pd.DatetimeIndex([pd.Timestamp(day) for day in [*day_list, day_list[-1] + timedelta(days=1)]])
        bounds = bounds.tz_localize(zone).tz_convert(UTC).as_unit("us")
        events = idle.merge(zone_cells[keys], on=keys)
        stamps = pd.concat([
            events[keys].assign(t=_utc(events["idle_from"]), delta=1, order=0),
            events[keys].assign(t=_utc(events["idle_until"]), delta=-1, order=1),
            zone_cells[keys].merge(pd.DataFrame({"t": bounds}), how="cross").assign(delta=0, order=2),
        ], ignore_index=True)
        # At one instant returns count before pick-ups: a customer can take a car the moment it is back.
        stamps = stamps.sort_values([*keys, "t", "order"], kind="stable").reset_index(drop=True)
        by_cell = stamps.groupby(keys, sort=False)
        idle_cars = by_cell["delta"].cumsum().to_numpy()
        t = _microseconds(stamps["t"])
        until = by_cell["t"].shift(-1)
        has_next = until.notna().to_numpy()
        until = _microseconds(until.fillna(stamps["t"]))
        position = bounds.searchsorted(stamps["t"], side="right") - 1
        keep = (position >= 0) & (position < len(day_list)) & has_next & (idle_cars > 0) & (until > t)
        day_start = bounds.asi8[position[keep]]
        minute = 60 * 1_000_000
        found.append(pd.DataFrame({
            "location_id": stamps["location_id"].to_numpy()[keep],
            "vehicle_type_id": stamps["vehicle_type_id"].to_numpy()[keep],
            "day": np.array(day_list, dtype=object)[position[keep]],
            "begin": np.clip((t[keep] - day_start) / minute, 0, 1440),
            "end": np.clip((until[keep] - day_start) / minute, 0, 1440),
        }))
    return pd.concat(found, ignore_index=True)


def _cumulative(shape: np.ndarray, rows: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """The share of a branch's daily demand before a local minute of the day (uniform within a quarter hour)."""
    cumulative = np.concatenate([np.zeros((len(shape), 1)), np.cumsum(shape, axis=1)], axis=1)
    position = minutes / _BIN_MINUTES
    whole = np.minimum(position.astype(np.int64), _BINS - 1)
    return cumulative[rows, whole] + (position - whole) * shape[rows, whole]


def _microseconds(values: pd.Series) -> np.ndarray:
    """UTC timestamps as integer microseconds since the epoch."""
    return values.dt.tz_convert(UTC).dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64)


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).dt.as_unit("us")
