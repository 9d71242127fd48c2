"""Overnight rebalancing of the fleet between branches: a min-cost flow on a time-expanded network.

Each class is its own flow: cars enter as the initial stock and as returns, move or stay overnight, serve demand
(or the sale is lost at a price) and stay on hand for the next day. Without shared limits the classes are
independent flows, solved exactly by SimpleMinCostFlow side by side. A big instance has millions of (night, lane)
arcs, so each class starts with its nearest lanes and the rest are priced out: the node potentials of the optimal
flow give every other arc a reduced cost, arcs with a negative one join, and when none is left the flow is
optimal over all of them. Parking capacity and the nightly cap on moves out of a branch tie the classes together:
small instances go whole to a MIP (SCIP); big ones get an LP/MIP over the lanes worth considering, and a
Lagrangian bound over every lane (each class again a priced-out min-cost flow) proves how close the plan is.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np
from ortools.graph.python import min_cost_flow
from ortools.linear_solver import pywraplp

from services.optimise import fields

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
    first_move_day: int = 0  # no car moves on the nights before days 0 … first_move_day - 1 (they have passed)


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
    horizon = fields.whole(data.get("horizon_days"), "horizon_days")
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
    first_move_day = fields.whole(data.get("first_move_day", 0), "first_move_day")
    if first_move_day > horizon:
        raise ValueError(f"first_move_day {first_move_day} is past the horizon 0..{horizon - 1}; give at most "
                         f"{horizon} (no moves at all)")
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
        lost_sale_cost=np.array([fields.non_negative(lost_cost[c], f"lost_sale_cost[{c!r}]") for c in classes]),
        move_cost_per_km=fields.non_negative(data.get("move_cost_per_km"), "move_cost_per_km"),
        move_fixed_cost=fields.non_negative(data.get("move_fixed_cost"), "move_fixed_cost"),
        max_move_km=fields.non_negative(data.get("max_move_km"), "max_move_km"),
        max_moves_out=None if max_moves_out is None else fields.whole(max_moves_out, "max_moves_out"),
        first_move_day=first_move_day,
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
        la, lo = fields.number(branch.get("lat"), f"lat of branch {bid}"), fields.number(branch.get("lon"), f"lon of branch {bid}")
        if not -90 <= la <= 90 or not -180 <= lo <= 180:
            raise ValueError(f"branch {bid} has coordinates off the globe ({la}, {lo})")
        lat.append(la)
        lon.append(lo)
        cap = branch.get("capacity")
        capacity.append(np.inf if cap is None else fields.whole(cap, f"capacity of branch {bid}"))
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
            day = fields.whole(entry.get("day"), f"day of {where}")
            if day >= horizon:
                raise ValueError(f"{where} has day {day}, outside the horizon 0..{horizon - 1}")
            index += (day,)
        out[index] += fields.whole(entry.get("count"), f"count of {where}")
    return out








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
    nights = n_d - instance.first_move_day  # the nights a car may move on: before days first_move_day …
    days_l = np.repeat(np.arange(instance.first_move_day, n_d), len(src))

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
        lane_start = base + days_l * n_b + np.tile(src, nights)
        lane_avail = base + n_d * n_b + days_l * n_b + np.tile(dst, nights)
        add(_MOVE, lane_start, lane_avail, big, np.tile(move_cost, nights), np.tile(src, nights),
            np.tile(dst, nights), c, days_l)
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


# ---------------------------------------------------------------- pricing out: exact flows over a few lanes


FULL_MIP_MOVE_ARCS = 20_000  # with shared limits, instances up to this size go whole to the exact MIP
NEAR_SLACK = 300  # cents: with shared limits, lanes this close to paying off are offered to the MIP
CROWDED_LANES = 3  # and the nearest few out of every branch that comes near a shared limit
MAX_COUPLED_ROUNDS = 4  # LP, bound, more lanes: rounds of it before settling for the best plan and bound
NEAREST_LANES = 5  # lanes per branch handed to the solver at first; the rest are priced out
PRICING_SLACK = 3000  # cents: arcs this close to paying off join the solver's network before they do
NO_MOVE = np.iinfo(np.int64).max // 4  # the cost of a move on a night that has passed: never worth offering


@dataclass(frozen=True, eq=False)
class _Lanes:
    """Every allowed (from, to) pair with the cost of one move in cents, and the first few per branch."""

    src: np.ndarray
    dst: np.ndarray
    cost: np.ndarray
    nearest: np.ndarray  # indices of the lanes every class starts with


def _lanes(instance: RebalanceInstance, per_branch: int = NEAREST_LANES) -> _Lanes:
    src, dst, cost = move_lanes(instance)
    # the lanes come sorted by source; rank them by cost within each source and keep the cheapest few
    order = np.lexsort((cost, src))
    first = np.searchsorted(src[order], src[order], side="left")
    rank = np.arange(len(order)) - first
    return _Lanes(src, dst, cost, np.sort(order[rank < per_branch]))


@dataclass(frozen=True, eq=False)
class _ClassFlow:
    """One class's optimal flow: moves as (lane, night, count); cars kept and served as [day, branch]."""

    lane: np.ndarray
    day: np.ndarray
    count: np.ndarray
    kept: np.ndarray
    served: np.ndarray
    cost: int  # moves plus lost sales plus any Lagrangian prices, in cents
    rounds: int
    arcs: int
    near: np.ndarray  # (night, lane) arcs whose reduced cost is under NEAR_SLACK: the ones worth a second look
    active: np.ndarray  # the (night, lane) arcs the solver was given in the end


