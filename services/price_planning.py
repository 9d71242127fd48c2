"""Demand-based daily rates for the live company: build the optimiser's instance, run it, explain it, publish it.

The instance (issue 8's format) is read from the database for the branches, types and days asked for:
- list_rate: the median list daily rate of the type's cars at the branch (else the type's base rate), times
  what the pricing rules in force make of it over a rental of the type's typical length from that day
  (`services.pricing.segment_rule_factors`, the same rules the quotes apply);
- capacity: cars of the type at the branch (or coming back to it) that are free all day, after the bookings
  and maintenance already in the diary;
- base_demand: the demand model's forecast at list price, less the pick-ups already booked for that day;
- elasticity: the fitted elasticity of the type; classes are the types, ranked by their place in the price
  list, renting for the mean (rounded) number of days rentals of the type last.

The proposal is compared with the current rates (the published multipliers, or 1 where none) under the same
model: the current rates are the instance with each segment's price fixed, which the optimiser solves on the
one-step ladder [1.0] after folding each multiplier into the list rate and the demand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import PublishedRate, RatePublication, UserRole
from db.queries import result_frame
from services import audit, demand, pricing
from services.actors import Actor, require_role
from services.errors import InvalidInput
from services.events import record_event

DEFAULT_LADDER = (0.6, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 1.8)
MAX_HORIZON_DAYS = 28
_SLACK = 1e-3  # the optimiser's accepts are whole 1/10,000 of a rental, rounded to 4 places


@dataclass(frozen=True)
class WhatIf:
    """Changes to the model before running it: elasticity per type id (absolute) and a factor on capacity."""

    elasticity: Mapping[int, float] = field(default_factory=dict)
    capacity_factor: float = 1.0

    def describe(self) -> str:
        parts = [f"elasticity of type {t} set to {e:g}" for t, e in sorted(self.elasticity.items())]
        if self.capacity_factor != 1.0:
            parts.append(f"capacity x{self.capacity_factor:g}")
        return "; ".join(parts) or "as fitted"


@dataclass(frozen=True)
class PlanningInput:
    """The optimiser's instance and how its branch and class names map back to our ids."""

    instance: dict[str, Any]
    start: date
    days: int
    branches: pd.DataFrame  # location_id, branch (code), name
    classes: pd.DataFrame  # vehicle_type_id, class (code), rank, rental_days
    current: pd.DataFrame  # location_id, vehicle_type_id, day, multiplier (published or 1.0)
    what_if: WhatIf


@dataclass(frozen=True)
class PricePlanResult:
    """A proposal, its comparison with the current rates and the constraints that shape it."""

    status: str
    objective: float | None
    bound: float | None
    reason: str | None
    solve_seconds: float | None
    prices: pd.DataFrame  # location_id, branch, vehicle_type_id, class, day, multiplier, rate, accept, revenue,
    #                       demand, capacity, occupied, current_multiplier
    summary: pd.DataFrame  # rates (proposed, current), revenue, rentals, utilisation_pct
    binding: pd.DataFrame  # constraint, branch, class, day, detail
    planning: PlanningInput

    @property
    def publishable(self) -> bool:
        return self.status in ("optimal", "feasible") and not self.prices.empty


