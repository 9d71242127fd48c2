"""Overnight rebalancing of the fleet between branches: a min-cost flow on a time-expanded network.

Each class is its own flow: cars enter as the initial stock and as returns, move or stay overnight, serve demand
(or the sale is lost at a price) and stay on hand for the next day. Without shared limits the classes are
independent flows solved exactly by SimpleMinCostFlow; parking capacity and the nightly cap on moves out of a
branch tie the classes together, and then the same network is solved as a MIP (SCIP), whose dual bound is reported.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from ortools.graph.python import min_cost_flow
from ortools.linear_solver import pywraplp

EARTH_RADIUS_KM = 6371.0
CENTS = 100  # costs are solved in integer cents

_STAY, _MOVE, _CARRY, _SERVE, _LOST, _SPARE = range(6)


@dataclass(frozen=True, eq=False)
class RebalanceInstance:
    """Counts are int64 arrays indexed [branch, class] or [branch, class, day]; costs in money units."""

    horizon_days: int
    classes: tuple[str, ...]
    branch_ids: tuple[str, ...]
    lat: np.ndarray
    lon: np.ndarray
    capacity: np.ndarray  # float, np.inf where a branch has no parking limit
    initial: np.ndarray
    returns: np.ndarray
    demand: np.ndarray
    lost_sale_cost: np.ndarray
    move_cost_per_km: float
    move_fixed_cost: float
    max_move_km: float
    max_moves_out: int | None


@dataclass(frozen=True, eq=False)
class RebalancePlan:
    """`moves` rows are (from, to, class, day, count) and `lost_sales` rows (branch, class, day, count), as indices."""

    status: str  # "optimal" | "feasible" | "infeasible" | "unknown" (time limit reached before any plan)
    objective: float | None
    bound: float | None
    moves: np.ndarray
    lost_sales: np.ndarray
    branch_ids: tuple[str, ...]
    classes: tuple[str, ...]
    solve_seconds: float
    demand_total: int
    reason: str | None = None

    @property
    def cars_moved(self) -> int:
        return int(self.moves[:, 4].sum()) if len(self.moves) else 0

    @property
    def demand_covered_pct(self) -> float | None:
        if self.status not in ("optimal", "feasible"):
            return None
        if self.demand_total == 0:
            return 100.0
        lost = int(self.lost_sales[:, 3].sum()) if len(self.lost_sales) else 0
        return round(100.0 * (self.demand_total - lost) / self.demand_total, 2)


# ---------------------------------------------------------------- parsing


def parse_instance(data: dict[str, Any]) -> RebalanceInstance:
    """Check a rebalancing instance read from JSON; ValueError with one line naming the first problem."""
    if not isinstance(data, dict):
        raise ValueError("the instance must be a JSON object")
    horizon = _count(data.get("horizon_days"), "horizon_days")
    if horizon < 1:
        raise ValueError("horizon_days must be at least 1")
    classes = data.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
        raise ValueError("classes must be a non-empty list of class names")
    if len(set(classes)) != len(classes):
        raise ValueError(f"duplicate class {_first_duplicate(classes)!r} in classes")
    branch_ids, lat, lon, capacity = _branches(data.get("branches"))
    branch_index = {b: i for i, b in enumerate(branch_ids)}
    class_index = {c: i for i, c in enumerate(classes)}
    shape = (len(branch_ids), len(classes), horizon)
    initial = _counts(data.get("initial", []), "initial", branch_index, class_index, shape[:2], horizon=None)
    returns = _counts(data.get("returns", []), "returns", branch_index, class_index, shape, horizon)
    demand = _counts(data.get("demand", []), "demand", branch_index, class_index, shape, horizon)
    lost_cost = data.get("lost_sale_cost")
    if not isinstance(lost_cost, dict):
        raise ValueError("lost_sale_cost is missing: give an object with a cost for every class")
    for name in lost_cost:
        if name not in class_index:
            raise ValueError(f"lost_sale_cost names unknown class {name!r}")
    missing = [c for c in classes if c not in lost_cost]
    if missing:
        raise ValueError(f"lost_sale_cost has no cost for class {missing[0]!r}")
    max_moves_out = data.get("max_moves_out")
    return RebalanceInstance(
        horizon_days=horizon,
        classes=tuple(classes),
        branch_ids=branch_ids,
        lat=lat,
        lon=lon,
        capacity=capacity,
        initial=initial,
        returns=returns,
        demand=demand,
        lost_sale_cost=np.array([_amount(lost_cost[c], f"lost_sale_cost[{c!r}]") for c in classes]),
        move_cost_per_km=_amount(data.get("move_cost_per_km"), "move_cost_per_km"),
        move_fixed_cost=_amount(data.get("move_fixed_cost"), "move_fixed_cost"),
        max_move_km=_amount(data.get("max_move_km"), "max_move_km"),
        max_moves_out=None if max_moves_out is None else _count(max_moves_out, "max_moves_out"),
    )


def _branches(raw: Any) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("branches must be a non-empty list")
    ids: list[str] = []
    lat, lon, capacity = [], [], []
    for k, branch in enumerate(raw):
        if not isinstance(branch, dict) or not isinstance(branch.get("id"), str) or not branch["id"]:
            raise ValueError(f"branches[{k}] needs an id")
        bid = branch["id"]
        if bid in ids:
            raise ValueError(f"duplicate branch id {bid!r}")
        ids.append(bid)
        la, lo = _number(branch.get("lat"), f"lat of branch {bid}"), _number(branch.get("lon"), f"lon of branch {bid}")
        if not -90 <= la <= 90 or not -180 <= lo <= 180:
            raise ValueError(f"branch {bid} has coordinates off the globe ({la}, {lo})")
        lat.append(la)
        lon.append(lo)
        cap = branch.get("capacity")
        capacity.append(np.inf if cap is None else _count(cap, f"capacity of branch {bid}"))
    return tuple(ids), np.array(lat), np.array(lon), np.array(capacity, dtype=float)


def _counts(raw: Any, field: str, branch_index: dict[str, int], class_index: dict[str, int],
            shape: tuple[int, ...], horizon: int | None) -> np.ndarray:
    if not isinstance(raw, list):
        raise ValueError(f"{field} must be a list")
    out = np.zeros(shape, dtype=np.int64)
    for k, entry in enumerate(raw):
        where = f"{field}[{k}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be an object")
        if entry.get("branch") not in branch_index:
            raise ValueError(f"{where} names unknown branch {entry.get('branch')!r}")
        if entry.get("class") not in class_index:
            raise ValueError(f"{where} names unknown class {entry.get('class')!r}")
        index: tuple[int, ...] = (branch_index[entry["branch"]], class_index[entry["class"]])
        if horizon is not None:
            day = _count(entry.get("day"), f"day of {where}")
            if day >= horizon:
                raise ValueError(f"{where} has day {day}, outside the horizon 0..{horizon - 1}")
            index += (day,)
        out[index] += _count(entry.get("count"), f"count of {where}")
    return out


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} is missing or not a number" if value is None else f"{name} must be a number")
    return float(value)


def _amount(value: Any, name: str) -> float:
    if value is None:
        raise ValueError(f"{name} is missing")
    amount = _number(value, name)
    if amount < 0:
        raise ValueError(f"{name} must not be negative")
    return amount


def _count(value: Any, name: str) -> int:
    if value is None:
        raise ValueError(f"{name} is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number")
    if value < 0:
        raise ValueError(f"{name} must not be negative (got {value})")
    return value


def _first_duplicate(items: list[str]) -> str:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return ""


# ---------------------------------------------------------------- geometry


def haversine_km(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The matrix of great-circle distances between the points, in km."""
    phi, lam = np.radians(lat), np.radians(lon)
    dphi = phi[:, None] - phi[None, :]
    dlam = lam[:, None] - lam[None, :]
    a = np.sin(dphi / 2) ** 2 + np.cos(phi[:, None]) * np.cos(phi[None, :]) * np.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def move_lanes(instance: RebalanceInstance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The allowed (from, to) branch pairs and the cost of one move on each, in integer cents."""
    dist = haversine_km(instance.lat, instance.lon)
    src, dst = np.nonzero((dist <= instance.max_move_km) & ~np.eye(len(dist), dtype=bool))
    cost = np.rint((instance.move_fixed_cost + instance.move_cost_per_km * dist[src, dst]) * CENTS).astype(np.int64)
    return src, dst, cost


# ---------------------------------------------------------------- the network


@dataclass(frozen=True, eq=False)
class _Network:
    """All classes as disjoint copies of one time-expanded network; arc arrays are aligned."""

    tail: np.ndarray
    head: np.ndarray
    capacity: np.ndarray
    cost: np.ndarray
    kind: np.ndarray
    branch: np.ndarray  # the branch an arc leaves (stay, move, serve, lost: the branch of the demand)
    to_branch: np.ndarray
    klass: np.ndarray
    day: np.ndarray
    supply: np.ndarray


def _build_network(instance: RebalanceInstance) -> _Network:
    n_b, n_c, n_d = instance.demand.shape
    src, dst, move_cost = move_lanes(instance)
    per_class = 3 * n_d * n_b + 2
    arcs: dict[str, list[np.ndarray]] = {k: [] for k in ("tail", "head", "cap", "cost", "kind", "b", "to", "c", "d")}
    supply = np.zeros(n_c * per_class, dtype=np.int64)
    days_b = np.repeat(np.arange(n_d), n_b)
    branches_b = np.tile(np.arange(n_b), n_d)
    days_l = np.repeat(np.arange(n_d), len(src))

    def add(kind, tail, head, cap, cost, b, to, c, d):
        size = len(tail)
        for key, value in (("tail", tail), ("head", head), ("cap", cap), ("cost", cost), ("b", b), ("to", to),
                           ("d", d)):
            arcs[key].append(np.broadcast_to(np.asarray(value, dtype=np.int64), (size,)))
        arcs["kind"].append(np.full(size, kind, dtype=np.int64))
        arcs["c"].append(np.full(size, c, dtype=np.int64))

    for c in range(n_c):
        base = c * per_class
        start = base + days_b * n_b + branches_b  # S[b, d]: on hand before the night's moves
        avail = start + n_d * n_b  # A[b, d]: after moves and returns
        want = start + 2 * n_d * n_b  # W[b, d]: the demand, met by a car or lost
        lost_source, sink = base + 3 * n_d * n_b, base + 3 * n_d * n_b + 1
        demand = instance.demand[:, c, :].T.ravel()
        big = int(instance.initial[:, c].sum() + instance.returns[:, c, :].sum())
        add(_STAY, start, avail, big, 0, branches_b, branches_b, c, days_b)
        lane_start = base + days_l * n_b + np.tile(src, n_d)
        lane_avail = base + n_d * n_b + days_l * n_b + np.tile(dst, n_d)
        add(_MOVE, lane_start, lane_avail, big, np.tile(move_cost, n_d), np.tile(src, n_d), np.tile(dst, n_d), c,
            days_l)
        carry_head = np.where(days_b < n_d - 1, start + n_b, sink)
        add(_CARRY, avail, carry_head, big, 0, branches_b, branches_b, c, days_b)
        add(_SERVE, avail, want, demand, 0, branches_b, branches_b, c, days_b)
        add(_LOST, np.full(len(want), lost_source), want, demand, int(round(instance.lost_sale_cost[c] * CENTS)),
            branches_b, branches_b, c, days_b)
        add(_SPARE, [lost_source], [sink], int(demand.sum()), 0, [-1], [-1], c, [-1])
        supply[start[:n_b]] += instance.initial[:, c]
        supply[avail] += instance.returns[:, c, :].T.ravel()
        supply[want] -= demand
        supply[lost_source] += int(demand.sum())
        supply[sink] -= big
    cat = {key: np.concatenate(values) for key, values in arcs.items()}
    return _Network(cat["tail"], cat["head"], cat["cap"], cat["cost"], cat["kind"], cat["b"], cat["to"], cat["c"],
                    cat["d"], supply)


# ---------------------------------------------------------------- solving


def plan_rebalancing(instance: RebalanceInstance, *, time_limit_s: float) -> RebalancePlan:
    """The cheapest overnight moves for the horizon (moves plus lost sales), or why there is none."""
    if not time_limit_s > 0:
        raise ValueError("time_limit_s must be positive")
    started = time.perf_counter()
    network = _build_network(instance)
    coupled = bool(np.isfinite(instance.capacity).any()) or instance.max_moves_out is not None
    if coupled:
        status, flows, objective, bound = _solve_mip(network, instance, time_limit_s)
    else:
        status, flows, objective, bound = _solve_flow(network)
    seconds = time.perf_counter() - started
    empty = np.zeros((0, 5), dtype=np.int64)
    demand_total = int(instance.demand.sum())
    if flows is None:
        reason = _infeasible_reason(instance) if status == "infeasible" else (
            f"no plan was found within the time limit of {time_limit_s:g} s; allow more time")
        return RebalancePlan(status, None, None, empty, empty[:, :4], instance.branch_ids, instance.classes, seconds,
                             demand_total, reason)
    used = flows > 0
    moved = used & (network.kind == _MOVE)
    lost = used & (network.kind == _LOST)
    moves = np.column_stack([network.branch[moved], network.to_branch[moved], network.klass[moved],
                             network.day[moved], flows[moved]])
    lost_sales = np.column_stack([network.branch[lost], network.klass[lost], network.day[lost], flows[lost]])
    return RebalancePlan(status, objective / CENTS, None if bound is None else bound / CENTS,
                         moves[np.lexsort(moves[:, [0, 1, 2, 3]].T[::-1])],
                         lost_sales[np.lexsort(lost_sales[:, [0, 1, 2]].T[::-1])],
                         instance.branch_ids, instance.classes, seconds, demand_total)


def _solve_flow(network: _Network) -> tuple[str, np.ndarray | None, int, int | None]:
    solver = min_cost_flow.SimpleMinCostFlow()
    arcs = solver.add_arcs_with_capacity_and_unit_cost(network.tail, network.head, network.capacity, network.cost)
    solver.set_nodes_supplies(np.arange(len(network.supply)), network.supply)
    status = solver.solve()
    if status != solver.OPTIMAL:  # the network always has a plan (keep the cars, lose the sales)
        raise RuntimeError(f"min-cost flow ended with status {status}")
    cost = int(solver.optimal_cost())
    return "optimal", np.asarray(solver.flows(arcs), dtype=np.int64), cost, cost


def _solve_mip(network: _Network, instance: RebalanceInstance,
               time_limit_s: float) -> tuple[str, np.ndarray | None, int, int | None]:
    solver = pywraplp.Solver.CreateSolver("SCIP")
    x = [solver.IntVar(0, int(cap), "") for cap in network.capacity]
    outgoing: list[list[int]] = [[] for _ in network.supply]
    incoming: list[list[int]] = [[] for _ in network.supply]
    for a, (t, h) in enumerate(zip(network.tail.tolist(), network.head.tolist(), strict=True)):
        outgoing[t].append(a)
        incoming[h].append(a)
    for node, supply in enumerate(network.supply.tolist()):
        solver.Add(sum(x[a] for a in outgoing[node]) - sum(x[a] for a in incoming[node]) == supply)
    parked = np.flatnonzero((network.kind == _STAY) | (network.kind == _MOVE))
    n_b = len(instance.branch_ids)
    for b in np.flatnonzero(np.isfinite(instance.capacity)).tolist():
        arriving = parked[network.to_branch[parked] == b]
        for d in range(instance.horizon_days):
            solver.Add(sum(x[a] for a in arriving[network.day[arriving] == d].tolist())
                       <= int(instance.capacity[b]))
    if instance.max_moves_out is not None:
        moves = np.flatnonzero(network.kind == _MOVE)
        key = network.branch[moves] * instance.horizon_days + network.day[moves]
        for group in range(n_b * instance.horizon_days):
            members = moves[key == group].tolist()
            if members:
                solver.Add(sum(x[a] for a in members) <= instance.max_moves_out)
    priced = np.flatnonzero(network.cost).tolist()
    solver.Minimize(sum(int(network.cost[a]) * x[a] for a in priced))
    solver.SetTimeLimit(max(1, int(time_limit_s * 1000)))
    status = solver.Solve()
    if status == pywraplp.Solver.INFEASIBLE:
        return "infeasible", None, 0, None
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return "unknown", None, 0, None
    flows = np.rint([v.solution_value() for v in x]).astype(np.int64)
    objective = int(flows @ network.cost)
    if status == pywraplp.Solver.OPTIMAL:
        return "optimal", flows, objective, objective
    # every cost is whole cents, so the dual bound rounds up to a whole cent
    bound = min(objective, math.ceil(solver.Objective().BestBound() - 1e-6))
    return "feasible", flows, objective, bound


def _infeasible_reason(instance: RebalanceInstance) -> str:
    on_hand = int(instance.initial.sum())
    if np.isfinite(instance.capacity).all() and on_hand > instance.capacity.sum():
        return (f"the {on_hand} cars on hand on day 0 do not fit the total parking capacity of "
                f"{int(instance.capacity.sum())}; raise capacities or start with fewer cars")
    over = np.flatnonzero(instance.initial.sum(axis=1) > instance.capacity)
    where = f" (branch {instance.branch_ids[over[0]]} starts over its capacity)" if len(over) else ""
    return ("no plan keeps every branch within its parking capacity" + where +
            "; raise capacities, max_moves_out or max_move_km")


def plan_to_dict(plan: RebalancePlan) -> dict[str, Any]:
    """The plan as the JSON document of `fleetdesk optimise rebalance`."""
    b, c = plan.branch_ids, plan.classes
    out: dict[str, Any] = {
        "status": plan.status,
        "objective": None if plan.objective is None else round(plan.objective, 2),
        "bound": None if plan.bound is None else round(plan.bound, 2),
        "moves": [{"from": b[f], "to": b[t], "class": c[k], "day": int(d), "count": int(n)}
                  for f, t, k, d, n in plan.moves.tolist()],
        "lost_sales": [{"branch": b[f], "class": c[k], "day": int(d), "count": int(n)}
                       for f, k, d, n in plan.lost_sales.tolist()],
        "stats": {"solve_seconds": round(plan.solve_seconds, 3), "cars_moved": plan.cars_moved,
                  "demand_covered_pct": plan.demand_covered_pct},
    }
    if plan.reason:
        out["reason"] = plan.reason
    return out