@dataclass(frozen=True, eq=False)
class _ClassNetwork:
    """One class's time-expanded network over the (night, lane) arcs in `active`.

    Nodes: the stock of each branch before day 0's moves, the cars available at each branch on each day, a sink.
    Arcs, in this order: keep [day, branch] (the stock stays for the day), serve [day, branch] (a car meets a
    demand, at minus the lost-sale cost), end (cars no longer needed leave), then one move arc per active
    (night, lane). `constant` (the cost of losing every sale) plus the flow's cost is the class's cost.
    """

    tail: np.ndarray
    head: np.ndarray
    capacity: np.ndarray
    cost: np.ndarray
    supply: np.ndarray
    day: np.ndarray
    lane: np.ndarray
    n_fixed: int
    before: np.ndarray  # [night, branch]: the node a car leaves from on that night
    avail: np.ndarray  # [day, branch]: the node of the cars available that day
    lane_cost: np.ndarray  # [night, lane], prices included; NO_MOVE on nights that have passed
    constant: int


def _class_network(instance: RebalanceInstance, c: int, lanes: _Lanes, active: np.ndarray, *,
                   park_price: np.ndarray | None = None, out_price: np.ndarray | None = None,
                   leave_early: bool = True) -> _ClassNetwork:
    n_b, _, n_d = instance.demand.shape
    zero = np.zeros((n_d, n_b), dtype=np.int64)
    park = zero if park_price is None else park_price
    out = zero if out_price is None else out_price
    before = np.arange(n_d * n_b).reshape(n_d, n_b)
    before[1:] = n_b + np.arange((n_d - 1) * n_b).reshape(n_d - 1, n_b)
    avail = n_b + np.arange(n_d * n_b).reshape(n_d, n_b)
    sink = n_b * (n_d + 1)
    demand = instance.demand[:, c, :].T
    supply = np.zeros(sink + 1, dtype=np.int64)
    supply[:n_b] = instance.initial[:, c]
    supply[n_b:sink] = instance.returns[:, c, :].T.ravel()
    supply[sink] = -supply[:sink].sum()
    big = max(1, int(supply[:sink].sum()))
    lost_cents = int(round(instance.lost_sale_cost[c] * CENTS))
    # a car never used again may as well leave at once, paying the parking prices of the days it would have
    # stood idle: an end arc on every day gives the same optimum and spares the solver pushing idle cars down
    # long chains of keep arcs. (A model that limits parking needs the keep arcs to count every car: no early end.)
    idle = np.zeros((n_d, n_b), dtype=np.int64)
    idle[:-1] = np.cumsum(park[::-1], axis=0)[::-1][1:]
    ends = avail.ravel() if leave_early else avail[-1]
    end_cost = idle.ravel() if leave_early else idle[-1]
    lane_cost = lanes.cost[None, :] + out[:, lanes.src] + park[:, lanes.dst]
    if instance.first_move_day:  # nights that have passed carry no arc; their cost keeps pricing from offering them
        lane_cost[:instance.first_move_day] = NO_MOVE
        active = active[active >= instance.first_move_day * len(lanes.src)]  # flat night * lanes + lane
    day, lane = np.divmod(active, len(lanes.src))
    tail = np.concatenate([before.ravel(), avail.ravel(), ends, before[day, lanes.src[lane]]])
    head = np.concatenate([avail.ravel(), np.full(n_d * n_b + len(ends), sink), avail[day, lanes.dst[lane]]])
    capacity = np.concatenate([np.full(n_d * n_b, big), demand.ravel(), np.full(len(ends) + len(active), big)])
    cost = np.concatenate([park.ravel(), np.full(n_d * n_b, -lost_cents), end_cost, lane_cost[day, lane]])
    return _ClassNetwork(tail, head, capacity, cost, supply, day, lane, 2 * n_d * n_b + len(ends), before, avail,
                         lane_cost, lost_cents * int(demand.sum()))


