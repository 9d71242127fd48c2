"""Rebalancing the live fleet: supply against demand per branch, type and day; a plan from the optimiser, kept for
review; its approval into transfers of specific cars.

The horizon starts on `start` (day 0, each branch's local midnight). The flow of cars the optimiser sees is read
from the same periods that guard against overbooking (`vehicle_occupancy`: bookings with their turnaround,
maintenance blocks, transfers) and the stretches between them (`vehicle_free_periods`):

- initial: cars standing free at a branch at the start of day 0 (not in maintenance, not retired or moving);
- returns: a period that holds a car at day 0's start, or starts later, gives the car back where it ends (a
  booking at its drop-off branch, a transfer at its destination, a workshop visit at the car's branch) on the day
  the period ends — the one-way drift of the bookings is in here;
- demand: the larger of the forecast pick-ups and the booked ones, plus the cars that leave for the workshop or on a
  transfer already planned (they go whatever the plan says).

Moves happen on the night before a day: the cars leave the evening before at NIGHT_DEPARTURE, local time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from db.models import RebalancingMove, RebalancingPlan, UserRole
from db.queries import result_frame
from services import audit, transfers
from services.actors import Actor, require_role
from services.errors import Conflict, InvalidInput, NotFound
from services.events import record_event
from services.optimise.rebalance import haversine_km, parse_instance, plan_rebalancing

NIGHT_DEPARTURE = time(20, 0)
MAX_HORIZON_DAYS = 28
MAX_TIME_LIMIT_S = 120.0
CENT = Decimal("0.01")
LOCK_NOT_AVAILABLE = "55P03"
DEADLOCK = "40P01"


@dataclass(frozen=True)
class PlanSettings:
    """What the fleet manager chooses: horizon, costs, limits and branches left out."""

    start: date
    horizon_days: int = 7
    move_fixed_cost: Decimal = Decimal("25")  # a driver's trip and the train back
    move_cost_per_km: Decimal = Decimal("0.70")  # fuel and the driver's time, per great-circle km
    max_move_km: Decimal = Decimal("150")
    lost_sale_days: Decimal = Decimal("2")  # a lost rental costs this many days of the type's base daily rate
    max_moves_out: int | None = None  # per branch and night, all types together
    use_parking_capacity: bool = True
    excluded_location_ids: tuple[int, ...] = ()
    time_limit_s: float = 20.0
    hold_days: int = 2  # a car chosen for a move is free at its branch this long after arriving (or booked there)

    def check(self) -> None:
        """InvalidInput naming the first setting that cannot be used, and what is allowed."""
        if not 1 <= self.horizon_days <= MAX_HORIZON_DAYS:
            raise InvalidInput(f"Plan 1 to {MAX_HORIZON_DAYS} days ahead, not {self.horizon_days}.")
        for name in ("move_fixed_cost", "move_cost_per_km", "lost_sale_days"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise InvalidInput(f"{name.replace('_', ' ').capitalize()} must be a number of 0 or more, "
                                   f"not {value}.")
        if not isinstance(self.max_move_km, Decimal) or not self.max_move_km.is_finite() or self.max_move_km <= 0:
            raise InvalidInput(f"The longest move must be more than 0 km, not {self.max_move_km}.")
        if self.max_moves_out is not None and self.max_moves_out < 0:
            raise InvalidInput(f"The cap on moves out of a branch per night must be 0 or more, not "
                               f"{self.max_moves_out}; leave it empty for no cap.")
        if not 0 < self.time_limit_s <= MAX_TIME_LIMIT_S:
            raise InvalidInput(f"Give the optimiser between 1 and {MAX_TIME_LIMIT_S:g} seconds, not "
                               f"{self.time_limit_s:g}.")
        if not 0 <= self.hold_days <= 14:
            raise InvalidInput(f"Keep moved cars free for 0 to 14 days after arrival, not {self.hold_days}.")

    def as_json(self) -> dict[str, Any]:
        return audit.plain(asdict(self))


@dataclass(frozen=True)
class Supply:
    """Per branch, type and day of the horizon: what the plan starts from (see the module docstring)."""

    cells: pd.DataFrame  # location_id, code, name, lat, lon, vehicle_type_id, vehicle_type, d, day, and the counts
    demand_source: str  # "forecast" or "booked"
    start: date
    horizon_days: int

    def by_branch(self, day: int) -> pd.DataFrame:
        """One row per branch for one day: free cars, pick-ups, returns, and if no car is moved the cars left at the
        end of the day (spare) or the rentals lost (short); surplus is spare less short."""
        cells = self.cells[self.cells["d"] == day]
        keys = ["location_id", "code", "name", "lat", "lon"]
        return cells.groupby(keys, as_index=False)[
            ["free_cars", "booked_pickups", "expected_pickups", "unbooked_pickups", "returns", "in_maintenance",
             "spare", "short", "surplus"]].sum()

    def by_day(self) -> pd.DataFrame:
        return self.cells.groupby(["day", "vehicle_type"], as_index=False)[
            ["expected_pickups", "booked_pickups", "returns", "free_cars", "spare", "short"]].sum()


@dataclass(frozen=True)
class PlanView:
    id: int
    status: str
    start_date: date
    horizon_days: int
    solver_status: str
    objective: Decimal
    bound: Decimal | None
    move_cost: Decimal
    lost_sale_cost: Decimal
    baseline_cost: Decimal
    currency: str
    demand_total: int
    lost_sales: int
    baseline_lost_sales: int
    cars_moved: int
    demand_source: str
    solve_seconds: Decimal
    settings: dict[str, Any]
    created_at: datetime
    decided_at: datetime | None
    moves: pd.DataFrame = field(repr=False)  # one row per move line, with branch names and positions

    @property
    def covered_pct(self) -> float:
        return _pct(self.demand_total - self.lost_sales, self.demand_total)

    @property
    def baseline_covered_pct(self) -> float:
        return _pct(self.demand_total - self.baseline_lost_sales, self.demand_total)

    @property
    def saving(self) -> Decimal:
        return self.baseline_cost - self.objective


@dataclass(frozen=True)
class Approval:
    plan: PlanView
    transfer_ids: tuple[int, ...]
    shortfalls: tuple[str, ...]  # move lines that did not get all their cars, in words


# --- supply and the instance ----------------------------------------------------------------------------------------

def supply(session: Session, start: date, horizon_days: int, *, forecast: pd.DataFrame | None = None) -> Supply:
    """The supply and demand per branch, type and day; `forecast` (services.demand.forecast's frame) when there is
    one, else demand is the booked pick-ups alone (demand_source says which)."""
    if not 1 <= horizon_days <= MAX_HORIZON_DAYS:
        raise InvalidInput(f"Look 1 to {MAX_HORIZON_DAYS} days ahead, not {horizon_days}.")
    params = {"start": start, "days": horizon_days}
    grid = result_frame(session.execute(text(_GRID_SQL), params))
    if grid.empty:
        raise Conflict("There are no branches or vehicle types yet; load the demo company (`make demo`) or add "
                       "branches first.")
    flows = result_frame(session.execute(text(_FLOWS_SQL), params))
    cells = grid.merge(_pivot(flows), on=["location_id", "vehicle_type_id", "d"], how="left")
    counts = ["initial", "booked_pickups", "returns", "workshop_out", "transfer_out", "free_cars", "in_maintenance"]
    for column in counts:
        cells[column] = cells.get(column, pd.Series(0, index=cells.index)).fillna(0).astype(np.int64)
    cells["day"] = pd.to_datetime(cells["day"]).dt.date
    if forecast is not None and not forecast.empty:
        fc = forecast.assign(day=pd.to_datetime(forecast["day"]).dt.date)[
            ["location_id", "vehicle_type_id", "day", "expected_pickups"]].rename(
            columns={"expected_pickups": "forecast_pickups"})
        cells = cells.merge(fc, on=["location_id", "vehicle_type_id", "day"], how="left")
        cells["forecast_pickups"] = cells["forecast_pickups"].fillna(0.0).astype(float)
        source = "forecast"
    else:
        cells["forecast_pickups"] = np.nan
        source = "booked"
    forecast_whole = np.floor(cells["forecast_pickups"].fillna(0).to_numpy() + 0.5).astype(np.int64)
    cells["expected_pickups"] = np.maximum(forecast_whole, cells["booked_pickups"].to_numpy())
    cells["unbooked_pickups"] = cells["expected_pickups"] - cells["booked_pickups"]
    cells = cells.sort_values(["code", "vehicle_type_rank", "vehicle_type_id", "d"]).reset_index(drop=True)
    shape = (-1, 1, horizon_days)  # [branch and type, 1, day]: the rows are in that order now
    initial = cells["initial"].to_numpy().reshape(shape)[:, :, 0]
    outflow = (cells["expected_pickups"] + cells["workshop_out"] + cells["transfer_out"]).to_numpy().reshape(shape)
    lost, spare = _without_moves(initial, cells["returns"].to_numpy().reshape(shape), outflow)
    cells["short"], cells["spare"] = lost.ravel(), spare.ravel()
    cells["surplus"] = cells["spare"] - cells["short"]
    return Supply(cells, source, start, horizon_days)


def first_move_day(session: Session, settings: PlanSettings, *, now: datetime | None = None) -> int:
    """The first day whose night-before move can still leave: every branch in the plan, on its own clock, must be
    before NIGHT_DEPARTURE of that night. Day 0's cars leave the evening before `start`; after 20:00 there (or when
    the plan starts today) the first moves are the next night's; the horizon length when no night is left."""
    now = now or datetime.now(UTC)
    zones = session.execute(text("SELECT DISTINCT timezone FROM locations WHERE NOT (id = ANY(:excluded))"),
                            {"excluded": list(settings.excluded_location_ids)}).scalars().all()
    day = 0
    while day < settings.horizon_days and any(
            _departure(settings.start + timedelta(days=day - 1), zone) <= now for zone in zones):
        day += 1
    return day


