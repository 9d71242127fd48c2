"""Who wants a car, where, when and at what price: the rental requests of the demo company.

Each (branch, vehicle class, day) has an expected number of pick-ups: a base rate sized to the fleet there, times a
weekly and a seasonal pattern, times m ** -elasticity where m is the price multiplier charged that day. The
multiplier follows a sticky random walk over a ladder of price levels, independent of everything else, so the
history carries a clean price signal for the demand curves fitted later. The realised count is Poisson.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from data.company import haversine_km
from data.reference import OPENING_HOURS, TIMEZONE, WEEKDAYS, vehicle_classes

PRICE_LADDER_PCT = np.array([80, 90, 100, 110, 125])
_LADDER_SHARES = np.array([0.10, 0.20, 0.40, 0.20, 0.10])
_LADDER_STICKINESS = 0.8  # chance that a branch keeps yesterday's price level for a class
ELASTICITY = {"economy": 2.0, "compact": 1.8, "midsize": 1.6, "suv": 1.5, "van": 1.2, "premium": 1.4}
WEEKLY = {  # Monday .. Sunday; airports also see business travel early and late in the week
    "airport": (1.15, 0.95, 0.95, 1.10, 1.30, 1.25, 0.90),
    "rail": (1.00, 0.85, 0.85, 1.00, 1.35, 1.30, 0.80),
    "city": (0.95, 0.80, 0.80, 0.95, 1.35, 1.20, 0.00),
}
# Probability of a rental of 1..14 days: mostly 2-4, a bump at a week and at a fortnight.
RENTAL_DAYS = np.array([0.09, 0.17, 0.18, 0.15, 0.10, 0.06, 0.08, 0.03, 0.02, 0.02, 0.02, 0.02, 0.02, 0.04])
PICKUPS_PER_CAR_DAY = 0.75 / float(np.dot(np.arange(1, 15), RENTAL_DAYS / RENTAL_DAYS.sum()))
ONE_WAY_SHARE = 0.13  # of requests; ~10% of rentals stay one-way (rentals.assign_vehicles makes some round trips)
ONE_WAY_MAX_KM = 150.0
_WALK_IN_SHARE = {"airport": 0.20, "rail": 0.25, "city": 0.35}
_LEAD_DAYS_SCALE = {"airport": 16.0, "rail": 9.0, "city": 6.0}  # how far ahead customers book online
FUTURE_DAYS = 90
_PAD_DAYS = 30  # calendar days beyond the horizon that drop-offs may fall on


@dataclass(frozen=True)
class Calendar:
    """Local days of the simulation: day 0 is the first day of history, day `history_days` is today."""

    first_day: date
    days: int  # days on which pick-ups happen
    weekday: np.ndarray  # per calendar day, 0 = Monday (includes the padding days)
    local_epoch_minute: np.ndarray  # the UTC minute of local midnight + the day's offset: add a local time to it

    def dates(self) -> list[date]:
        return [self.first_day + timedelta(days=index) for index in range(len(self.weekday))]


def make_calendar(today: date, history_days: int) -> Calendar:
    zone = ZoneInfo(TIMEZONE)
    first = today - timedelta(days=history_days)
    total = history_days + FUTURE_DAYS + 1 + _PAD_DAYS
    days = [first + timedelta(days=index) for index in range(total)]
    # A local clock time t on day d is at UTC minute base[d] + t; the UTC offset is taken at noon, which is only
    # wrong for the hour between midnight and the clock change on the two days a year that change.
    base = np.array([
        (day - date(1970, 1, 1)).days * 1440
        - int(datetime.combine(day, time(12), zone).utcoffset().total_seconds() // 60)
        for day in days
    ], dtype=np.int64)
    return Calendar(
        first_day=first, days=history_days + FUTURE_DAYS + 1,
        weekday=np.array([day.weekday() for day in days]), local_epoch_minute=base,
    )


def opening_windows(hours: str) -> np.ndarray:
    """(7, 2) local minutes [open, close) per weekday; a closed day has open == close."""
    windows = np.zeros((7, 2), dtype=np.int64)
    for index, day in enumerate(WEEKDAYS):
        spans = OPENING_HOURS[hours][day]
        if spans:
            (start, end), = spans
            windows[index] = [_minutes(start), _minutes(end)]
    return windows


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def seasonal_factor(dates: list[date]) -> np.ndarray:
    """Busy in summer, quiet in January and February, a sharp peak before Christmas."""
    doy = np.array([day.timetuple().tm_yday for day in dates], dtype=float)
    summer = 0.22 * np.cos(2 * np.pi * (doy - 205) / 365.25)
    to_christmas = np.minimum(np.abs(doy - 356), 365.25 - np.abs(doy - 356))
    christmas = 0.30 * np.exp(-((to_christmas / 5.0) ** 2))
    return 1.0 + summer + christmas


def price_levels(rng: np.random.Generator, cells: int, days: int) -> np.ndarray:
    """(cells, days) index into PRICE_LADDER_PCT: each cell keeps its level with some persistence."""
    levels = np.empty((cells, days), dtype=np.int64)
    levels[:, 0] = rng.choice(len(_LADDER_SHARES), size=cells, p=_LADDER_SHARES)
    for day in range(1, days):
        fresh = rng.choice(len(_LADDER_SHARES), size=cells, p=_LADDER_SHARES)
        keep = rng.random(cells) < _LADDER_STICKINESS
        levels[:, day] = np.where(keep, levels[:, day - 1], fresh)
    return levels


@dataclass(frozen=True)
class Requests:
    """One entry per rental request, sorted by pick-up time. Times are UTC minutes since the epoch.

    A one-way request also carries the round trip it becomes if the company will not take the car to the
    drop-off branch (round_dropoff: the same day and hour, back at the pick-up branch).
    """

    branch: np.ndarray
    vtype: np.ndarray
    day: np.ndarray
    price_level: np.ndarray
    pickup: np.ndarray
    dropoff: np.ndarray
    dropoff_branch: np.ndarray
    round_dropoff: np.ndarray
    return_delay: np.ndarray  # minutes after the drop-off time that the car actually comes back (< 0: early)
    created: np.ndarray
    desk: np.ndarray  # walk-in at the desk, else booked through the API
    one_way_km: np.ndarray

    def __len__(self) -> int:
        return len(self.pickup)

    def take(self, index: np.ndarray) -> Requests:
        return Requests(**{name: getattr(self, name)[index] for name in self.__dataclass_fields__})

    def returned(self, dropoff: np.ndarray) -> np.ndarray:
        """When the car actually comes back for the given drop-off times (never within an hour of pick-up)."""
        return np.maximum((dropoff + self.return_delay) // 5 * 5, self.pickup + 60)


def make_requests(
    rng: np.random.Generator,
    branches: pd.DataFrame,
    expected_cars: np.ndarray,
    calendar: Calendar,
    now_minute: int,
) -> Requests:
    """Every request up to FUTURE_DAYS ahead that has been made by now (the future is only partly booked)."""
    classes = vehicle_classes()
    n_branches, n_types, n_days = len(branches), len(classes), calendar.days
    kinds = branches["kind"].to_numpy()
    weekly = np.array([WEEKLY[kind] for kind in kinds])[:, calendar.weekday[:n_days]]  # (B, D)
    seasonal = seasonal_factor(calendar.dates()[:n_days])  # (D,)
    levels = price_levels(rng, n_branches * n_types, n_days).reshape(n_branches, n_types, n_days)
    elasticity = np.array([ELASTICITY[vclass.code] for vclass in classes])
    price_effect = (PRICE_LADDER_PCT[levels] / 100.0) ** -elasticity[None, :, None]
    shape = weekly[:, None, :] * seasonal[None, None, :] * price_effect
    noise = rng.gamma(12.0, 1.0 / 12.0, size=shape.shape)
    mean_shape = shape.mean(axis=2, keepdims=True)
    rate = expected_cars[:, :, None] * PICKUPS_PER_CAR_DAY * shape / np.where(mean_shape > 0, mean_shape, 1.0) * noise
    counts = rng.poisson(rate)

    branch, vtype, day = (np.repeat(index.ravel(), counts.ravel()) for index in np.indices(counts.shape))
    price_level = levels[branch, vtype, day]
    count = len(branch)

    windows = np.stack([opening_windows(hours) for hours in branches["hours"]])  # (B, 7, 2)
    pickup_tod = _time_of_day(rng, windows[branch, calendar.weekday[day]])
    pickup = calendar.local_epoch_minute[day] + pickup_tod

    length = 1 + rng.choice(len(RENTAL_DAYS), size=count, p=RENTAL_DAYS / RENTAL_DAYS.sum())
    dropoff_branch, one_way_km = _one_way_destinations(rng, branches, branch)
    wanted_tod = pickup_tod + (rng.normal(0, 90, size=count) // 15 * 15).astype(np.int64)
    dropoff = _dropoff_times(calendar, windows, dropoff_branch, day + length, wanted_tod)
    round_dropoff = _dropoff_times(calendar, windows, branch, day + length, wanted_tod)

    walk_in_share = np.array([_WALK_IN_SHARE[kind] for kind in kinds])
    lead_days_scale = np.array([_LEAD_DAYS_SCALE[kind] for kind in kinds])
    desk = rng.random(count) < walk_in_share[branch]
    lead_days = rng.gamma(1.3, 1.0, size=count) * lead_days_scale[branch]
    lead = np.where(desk, rng.integers(5, 40, size=count), 30 + (lead_days * 1440).astype(np.int64))
    created = pickup - lead

    booked_by_now = created <= now_minute
    order = np.lexsort((vtype, branch, pickup))
    order = order[booked_by_now[order]]
    requests = Requests(
        branch=branch, vtype=vtype, day=day, price_level=price_level, pickup=pickup, dropoff=dropoff,
        dropoff_branch=dropoff_branch, round_dropoff=round_dropoff, return_delay=_return_delays(rng, count),
        created=created, desk=desk, one_way_km=one_way_km,
    )
    return requests.take(order)


def _time_of_day(rng: np.random.Generator, windows: np.ndarray) -> np.ndarray:
    """Local minutes on the quarter-hour inside the opening window, busiest in the morning."""
    start, end = windows[:, 0], windows[:, 1]
    span = np.maximum(end - start - 15, 0)
    tod = start + (rng.beta(2.0, 2.4, size=len(start)) * span).astype(np.int64)
    round_the_clock = span >= 1400
    # Open all day: a morning and an early-evening rush, quiet at night.
    rush = np.where(rng.random(len(start)) < 0.55, rng.normal(9 * 60, 120, len(start)),
                    rng.normal(17.5 * 60, 170, len(start)))
    tod = np.where(round_the_clock, np.clip(rush, 0, 1425).astype(np.int64), tod)
    return tod // 15 * 15


def _one_way_destinations(
    rng: np.random.Generator, branches: pd.DataFrame, origin: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """About one rental in ten ends at another branch within 150 km, nearer and bigger ones more often."""
    lat, lon = branches["lat"].to_numpy(), branches["lon"].to_numpy()
    distance = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    reachable = (distance <= ONE_WAY_MAX_KM) & (distance > 0.5)
    weight = np.where(reachable, branches["demand"].to_numpy()[None, :] / (1.0 + distance / 40.0), 0.0)
    destination = origin.copy()
    one_way = np.flatnonzero(rng.random(len(origin)) < ONE_WAY_SHARE)
    one_way = one_way[np.argsort(origin[one_way], kind="stable")]
    sources, starts = np.unique(origin[one_way], return_index=True)
    for source, chosen in zip(sources, np.split(one_way, starts[1:]) if len(one_way) else [], strict=True):
        if weight[source].sum() == 0:
            continue
        p = weight[source] / weight[source].sum()
        destination[chosen] = rng.choice(len(p), size=len(chosen), p=p)
    return destination, np.where(destination != origin, distance[origin, destination], 0.0)


def _dropoff_times(
    calendar: Calendar, windows: np.ndarray, branch: np.ndarray, day: np.ndarray, wanted_tod: np.ndarray
) -> np.ndarray:
    """Back around the wanted time of day, inside the drop-off branch's hours (next open day if closed)."""
    wanted = wanted_tod.copy()
    day = day.copy()
    for _ in range(7):
        window = windows[branch, calendar.weekday[day]]
        closed = window[:, 1] <= window[:, 0]
        if not closed.any():
            break
        day = np.where(closed, day + 1, day)
        wanted = np.where(closed, -1, wanted)  # first thing in the morning of the next open day
    window = windows[branch, calendar.weekday[day]]
    tod = np.where(wanted < 0, window[:, 0] + 30, np.clip(wanted, window[:, 0], window[:, 1] - 15))
    return calendar.local_epoch_minute[day] + tod


def _return_delays(rng: np.random.Generator, count: int) -> np.ndarray:
    """Most cars come back a little early, about one in eight late, a few a day or so early."""
    draw = rng.random(count)
    on_time = -rng.integers(0, 46, size=count)
    late = 15 + np.minimum(rng.exponential(75, size=count), 345).astype(np.int64)
    early = -rng.integers(120, 1200, size=count)
    return np.where(draw < 0.12, late, np.where(draw < 0.18, early, on_time))
