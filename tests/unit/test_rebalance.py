"""The rebalancing optimiser: tiny instances with known answers, an independent CP-SAT oracle, and bad inputs."""

from __future__ import annotations

import copy
import json
import math
import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ortools.sat.python import cp_model

from services.optimise.rebalance import (
    _lanes,
    _solve_class,
    haversine_km,
    parse_instance,
    plan_rebalancing,
    plan_to_dict,
)


def instance(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "horizon_days": 2,
        "classes": ["economy", "suv"],
        "branches": [{"id": "A", "lat": 51.0, "lon": 0.0, "capacity": None},
                     {"id": "B", "lat": 51.0, "lon": 0.5, "capacity": None}],
        "initial": [], "returns": [], "demand": [],
        "lost_sale_cost": {"economy": 100, "suv": 150},
        "move_cost_per_km": 1.0, "move_fixed_cost": 10, "max_move_km": 150, "max_moves_out": None,
    }
    base.update(overrides)
    return base


def km(a: dict, b: dict) -> float:
    p1, p2 = math.radians(a["lat"]), math.radians(b["lat"])
    h = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(b["lon"] - a["lon"]) / 2) ** 2)
    return 2 * 6371.0 * math.asin(math.sqrt(h))


A_TO_B_KM = km({"lat": 51.0, "lon": 0.0}, {"lat": 51.0, "lon": 0.5})
ONE_MOVE = 10 + A_TO_B_KM


def solve(data: dict[str, Any], time_limit_s: float = 10.0, method: str = "auto") -> dict[str, Any]:
    return plan_to_dict(plan_rebalancing(parse_instance(data), time_limit_s=time_limit_s, method=method))


# ---------------------------------------------------------------- the plan obeys every rule


def grid(entries: list[dict], data: dict, with_day: bool = True) -> dict[tuple, int]:
    out: dict[tuple, int] = {}
    for e in entries:
        key = (e["branch"], e["class"], e["day"]) if with_day else (e["branch"], e["class"])
        out[key] = out.get(key, 0) + e["count"]
    return out


def check_plan(data: dict[str, Any], plan: dict[str, Any]) -> float:
    """Replays the plan day by day, asserting each rule; returns its cost recomputed from scratch."""
    branches = {b["id"]: b for b in data["branches"]}
    initial = grid(data["initial"], data, with_day=False)
    returns, demand = grid(data["returns"], data), grid(data["demand"], data)
    lost = grid(plan["lost_sales"], data)
    cost = 0.0
    on_hand = {(b, c): initial.get((b, c), 0) for b in branches for c in data["classes"]}
    for day in range(data["horizon_days"]):
        tonight = [m for m in plan["moves"] if m["day"] == day]
        assert not tonight or day >= data.get("first_move_day", 0), "a car moved on a night that has passed"
        out = {key: 0 for key in on_hand}
        inn = {key: 0 for key in on_hand}
        for m in tonight:
            assert m["from"] != m["to"] and m["count"] > 0
            distance = km(branches[m["from"]], branches[m["to"]])
            assert distance <= data["max_move_km"]
            out[(m["from"], m["class"])] += m["count"]
            inn[(m["to"], m["class"])] += m["count"]
            cost += m["count"] * (data["move_fixed_cost"] + data["move_cost_per_km"] * distance)
        for b in branches:
            parked = sum(on_hand[(b, c)] - out[(b, c)] + inn[(b, c)] for c in data["classes"])
            if branches[b]["capacity"] is not None:
                assert parked <= branches[b]["capacity"]
            if data["max_moves_out"] is not None:
                assert sum(out[(b, c)] for c in data["classes"]) <= data["max_moves_out"]
        for (b, c), start in on_hand.items():
            assert out[(b, c)] <= start
            avail = start - out[(b, c)] + inn[(b, c)] + returns.get((b, c, day), 0)
            wanted, missed = demand.get((b, c, day), 0), lost.get((b, c, day), 0)
            assert 0 <= missed <= wanted
            assert wanted - missed <= avail
            on_hand[(b, c)] = avail - (wanted - missed)
            cost += missed * data["lost_sale_cost"][c]
    return cost


# ---------------------------------------------------------------- an independent exact model