def too_late(settings: PlanSettings) -> str:
    """What to say when no night of the horizon can carry a move any more."""
    last = settings.start + timedelta(days=settings.horizon_days - 1)
    days = f"{settings.start:%a %d %b}" + ("" if last == settings.start else f" to {last:%a %d %b}")
    return (f"No car can move in time for {days} any more (cars leave at {NIGHT_DEPARTURE:%H:%M} the evening "
            "before); plan from a later day or more days ahead.")


def build_instance(session: Session, settings: PlanSettings, supply_view: Supply, *,
                   now: datetime | None = None) -> dict[str, Any]:
    """The optimiser's instance (the JSON document of `fleetdesk optimise rebalance`) for the live fleet, from the
    moment `now` (nights whose departure has passed carry no move)."""
    settings.check()
    cells = supply_view.cells[~supply_view.cells["location_id"].isin(settings.excluded_location_ids)]
    if cells.empty:
        raise InvalidInput("Every branch is excluded; leave at least two branches in the plan.")
    branches = cells.drop_duplicates("location_id")
    if len(branches) < 2:
        raise InvalidInput("Only one branch is left in the plan; cars move between two branches at least.")
    types = cells.drop_duplicates("vehicle_type_id")
    day0 = cells[cells["d"] == 0]

    def entries(frame: pd.DataFrame, column: str, *, daily: bool = True) -> list[dict[str, Any]]:
        rows = frame[frame[column] > 0]
        return [{"branch": b, "class": c, **({"day": int(d)} if daily else {}), "count": int(n)}
                for b, c, d, n in zip(rows["code"], rows["vehicle_type"], rows["d"], rows[column], strict=True)]

    demand = cells.assign(total=cells["expected_pickups"] + cells["workshop_out"] + cells["transfer_out"])
    return {
        "horizon_days": settings.horizon_days,
        "classes": list(types["vehicle_type"]),
        "branches": [{"id": code, "lat": float(lat), "lon": float(lon),
                      "capacity": int(cap) if settings.use_parking_capacity else None}
                     for code, lat, lon, cap in zip(branches["code"], branches["lat"], branches["lon"],
                                                    branches["parking_capacity"], strict=True)],
        "initial": entries(day0, "initial", daily=False),
        "returns": entries(cells, "returns"),
        "demand": entries(demand, "total"),
        "lost_sale_cost": {c: float(_money(Decimal(rate) * settings.lost_sale_days))
                           for c, rate in zip(types["vehicle_type"], types["base_daily_rate"], strict=True)},
        "move_cost_per_km": float(settings.move_cost_per_km),
        "move_fixed_cost": float(settings.move_fixed_cost),
        "max_move_km": float(settings.max_move_km),
        "max_moves_out": settings.max_moves_out,
        "first_move_day": first_move_day(session, settings, now=now),
    }