def build_instance(session: Session, *, location_ids: Sequence[int], vehicle_type_ids: Sequence[int], start: date,
                   days: int, fit: demand.DemandFit, ladder: Sequence[float] = DEFAULT_LADDER,
                   max_step: int | None = 2, class_order: bool = True, what_if: WhatIf | None = None
                   ) -> PlanningInput:
    """The price optimiser's instance for these branches, types and days, from the live database."""
    what_if = what_if or WhatIf()
    if not location_ids:
        raise InvalidInput("choose at least one branch to price")
    if not vehicle_type_ids:
        raise InvalidInput("choose at least one vehicle type to price")
    if not 1 <= days <= MAX_HORIZON_DAYS:
        raise InvalidInput(f"the horizon is 1 to {MAX_HORIZON_DAYS} days, not {days}; choose a shorter one")
    if not 0 < what_if.capacity_factor <= 10:
        raise InvalidInput(f"a capacity factor is between 0 and 10, not {what_if.capacity_factor:g}")
    for type_id, value in what_if.elasticity.items():
        if not 0 <= value <= 10:
            raise InvalidInput(f"an elasticity is between 0 and 10, not {value:g} (type {type_id})")
    params = {"locations": list(location_ids), "types": list(vehicle_type_ids), "start": start,
              "end": start + timedelta(days=days)}
    branches = result_frame(session.execute(text("""
        SELECT id AS location_id, code AS branch, name FROM locations WHERE id = ANY(:locations) ORDER BY code
    """), params))
    classes = result_frame(session.execute(text(_CLASSES_SQL), params))
    if len(branches) != len(set(location_ids)):
        raise InvalidInput("some of the chosen branches do not exist; reload the page and choose again")
    if len(classes) != len(set(vehicle_type_ids)):
        raise InvalidInput("some of the chosen vehicle types do not exist; reload the page and choose again")

    day_list = [start + timedelta(days=i) for i in range(days)]
    grid = pd.MultiIndex.from_product([branches["location_id"], classes["vehicle_type_id"], day_list],
                                      names=["location_id", "vehicle_type_id", "day"]).to_frame(index=False)
    keys = ["location_id", "vehicle_type_id", "day"]
    rates = result_frame(session.execute(text(_LIST_RATES_SQL), params))
    free = result_frame(session.execute(text(_FREE_CARS_SQL), params))
    booked = result_frame(session.execute(text(_BOOKED_PICKUPS_SQL), params))
    current = result_frame(session.execute(text("""
        SELECT location_id, vehicle_type_id, day, multiplier::float AS multiplier FROM published_rates
        WHERE location_id = ANY(:locations) AND vehicle_type_id = ANY(:types) AND day >= :start AND day < :end
    """), params))
    expected = fit.expected(branches["location_id"].tolist(), classes["vehicle_type_id"].tolist(), day_list)

    grid = grid.merge(rates, how="left", on=["location_id", "vehicle_type_id"])
    grid = grid.merge(classes[["vehicle_type_id", "class", "base_rate"]], on="vehicle_type_id")
    # The rules in force (seasonal surcharges, weekend rates) scale each segment's list rate as quotes will.
    factors = pricing.segment_rule_factors(
        session, branches["location_id"].tolist(), classes["vehicle_type_id"].tolist(), start, days,
        dict(zip(classes["vehicle_type_id"], classes["rental_days"], strict=True)))
    grid["rule_factor"] = [float(factors.get((int(b), int(t), d), 1)) for b, t, d in
                           grid[["location_id", "vehicle_type_id", "day"]].itertuples(index=False)]
    grid["list_rate"] = grid["list_rate"].fillna(grid["base_rate"]).astype(float) * grid["rule_factor"]
    grid = grid.merge(free, how="left", on=keys).merge(booked, how="left", on=keys).merge(expected, on=keys)
    grid = grid.merge(current, how="left", on=keys).merge(branches[["location_id", "branch"]], on="location_id")
    grid["capacity"] = np.floor(grid["free"].fillna(0).to_numpy() * what_if.capacity_factor).astype(int)
    grid["base_demand"] = np.maximum(grid["expected_pickups"] - grid["booked"].fillna(0), 0.0)
    grid["elasticity"] = grid["vehicle_type_id"].map(
        lambda t: what_if.elasticity.get(int(t), fit.elasticity_of(int(t)))).astype(float)
    grid["multiplier"] = grid["multiplier"].fillna(1.0)
    grid["day_index"] = grid["day"].map(lambda d: (d - start).days)

    instance = {
        "horizon_days": days,
        "ladder": [float(m) for m in ladder],
        "classes": [{"id": row["class"], "rank": int(row["rank"]), "rental_days": int(row["rental_days"])}
                    for _, row in classes.iterrows()],
        "segments": [
            {"branch": b, "class": c, "day": int(d), "list_rate": round(float(r), 2), "capacity": int(k),
             "base_demand": round(float(q), 4), "elasticity": round(float(e), 4)}
            for b, c, d, r, k, q, e in grid[["branch", "class", "day_index", "list_rate", "capacity",
                                             "base_demand", "elasticity"]].itertuples(index=False)
        ],
        "max_step": max_step,
        "class_order": class_order,
    }
    return PlanningInput(
        instance=instance, start=start, days=days, branches=branches,
        classes=classes[["vehicle_type_id", "class", "rank", "rental_days"]],
        current=grid[["location_id", "vehicle_type_id", "day", "multiplier"]], what_if=what_if,
    )