def oracle(data: dict[str, Any]) -> int | None:
    """The optimal cost in cents by CP-SAT on the day-by-day stock equations, or None when infeasible."""
    model = cp_model.CpModel()
    ids = [b["id"] for b in data["branches"]]
    branches = {b["id"]: b for b in data["branches"]}
    classes, days = data["classes"], range(data["horizon_days"])
    initial = grid(data["initial"], data, with_day=False)
    returns, demand = grid(data["returns"], data), grid(data["demand"], data)
    lanes = [(i, j) for i in ids for j in ids
             if i != j and km(branches[i], branches[j]) <= data["max_move_km"]]
    total = sum(initial.values()) + sum(returns.values())
    first = data.get("first_move_day", 0)
    move = {(i, j, c, d): model.new_int_var(0, total if d >= first else 0, "") for i, j in lanes for c in classes
            for d in days}
    served = {(b, c, d): model.new_int_var(0, demand.get((b, c, d), 0), "") for b in ids for c in classes
              for d in days}
    start = {(b, c): initial.get((b, c), 0) for b in ids for c in classes}
    objective = []
    for d in days:
        # lists, not `+=`: CP-SAT may grow a linear expression in place, and these are shared
        parked: dict[str, list] = {b: [] for b in ids}
        moved_out: dict[str, list] = {b: [] for b in ids}
        for b in ids:
            for c in classes:
                out = sum(move[(b, j, c, d)] for i, j in lanes if i == b)
                inn = sum(move[(i, b, c, d)] for i, j in lanes if j == b)
                model.add(out <= start[(b, c)])
                parked[b].append(start[(b, c)] - out + inn)
                moved_out[b].append(out)
                avail = start[(b, c)] - out + inn + returns.get((b, c, d), 0)
                model.add(served[(b, c, d)] <= avail)
                start[(b, c)] = avail - served[(b, c, d)]
                objective.append(round(data["lost_sale_cost"][c] * 100) * (demand.get((b, c, d), 0)
                                                                             - served[(b, c, d)]))
            if branches[b]["capacity"] is not None:
                model.add(sum(parked[b]) <= branches[b]["capacity"])
            if data["max_moves_out"] is not None:
                model.add(sum(moved_out[b]) <= data["max_moves_out"])
    for i, j in lanes:
        unit = round((data["move_fixed_cost"] + data["move_cost_per_km"] * km(branches[i], branches[j])) * 100)
        objective += [unit * move[(i, j, c, d)] for c in classes for d in days]
    model.minimize(sum(objective))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = 20
    solver.parameters.num_workers = 4
    status = solver.solve(model)
    if status == cp_model.INFEASIBLE:
        return None
    assert status == cp_model.OPTIMAL
    return round(solver.objective_value)


def random_instance(seed: int, *, capacity: bool, moves_out: bool) -> dict[str, Any]:
    rng = random.Random(seed)
    n_b, classes, horizon = rng.randint(2, 3), ["economy", "suv"], 4
    ids = [f"B{k}" for k in range(n_b)]
    # spread over about 2 degrees of longitude so some lanes are beyond max_move_km
    branches = [{"id": b, "lat": 51.0 + rng.uniform(-0.3, 0.3), "lon": rng.uniform(-1.0, 1.0),
                 "capacity": rng.randint(2, 8) if capacity else None} for b in ids]

    def entries(n: int, with_day: bool, top: int) -> list[dict]:
        out = []
        for _ in range(n):
            e = {"branch": rng.choice(ids), "class": rng.choice(classes), "count": rng.randint(0, top)}
            if with_day:
                e["day"] = rng.randrange(horizon)
            out.append(e)
        return out

    return instance(horizon_days=horizon, classes=classes, branches=branches,
                    initial=entries(rng.randint(1, 4), False, 4), returns=entries(rng.randint(0, 3), True, 3),
                    demand=entries(rng.randint(2, 6), True, 4),
                    lost_sale_cost={"economy": rng.randint(20, 90), "suv": rng.randint(40, 160)},
                    move_cost_per_km=rng.choice([0.3, 0.5, 0.9]), move_fixed_cost=rng.choice([5, 25]),
                    max_move_km=rng.choice([60, 100, 250]),
                    max_moves_out=rng.randint(0, 2) if moves_out else None)