# --- planning -------------------------------------------------------------------------------------------------------

def make_plan(session: Session, actor: Actor, settings: PlanSettings, supply_view: Supply, *,
              now: datetime | None = None) -> PlanView:
    """Run the optimiser on the live fleet and keep its plan for review (proposed; nothing moves yet); no move is
    planned on a night whose departure has passed by `now`."""
    require_role(actor, UserRole.FLEET_MANAGER, doing="plan rebalancing")
    settings.check()
    if (supply_view.start, supply_view.horizon_days) != (settings.start, settings.horizon_days):
        raise InvalidInput("The supply was read for another horizon; read it again for these dates.")
    currencies = session.execute(text("SELECT DISTINCT currency FROM locations WHERE NOT (id = ANY(:excluded))"),
                                 {"excluded": list(settings.excluded_location_ids)}).scalars().all()
    if len(currencies) != 1:
        raise InvalidInput(f"The branches price in {', '.join(sorted(currencies))}; plan the branches of one "
                           "currency at a time (exclude the others).")
    data = build_instance(session, settings, supply_view, now=now)
    if data["first_move_day"] >= settings.horizon_days:
        raise InvalidInput(too_late(settings))
    instance = parse_instance(data)
    result = plan_rebalancing(instance, time_limit_s=settings.time_limit_s)
    if result.status not in ("optimal", "feasible"):
        advice = " Untick 'respect parking capacity' or raise the cap on moves." \
            if settings.use_parking_capacity or settings.max_moves_out is not None else ""
        raise Conflict(f"No plan: {result.reason or result.status}.{advice}")

    ids = _ids(session)
    dist = haversine_km(instance.lat, instance.lon)
    lost_cost = {c: Decimal(str(v)) for c, v in data["lost_sale_cost"].items()}
    moves, move_cost = [], Decimal("0")
    for f, t, k, d, n in result.moves.tolist():
        km = Decimal(str(round(float(dist[f, t]), 1)))
        unit = _money(settings.move_fixed_cost + settings.move_cost_per_km * Decimal(str(float(dist[f, t]))))
        move_cost += unit * n
        moves.append(dict(from_location_id=ids["branch"][instance.branch_ids[f]],
                          to_location_id=ids["branch"][instance.branch_ids[t]],
                          vehicle_type_id=ids["type"][instance.classes[k]], day=int(d),
                          night_of=settings.start + timedelta(days=int(d) - 1), count=int(n), distance_km=km,
                          unit_cost=unit))
    lost_detail = [{"location_id": ids["branch"][instance.branch_ids[b]],
                    "vehicle_type_id": ids["type"][instance.classes[k]], "day": int(d), "count": int(n)}
                   for b, k, d, n in result.lost_sales.tolist()]
    lost_sales = sum(x["count"] for x in lost_detail)
    lost_value = sum((lost_cost[instance.classes[k]] * n for _, k, _, n in result.lost_sales.tolist()), Decimal("0"))
    baseline_lost, _ = _without_moves(instance.initial, instance.returns, instance.demand)
    baseline_cost = sum((lost_cost[c] * int(baseline_lost[:, k, :].sum()) for k, c in enumerate(instance.classes)),
                        Decimal("0"))
    plan = RebalancingPlan(
        status="proposed", start_date=settings.start, horizon_days=settings.horizon_days,
        solver_status=result.status, objective=_money(move_cost + lost_value),
        bound=None if result.bound is None else _money(Decimal(str(result.bound))),
        move_cost=_money(move_cost), lost_sale_cost=_money(lost_value), baseline_cost=_money(baseline_cost),
        currency=currencies[0], demand_total=int(instance.demand.sum()), lost_sales=int(lost_sales),
        baseline_lost_sales=int(baseline_lost.sum()), cars_moved=result.cars_moved,
        demand_source=supply_view.demand_source,
        solve_seconds=Decimal(str(round(result.solve_seconds, 3))), settings=settings.as_json(),
        lost_detail=lost_detail, created_by=actor.user_id)
    session.add(plan)
    session.flush()
    session.add_all(RebalancingMove(plan_id=plan.id, **m) for m in moves)
    session.flush()
    view = get_plan(session, plan.id)
    summary = _summary(view)
    audit.record(session, actor, "rebalancing.planned", "rebalancing_plan", plan.id, None, summary)
    record_event(session, "rebalancing_plan", plan.id, "rebalancing.planned", audit.plain(summary))
    return view