def plan_prices(planning: PlanningInput, *, time_limit_s: float,
                progress: Callable[[float], None] | None = None) -> PricePlanResult:
    """Run the optimiser on the instance, evaluate the current rates the same way, and explain the proposal."""
    from services.optimise import prices as optimiser

    if not 0.5 <= time_limit_s <= 600:
        raise InvalidInput(f"the time limit is 0.5 to 600 seconds, not {time_limit_s:g}")
    try:
        instance = optimiser.parse_instance(planning.instance)
    except ValueError as error:
        raise InvalidInput(f"the pricing instance is not valid: {error}") from None
    plan = optimiser.plan_to_dict(optimiser.optimise_prices(instance, time_limit_s=time_limit_s,
                                                            progress=progress))
    current_plan = optimiser.plan_to_dict(optimiser.optimise_prices(
        optimiser.parse_instance(_at_current_rates(planning)), time_limit_s=max(1.0, time_limit_s / 4)))
    return explain(planning, plan, current_plan)


def explain(planning: PlanningInput, plan: dict[str, Any], current_plan: dict[str, Any]) -> PricePlanResult:
    """Join the optimiser's output to our ids, and work out utilisation, the comparison and what binds."""
    segments = _segments(planning)
    prices = _joined(planning, segments, plan)
    current = _joined(planning, segments, current_plan, fixed=True)
    summary = pd.DataFrame([
        _summary_row("proposed", prices, plan),
        _summary_row("current", current, current_plan),
    ])
    if not prices.empty:
        prices["current_multiplier"] = current["multiplier"].to_numpy() if not current.empty else np.nan
    return PricePlanResult(
        status=str(plan.get("status")), objective=plan.get("objective"), bound=plan.get("bound"),
        reason=plan.get("reason"), solve_seconds=(plan.get("stats") or {}).get("solve_seconds"),
        prices=prices, summary=summary, binding=_binding(planning, prices), planning=planning,
    )


