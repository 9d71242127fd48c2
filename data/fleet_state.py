"""Where every car is now and what it is doing, as its booking history says.

A car on a rental now is rented (and on the road); otherwise it stands at the branch where its last rental ended
(or its home branch). Of the cars standing idle now, some are in the workshop (a block in progress that ends
before their next pick-up) and a few with nothing booked are being driven to a neighbouring branch (a transfer
under way; they count at the branch they left until they arrive).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.company import haversine_km, offset_point
from data.rentals import COMPLETED, NEVER, PENDING, PICKED_UP
from data.workshop import plan_workshop

IN_WORKSHOP_SHARE = 0.03
IN_TRANSIT_SHARE = 0.01
_TRANSFER_KMH = 45
_ROAD_FACTOR = 1.3  # road distance over straight-line distance


@dataclass(frozen=True)
class FleetState:
    vehicles: pd.DataFrame  # per vehicle: status, status_reason, location (branch index or -1), lat, lon,
    #                         last_seen, odometer, fuel, last_service_at, last_service_km (-1: none)
    blocks: pd.DataFrame  # vehicle (index), start, end (UTC minutes), reason, status, created
    transfers: pd.DataFrame  # vehicle, from_branch, to_branch, depart, arrive, distance_km, created


def settle_fleet(
    rng: np.random.Generator,
    vehicles: pd.DataFrame,
    bookings: pd.DataFrame,
    branches: pd.DataFrame,
    *,
    interval_km: np.ndarray,
    now: int,
    history_start: int,
) -> FleetState:
    """The state of each vehicle at `now`, consistent with its bookings; its blocks and transfers."""
    count = len(vehicles)
    held = bookings[bookings["status"] <= PENDING].sort_values(["vehicle", "pickup"], kind="stable")
    completed = held[held["status"] == COMPLETED].groupby("vehicle").last()
    current = held[held["status"] == PICKED_UP].set_index("vehicle")
    upcoming = held[held["pickup"] > now].groupby("vehicle")["pickup"].min()

    location = vehicles["home"].to_numpy().copy()
    location[completed.index] = completed["dropoff_branch"].to_numpy()
    last_return = vehicles["joins_at"].to_numpy().copy()
    last_return[completed.index] = completed["returned"].to_numpy()
    free_since = vehicles["joins_at"].to_numpy().copy()
    free_since[completed.index] = completed["free_again"].to_numpy()
    next_pickup = np.full(count, NEVER)
    next_pickup[upcoming.index] = upcoming.to_numpy()
    odometer = vehicles["initial_odometer"].to_numpy().copy()
    odometer[completed.index] = completed["odometer_in"].to_numpy(dtype=np.int64)
    odometer[current.index] = current["odometer_out"].to_numpy(dtype=np.int64)

    status = np.full(count, "available", dtype=object)
    rented = np.isin(np.arange(count), current.index)
    status[rented] = "rented"
    status[~rented & (vehicles["retires_at"].to_numpy() <= now)] = "retired"
    idle = (status == "available") & (vehicles["joins_at"].to_numpy() <= now - 1440)
    in_workshop = _pick(rng, np.flatnonzero(idle & (free_since <= now - 120) & (next_pickup >= now + 26 * 60)),
                        round(IN_WORKSHOP_SHARE * count))
    status[in_workshop] = "maintenance"
    movable = (status == "available") & idle & (free_since <= now - 120) & (next_pickup == NEVER)
    moving = _pick(rng, np.flatnonzero(movable), round(IN_TRANSIT_SHARE * count) if len(branches) > 1 else 0)
    status[moving] = "in_transit"

    workshop = plan_workshop(rng, vehicles, held, status=status, in_workshop=in_workshop, free_since=free_since,
                             next_pickup=next_pickup, odometer=odometer, interval_km=interval_km, now=now,
                             history_start=history_start)
    transfers = _transfers(rng, branches, moving, location[moving], free_since[moving], now)

    reason = np.full(count, None, dtype=object)
    current_blocks = workshop.blocks[workshop.blocks["status"] == "in_progress"]
    reason[current_blocks["vehicle"].to_numpy()] = current_blocks["reason"].to_numpy()
    names = branches["name"].to_numpy()
    reason[moving] = ["Transfer to " + name for name in names[transfers["to_branch"].to_numpy()]]
    reason[status == "retired"] = "Sold at the end of its fleet life"

    lat, lon = _positions(rng, branches, location, current, rented, moving, transfers)
    last_seen = np.where(rented, now - rng.integers(0, 16, size=count),
                         np.maximum(now - rng.integers(1, 91, size=count), last_return))
    retired = status == "retired"
    last_seen = np.where(retired, np.minimum(np.maximum(last_return, vehicles["retires_at"].to_numpy()), now),
                         last_seen)
    state = pd.DataFrame({
        "status": status,
        "status_reason": reason,
        "location": np.where(rented, -1, location),
        "lat": lat,
        "lon": lon,
        "last_seen": last_seen,
        "odometer": odometer,
        "fuel": _fuel_levels(rng, status, current, rented, completed, last_return, now),
        "last_service_at": workshop.last_service_at,
        "last_service_km": workshop.last_service_km,
    })
    return FleetState(vehicles=state, blocks=workshop.blocks, transfers=transfers)


def _pick(rng: np.random.Generator, candidates: np.ndarray, wanted: int) -> np.ndarray:
    if wanted <= 0 or not len(candidates):
        return np.array([], dtype=np.int64)
    return np.sort(rng.choice(candidates, size=min(wanted, len(candidates)), replace=False))


def _transfers(rng, branches: pd.DataFrame, moving: np.ndarray, origin: np.ndarray, free_since: np.ndarray,
               now: int) -> pd.DataFrame:
    """Each moving car left its branch for the nearest other one a little while ago and is still on the way."""
    lat_b, lon_b = branches["lat"].to_numpy(), branches["lon"].to_numpy()
    distance = haversine_km(lat_b[origin][:, None], lon_b[origin][:, None], lat_b[None, :], lon_b[None, :])
    distance[np.arange(len(origin)), origin] = np.inf
    destination = distance.argmin(axis=1) if len(origin) else np.array([], dtype=np.int64)
    road_km = np.round(distance[np.arange(len(origin)), destination] * _ROAD_FACTOR, 1)
    n = len(moving)
    drive = (road_km / _TRANSFER_KMH * 60).astype(np.int64) + 20  # and 20 minutes to hand over the keys
    depart = np.maximum(now - (drive * rng.uniform(0.1, 0.9, size=n)).astype(np.int64), free_since) // 5 * 5
    arrive = -(-np.maximum(depart + drive, now + 5) // 5) * 5
    return pd.DataFrame({"vehicle": moving, "from_branch": origin, "to_branch": destination, "depart": depart,
                         "arrive": arrive, "distance_km": road_km,
                         "created": depart - rng.integers(60, 2 * 1440, size=n)})


def _positions(rng, branches, location, current, rented, moving, transfers):
    """Parked cars within 150 m of their branch; rented ones out on the road; moving ones between branches."""
    count = len(location)
    lat_b, lon_b = branches["lat"].to_numpy(), branches["lon"].to_numpy()
    lat, lon = offset_point(lat_b[location], lon_b[location], rng.uniform(0, 2 * np.pi, size=count),
                            0.15 * np.sqrt(rng.random(count)))

    centre_lat, centre_lon = float(np.mean(lat_b)), float(np.mean(lon_b))
    on_rental = np.flatnonzero(rented)
    if len(on_rental):
        trip = current.loc[on_rental]
        start_lat, start_lon = lat_b[trip["branch"].to_numpy()], lon_b[trip["branch"].to_numpy()]
        # Round trips head out some way, roughly inland; one-way trips are on their way to the drop-off branch.
        inland = np.arctan2((centre_lon - start_lon) * np.cos(np.radians(start_lat)), centre_lat - start_lat)
        out_lat, out_lon = offset_point(start_lat, start_lon, inland + rng.uniform(-1.2, 1.2, len(trip)),
                                        rng.uniform(5, 60, len(trip)))
        one_way = trip["dropoff_branch"].to_numpy() != trip["branch"].to_numpy()
        end_lat = np.where(one_way, lat_b[trip["dropoff_branch"].to_numpy()], out_lat)
        end_lon = np.where(one_way, lon_b[trip["dropoff_branch"].to_numpy()], out_lon)
        along = rng.uniform(0.15, 0.9, len(trip))
        lat[on_rental] = start_lat + (end_lat - start_lat) * along
        lon[on_rental] = start_lon + (end_lon - start_lon) * along

    if len(moving):
        origin, destination = transfers["from_branch"].to_numpy(), transfers["to_branch"].to_numpy()
        along = rng.uniform(0.2, 0.8, len(moving))
        lat[moving] = lat_b[origin] + (lat_b[destination] - lat_b[origin]) * along
        lon[moving] = lon_b[origin] + (lon_b[destination] - lon_b[origin]) * along
    return np.round(lat, 6), np.round(lon, 6)


def _fuel_levels(rng, status, current, rented, completed, last_return, now):
    count = len(status)
    fuel = np.full(count, 100, dtype=np.int64)
    just_back = np.flatnonzero((last_return >= now - 180) & (status == "available"))
    just_back = just_back[np.isin(just_back, completed.index)]
    fuel[just_back] = completed.loc[just_back, "fuel_in"].to_numpy(dtype=np.int64)
    fuel[rented] = current.loc[np.flatnonzero(rented), "fuel_out"].to_numpy(dtype=np.int64)
    for state, low in (("maintenance", 30), ("in_transit", 60), ("retired", 20)):
        chosen = status == state
        fuel[chosen] = rng.integers(low // 5, 21, size=int(chosen.sum())) * 5
    return fuel