def get_plan(session: Session, plan_id: int) -> PlanView:
    plan = session.get(RebalancingPlan, plan_id, populate_existing=True)
    if plan is None:
        raise NotFound(f"There is no rebalancing plan #{plan_id}; make a new plan.")
    moves = result_frame(session.execute(text("""
        SELECT m.id, m.day, m.night_of, f.id AS from_id, f.code AS from_code, f.name AS from_name,
               ST_Y(f.geog::geometry) AS from_lat, ST_X(f.geog::geometry) AS from_lon,
               o.id AS to_id, o.code AS to_code, o.name AS to_name,
               ST_Y(o.geog::geometry) AS to_lat, ST_X(o.geog::geometry) AS to_lon,
               vt.code AS vehicle_type, m.count, m.distance_km, m.unit_cost, m.unit_cost * m.count AS cost,
               m.assigned
        FROM rebalancing_moves m
        JOIN locations f ON f.id = m.from_location_id
        JOIN locations o ON o.id = m.to_location_id
        JOIN vehicle_types vt ON vt.id = m.vehicle_type_id
        WHERE m.plan_id = :id
        ORDER BY m.day, f.code, o.code, vt.rank
    """), {"id": plan_id}))
    return PlanView(plan.id, plan.status, plan.start_date, plan.horizon_days, plan.solver_status, plan.objective,
                    plan.bound, plan.move_cost, plan.lost_sale_cost, plan.baseline_cost, plan.currency,
                    plan.demand_total, plan.lost_sales, plan.baseline_lost_sales, plan.cars_moved,
                    plan.demand_source, plan.solve_seconds, plan.settings, plan.created_at, plan.decided_at, moves)