def _solve_class(instance: RebalanceInstance, c: int, lanes: _Lanes, *, start_arcs: np.ndarray | None = None,
                 park_price: np.ndarray | None = None, out_price: np.ndarray | None = None) -> _ClassFlow:
    """The exact min-cost flow of class c over all allowed lanes, handing the solver only the lanes it needs.

    Moves are priced out: the solver sees a subset of the (night, lane) arcs; the node potentials of its optimal
    flow give every other arc a reduced cost, and arcs with a negative one are added until there is none, which
    proves the flow optimal over all of them. `park_price` [day, branch] is added to every car parked at a branch
    after the night's moves and `out_price` [day, branch] to every car moved out (Lagrangian prices of the shared
    limits), in cents.
    """
    n_b, _, n_d = instance.demand.shape
    # all (night, lane) arcs as one flat index night * lanes + lane
    active = (np.arange(n_d)[:, None] * len(lanes.src) + lanes.nearest[None, :]).ravel()
    if start_arcs is not None:
        active = np.union1d(active, start_arcs)
    rounds = 0
    while True:
        rounds += 1
        net = _class_network(instance, c, lanes, active, park_price=park_price, out_price=out_price)
        solver = min_cost_flow.SimpleMinCostFlow()
        arcs = solver.add_arcs_with_capacity_and_unit_cost(net.tail, net.head, net.capacity, net.cost)
        solver.set_nodes_supplies(np.arange(len(net.supply)), net.supply)
        status = solver.solve()
        if status != solver.OPTIMAL:  # keeping every car where it is and losing the sales is always a plan
            raise RuntimeError(f"min-cost flow ended with status {status}")
        flow = np.asarray(solver.flows(arcs), dtype=np.int64)
        dist = _potentials(len(net.supply), net.tail, net.head, net.capacity, net.cost, flow)
        reduced = net.lane_cost + dist[net.before][:, lanes.src] - dist[net.avail][:, lanes.dst]
        if not (reduced < 0).any():
            break
        # arcs that are nearly worth it now tend to be worth it once the flow shifts: add them in one go
        active = np.union1d(active, np.flatnonzero(reduced.ravel() < PRICING_SLACK))
    moves = flow[net.n_fixed:]
    moved = np.flatnonzero(moves)
    size = n_d * n_b
    return _ClassFlow(net.lane[moved], net.day[moved], moves[moved], flow[:size].reshape(n_d, n_b),
                      flow[size:2 * size].reshape(n_d, n_b), int(solver.optimal_cost()) + net.constant, rounds,
                      len(net.cost), np.flatnonzero(reduced.ravel() < NEAR_SLACK), active)