@pytest.mark.parametrize("capacity,moves_out", [(False, False), (True, False), (False, True), (True, True)],
                         ids=["pure-flow", "capacity", "max-moves-out", "both"])
@pytest.mark.parametrize("seed", range(20))
def test_cost_equals_an_independent_exact_model(seed: int, capacity: bool, moves_out: bool) -> None:
    data = random_instance(seed, capacity=capacity, moves_out=moves_out)
    expected = oracle(data)
    plan = solve(data)
    if expected is None:
        assert plan["status"] == "infeasible" and plan["reason"]
        return
    assert plan["status"] == "optimal"
    assert round(plan["objective"] * 100) == expected
    assert plan["bound"] == plan["objective"]
    assert check_plan(data, plan) == pytest.approx(plan["objective"], abs=0.005 * (1 + plan["stats"]["cars_moved"]))


@pytest.mark.parametrize("capacity,moves_out", [(False, False), (True, True)], ids=["pure-flow", "both"])
@pytest.mark.parametrize("seed", range(8))
def test_nights_that_have_passed_carry_no_move_and_the_rest_stay_optimal(seed: int, capacity: bool,
                                                                         moves_out: bool) -> None:
    data = random_instance(seed, capacity=capacity, moves_out=moves_out)
    data["first_move_day"] = 1 + seed % 2
    expected = oracle(data)
    plan = solve(data)
    if expected is None:
        assert plan["status"] == "infeasible" and plan["reason"]
        return
    assert plan["status"] == "optimal" and round(plan["objective"] * 100) == expected
    assert check_plan(data, plan) == pytest.approx(plan["objective"], abs=0.005 * (1 + plan["stats"]["cars_moved"]))


# ---------------------------------------------------------------- pricing out lanes is exact


def spread_instance(seed: int, *, capacity: bool = False, moves_out: bool = False) -> dict[str, Any]:
    """Enough branches that most lanes start outside the solver's network, with a drift that makes moves pay."""
    rng = random.Random(seed)
    n_b, classes, horizon = rng.randint(12, 18), ["economy", "suv"], rng.randint(3, 5)
    ids = [f"B{k:02d}" for k in range(n_b)]
    branches = [{"id": b, "lat": 51.0 + rng.uniform(-0.5, 0.5), "lon": rng.uniform(-1.2, 1.2), "capacity": None}
                for b in ids]
    initial, returns, demand = [], [], []
    for k, b in enumerate(branches):
        east = b["lon"] > 0  # cars pile up in the east and are wanted in the west
        for c in classes:
            initial.append({"branch": ids[k], "class": c, "count": rng.randint(0, 6 if east else 2)})
            for d in range(horizon):
                returns.append({"branch": ids[k], "class": c, "day": d, "count": rng.randint(0, 3 if east else 1)})
                demand.append({"branch": ids[k], "class": c, "day": d, "count": rng.randint(0, 1 if east else 4)})
        if capacity:
            b["capacity"] = sum(e["count"] for e in initial if e["branch"] == ids[k]) + rng.randint(0, 4)
    return instance(horizon_days=horizon, classes=classes, branches=branches, initial=initial, returns=returns,
                    demand=demand, lost_sale_cost={"economy": rng.randint(40, 90), "suv": rng.randint(80, 160)},
                    move_cost_per_km=rng.choice([0.3, 0.5, 0.9]), move_fixed_cost=rng.choice([5, 25]),
                    max_move_km=rng.choice([80, 120, 200]), max_moves_out=rng.randint(1, 4) if moves_out else None)


@pytest.mark.parametrize("seed", range(12))
def test_pricing_out_lanes_costs_the_same_as_the_whole_network(seed: int) -> None:
    data = spread_instance(seed)
    priced, full = solve(data, method="priced"), solve(data, method="full")
    assert priced["status"] == full["status"] == "optimal"
    assert priced["objective"] == full["objective"] and priced["bound"] == priced["objective"]
    assert priced["stats"]["cars_moved"] > 0
    assert check_plan(data, priced) == pytest.approx(priced["objective"],
                                                     abs=0.005 * (1 + priced["stats"]["cars_moved"]))