def recent_plans(session: Session, *, limit: int = 20) -> pd.DataFrame:
    """The latest plans, newest first, for picking one to review."""
    return result_frame(session.execute(text("""
        SELECT p.id, p.status, p.start_date, p.horizon_days, p.objective, p.baseline_cost, p.currency,
               p.cars_moved, p.lost_sales, p.demand_total, p.created_at, coalesce(u.email, 'command line') AS made_by
        FROM rebalancing_plans p LEFT JOIN users u ON u.id = p.created_by
        ORDER BY p.created_at DESC, p.id DESC LIMIT :limit
    """), {"limit": limit}))


def approve_plan(session: Session, actor: Actor, plan_id: int, *, now: datetime | None = None) -> Approval:
    """Turn a proposed plan's moves into planned transfers of specific cars, chosen sensibly (see _CANDIDATES_SQL);
    a move line that cannot get all its cars gets those there are, and the shortfall is reported."""
    require_role(actor, UserRole.FLEET_MANAGER, doing="approve rebalancing plans")
    now = now or datetime.now(UTC)
    plan = _lock_plan(session, plan_id)
    if plan.status != "proposed":
        raise Conflict(f"Plan #{plan.id} was already {plan.status} on {plan.decided_at:%d %b %Y %H:%M} UTC; "
                       "make a new plan to move more cars.")
    moves = session.execute(text("""
        SELECT m.id, m.from_location_id, m.to_location_id, m.vehicle_type_id, m.night_of, m.count, m.distance_km,
               m.unit_cost, f.code AS from_code, o.code AS to_code, f.timezone, vt.code AS vehicle_type
        FROM rebalancing_moves m
        JOIN locations f ON f.id = m.from_location_id JOIN locations o ON o.id = m.to_location_id
        JOIN vehicle_types vt ON vt.id = m.vehicle_type_id
        WHERE m.plan_id = :id ORDER BY m.day, m.unit_cost, m.id
    """), {"id": plan.id}).all()
    departures = [(_departure(m.night_of, m.timezone), m) for m in moves]
    late = [m for at, m in departures if at < now]
    if late:
        raise Conflict(f"Plan #{plan.id} moves cars on the evening of {late[0].night_of:%a %d %b}, which has "
                       "passed; make a new plan from today.")
    hold = timedelta(days=int(plan.settings.get("hold_days", 2)))
    created: list[int] = []
    shortfalls: list[str] = []
    try:
        for depart_at, move in departures:
            assigned = _assign(session, actor, plan, move, depart_at, hold)
            created += assigned
            session.execute(text("UPDATE rebalancing_moves SET assigned = :n WHERE id = :id"),
                            {"n": len(assigned), "id": move.id})
            if len(assigned) < move.count:
                shortfalls.append(f"{move.vehicle_type} {move.from_code} → {move.to_code} on the night of "
                                  f"{move.night_of:%a %d %b}: {len(assigned)} of {move.count} cars (no other "
                                  f"{move.vehicle_type} at {move.from_code} is free, unbooked and not due for "
                                  "service)")
    except OperationalError as exc:  # a booking of the same car at the same moment: PostgreSQL picked us to yield
        if getattr(exc.orig, "sqlstate", None) != DEADLOCK:
            raise
        raise Conflict(f"A car of plan #{plan.id} was booked at the very moment it was being assigned; nothing was "
                       "changed — approve the plan again.") from None
    plan.status, plan.decided_by, plan.decided_at = "approved", actor.user_id, now
    session.flush()
    view = get_plan(session, plan.id)
    detail = {"transfers": len(created), "shortfalls": shortfalls}
    audit.record(session, actor, "rebalancing.approved", "rebalancing_plan", plan.id, {"status": "proposed"},
                 {"status": "approved", **detail})
    record_event(session, "rebalancing_plan", plan.id, "rebalancing.approved",
                 {"plan_id": plan.id, "transfer_ids": created, "shortfalls": shortfalls})
    return Approval(view, tuple(created), tuple(shortfalls))