def publish_plan(session: Session, result: PricePlanResult, *, by: Actor, note: str | None = None) -> int:
    """Publish the proposal's multipliers for quotes: one publication, its rates upserted, audited, announced."""
    require_role(by, UserRole.PRICING_ANALYST, doing="publish rates")
    if not result.publishable:
        raise InvalidInput(f"a {result.status} plan has no rates to publish; run the optimiser again")
    planning = result.planning
    expected = Decimal(str(result.objective or 0)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    summary = {
        "status": result.status, "branches": planning.branches["branch"].tolist(),
        "classes": planning.classes["class"].tolist(), "what_if": planning.what_if.describe(),
        "bound": result.bound, "segments": len(result.prices),
        "revenue_at_current_rates": _summary_value(result, "current", "revenue"),
        "utilisation_pct": _summary_value(result, "proposed", "utilisation_pct"),
    }
    if note:
        summary["note"] = note
    publication = RatePublication(published_by=by.user_id, horizon_start=planning.start,
                                  horizon_days=planning.days, expected_revenue=expected, summary=summary)
    session.add(publication)
    session.flush()
    rows = [{"location_id": int(r.location_id), "vehicle_type_id": int(r.vehicle_type_id), "day": r.day,
             "multiplier": Decimal(str(r.multiplier)).quantize(Decimal("0.0001")), "publication_id": publication.id}
            for r in result.prices.itertuples(index=False)]
    statement = insert(PublishedRate).values(rows)
    session.execute(statement.on_conflict_do_update(
        index_elements=["location_id", "vehicle_type_id", "day"],
        set_={"multiplier": statement.excluded.multiplier, "publication_id": statement.excluded.publication_id},
    ))
    after = {"horizon_start": planning.start, "horizon_days": planning.days, "expected_revenue": expected,
             "rates": len(rows)}
    audit.record(session, by, "publish", "rate_publication", publication.id, None, after, note=note)
    record_event(session, "rate_publication", publication.id, "rates.published", {
        "publication_id": publication.id, "horizon_start": planning.start.isoformat(),
        "horizon_days": planning.days, "expected_revenue": str(expected), "rates": len(rows),
        "location_ids": sorted({row["location_id"] for row in rows}),
        "vehicle_type_ids": sorted({row["vehicle_type_id"] for row in rows}),
    })
    session.flush()
    return publication.id


# --- reading the database ---------------------------------------------------------------------------------------

_CLASSES_SQL = """
SELECT vt.id AS vehicle_type_id, vt.code AS class, vt.rank, vt.base_daily_rate::float AS base_rate,
       GREATEST(1, round(COALESCE((
           SELECT avg(GREATEST(1, ceil(extract(epoch FROM b.dropoff_at - b.pickup_at) / 86400)))
           FROM bookings b
           WHERE b.vehicle_type_id = vt.id AND b.status IN ('completed', 'picked_up', 'confirmed')
             AND b.pickup_at >= CAST(:start AS date) - 365 AND b.pickup_at < :start
       ), 3)))::int AS rental_days
FROM vehicle_types vt WHERE vt.id = ANY(:types) ORDER BY vt.rank, vt.id
"""

_LIST_RATES_SQL = """
SELECT v.current_location_id AS location_id, v.vehicle_type_id,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY v.daily_rate) AS list_rate
FROM vehicles v
WHERE v.status <> 'retired' AND v.current_location_id = ANY(:locations) AND v.vehicle_type_id = ANY(:types)
GROUP BY 1, 2
"""

# Cars of the type at the branch, or coming back to it from a rental, that are free for the whole local day.
_FREE_CARS_SQL = """
WITH fleet AS (
    SELECT v.id, v.vehicle_type_id, v.current_location_id AS location_id, NULL::timestamptz AS back_at
    FROM vehicles v
    WHERE v.status <> 'retired' AND v.current_location_id = ANY(:locations) AND v.vehicle_type_id = ANY(:types)
    UNION ALL
    SELECT v.id, v.vehicle_type_id, b.dropoff_location_id, b.dropoff_at
    FROM bookings b JOIN vehicles v ON v.id = b.vehicle_id
    WHERE b.status = 'picked_up' AND v.current_location_id IS NULL AND v.status <> 'retired'
      AND b.dropoff_location_id = ANY(:locations) AND v.vehicle_type_id = ANY(:types)
), days AS (
    SELECT CAST(d AS date) AS day FROM generate_series(CAST(:start AS date), CAST(:end AS date) - 1, interval '1 day') d
), windows AS (
    SELECT f.*, days.day,
           tstzrange(days.day::timestamp AT TIME ZONE l.timezone, (days.day + 1)::timestamp AT TIME ZONE l.timezone)
               AS whole_day
    FROM fleet f JOIN locations l ON l.id = f.location_id CROSS JOIN days
)
SELECT location_id, vehicle_type_id, day, count(*) AS free
FROM windows w
WHERE (w.back_at IS NULL OR w.back_at < upper(w.whole_day))
  AND NOT EXISTS (SELECT 1 FROM vehicle_occupancy o WHERE o.vehicle_id = w.id AND o.period && w.whole_day)
GROUP BY 1, 2, 3
"""

_BOOKED_PICKUPS_SQL = """
SELECT b.pickup_location_id AS location_id, b.vehicle_type_id, (b.pickup_at AT TIME ZONE l.timezone)::date AS day,
       count(*) AS booked
FROM bookings b JOIN locations l ON l.id = b.pickup_location_id
WHERE b.status IN ('pending', 'confirmed') AND b.pickup_location_id = ANY(:locations)
  AND b.vehicle_type_id = ANY(:types)
  AND b.pickup_at >= CAST(:start AS date) - 1 AND b.pickup_at < CAST(:end AS date) + 1
GROUP BY 1, 2, 3
"""


# --- evaluating and explaining -----------------------------------------------------------------------------------

def _at_current_rates(planning: PlanningInput) -> dict[str, Any]:
    """The instance with every segment's price fixed at its current multiplier, as a one-step ladder [1.0]."""
    current = _segments(planning)["current_multiplier"].to_numpy()
    segments = []
    for segment, m in zip(planning.instance["segments"], current, strict=True):
        segments.append({**segment, "list_rate": segment["list_rate"] * m,
                         "base_demand": segment["base_demand"] * m ** -segment["elasticity"]})
    return {**planning.instance, "ladder": [1.0], "segments": segments, "max_step": None, "class_order": False}


def _segments(planning: PlanningInput) -> pd.DataFrame:
    """The instance's segments as a frame, with our ids and the current multiplier beside each."""
    frame = pd.DataFrame(planning.instance["segments"])
    frame = frame.merge(planning.branches[["location_id", "branch"]], on="branch")
    frame = frame.merge(planning.classes[["vehicle_type_id", "class", "rank", "rental_days"]], on="class")
    frame["day_date"] = frame["day"].map(lambda d: planning.start + timedelta(days=int(d)))
    current = planning.current.rename(columns={"day": "day_date", "multiplier": "current_multiplier"})
    return frame.merge(current, how="left", on=["location_id", "vehicle_type_id", "day_date"])


def _joined(planning: PlanningInput, segments: pd.DataFrame, plan: dict[str, Any], *, fixed: bool = False
            ) -> pd.DataFrame:
    rows = pd.DataFrame(plan.get("prices") or [], columns=["branch", "class", "day", "multiplier", "rate", "accept",
                                                           "revenue"])
    if rows.empty:
        return rows
    frame = segments.merge(rows, on=["branch", "class", "day"], suffixes=("_segment", ""))
    frame = frame.sort_values(["branch", "rank", "day"]).reset_index(drop=True)
    if fixed:  # solved on the ladder [1.0] with the current multiplier folded into the segment
        frame["multiplier"] = frame["current_multiplier"]
    frame["demand"] = frame["base_demand"] * frame["multiplier"] ** -frame["elasticity"]
    frame["occupied"] = _occupied(frame)
    return frame.rename(columns={"day": "day_index", "day_date": "day"})[[
        "location_id", "branch", "vehicle_type_id", "class", "day", "day_index", "multiplier", "rate", "accept",
        "revenue", "demand", "capacity", "occupied", "list_rate", "rank", "rental_days",
    ]]


def _occupied(frame: pd.DataFrame) -> np.ndarray:
    """Cars taken on each segment's day by the rentals accepted on it and the days before (the rental length)."""
    occupied = np.zeros(len(frame))
    for _, group in frame.groupby(["branch", "class"], sort=False):
        group = group.sort_values("day")
        accept = group["accept"].to_numpy(dtype=float)
        length = int(group["rental_days"].iloc[0])
        running = np.convolve(accept, np.ones(length))[: len(accept)]
        occupied[group.index.to_numpy()] = running
    return occupied


def _summary_row(label: str, prices: pd.DataFrame, plan: dict[str, Any]) -> dict[str, Any]:
    if prices.empty:
        return {"rates": label, "status": plan.get("status"), "revenue": None, "rentals": None,
                "utilisation_pct": None, "mean_multiplier": None}
    capacity = float(prices["capacity"].sum())
    return {
        "rates": label, "status": plan.get("status"),
        "revenue": round(float(prices["revenue"].sum()), 2),
        "rentals": round(float(prices["accept"].sum()), 1),
        "utilisation_pct": round(100.0 * float(np.minimum(prices["occupied"], prices["capacity"]).sum()) / capacity, 1)
        if capacity else None,
        "mean_multiplier": round(float(prices["multiplier"].mean()), 3),
    }


def _summary_value(result: PricePlanResult, rates: str, column: str) -> Any:
    row = result.summary.loc[result.summary["rates"] == rates, column]
    return None if row.empty or pd.isna(row.iloc[0]) else float(row.iloc[0])


def _binding(planning: PlanningInput, prices: pd.DataFrame) -> pd.DataFrame:
    """Which constraints hold the proposal where it is: full days, the daily step limit, the class order."""
    columns = ["constraint", "branch", "class", "day", "detail"]
    if prices.empty:
        return pd.DataFrame(columns=columns)
    found = []
    full = prices[(prices["capacity"] > 0) & (prices["occupied"] >= prices["capacity"] - _SLACK)]
    for row in full.to_dict("records"):
        found.append(("capacity full", row["branch"], row["class"], row["day"],
                      f"{row['occupied']:.1f} of {row['capacity']} free cars taken"))
    for row in prices[prices["capacity"] == 0].to_dict("records"):
        found.append(("no free car", row["branch"], row["class"], row["day"],
                      "every car of the type is already booked or in the workshop"))
    ladder = planning.instance["ladder"]
    max_step = planning.instance.get("max_step")
    if max_step is not None:
        index = prices["multiplier"].map(lambda m: int(np.argmin([abs(m - x) for x in ladder])))
        for _, group in prices.assign(step=index).groupby(["branch", "class"], sort=False):
            steps = group["step"].to_numpy()
            jumps = np.flatnonzero(np.abs(np.diff(steps)) >= max_step)
            for j in jumps:
                row = group.iloc[j + 1]
                found.append(("max step", row["branch"], row["class"], row["day"],
                              f"{group['multiplier'].iloc[j]:g} -> {row['multiplier']:g}, the most one day allows"))
    if planning.instance.get("class_order"):
        for (branch, day), group in prices.groupby(["branch", "day"], sort=False):
            ordered = group.sort_values("rank")
            rates = ordered["rate"].to_numpy()
            names = ordered["class"].to_numpy()
            for j in np.flatnonzero(np.abs(np.diff(rates)) <= 0.005):
                found.append(("class order", branch, f"{names[j]} / {names[j + 1]}", day,
                              f"same daily rate {rates[j]:.2f}: the higher class may not be cheaper"))
    return pd.DataFrame(found, columns=columns)