def _potentials(n_nodes: int, tail: np.ndarray, head: np.ndarray, cap: np.ndarray, cost: np.ndarray,
                flow: np.ndarray) -> np.ndarray:
    """Shortest-path distances in the residual network of an optimal flow (a dual solution: no arc left in the
    residual network has a negative reduced cost), by Bellman-Ford relaxing only from nodes that just improved."""
    forward, backward = flow < cap, flow > 0
    u = np.concatenate([tail[forward], head[backward]])
    v = np.concatenate([head[forward], tail[backward]])
    w = np.concatenate([cost[forward], -cost[backward]])
    order = np.argsort(u, kind="stable")
    u, v, w = u[order], v[order], w[order]
    indptr = np.zeros(n_nodes + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(np.bincount(u, minlength=n_nodes))
    dist = np.zeros(n_nodes, dtype=np.int64)  # as if from a root joined to every node by a free arc
    frontier = np.arange(n_nodes)
    for _ in range(n_nodes + 1):
        starts = indptr[frontier]
        counts = indptr[frontier + 1] - starts
        total = int(counts.sum())
        if total == 0:
            return dist
        edges = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)
        candidate = dist[u[edges]] + w[edges]
        heads = v[edges]
        better = candidate < dist[heads]
        if not better.any():
            return dist
        np.minimum.at(dist, heads[better], candidate[better])
        frontier = np.unique(heads[better])
    raise RuntimeError("the residual network has a negative cycle: the flow was not optimal")


# ---------------------------------------------------------------- solving


Progress = Callable[[float, str], None]


def plan_rebalancing(instance: RebalanceInstance, *, time_limit_s: float, method: str = "auto",
                     progress: Progress | None = None, processes: bool = False) -> RebalancePlan:
    """The cheapest overnight moves for the horizon (moves plus lost sales), or why there is none.

    `method` "priced" solves each class as a min-cost flow over a few lanes and prices the rest out (exact); with
    shared limits it solves a MIP over the lanes worth considering and proves its gap with a Lagrangian bound over
    all lanes. "full" hands every allowed lane to one solver (exact, slow on big instances). "auto" prices out,
    except that small instances with shared limits go to the exact MIP. `progress(fraction, message)`, if given,
    hears how far the solve has got, always on the calling thread. Without shared limits the answer is exact
    whatever the time limit; with them the time limit ends the search for a better plan or bound.
    `processes` lets a big instance's classes be solved in worker processes (see `_solve_classes`): for a caller
    whose `__main__` can be imported again safely, such as the `fleetdesk` command — not a Streamlit page.
    """
    if not time_limit_s > 0:
        raise ValueError("time_limit_s must be positive")
    if method not in ("auto", "priced", "full"):
        raise ValueError(f"method must be auto, priced or full, not {method!r}")
    started = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    coupled = bool(np.isfinite(instance.capacity).any()) or instance.max_moves_out is not None
    n_b, n_c, n_d = instance.demand.shape
    if method == "full" or (method == "auto" and coupled
                            and n_c * n_d * len(move_lanes(instance)[0]) <= FULL_MIP_MOVE_ARCS):
        report(0.0, "solving the whole network")
        return _plan_full(instance, time_limit_s, started, coupled)
    lanes = _lanes(instance)
    report(0.0, f"solving {n_c} classes over {len(lanes.src):,} lanes")
    classes = _solve_classes(instance, lanes, (lambda f, m: report(0.3 * f, m)) if coupled else report,
                             processes=processes)
    if not coupled:
        total = sum(flow.cost for flow in classes)
        return _plan_from_classes(instance, lanes, classes, "optimal", total, total, started)
    return _plan_coupled(instance, lanes, classes, time_limit_s, started, report, processes)


PROCESS_ARCS = 10_000_000  # classes × nights × lanes from which classes are solved in processes, not threads