def _assign(session: Session, actor: Actor, plan: RebalancingPlan, move: Any, depart_at: datetime,
            hold: timedelta) -> list[int]:
    """Transfers for up to `move.count` cars of the move line; a car taken meanwhile (the database refuses its
    transfer) makes way for the next candidate."""
    arrive_at = depart_at + transfers.drive_time(move.distance_km)
    created: list[int] = []
    tried: list[int] = []
    while len(created) < move.count:
        candidates = session.execute(text(_CANDIDATES_SQL), {
            "from": move.from_location_id, "to": move.to_location_id, "type": move.vehicle_type_id,
            "depart": depart_at, "arrive": arrive_at, "hold_until": arrive_at + hold, "tried": tried,
            "count": move.count - len(created),
        }).scalars().all()
        if not candidates:
            break
        for vehicle_id in candidates:
            tried.append(vehicle_id)
            try:
                view = transfers.schedule_transfer(
                    session, actor, vehicle_id, move.from_location_id, move.to_location_id, depart_at, arrive_at,
                    plan_id=plan.id, move_id=move.id, distance_km=move.distance_km, cost=move.unit_cost,
                    currency=plan.currency)
            except Conflict:
                continue
            created.append(view.id)
    return created


def discard_plan(session: Session, actor: Actor, plan_id: int, *, now: datetime | None = None) -> PlanView:
    """Set a proposed plan aside (it stays on record)."""
    require_role(actor, UserRole.FLEET_MANAGER, doing="discard rebalancing plans")
    plan = _lock_plan(session, plan_id)
    if plan.status != "proposed":
        raise Conflict(f"Plan #{plan.id} is {plan.status}; only a proposed plan can be discarded.")
    plan.status, plan.decided_by, plan.decided_at = "discarded", actor.user_id, now or datetime.now(UTC)
    session.flush()
    audit.record(session, actor, "rebalancing.discarded", "rebalancing_plan", plan.id, {"status": "proposed"},
                 {"status": "discarded"})
    record_event(session, "rebalancing_plan", plan.id, "rebalancing.discarded", {"plan_id": plan.id})
    return get_plan(session, plan.id)


# --- helpers --------------------------------------------------------------------------------------------------------

# Every (branch, type, day) of the horizon, with the branch's position, parking and the type's base rate.
_GRID_SQL = """
    SELECT l.id AS location_id, l.code, l.name, ST_Y(l.geog::geometry) AS lat, ST_X(l.geog::geometry) AS lon,
           l.parking_capacity, vt.id AS vehicle_type_id, vt.code AS vehicle_type, vt.rank AS vehicle_type_rank,
           vt.base_daily_rate, d.d, CAST(:start AS date) + d.d AS day
    FROM locations l CROSS JOIN vehicle_types vt CROSS JOIN generate_series(0, :days - 1) AS d(d)
"""

