"""From rental requests to bookings: what became of each request, which car served it, what it cost.

Requests are served in pick-up order. Each (branch, class) keeps a heap of its cars keyed by the minute each is
free again (after its last drop-off, late return and turnaround). A request takes the car that has been free the
longest if one is free at its pick-up time, otherwise it is turned away; the car then waits at the drop-off
branch, so one-way rentals move the fleet. A car's bookings therefore never overlap, completed ones included.
Cancelled bookings and no-shows name a car that was free but never take it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.demand import PRICE_LADDER_PCT, Requests

COMPLETED, PICKED_UP, CONFIRMED, PENDING, CANCELLED, NO_SHOW = range(6)
STATUS_NAMES = np.array(["completed", "picked_up", "confirmed", "pending", "cancelled", "no_show"])
NEVER = np.iinfo(np.int64).max // 2

_CANCEL_SHARE_OF_ONLINE = 0.08 / 0.75  # ~8% of all bookings; walk-ins do not cancel
_NO_SHOW_SHARE_OF_ONLINE = 0.02 / 0.75
_FUTURE_CANCEL_SHARE = 0.05
_PENDING_SHARE = 0.015  # of online bookings in the next fortnight: holds taken minutes ago, not yet paid
_HOLD_MINUTES = 15
NO_SHOW_GRACE_MINUTES = 180
FREE_CANCELLATION_MINUTES = 48 * 60
CANCEL_REASONS = np.array([
    "Customer changed travel plans", "Flight cancelled", "Booked a different vehicle", "Found a better price",
    "Trip postponed", "Duplicate booking", "Customer unwell",
])


@dataclass(frozen=True)
class Outcomes:
    status: np.ndarray
    created: np.ndarray
    cancelled_at: np.ndarray  # -1 when not cancelled
    hold_expires_at: np.ndarray  # -1 unless pending

    @property
    def holds_car(self) -> np.ndarray:
        return self.status <= PENDING


def decide_outcomes(rng: np.random.Generator, requests: Requests, now: int) -> Outcomes:
    """Past requests were completed, cancelled or no-shows; some are on the road now; the rest are upcoming."""
    count = len(requests)
    draw = rng.random(count)
    online = ~requests.desk
    future = requests.pickup > now
    settled_past = ~future & online & (requests.pickup <= now - NO_SHOW_GRACE_MINUTES)

    status = np.full(count, COMPLETED)  # or still PICKED_UP: see settle_returns, once the drop-off is known
    status = np.where(settled_past & (draw < _CANCEL_SHARE_OF_ONLINE), CANCELLED, status)
    no_show_band = (draw >= _CANCEL_SHARE_OF_ONLINE) & (draw < _CANCEL_SHARE_OF_ONLINE + _NO_SHOW_SHARE_OF_ONLINE)
    status = np.where(settled_past & no_show_band, NO_SHOW, status)
    status = np.where(future, CONFIRMED, status)
    status = np.where(future & online & (draw < _FUTURE_CANCEL_SHARE), CANCELLED, status)
    # A few customers are in the middle of booking right now: at least two, ~1.5% of the next fortnight's.
    could_be_pending = np.flatnonzero((status == CONFIRMED) & online & (requests.pickup - now < 14 * 1440))
    wanted = min(len(could_be_pending), max(2, round(_PENDING_SHARE * len(could_be_pending))))
    status[rng.choice(could_be_pending, size=wanted, replace=False)] = PENDING

    created = requests.created.copy()
    pending = status == PENDING
    created[pending] = now - rng.integers(1, 11, size=int(pending.sum()))
    hold_expires_at = np.where(pending, created + _HOLD_MINUTES, -1)

    cancelled = status == CANCELLED
    decided_by = np.minimum(requests.pickup, now)
    fraction = rng.uniform(0.05, 0.95, size=count)
    cancelled_at = np.where(cancelled, created + 1 + ((decided_by - created - 1) * fraction).astype(np.int64), -1)
    return Outcomes(status=status, created=created, cancelled_at=cancelled_at, hold_expires_at=hold_expires_at)


def cancel_reasons(rng: np.random.Generator, status: np.ndarray) -> np.ndarray:
    """Why each cancelled booking was cancelled (None for the others)."""
    reasons = CANCEL_REASONS[rng.integers(0, len(CANCEL_REASONS), size=len(status))]
    return np.where(status == CANCELLED, reasons, None)


def settle_returns(status: np.ndarray, returned: np.ndarray, now: int) -> np.ndarray:
    """A rental that has started is completed once the car is back, and still picked up until then."""
    return np.where((status == COMPLETED) & (returned > now), PICKED_UP, status)


def assign_vehicles(
    requests: Requests,
    outcomes: Outcomes,
    *,
    vehicle_home: np.ndarray,
    vehicle_type: np.ndarray,
    joins_at: np.ndarray,
    retires_at: np.ndarray,
    n_types: int,
    n_branches: int,
    turnaround: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The vehicle serving each request (-1: none of the class was free at the branch), and which one-way
    requests were accepted as one-way.

    Like any rental company, this one only lets a car go one way when the drop-off branch is not already over
    its share of the class and the pick-up branch can spare it; otherwise the rental is a round trip. This keeps
    the fleet's drift believable without moving cars behind the bookings' back.
    """
    cell_count = n_branches * n_types
    heaps: list[list[tuple[int, int]]] = [[] for _ in range(cell_count)]
    for vehicle, (home, vtype, joined) in enumerate(zip(vehicle_home.tolist(), vehicle_type.tolist(),
                                                        joins_at.tolist(), strict=True)):
        heaps[home * n_types + vtype].append((joined, vehicle))
    for heap in heaps:
        heapq.heapify(heap)
    share = [len(heap) for heap in heaps]
    ceiling = [int(n * 1.25) + 1 for n in share]
    floor = [int(n * 0.8) for n in share]

    free_one_way = (np.maximum(requests.dropoff, requests.returned(requests.dropoff)) + turnaround).tolist()
    free_round = (np.maximum(requests.round_dropoff, requests.returned(requests.round_dropoff))
                  + turnaround).tolist()
    cells = (requests.branch * n_types + requests.vtype).tolist()
    one_way_cells = (requests.dropoff_branch * n_types + requests.vtype).tolist()
    pickups = requests.pickup.tolist()
    takes_car = outcomes.holds_car.tolist()
    retires = retires_at.tolist()
    served = [-1] * len(pickups)
    one_way = (requests.dropoff_branch != requests.branch).tolist()
    heappop, heappush = heapq.heappop, heapq.heappush
    for index, pickup in enumerate(pickups):
        cell = cells[index]
        heap = heaps[cell]
        while heap and retires[heap[0][1]] <= pickup:
            heappop(heap)  # the car has left the fleet
        if not heap or heap[0][0] > pickup:
            continue
        if not takes_car[index]:
            served[index] = heap[0][1]
            continue
        vehicle = heappop(heap)[1]
        served[index] = vehicle
        if one_way[index]:
            destination = one_way_cells[index]
            if len(heaps[destination]) < ceiling[destination] and len(heap) >= floor[cell]:
                heappush(heaps[destination], (free_one_way[index], vehicle))
                continue
            one_way[index] = False
        heappush(heap, (free_round[index], vehicle))
    return np.array(served, dtype=np.int64), np.array(one_way)