def _solve_classes(instance: RebalanceInstance, lanes: _Lanes, report: Progress, *, processes: bool = False,
                   **prices: Any) -> list[_ClassFlow]:
    """Every class's exact flow, the classes side by side; `report` is called from this thread as each is done.

    OR-Tools' min-cost flow keeps Python's GIL while it solves, so threads only overlap the numpy work around it;
    on big instances (PROCESS_ARCS), when the caller allows `processes`, the classes go to worker processes, one per
    class, which pays off once a class takes seconds. They are started fresh ("spawn": a multi-threaded caller is
    never forked), which imports the caller's `__main__` module again — harmless for `python -m app.cli`, not for a
    Streamlit script, so pages keep threads.
    """
    n_b, n_c, n_d = instance.demand.shape
    cores = os.cpu_count() or 1
    if processes and cores > 1 and n_c > 1 and n_c * n_d * len(lanes.src) >= PROCESS_ARCS:
        # a process per class even beyond the cores, as with threads below: they all finish together
        pool: Executor = ProcessPoolExecutor(max_workers=n_c, mp_context=mp.get_context("spawn"))
    else:
        # a thread per class even beyond the cores: the system then shares them out evenly to the end, where a
        # pool the size of the cores would leave one class running alone
        pool = ThreadPoolExecutor(max_workers=max(1, min(n_c, 4 * cores)))
    with pool:
        # the biggest classes first, so that the last to finish is a small one and no core idles long at the end
        order = np.argsort(-(instance.demand.sum(axis=(0, 2)) + instance.initial.sum(axis=0)), kind="stable")
        futures = {pool.submit(_solve_class, instance, int(c), lanes,
                               **{k: (v[c] if isinstance(v, list) else v) for k, v in prices.items()}): int(c)
                   for c in order}
        flows: dict[int, _ClassFlow] = {}
        for done, future in enumerate(as_completed(futures), start=1):
            c = futures[future]
            flows[c] = future.result()
            report(done / n_c, f"class {instance.classes[c]} solved")
    return [flows[c] for c in range(n_c)]


def _plan_from_classes(instance: RebalanceInstance, lanes: _Lanes, classes: list[_ClassFlow], status: str,
                       objective: int, bound: int | None, started: float) -> RebalancePlan:
    moves = np.concatenate([np.column_stack([lanes.src[f.lane], lanes.dst[f.lane], np.full(len(f.lane), c),
                                             f.day, f.count]) for c, f in enumerate(classes)])
    lost = np.stack([instance.demand[:, c, :].T - f.served for c, f in enumerate(classes)], axis=1)  # [d, c, b]
    d, c, b = np.nonzero(lost)
    lost_sales = np.column_stack([b, c, d, lost[d, c, b]]).astype(np.int64)
    return RebalancePlan(status, objective / CENTS, None if bound is None else bound / CENTS,
                         moves[np.lexsort(moves[:, [0, 1, 2, 3]].T[::-1])].astype(np.int64),
                         lost_sales[np.lexsort(lost_sales[:, [0, 1, 2]].T[::-1])],
                         instance.branch_ids, instance.classes, time.perf_counter() - started,
                         int(instance.demand.sum()))


def _plan_full(instance: RebalanceInstance, time_limit_s: float, started: float, coupled: bool) -> RebalancePlan:
    network = _build_network(instance)
    if coupled:
        status, flows, objective, bound = _solve_mip(network, instance, time_limit_s)
    else:
        status, flows, objective, bound = _solve_flow(network)
    if flows is None:
        return _no_plan(instance, status, time_limit_s, started)
    used = flows > 0
    moved = used & (network.kind == _MOVE)
    lost = used & (network.kind == _LOST)
    moves = np.column_stack([network.branch[moved], network.to_branch[moved], network.klass[moved],
                             network.day[moved], flows[moved]])
    lost_sales = np.column_stack([network.branch[lost], network.klass[lost], network.day[lost], flows[lost]])
    return RebalancePlan(status, objective / CENTS, None if bound is None else bound / CENTS,
                         moves[np.lexsort(moves[:, [0, 1, 2, 3]].T[::-1])],
                         lost_sales[np.lexsort(lost_sales[:, [0, 1, 2]].T[::-1])],
                         instance.branch_ids, instance.classes, time.perf_counter() - started,
                         int(instance.demand.sum()))


def _no_plan(instance: RebalanceInstance, status: str, time_limit_s: float, started: float) -> RebalancePlan:
    empty = np.zeros((0, 5), dtype=np.int64)
    reason = _infeasible_reason(instance) if status == "infeasible" else (
        f"no plan was found within the time limit of {time_limit_s:g} s; allow more time")
    return RebalancePlan(status, None, None, empty, empty[:, :4], instance.branch_ids, instance.classes,
                         time.perf_counter() - started, int(instance.demand.sum()), reason)