# The counts per (branch, type, day index, kind), each branch's days on its own clock. Periods are the rows of
# vehicle_occupancy; a period starting before day 0 counts only for its end.
_FLOWS_SQL = """
    WITH zone AS (
        SELECT l.id, l.timezone, CAST(:start AS timestamp) AT TIME ZONE l.timezone AS t0,
               CAST(CAST(:start AS date) + :days AS timestamp) AT TIME ZONE l.timezone AS t_end
        FROM locations l
    ), periods AS (
        SELECT v.vehicle_type_id, o.period,
               CASE WHEN o.booking_id IS NOT NULL THEN 'booking'
                    WHEN o.transfer_id IS NOT NULL THEN 'transfer' ELSE 'workshop' END AS kind,
               coalesce(b.pickup_location_id, t.from_location_id, v.current_location_id) AS origin,
               coalesce(b.dropoff_location_id, t.to_location_id, v.current_location_id) AS destination
        FROM vehicle_occupancy o
        JOIN vehicles v ON v.id = o.vehicle_id AND v.status <> 'retired'
        LEFT JOIN bookings b ON b.id = o.booking_id
        LEFT JOIN transfers t ON t.id = o.transfer_id
        WHERE upper(o.period) > CAST(:start AS date) - 1 AND lower(o.period) < CAST(:start AS date) + :days + 1
    ), flows AS (
        -- leaving: periods starting within the horizon
        SELECT p.origin AS location_id, p.vehicle_type_id,
               (lower(p.period) AT TIME ZONE z.timezone)::date - CAST(:start AS date) AS d,
               CASE p.kind WHEN 'booking' THEN 'booked_pickups' WHEN 'transfer' THEN 'transfer_out'
                           ELSE 'workshop_out' END AS kind
        FROM periods p JOIN zone z ON z.id = p.origin
        WHERE lower(p.period) >= z.t0 AND lower(p.period) < z.t_end
        UNION ALL
        -- coming back: periods that hold the car at day 0's start or start later, ending within the horizon
        SELECT p.destination, p.vehicle_type_id,
               greatest((upper(p.period) AT TIME ZONE z.timezone)::date - CAST(:start AS date), 0), 'returns'
        FROM periods p JOIN zone z ON z.id = p.destination
        WHERE upper(p.period) > z.t0 AND upper(p.period) < z.t_end
        UNION ALL
        -- cars on a transfer that should have arrived already: back on day 0
        SELECT t.to_location_id, v.vehicle_type_id, 0, 'returns'
        FROM transfers t JOIN vehicles v ON v.id = t.vehicle_id AND v.status = 'in_transit'
        JOIN zone z ON z.id = t.from_location_id
        WHERE t.status = 'in_transit' AND t.arrive_at <= z.t0
        UNION ALL
        -- standing free at the branch at day 0's start
        SELECT f.location_id, f.vehicle_type_id, 0, 'initial'
        FROM vehicle_free_periods f JOIN vehicles v ON v.id = f.vehicle_id AND v.status IN ('available', 'rented')
        JOIN zone z ON z.id = f.location_id
        WHERE f.period @> z.t0
        UNION ALL
        -- free at the branch the whole day
        SELECT f.location_id, f.vehicle_type_id, d.d, 'free_cars'
        FROM vehicle_free_periods f JOIN vehicles v ON v.id = f.vehicle_id AND v.status IN ('available', 'rented')
        JOIN zone z ON z.id = f.location_id
        CROSS JOIN generate_series(0, :days - 1) AS d(d)
        WHERE f.period @> tstzrange(CAST(CAST(:start AS date) + d.d AS timestamp) AT TIME ZONE z.timezone,
                                    CAST(CAST(:start AS date) + d.d + 1 AS timestamp) AT TIME ZONE z.timezone)
        UNION ALL
        -- in the workshop some time that day (a block, or in maintenance with no end known)
        SELECT v.current_location_id, v.vehicle_type_id, d.d, 'in_maintenance'
        FROM vehicles v JOIN zone z ON z.id = v.current_location_id
        CROSS JOIN generate_series(0, :days - 1) AS d(d)
        WHERE v.status = 'maintenance' OR EXISTS (
            SELECT 1 FROM maintenance_blocks m
            WHERE m.vehicle_id = v.id AND m.status IN ('scheduled', 'in_progress')
              AND m.period && tstzrange(CAST(CAST(:start AS date) + d.d AS timestamp) AT TIME ZONE z.timezone,
                                        CAST(CAST(:start AS date) + d.d + 1 AS timestamp) AT TIME ZONE z.timezone))
    )
    SELECT location_id, vehicle_type_id, d, kind, count(*)::int AS n
    FROM flows WHERE d BETWEEN 0 AND :days - 1
    GROUP BY 1, 2, 3, 4
"""