def price_bookings(frame: pd.DataFrame, rate_pence: np.ndarray) -> pd.DataFrame:
    """days x daily rate x the day's multiplier, plus a one-way fee: integer pence, rounded half up."""
    days = np.maximum(1, -(-(frame["dropoff"] - frame["pickup"] - 59) // 1440))
    rate = rate_pence[frame["vehicle"]]
    multiplier = PRICE_LADDER_PCT[frame["price_level"]]
    base = (days * rate * multiplier + 50) // 100
    km = frame["one_way_km"].to_numpy()
    fee_pounds = np.where(km > 0, 5 * np.round((25 + 0.5 * km) / 5), 0).astype(np.int64)
    return frame.assign(days=days, rate_pence=rate, multiplier_pct=multiplier, base_pence=base,
                        one_way_fee_pence=fee_pounds * 100, total_pence=base + fee_pounds * 100)


def record_trips(rng: np.random.Generator, frame: pd.DataFrame, initial_odometer: np.ndarray) -> pd.DataFrame:
    """Odometer and fuel out (and in, once returned) of every booking that was driven, in order per car."""
    driven = frame["status"].isin([COMPLETED, PICKED_UP]).to_numpy()
    count = len(frame)
    km = (frame["days"].to_numpy() * rng.uniform(35, 150, size=count) + frame["one_way_km"].to_numpy() * 1.25)
    km = np.where(driven, np.round(km), 0).astype(np.int64)
    order = np.lexsort((frame["pickup"].to_numpy(), frame["vehicle"].to_numpy()))
    vehicles_sorted = frame["vehicle"].to_numpy()[order]
    km_sorted = km[order]
    running = np.cumsum(km_sorted)
    group_start = np.r_[0, np.flatnonzero(np.diff(vehicles_sorted)) + 1]
    group_of_row = np.repeat(group_start, np.diff(np.r_[group_start, len(order)]))
    before = running - km_sorted - (running[group_of_row] - km_sorted[group_of_row])
    odometer_out = np.empty(count, dtype=np.int64)
    odometer_out[order] = initial_odometer[vehicles_sorted] + before

    fuel_out = np.where(rng.random(count) < 0.85, 100, rng.integers(15, 20, size=count) * 5)
    used = np.minimum(fuel_out - 5, (km * rng.uniform(0.06, 0.12, size=count)).astype(np.int64))
    fuel_in = np.where(rng.random(count) < 0.4, 100, (fuel_out - used) // 5 * 5)
    completed = frame["status"].to_numpy() == COMPLETED
    return frame.assign(
        km=km,
        odometer_out=_where(odometer_out, driven, frame.index),
        fuel_out=_where(fuel_out, driven, frame.index),
        odometer_in=_where(odometer_out + km, completed, frame.index),
        fuel_in=_where(fuel_in, completed, frame.index),
    )


def _where(values: np.ndarray, mask: np.ndarray, index: pd.Index) -> pd.Series:
    """Nullable integers: the value where mask holds, NULL elsewhere."""
    return pd.Series(values, index=index, dtype="Int64").where(mask)


def choose_customers(
    rng: np.random.Generator,
    frame: pd.DataFrame,
    customers: pd.DataFrame,
    min_age_by_type: np.ndarray,
    history_start: pd.Timestamp,
    horizon_end: pd.Timestamp,
    now: int,
) -> np.ndarray:
    """A customer for each booking: a few regulars rent often; nobody rents below the class's minimum age.

    Blocked customers and those whose licence has lapsed only appear in bookings from before it happened.
    """
    weights = rng.gamma(1.5, 1.0, size=len(customers))  # the busiest customers rent five or six times the average
    birth = pd.to_datetime(customers["date_of_birth"])
    age_at_start = (history_start - birth).dt.days.to_numpy() / 365.25
    expiry = pd.to_datetime(customers["licence_expiry"])
    in_good_standing = (customers["status"].to_numpy() == "active") & (expiry >= horizon_end).to_numpy()
    vtype = frame["vtype"].to_numpy()
    chosen = np.empty(len(frame), dtype=np.int64)
    for t, min_age in enumerate(min_age_by_type):
        rows = np.flatnonzero(vtype == t)
        pool = np.flatnonzero(in_good_standing & (age_at_start >= min_age))
        p = weights[pool] / weights[pool].sum()
        chosen[rows] = pool[rng.choice(len(pool), size=len(rows), p=p)]

    # The blocked and the lapsed had a few rentals before (a no-show or two is often why they were blocked):
    # a handful of earlier bookings each, drawn from the past ones of a class they were old enough to drive.
    lapsed = np.flatnonzero(~in_good_standing)
    pickup = frame["pickup"].to_numpy()
    past = np.flatnonzero(pickup < now - 30 * 1440)
    if len(lapsed) and len(past):
        expiry_minute = ((expiry - pd.Timestamp("1970-01-01")).dt.total_seconds() // 60).to_numpy()
        cutoff = np.minimum(now, expiry_minute[lapsed]) - 30 * 1440
        tries = past[rng.integers(0, len(past), size=(len(lapsed), 12))]
        fits = (pickup[tries] < cutoff[:, None]) & (min_age_by_type[vtype[tries]] <= age_at_start[lapsed, None])
        wanted = rng.integers(1, 6, size=len(lapsed))
        fits &= np.cumsum(fits, axis=1) <= wanted[:, None]
        rows, tries_taken = np.nonzero(fits)
        chosen[tries[rows, tries_taken]] = lapsed[rows]
    return chosen + 1  # customer ids start at 1