def _plan_coupled(instance: RebalanceInstance, lanes: _Lanes, classes: list[_ClassFlow], time_limit_s: float,
                  started: float, report: Progress, processes: bool = False) -> RebalancePlan:
    """Shared limits on a big instance: a MIP over the lanes worth considering, its gap proven over all lanes.

    The classes' own optima (no shared limits) are a lower bound, and are the answer if they keep the limits.
    Otherwise the MIP gets the lanes whose reduced cost there was nearly zero, plus the nearest lanes out of every
    branch that came near a limit; any plan it finds is a plan for the full instance. Its LP relaxation's duals
    on the shared limits become prices on parking and on moving out: with them each class is again a min-cost
    flow over all lanes, and the sum of those, less the prices times the limits, is a proven lower bound (a
    Lagrangian bound; with the LP's optimal duals it equals the LP bound over all lanes).
    """
    n_b, n_c, n_d = instance.demand.shape
    first_pass = time.perf_counter() - started
    lower = sum(flow.cost for flow in classes)
    parked, out = _parked_and_moved_out(instance, lanes, classes)
    if _within_limits(instance, parked, out):
        return _plan_from_classes(instance, lanes, classes, "optimal", lower, lower, started)
    crowded = parked >= 0.8 * instance.capacity[None, :]
    if instance.max_moves_out is not None:
        crowded |= out >= instance.max_moves_out
    crowded[:-1] |= crowded[1:]  # cars may have to leave the night before too
    night, branch = np.nonzero(crowded)
    nearest = _lanes(instance, CROWDED_LANES).nearest
    nearest = nearest[np.isin(lanes.src[nearest], branch)]
    wanted = np.isin(lanes.src[nearest][None, :], branch) & crowded[:, lanes.src[nearest]]
    extra = (np.arange(n_d)[:, None] * len(lanes.src) + nearest[None, :])[wanted]
    active = [np.union1d(flow.near, extra) for flow in classes]
    deadline = started + time_limit_s
    best: tuple[int, list[_ClassFlow]] | None = None
    bound = lower
    round_seconds = 0.0
    widened = 0
    fractional: _Restricted | None = None

    def keep(flows: list[_ClassFlow] | None) -> None:
        nonlocal best
        if flows is not None and (best is None or sum(f.cost for f in flows) < best[0]):
            best = (sum(f.cost for f in flows), flows)

    def done() -> bool:
        return best is not None and best[0] <= bound

    for attempt in range(1, MAX_COUPLED_ROUNDS + 3):
        # each round: the LP over the arcs offered so far (often integral: a plan), then the bound with its duals
        # as prices, whose own flows offer the arcs the next round should consider; a MIP if the LP was fractional
        if attempt > 1 and time.perf_counter() + round_seconds > deadline:
            break
        round_started = time.perf_counter()
        report(0.3 + 0.6 * (attempt - 1) / MAX_COUPLED_ROUNDS,
               f"round {attempt}: a plan within the shared limits over {sum(len(a) for a in active):,} moves")
        solved = _solve_restricted_lp(instance, lanes, active, max(deadline - time.perf_counter(), 1.0))
        if solved == "infeasible" and widened < 2:
            # the arcs offered cannot keep the limits: offer the first network's lanes, then every lane
            widened += 1
            every = lanes.nearest if widened == 1 else np.arange(len(lanes.src))
            if widened == 2 and n_c * n_d * len(lanes.src) > FULL_MIP_MOVE_ARCS * 10:
                break
            wider = (np.arange(n_d)[:, None] * len(lanes.src) + every[None, :]).ravel()
            active = [np.union1d(a, wider) for a in active]
            continue
        if solved == "infeasible" and widened == 2 and best is None:
            return _no_plan(instance, "infeasible", time_limit_s, started)
        if not isinstance(solved, _Restricted):
            break
        keep(solved.flows)
        if solved.flows is None:
            fractional = solved
        if done() or time.perf_counter() + first_pass > deadline:
            break
        report(0.3 + 0.6 * (attempt - 0.5) / MAX_COUPLED_ROUNDS, f"round {attempt}: proving a bound over every lane")
        priced = _solve_classes(instance, lanes, lambda fraction, message: None, processes=processes,
                                park_price=solved.park_price, out_price=solved.out_price, start_arcs=active)
        bound = max(bound, sum(flow.cost for flow in priced)
                    - int((solved.park_price * _finite(instance.capacity)[None, :]).sum())
                    - int(solved.out_price.sum()) * (instance.max_moves_out or 0))
        if done():
            break
        if solved.flows is None and time.perf_counter() + first_pass < deadline:
            keep(_solve_restricted_mip(instance, lanes, solved, deadline - time.perf_counter() - first_pass))
            fractional = None
        if best is not None:
            report(0.3 + 0.6 * attempt / MAX_COUPLED_ROUNDS,
                   f"round {attempt}: best plan {best[0] / CENTS:,.2f}, bound {bound / CENTS:,.2f}")
        if done():
            break
        active = [np.union1d(a, flow.near) for a, flow in zip(active, priced, strict=True)]
        round_seconds = time.perf_counter() - round_started
    if best is None and fractional is not None:  # no plan yet: whatever time is left goes to the MIP
        keep(_solve_restricted_mip(instance, lanes, fractional, max(deadline - time.perf_counter(), 1.0)))
    if best is None:
        return _no_plan(instance, "unknown", time_limit_s, started)
    objective, flows = best
    bound = min(bound, objective)
    return _plan_from_classes(instance, lanes, flows, "optimal" if bound == objective else "feasible", objective,
                              bound, started)


