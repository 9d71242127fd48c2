"""Seeded rebalancing instances of the sizes in issue 9 (M and L), as the JSON documents the CLI reads.

Branches are spread over a rectangle around 51°N 10°E, a few dense metropolitan clusters among a uniform
scatter. Every branch has a size (how much it rents) and a drift: a smooth west-to-east trend plus local noise
says whether one-way rentals tend to end there (returns above pick-ups, a surplus) or start there (a shortfall).
The cars are the ones on hand on day 0 plus the returns booked over the horizon; demand is a little below that
in total, so the fleet could cover most of it if it stood in the right places — which is what moves are for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

CLASSES = ("economy", "compact", "midsize", "suv", "van")
CLASS_SHARE = np.array([0.32, 0.26, 0.2, 0.14, 0.08])
LOST_SALE_COST = {"economy": 60, "compact": 75, "midsize": 90, "suv": 110, "van": 130}
KM_PER_DEGREE_LAT = 111.32


@dataclass(frozen=True)
class Size:
    name: str
    branches: int
    width_km: float
    height_km: float
    days: int
    cars: int
    seed: int


M = Size("M", branches=500, width_km=650, height_km=450, days=14, cars=50_000, seed=9)
L = Size("L", branches=2000, width_km=1300, height_km=900, days=28, cars=500_000, seed=90)


def make_instance(size: Size, *, shared_limits: bool = False) -> dict[str, Any]:
    """The instance of `size`; with `shared_limits`, parking capacities and a nightly cap on moves out too."""
    rng = np.random.default_rng(size.seed)
    n_b, n_c, n_d = size.branches, len(CLASSES), size.days
    x_km, y_km = _positions(rng, size)
    lat0, lon0 = 51.0, 10.0
    lat = lat0 + (y_km - size.height_km / 2) / KM_PER_DEGREE_LAT
    lon = lon0 + (x_km - size.width_km / 2) / (KM_PER_DEGREE_LAT * math.cos(math.radians(lat0)))
    weight = rng.lognormal(0.0, 0.6, n_b)
    weight /= weight.sum()
    # > 0: one-way rentals end here more than they start (surplus); < 0: they start here (shortfall)
    drift = 0.35 * (x_km / size.width_km - 0.5) + rng.normal(0.0, 0.18, n_b)
    drift = np.clip(drift, -0.6, 0.6)
    on_hand = 0.4 * size.cars
    returned = size.cars - on_hand
    wanted = 0.9 * size.cars
    share = CLASS_SHARE * rng.uniform(0.85, 1.15, (n_b, n_c))  # branches differ in their mix a little
    share /= share.sum(axis=1, keepdims=True)
    day_shape = 1.0 + 0.25 * np.sin(np.arange(n_d) * 2 * math.pi / 7)  # a weekly rhythm
    day_shape /= day_shape.sum()
    initial = rng.poisson(on_hand * weight[:, None] * share)
    ret_rate = returned * (weight * (1 + drift))[:, None, None] * share[:, :, None] * day_shape
    dem_rate = wanted * (weight * (1 - drift))[:, None, None] * share[:, :, None] * day_shape[::-1]
    returns = rng.poisson(ret_rate / (1 + drift).mean())
    demand = rng.poisson(dem_rate / (1 - drift).mean())
    ids = [f"B{k:04d}" for k in range(n_b)]
    capacity: list[int | None] = [None] * n_b
    max_moves_out = None
    if shared_limits:
        # room for what the branch holds on day 0 and a bit more: surplus branches fill up and must send cars away
        capacity = [int(c) for c in np.ceil(initial.sum(axis=1) * rng.uniform(1.3, 1.8, n_b)) + 6]
        max_moves_out = 30
    return {
        "horizon_days": n_d,
        "classes": list(CLASSES),
        "branches": [{"id": ids[b], "lat": round(float(lat[b]), 5), "lon": round(float(lon[b]), 5),
                      "capacity": capacity[b]} for b in range(n_b)],
        "initial": [{"branch": ids[b], "class": CLASSES[c], "count": int(initial[b, c])}
                    for b, c in zip(*np.nonzero(initial), strict=True)],
        "returns": _entries(returns, ids),
        "demand": _entries(demand, ids),
        "lost_sale_cost": dict(LOST_SALE_COST),
        "move_cost_per_km": 0.9, "move_fixed_cost": 25, "max_move_km": 150,
        "max_moves_out": max_moves_out,
    }


def _positions(rng: np.random.Generator, size: Size) -> tuple[np.ndarray, np.ndarray]:
    n_cluster = size.branches // 5
    centres = rng.uniform([0, 0], [size.width_km, size.height_km], (max(1, size.branches // 100), 2))
    pick = rng.integers(0, len(centres), n_cluster)
    clustered = centres[pick] + rng.normal(0, 15, (n_cluster, 2))
    scattered = rng.uniform([0, 0], [size.width_km, size.height_km], (size.branches - n_cluster, 2))
    xy = np.clip(np.vstack([clustered, scattered]), 0, [size.width_km, size.height_km])
    return xy[:, 0], xy[:, 1]


def _entries(counts: np.ndarray, ids: list[str]) -> list[dict[str, Any]]:
    return [{"branch": ids[b], "class": CLASSES[c], "day": int(d), "count": int(counts[b, c, d])}
            for b, c, d in zip(*np.nonzero(counts), strict=True)]