@pytest.mark.parametrize("limits", [False, True], ids=["pure-flow", "shared-limits"])
@pytest.mark.parametrize("seed", range(4))
def test_pricing_out_never_offers_a_night_that_has_passed(seed: int, limits: bool) -> None:
    data = {**spread_instance(seed, capacity=limits, moves_out=limits), "first_move_day": 1}
    priced, full = solve(data, method="priced"), solve(data, method="full")
    if full["status"] == "infeasible":
        assert priced["status"] in ("infeasible", "unknown")
        return
    assert priced["bound"] <= full["objective"] <= priced["objective"]
    if not limits:
        assert priced["objective"] == full["objective"]
    assert priced["stats"]["cars_moved"] > 0 and min(m["day"] for m in priced["moves"]) >= 1
    assert check_plan(data, priced) == pytest.approx(priced["objective"],
                                                     abs=0.005 * (1 + priced["stats"]["cars_moved"]))


@pytest.mark.parametrize("seed", range(4))
def test_lanes_missing_from_the_first_network_are_priced_in(seed: int) -> None:
    data = spread_instance(seed)
    parsed = parse_instance(data)
    nearest_only = _lanes(parsed, per_branch=1)
    flows = [_solve_class(parsed, c, nearest_only) for c in range(len(parsed.classes))]
    assert max(flow.rounds for flow in flows) > 1  # the nearest lane alone was not enough somewhere
    assert sum(flow.cost for flow in flows) == round(solve(data, method="full")["objective"] * 100)


@pytest.mark.parametrize("seed", range(10))
def test_with_shared_limits_the_priced_plan_keeps_them_and_its_bound_holds(seed: int) -> None:
    data = spread_instance(seed, capacity=True, moves_out=True)
    exact = solve(data, method="full")
    priced = solve(data, method="priced")
    if exact["status"] == "infeasible":
        assert priced["status"] in ("infeasible", "unknown") and priced["reason"]
        return
    assert exact["status"] == "optimal"
    assert priced["status"] in ("optimal", "feasible")
    assert priced["bound"] <= exact["objective"] <= priced["objective"]
    if priced["status"] == "optimal":
        assert priced["objective"] == exact["objective"]
    assert check_plan(data, priced) == pytest.approx(priced["objective"],
                                                     abs=0.005 * (1 + priced["stats"]["cars_moved"]))


# ---------------------------------------------------------------- known answers


def test_with_nothing_wanted_nothing_moves() -> None:
    plan = solve(instance(initial=[{"branch": "A", "class": "economy", "count": 3}]))
    assert plan["status"] == "optimal" and plan["objective"] == 0
    assert plan["moves"] == [] and plan["lost_sales"] == []
    assert plan["stats"]["demand_covered_pct"] == 100.0


def test_a_car_moves_the_night_before_it_is_wanted() -> None:
    plan = solve(instance(initial=[{"branch": "A", "class": "suv", "count": 1}],
                          demand=[{"branch": "B", "class": "suv", "day": 0, "count": 1}]))
    assert plan["moves"] == [{"from": "A", "to": "B", "class": "suv", "day": 0, "count": 1}]
    assert plan["objective"] == pytest.approx(ONE_MOVE, abs=0.005)
    assert plan["stats"] == {**plan["stats"], "cars_moved": 1, "demand_covered_pct": 100.0}


def test_once_tonight_has_passed_the_first_move_is_tomorrow_night() -> None:
    wanted = [{"branch": "B", "class": "suv", "day": 0, "count": 1}, {"branch": "B", "class": "suv", "day": 1,
                                                                       "count": 1}]
    plan = solve(instance(initial=[{"branch": "A", "class": "suv", "count": 2}], demand=wanted, first_move_day=1))
    assert plan["moves"] == [{"from": "A", "to": "B", "class": "suv", "day": 1, "count": 1}]
    assert plan["lost_sales"] == [{"branch": "B", "class": "suv", "day": 0, "count": 1}]
    assert plan["objective"] == pytest.approx(150 + ONE_MOVE, abs=0.005)
    assert solve(instance(initial=[{"branch": "A", "class": "suv", "count": 2}], demand=wanted,
                          first_move_day=2))["moves"] == []


def test_a_sale_cheaper_than_the_move_is_lost() -> None:
    plan = solve(instance(initial=[{"branch": "A", "class": "economy", "count": 1}],
                          demand=[{"branch": "B", "class": "economy", "day": 1, "count": 1}],
                          lost_sale_cost={"economy": 20, "suv": 150}))
    assert plan["moves"] == []
    assert plan["lost_sales"] == [{"branch": "B", "class": "economy", "day": 1, "count": 1}]
    assert plan["objective"] == 20