def _finite(capacity: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(capacity), capacity, 0).astype(np.int64)


def _parked_and_moved_out(instance: RebalanceInstance, lanes: _Lanes,
                          classes: list[_ClassFlow]) -> tuple[np.ndarray, np.ndarray]:
    """Cars parked at each branch after each night's moves, and moved out of it, all classes: [day, branch]."""
    n_b, _, n_d = instance.demand.shape
    parked = np.zeros((n_d, n_b), dtype=np.int64)
    moved_out = np.zeros((n_d, n_b), dtype=np.int64)
    for c, flow in enumerate(classes):
        out = np.zeros((n_d, n_b), dtype=np.int64)
        inn = np.zeros((n_d, n_b), dtype=np.int64)
        np.add.at(out, (flow.day, lanes.src[flow.lane]), flow.count)
        np.add.at(inn, (flow.day, lanes.dst[flow.lane]), flow.count)
        stock = instance.initial[:, c].astype(np.int64)
        for d in range(n_d):  # the flow may let idle cars leave early; on the ground they stay
            parked[d] += stock - out[d] + inn[d]
            stock = stock - out[d] + inn[d] + instance.returns[:, c, d] - flow.served[d]
        moved_out += out
    return parked, moved_out


def _within_limits(instance: RebalanceInstance, parked: np.ndarray, out: np.ndarray) -> bool:
    if (parked > instance.capacity[None, :]).any():
        return False
    return instance.max_moves_out is None or bool((out <= instance.max_moves_out).all())


@dataclass(frozen=True, eq=False)
class _Restricted:
    """The LP relaxation over the offered arcs: its plan if it ended on an integral vertex, the duals of the
    limits as integer prices in cents [day, branch], and the networks it was built on."""

    flows: list[_ClassFlow] | None
    park_price: np.ndarray
    out_price: np.ndarray
    nets: list[_ClassNetwork]
    active: list[np.ndarray]


def _solve_restricted_lp(instance: RebalanceInstance, lanes: _Lanes, active: list[np.ndarray],
                         time_limit_s: float) -> _Restricted | str:
    """The shared-limits LP over the given (night, lane) arcs per class (GLOP, whose duals we need), or
    "infeasible" or "unknown"."""
    n_b, n_c, n_d = instance.demand.shape
    nets = [_class_network(instance, c, lanes, active[c], leave_early=False) for c in range(n_c)]
    solver, xs, parking, leaving = _restricted_model("GLOP", instance, lanes, nets)
    solver.SetTimeLimit(max(1, int(time_limit_s * 1000)))
    status = solver.Solve()
    if status != pywraplp.Solver.OPTIMAL:
        return "infeasible" if status == pywraplp.Solver.INFEASIBLE else "unknown"
    park_price = np.zeros((n_d, n_b), dtype=np.int64)
    out_price = np.zeros((n_d, n_b), dtype=np.int64)
    for (d, b), ct in parking.items():
        park_price[d, b] = max(0, math.floor(-ct.dual_value() + 1e-6))
    for (d, b), ct in leaving.items():
        out_price[d, b] = max(0, math.floor(-ct.dual_value() + 1e-6))
    values = [np.array([v.solution_value() for v in x]) for x in xs]
    integral = all(np.abs(value - np.rint(value)).max(initial=0) <= 1e-6 for value in values)
    return _Restricted(_as_flows(instance, nets, values, active) if integral else None, park_price, out_price,
                       nets, active)