# The cars of the type standing free at the origin from departure to arrival, and then still free for hold_days
# (or free until a booking that picks up at the destination, or never booked again); not due for service by the
# night of the move; not locked by a concurrent approval. Cars whose next pick-up is at the destination first, then
# those with nothing booked, then the longest free, the least worn and the fullest.
_CANDIDATES_SQL = """
    SELECT v.id
    FROM vehicle_free_periods p
    JOIN vehicles v ON v.id = p.vehicle_id
    JOIN vehicle_types vt ON vt.id = v.vehicle_type_id
    WHERE p.location_id = :from AND p.vehicle_type_id = :type
      AND v.status IN ('available', 'rented') AND NOT (v.id = ANY (CAST(:tried AS integer[])))
      AND p.period @> tstzrange(:depart, :arrive)
      AND (upper_inf(p.period) OR p.next_pickup_location_id = :to OR upper(p.period) >= :hold_until)
      AND greatest((v.odometer_km - coalesce(v.last_service_km, 0))::float8 / vt.service_interval_km,
                   extract(epoch FROM CAST(:depart AS timestamptz) - coalesce(v.last_service_at, v.created_at))
                       / 86400 / vt.service_interval_days) < 1
    ORDER BY p.next_pickup_location_id = :to DESC NULLS LAST, upper_inf(p.period) DESC, upper(p.period) DESC,
             v.odometer_km - coalesce(v.last_service_km, 0), v.fuel_level DESC, v.id
    LIMIT :count
    FOR UPDATE OF v SKIP LOCKED
"""


def _pivot(flows: pd.DataFrame) -> pd.DataFrame:
    if flows.empty:
        return pd.DataFrame(columns=["location_id", "vehicle_type_id", "d"])
    wide = flows.pivot_table(index=["location_id", "vehicle_type_id", "d"], columns="kind", values="n",
                             aggfunc="sum", fill_value=0).reset_index()
    wide.columns.name = None
    return wide


def _without_moves(initial: np.ndarray, returns: np.ndarray, demand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """If no car is moved, each branch serves what it has, day by day: the sales lost and the cars left at the end
    of each day, per [branch, class, day]."""
    lost, left = np.zeros_like(demand), np.zeros_like(demand)
    carry = initial.astype(np.int64).copy()
    for d in range(demand.shape[2]):
        available = carry + returns[:, :, d]
        served = np.minimum(available, demand[:, :, d])
        lost[:, :, d] = demand[:, :, d] - served
        left[:, :, d] = carry = available - served
    return lost, left


def _ids(session: Session) -> dict[str, dict[str, int]]:
    return {"branch": {code: id_ for code, id_ in session.execute(text("SELECT code, id FROM locations"))},
            "type": {code: id_ for code, id_ in session.execute(text("SELECT code, id FROM vehicle_types"))}}


def _lock_plan(session: Session, plan_id: int) -> RebalancingPlan:
    """The plan's row, locked; a second approval of the same plan at the same moment is refused, not queued."""
    try:
        with session.begin_nested():
            plan = session.scalars(select(RebalancingPlan).where(RebalancingPlan.id == plan_id)
                                   .with_for_update(nowait=True).execution_options(populate_existing=True)).first()
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        raise Conflict(f"Plan #{plan_id} is being approved or discarded by someone else right now; wait a moment "
                       "and look at it again.") from None
    if plan is None:
        raise NotFound(f"There is no rebalancing plan #{plan_id}; make a new plan.")
    return plan


def _departure(night_of: date, zone: str) -> datetime:
    return datetime.combine(night_of, NIGHT_DEPARTURE, ZoneInfo(zone)).astimezone(UTC)


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _pct(part: int, whole: int) -> float:
    return 100.0 if whole == 0 else round(100.0 * part / whole, 1)


def _summary(view: PlanView) -> dict[str, Any]:
    return {"start_date": view.start_date, "horizon_days": view.horizon_days, "objective": view.objective,
            "baseline_cost": view.baseline_cost, "cars_moved": view.cars_moved, "lost_sales": view.lost_sales,
            "baseline_lost_sales": view.baseline_lost_sales, "demand_total": view.demand_total,
            "currency": view.currency, "solver_status": view.solver_status, "demand_source": view.demand_source}