def test_branches_beyond_max_move_km_never_swap_cars() -> None:
    plan = solve(instance(initial=[{"branch": "A", "class": "economy", "count": 1}],
                          demand=[{"branch": "B", "class": "economy", "day": 0, "count": 1}],
                          max_move_km=A_TO_B_KM - 1))
    assert plan["moves"] == [] and plan["objective"] == 100


def test_a_return_serves_demand_on_its_day_without_a_move() -> None:
    plan = solve(instance(initial=[{"branch": "A", "class": "economy", "count": 1}],
                          returns=[{"branch": "B", "class": "economy", "day": 1, "count": 1}],
                          demand=[{"branch": "B", "class": "economy", "day": 1, "count": 1}]))
    assert plan["moves"] == [] and plan["objective"] == 0


def test_a_served_car_is_gone_for_the_next_day() -> None:
    plan = solve(instance(initial=[{"branch": "B", "class": "economy", "count": 1}],
                          demand=[{"branch": "B", "class": "economy", "day": 0, "count": 1},
                                  {"branch": "B", "class": "economy", "day": 1, "count": 1}]))
    assert [sale["count"] for sale in plan["lost_sales"]] == [1] and plan["objective"] == 100


def test_max_moves_out_caps_all_classes_together() -> None:
    plan = solve(instance(initial=[{"branch": "A", "class": "economy", "count": 2},
                                   {"branch": "A", "class": "suv", "count": 2}],
                          demand=[{"branch": "B", "class": "economy", "day": 0, "count": 2},
                                  {"branch": "B", "class": "suv", "day": 0, "count": 2}],
                          horizon_days=1, max_moves_out=3))
    assert plan["status"] == "optimal" and plan["stats"]["cars_moved"] == 3
    assert plan["lost_sales"] == [{"branch": "B", "class": "economy", "day": 0, "count": 1}]
    assert plan["objective"] == pytest.approx(3 * ONE_MOVE + 100, abs=0.01)


def test_a_full_car_park_pushes_cars_out() -> None:
    data = instance(initial=[{"branch": "A", "class": "economy", "count": 3}], horizon_days=1,
                    branches=[{"id": "A", "lat": 51.0, "lon": 0.0, "capacity": 1},
                              {"id": "B", "lat": 51.0, "lon": 0.5, "capacity": None}])
    plan = solve(data)
    assert plan["status"] == "optimal" and plan["stats"]["cars_moved"] == 2
    check_plan(data, plan)


def test_cars_that_cannot_be_parked_make_the_instance_infeasible() -> None:
    plan = solve(instance(initial=[{"branch": "A", "class": "economy", "count": 5}],
                          branches=[{"id": "A", "lat": 51.0, "lon": 0.0, "capacity": 2},
                                    {"id": "B", "lat": 51.0, "lon": 0.5, "capacity": 2}]))
    assert plan["status"] == "infeasible" and plan["objective"] is None
    assert "5 cars" in plan["reason"] and "capacity of 4" in plan["reason"]


def test_a_branch_that_cannot_move_enough_out_is_infeasible() -> None:
    plan = solve(instance(initial=[{"branch": "A", "class": "economy", "count": 5}], max_moves_out=1,
                          branches=[{"id": "A", "lat": 51.0, "lon": 0.0, "capacity": 2},
                                    {"id": "B", "lat": 51.0, "lon": 0.5, "capacity": None}]))
    assert plan["status"] == "infeasible" and "branch A" in plan["reason"]


def test_haversine_uses_the_mean_earth_radius() -> None:
    d = haversine_km(np.array([0.0, 0.0]), np.array([0.0, 1.0]))
    assert d[0, 1] == pytest.approx(6371.0 * math.pi / 180) and d[0, 0] == 0


