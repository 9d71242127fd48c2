"""The benchmark's pricing instances: 10 classes × 14 days × 8 ladder steps per branch, seeded, max_step 2 and
class_order. Capacities of 4–40 cars per class (a car now and then in the workshop), demand at list price between
half and nearly twice what the cars can carry (weekly pattern, ±15% day noise), elasticities 0.7–2.6."""

from __future__ import annotations

from typing import Any

import numpy as np

LADDER = [0.6, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 1.8]
CLASSES = (("economy", 3, 35), ("compact", 3, 42), ("midsize", 4, 50), ("standard", 4, 58), ("fullsize", 3, 66),
           ("premium", 5, 80), ("suv", 4, 92), ("minivan", 7, 105), ("luxury", 3, 125), ("convertible", 2, 150))
WEEK = (1.0, 0.9, 0.9, 1.0, 1.25, 1.4, 1.1)
SEED = 8


def generate(branches: int, *, seed: int = SEED, horizon: int = 14) -> dict[str, Any]:
    """The instance as the JSON document `fleetdesk optimise prices` reads."""
    rng = np.random.default_rng(seed)
    classes = [{"id": name, "rank": i + 1, "rental_days": days} for i, (name, days, _) in enumerate(CLASSES)]
    segments = []
    for b in range(branches):
        branch_factor = rng.uniform(0.85, 1.2)
        for (name, days, rate), _ in zip(CLASSES, classes, strict=True):
            capacity = int(rng.integers(4, 41))
            load = rng.uniform(0.5, 1.9)
            elasticity = round(float(rng.uniform(0.7, 2.6)), 3)
            list_rate = round(rate * branch_factor, 2)
            for d in range(horizon):
                segments.append({
                    "branch": f"B{b + 1:03d}", "class": name, "day": d,
                    "list_rate": round(list_rate * (1.1 if d % 7 in (4, 5) else 1.0), 2),
                    "capacity": max(0, capacity - int(rng.random() < 0.15)),
                    "base_demand": round(float(load * capacity / days * WEEK[d % 7] * rng.uniform(0.85, 1.15)), 3),
                    "elasticity": elasticity,
                })
    return {"horizon_days": horizon, "ladder": LADDER, "classes": classes, "segments": segments,
            "max_step": 2, "class_order": True}