def _solve_restricted_mip(instance: RebalanceInstance, lanes: _Lanes, restricted: _Restricted,
                          time_limit_s: float) -> list[_ClassFlow] | None:
    """An integral plan over the same arcs (HiGHS), for when the LP's vertex was fractional."""
    solver, xs, _, _ = _restricted_model("HIGHS", instance, lanes, restricted.nets, integer=True)
    solver.SetTimeLimit(max(1, int(time_limit_s * 1000)))
    if solver.Solve() not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return None
    values = [np.array([v.solution_value() for v in x]) for x in xs]
    return _as_flows(instance, restricted.nets, values, restricted.active)


def _as_flows(instance: RebalanceInstance, nets: list[_ClassNetwork], values: list[np.ndarray],
              active: list[np.ndarray]) -> list[_ClassFlow]:
    n_b, _, n_d = instance.demand.shape
    size = n_d * n_b
    flows = []
    for c, (net, value) in enumerate(zip(nets, values, strict=True)):
        value = np.rint(value).astype(np.int64)
        moves = value[net.n_fixed:]
        moved = np.flatnonzero(moves)
        flows.append(_ClassFlow(net.lane[moved], net.day[moved], moves[moved], value[:size].reshape(n_d, n_b),
                                value[size:2 * size].reshape(n_d, n_b), int(value @ net.cost) + net.constant, 0,
                                len(value), active[c], active[c]))
    return flows


def _restricted_model(name: str, instance: RebalanceInstance, lanes: _Lanes, nets: list[_ClassNetwork], *,
                      integer: bool = False) -> tuple[Any, list[list[Any]], dict, dict]:
    """The classes' networks side by side in one linear model, with the parking and moving-out limits."""
    n_b, _, n_d = instance.demand.shape
    solver = pywraplp.Solver.CreateSolver(name)
    if name == "HIGHS":  # HiGHS greets stdout otherwise, where the CLI may be writing the plan
        solver.SetSolverSpecificParametersAsString("output_flag=false\nlog_to_console=false\n")
    else:  # GLOP: the dual simplex is several times faster than the primal on these networks
        solver.SetSolverSpecificParametersAsString("use_dual_simplex: true")
    xs: list[list[Any]] = []
    objective = solver.Objective()
    for net in nets:
        x = [solver.IntVar(0.0, float(cap), "") if integer else solver.NumVar(0.0, float(cap), "")
             for cap in net.capacity.tolist()]
        balance = [solver.Constraint(float(s), float(s)) for s in net.supply.tolist()]
        for a, (t, h, cost) in enumerate(zip(net.tail.tolist(), net.head.tolist(), net.cost.tolist(), strict=True)):
            balance[t].SetCoefficient(x[a], 1.0)
            balance[h].SetCoefficient(x[a], -1.0)
            if cost:
                objective.SetCoefficient(x[a], float(cost))
        xs.append(x)
    objective.SetMinimization()
    parking: dict[tuple[int, int], Any] = {}
    for b in np.flatnonzero(np.isfinite(instance.capacity)).tolist():
        for d in range(n_d):
            parking[d, b] = solver.Constraint(-solver.infinity(), float(instance.capacity[b]))
    leaving: dict[tuple[int, int], Any] = {}
    if instance.max_moves_out is not None:
        for d in range(n_d):
            for b in range(n_b):
                leaving[d, b] = solver.Constraint(-solver.infinity(), float(instance.max_moves_out))
    for net, x in zip(nets, xs, strict=True):
        for d, b in parking:
            parking[d, b].SetCoefficient(x[d * n_b + b], 1.0)
        for a, (d, lane) in enumerate(zip(net.day.tolist(), net.lane.tolist(), strict=True), start=net.n_fixed):
            into = parking.get((d, int(lanes.dst[lane])))
            if into is not None:
                into.SetCoefficient(x[a], 1.0)
            out_of = leaving.get((d, int(lanes.src[lane])))
            if out_of is not None:
                out_of.SetCoefficient(x[a], 1.0)
    return solver, xs, parking, leaving


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