# Run as the `fleetdesk` command runs it: in a fresh interpreter (the worker processes import its `__main__` again),
# with every instance counting as big, and the process pool counted.
IN_PROCESSES = """
import json, sys
import services.optimise.rebalance as module
real_pool, pools = module.ProcessPoolExecutor, []
module.ProcessPoolExecutor = lambda *a, **k: pools.append(1) or real_pool(*a, **k)
module.PROCESS_ARCS = 1
module.os.cpu_count = lambda: 2
plan = module.plan_rebalancing(module.parse_instance(json.load(sys.stdin)), time_limit_s=10, method="priced",
                               processes=True)
print(json.dumps({"pools": len(pools), "plan": module.plan_to_dict(plan)}))
"""


def test_big_instances_solve_their_classes_in_worker_processes_to_the_same_plan() -> None:
    data = spread_instance(3)
    in_threads = solve(data, method="priced")
    done = subprocess.run([sys.executable, "-c", IN_PROCESSES], input=json.dumps(data), capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    in_processes = answer["plan"]
    assert answer["pools"] == 1
    assert in_processes == {**in_threads, "stats": {**in_threads["stats"],
                                                     "solve_seconds": in_processes["stats"]["solve_seconds"]}}
    assert in_processes["stats"]["cars_moved"] > 0


def test_progress_hears_each_class_on_the_calling_thread_and_ends_complete() -> None:
    heard: list[tuple[float, str]] = []
    threads: set[int] = set()

    def progress(fraction: float, message: str) -> None:
        heard.append((fraction, message))
        threads.add(threading.get_ident())

    plan_rebalancing(parse_instance(spread_instance(0)), time_limit_s=10, method="priced", progress=progress)
    assert threads == {threading.get_ident()}  # a Streamlit page can only draw from its own thread
    assert all(0 <= fraction <= 1 for fraction, _ in heard)
    assert heard[-1][0] == 1.0
    assert {message for _, message in heard} >= {"class economy solved", "class suv solved"}


def test_an_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="method"):
        plan_rebalancing(parse_instance(instance()), time_limit_s=1, method="fast")


def test_a_time_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="time_limit_s"):
        plan_rebalancing(parse_instance(instance()), time_limit_s=0)


# ---------------------------------------------------------------- bad input


def broken(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(instance(initial=[{"branch": "A", "class": "economy", "count": 1}],
                                  demand=[{"branch": "B", "class": "suv", "day": 0, "count": 1}]))
    target: Any = data
    *parents, last = path.split(".")
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is KeyError:
        del target[int(last) if last.isdigit() else last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return data


@pytest.mark.parametrize("path,value,fragment", [
    ("initial.0.class", "limo", "unknown class 'limo'"),
    ("demand.0.branch", "Z9", "unknown branch 'Z9'"),
    ("initial.0.count", -1, "must not be negative"),
    ("demand.0.count", 1.5, "whole number"),
    ("demand.0.count", True, "whole number"),
    ("demand.0.day", 2, "outside the horizon"),
    ("branches.1.id", "A", "duplicate branch id 'A'"),
    ("branches.0.lat", 91, "off the globe"),
    ("branches.1.lon", -181, "off the globe"),
    ("branches.0.capacity", -3, "capacity of branch A"),
    ("lost_sale_cost.suv", KeyError, "no cost for class 'suv'"),
    ("lost_sale_cost.limo", 5, "unknown class 'limo'"),
    ("lost_sale_cost.economy", -5, "must not be negative"),
    ("move_cost_per_km", KeyError, "move_cost_per_km is missing"),
    ("move_fixed_cost", "25", "move_fixed_cost must be a number"),
    ("max_move_km", KeyError, "max_move_km is missing"),
    ("max_moves_out", -1, "max_moves_out"),
    ("horizon_days", 0, "horizon_days"),
    ("first_move_day", 3, "first_move_day 3 is past the horizon"),
    ("first_move_day", -1, "first_move_day must not be negative"),
    ("first_move_day", 0.5, "first_move_day must be a whole number"),
    ("classes", ["suv", "suv"], "duplicate class"),
])
def test_bad_input_is_refused_naming_the_problem(path: str, value: Any, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as caught:
        parse_instance(broken(path, value))
    assert "\n" not in str(caught.value)


def test_missing_entries_count_as_zero() -> None:
    data = instance()
    for key in ("initial", "returns", "demand"):
        del data[key]
    parsed = parse_instance(data)
    assert parsed.initial.sum() == parsed.returns.sum() == parsed.demand.sum() == 0
