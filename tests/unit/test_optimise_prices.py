"""The price optimiser: exact on small instances (brute force, an independent MIP), every rule kept, bad inputs."""

from __future__ import annotations

import copy
import itertools
import random
import time
from typing import Any

import numpy as np
import pytest
from ortools.linear_solver import pywraplp

from services.optimise import prices
from services.optimise.prices import bound_branch, optimise_prices, parse_instance, plan_to_dict

LADDER = [0.6, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 1.8]


def random_instance(seed: int, *, branches: int, classes: int, days: int, ladder: list[float] = LADDER,
                    max_step: int | None = 2, class_order: bool = True) -> dict[str, Any]:
    rng = random.Random(seed)
    kinds = [{"id": f"class{c}", "rank": c + 1, "rental_days": rng.randint(1, 3)} for c in range(classes)]
    segments = []
    for b in range(branches):
        for c, kind in enumerate(kinds):
            list_rate = round((40 + 15 * c) * rng.uniform(0.9, 1.1), 2)
            capacity = rng.randint(2, 12)
            load = rng.uniform(0.4, 2.0)
            elasticity = round(rng.uniform(0.6, 2.5), 2)
            for d in range(days):
                segments.append({"branch": f"B{b}", "class": kind["id"], "day": d, "list_rate": list_rate,
                                 "capacity": capacity,
                                 "base_demand": round(load * capacity / kind["rental_days"] * rng.uniform(0.7, 1.3), 3),
                                 "elasticity": elasticity})
    return {"horizon_days": days, "ladder": ladder, "classes": kinds, "segments": segments,
            "max_step": max_step, "class_order": class_order}


def solve(data: dict[str, Any], time_limit_s: float = 20.0) -> dict[str, Any]:
    return plan_to_dict(optimise_prices(parse_instance(data), time_limit_s=time_limit_s))


# ---------------------------------------------------------------- the plan keeps every rule


def check_plan(data: dict[str, Any], plan: dict[str, Any]) -> float:
    """Asserts every rule on the output alone and returns its revenue recomputed from scratch."""
    kinds = {k["id"]: k for k in data["classes"]}
    segments = {(s["branch"], s["class"], s["day"]): s for s in data["segments"]}
    rows = {(p["branch"], p["class"], p["day"]): p for p in plan["prices"]}
    assert set(rows) == set(segments) and len(rows) == len(plan["prices"])
    total = 0.0
    for key, p in rows.items():
        seg, kind = segments[key], kinds[key[1]]
        assert p["multiplier"] in data["ladder"]
        assert p["rate"] == pytest.approx(seg["list_rate"] * p["multiplier"], abs=0.006)
        demand = seg["base_demand"] * p["multiplier"] ** -seg["elasticity"]
        assert -1e-9 <= p["accept"] <= demand + 1e-4
        revenue = p["accept"] * seg["list_rate"] * p["multiplier"] * kind["rental_days"]
        assert p["revenue"] == pytest.approx(revenue, abs=0.01)
        total += revenue
        branch, klass, day = key
        running = sum(rows[(branch, klass, d)]["accept"] for d in range(day - kind["rental_days"] + 1, day + 1)
                      if (branch, klass, d) in rows)
        assert running <= seg["capacity"] + 1e-3
        before = rows.get((branch, klass, day - 1))
        if data.get("max_step") is not None and before is not None:
            step = abs(data["ladder"].index(p["multiplier"]) - data["ladder"].index(before["multiplier"]))
            assert step <= data["max_step"]
        if data.get("class_order"):
            for other, q in ((k[1], q) for k, q in rows.items() if k[0] == branch and k[2] == day):
                if kinds[other]["rank"] < kind["rank"]:
                    assert p["rate"] >= q["rate"] - 1e-6, (key, other)
    assert plan["objective"] == pytest.approx(total, abs=0.05)
    assert plan["bound"] is None or plan["bound"] >= plan["objective"] - 0.01
    return total


# ---------------------------------------------------------------- independent oracles


def best_accept_revenue(data: dict[str, Any], steps: dict[tuple, int]) -> float:
    """Revenue of the best booking limits at fixed ladder steps: the accept LP, written out plainly (GLOP)."""
    kinds = {k["id"]: k for k in data["classes"]}
    solver = pywraplp.Solver.CreateSolver("GLOP")
    accept, objective = {}, []
    for s in data["segments"]:
        key = (s["branch"], s["class"], s["day"])
        m = data["ladder"][steps[key]]
        accept[key] = solver.NumVar(0, s["base_demand"] * m ** -s["elasticity"], "")
        objective.append(s["list_rate"] * m * kinds[s["class"]]["rental_days"] * accept[key])
    for s in data["segments"]:
        length = kinds[s["class"]]["rental_days"]
        window = [accept[(s["branch"], s["class"], d)] for d in range(s["day"] - length + 1, s["day"] + 1)
                  if (s["branch"], s["class"], d) in accept]
        solver.Add(sum(window) <= s["capacity"])
    solver.Maximize(sum(objective))
    assert solver.Solve() == pywraplp.Solver.OPTIMAL
    return solver.Objective().Value()


def allowed(data: dict[str, Any], steps: dict[tuple, int]) -> bool:
    kinds = {k["id"]: k for k in data["classes"]}
    segments = {(s["branch"], s["class"], s["day"]): s for s in data["segments"]}
    for (b, c, d), k in steps.items():
        if data.get("max_step") is not None and (b, c, d - 1) in steps and abs(k - steps[(b, c, d - 1)]) > data["max_step"]:
            return False
        if data.get("class_order"):
            rate = segments[(b, c, d)]["list_rate"] * data["ladder"][k]
            for (b2, c2, d2), k2 in steps.items():
                if (b2, d2) == (b, d) and kinds[c2]["rank"] < kinds[c]["rank"] and \
                        segments[(b2, c2, d2)]["list_rate"] * data["ladder"][k2] > rate + 1e-9:
                    return False
    return True


def brute_force(data: dict[str, Any]) -> float | None:
    keys = [(s["branch"], s["class"], s["day"]) for s in data["segments"]]
    best = None
    for combo in itertools.product(range(len(data["ladder"])), repeat=len(keys)):
        steps = dict(zip(keys, combo, strict=True))
        if allowed(data, steps):
            value = best_accept_revenue(data, steps)
            best = value if best is None else max(best, value)
    return best


def exact_mip(data: dict[str, Any]) -> float | None:
    """An independent MIP (SCIP): a binary per segment and step, accepts per segment, big-M free linking."""
    kinds = {k["id"]: k for k in data["classes"]}
    ladder = data["ladder"]
    solver = pywraplp.Solver.CreateSolver("SCIP")
    pick, accept, objective = {}, {}, []
    segments = {(s["branch"], s["class"], s["day"]): s for s in data["segments"]}
    for key, s in segments.items():
        pick[key] = [solver.BoolVar("") for _ in ladder]
        solver.Add(sum(pick[key]) == 1)
        parts = []
        for k, m in enumerate(ladder):
            part = solver.NumVar(0, s["base_demand"] * m ** -s["elasticity"], "")
            solver.Add(part <= s["base_demand"] * m ** -s["elasticity"] * pick[key][k])
            parts.append(part)
            objective.append(s["list_rate"] * m * kinds[key[1]]["rental_days"] * part)
        accept[key] = sum(parts)
    for (b, c, d), s in segments.items():
        length = kinds[c]["rental_days"]
        solver.Add(sum(accept[(b, c, e)] for e in range(d - length + 1, d + 1) if (b, c, e) in accept)
                   <= s["capacity"])
        index = sum(k * v for k, v in enumerate(pick[(b, c, d)]))
        if data.get("max_step") is not None and (b, c, d - 1) in pick:
            before = sum(k * v for k, v in enumerate(pick[(b, c, d - 1)]))
            solver.Add(index - before <= data["max_step"])
            solver.Add(before - index <= data["max_step"])
        if data.get("class_order"):
            rate = sum(s["list_rate"] * m * v for m, v in zip(ladder, pick[(b, c, d)], strict=True))
            for (b2, c2, d2), s2 in segments.items():
                if (b2, d2) == (b, d) and kinds[c2]["rank"] < kinds[c]["rank"]:
                    solver.Add(rate >= sum(s2["list_rate"] * m * v
                                           for m, v in zip(ladder, pick[(b2, c2, d2)], strict=True)))
    solver.Maximize(sum(objective))
    params = pywraplp.MPSolverParameters()
    params.SetDoubleParam(params.RELATIVE_MIP_GAP, 1e-9)
    solver.SetTimeLimit(120_000)
    status = solver.Solve(params)
    if status == pywraplp.Solver.INFEASIBLE:
        return None
    assert status == pywraplp.Solver.OPTIMAL
    return solver.Objective().Value()


# ---------------------------------------------------------------- exactly optimal on small instances


@pytest.mark.parametrize("seed", range(6))
def test_tiny_instances_match_brute_force(seed: int) -> None:
    data = random_instance(seed, branches=1, classes=2, days=3, ladder=[0.8, 1.0, 1.25],
                           max_step=[None, 1, 0][seed % 3], class_order=seed % 2 == 0)
    plan = solve(data)
    best = brute_force(data)
    assert best is not None
    assert plan["status"] == "optimal"
    assert check_plan(data, plan) == pytest.approx(best, rel=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_small_instances_match_an_independent_mip(seed: int) -> None:
    # SCIP needs seconds on these (the ladder choice hides behind continuous booking limits): keep them small
    data = random_instance(100 + seed, branches=2, classes=3, days=4, max_step=[2, 1, None, 2][seed],
                           class_order=seed != 2)
    plan = solve(data, time_limit_s=120)
    assert plan["status"] == "optimal"
    assert plan["bound"] == pytest.approx(plan["objective"], abs=0.01)
    assert check_plan(data, plan) == pytest.approx(exact_mip(data), rel=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_the_certifying_bound_lies_between_the_optimum_and_the_lp_bound(seed: int) -> None:
    data = random_instance(200 + seed, branches=1, classes=3, days=4)
    result = bound_branch(parse_instance(data), 0, class_time_limit_s=30)
    assert result.lagrangian is not None and result.classes_proved == 3
    assert exact_mip(data) <= result.lagrangian * (1 + 1e-6)
    assert result.lagrangian <= result.lp * (1 + 1e-6) and result.bound == min(result.lp, result.lagrangian)


def test_subgradient_rounds_only_lower_the_certifying_bound_and_never_below_the_optimum() -> None:
    data = random_instance(201, branches=1, classes=3, days=4)
    optimum = exact_mip(data)
    first = bound_branch(parse_instance(data), 0, class_time_limit_s=30)
    assert first.rounds == 1 and first.lagrangian is not None
    more = bound_branch(parse_instance(data), 0, class_time_limit_s=30, time_budget_s=5, known=optimum)
    assert more.lagrangian is not None
    assert optimum <= more.lagrangian * (1 + 1e-6) and more.lagrangian <= first.lagrangian * (1 + 1e-9)
    assert first.lagrangian > optimum * (1 + 1e-3)  # this instance's first bound is loose (3,542.6 > 3,531.7) …
    assert more.rounds >= 2 and more.lagrangian < first.lagrangian - 1.0  # … and the steps tighten it


@pytest.mark.parametrize("seed", [232, 234, 235])
def test_pairs_of_classes_kept_together_give_a_bound_between_the_optimum_and_the_one_class_bound(seed: int) -> None:
    data = random_instance(seed, branches=1, classes=4, days=4)
    optimum = exact_mip(data)
    alone = bound_branch(parse_instance(data), 0, class_time_limit_s=30)
    pairs = bound_branch(parse_instance(data), 0, class_time_limit_s=30, group=2)
    whole = bound_branch(parse_instance(data), 0, class_time_limit_s=30, group=4)
    assert alone.lagrangian is not None and pairs.lagrangian is not None and whole.lagrangian is not None
    assert pairs.classes_proved == 2 and whole.classes_proved == 1
    assert optimum <= pairs.lagrangian * (1 + 1e-6) and pairs.lagrangian <= alone.lagrangian * (1 + 1e-6)
    assert whole.lagrangian == pytest.approx(optimum, rel=1e-6)  # one group: nothing relaxed, the exact MIP
    if seed != 234:  # on these two the one-class bound is loose (6,409.65 and 7,705.89) and the pairs' exact
        assert alone.lagrangian > optimum + 1.0 and pairs.lagrangian == pytest.approx(optimum, rel=1e-6)


def test_without_class_order_the_certifying_bound_is_the_optimum() -> None:
    # the classes only meet through class_order: with it gone, one exact MIP per class is the exact optimum
    data = random_instance(210, branches=1, classes=3, days=5, class_order=False)
    result = bound_branch(parse_instance(data), 0, class_time_limit_s=30)
    assert result.bound == pytest.approx(exact_mip(data), rel=1e-6)


def test_time_the_climb_leaves_goes_to_the_exact_mip_of_the_widest_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    data = random_instance(1, branches=3, classes=6, days=14)  # 84 segments a branch: above EXACT_SEGMENTS
    monkeypatch.setattr(prices, "POLISH_MIN_S", float("inf"))  # no polishing
    climbed = solve(data, time_limit_s=6)
    monkeypatch.undo()
    polished = solve(data, time_limit_s=6)
    assert polished["stats"]["solve_seconds"] <= 6
    assert check_plan(data, polished) == pytest.approx(polished["objective"], rel=1e-6)
    assert polished["objective"] >= climbed["objective"] - 1e-6
    gap = (climbed["bound"] - climbed["objective"]) / climbed["bound"]
    assert polished["bound"] >= polished["objective"] - 1e-6
    assert (polished["bound"] - polished["objective"]) / polished["bound"] < gap / 2  # 1.98% → 0.47% here


def test_a_large_instance_keeps_every_rule_and_beats_list_price() -> None:
    data = random_instance(7, branches=12, classes=5, days=14)
    plan = solve(data, time_limit_s=5)
    assert plan["status"] in ("optimal", "feasible")
    revenue = check_plan(data, plan)
    at_list = best_accept_revenue(data, {(s["branch"], s["class"], s["day"]): data["ladder"].index(1.0)
                                         for s in data["segments"]})
    assert revenue > at_list
    assert plan["bound"] >= revenue


def climb_state(inst, level):
    data = prices._Data.of(inst)
    accept = prices._best_accepts(data, level)
    return prices._Climb(data, level.copy(), accept, prices._class_revenue(data, level, accept))


def test_the_climb_stops_only_where_no_move_helps() -> None:
    # the climb skips moves that failed before until something they depend on changes: none it skipped may help
    inst = parse_instance(random_instance(7, branches=6, classes=4, days=7))
    start = climb_state(inst, np.where(inst.present, inst.ladder.tolist().index(1.0), -1))
    level, accept, _, converged = prices._climb(start.data, start.level, start.accept, time.perf_counter() + 60,
                                                lambda _: None)
    assert converged
    after = climb_state(inst, level)
    assert not any(after.day_line(d) for d in range(inst.horizon_days))
    assert not any(after.block_line(list(range(d, d + n))) for n in (2, 3, 4) for d in range(inst.horizon_days - n + 1))
    assert not after.block_line(list(range(inst.horizon_days)), range(-7, 8))
    assert not any(after.pattern_line(list(range(d, d + n)), reach) for n, reach in prices.PATTERNS
                   for d in range(inst.horizon_days - n + 1))
    for units, days in prices._moves(after.data, classes=3, days=3, n_d=inst.horizon_days):
        for delta in (1, -1, 2, -2):
            assert not after.attempt(units, days, delta), (units, days, delta)


@pytest.mark.parametrize("seed", range(4))
def test_a_day_line_finds_the_best_steps_of_its_day(seed: int) -> None:
    data = random_instance(300 + seed, branches=1, classes=3, days=4, ladder=[0.8, 0.9, 1.0, 1.1, 1.25],
                           max_step=1)
    inst = parse_instance(data)
    rng = np.random.default_rng(seed)
    day = int(rng.integers(0, 4))
    start = np.full(inst.present.shape, 2)  # list price everywhere keeps both rules
    state = climb_state(inst, start)
    state.day_line(day)
    best = -np.inf
    for combo in itertools.product(range(5), repeat=3):
        level = start.copy()
        level[0, :, day] = combo
        if prices.rule_breaks(inst, level) == {"max_step": 0, "class_order": 0}:
            best = max(best, float(prices.evaluate_steps(inst, level)[1][0]))
    assert prices.rule_breaks(inst, state.level) == {"max_step": 0, "class_order": 0}
    assert (state.level[0, :, np.arange(4) != day] == 2).all()
    assert state.earned.sum() == pytest.approx(best, rel=1e-6, abs=1e-3)


@pytest.mark.parametrize("seed", range(3))
def test_a_pattern_line_finds_the_best_steps_of_its_run(seed: int) -> None:
    # every class by its own shift on each of two days: a class may go down on one day and up on the next
    data = random_instance(400 + seed, branches=1, classes=3, days=4, ladder=[0.8, 0.9, 1.0, 1.1, 1.25],
                           max_step=1)
    inst = parse_instance(data)
    days = [1, 2] if seed % 2 else [0, 1]
    start = np.full(inst.present.shape, 2)
    state = climb_state(inst, start)
    state.pattern_line(days, 1)
    best = -np.inf
    for combo in itertools.product(range(1, 4), repeat=6):
        level = start.copy()
        level[0][np.ix_(range(3), days)] = np.reshape(combo, (3, 2))
        if prices.rule_breaks(inst, level) == {"max_step": 0, "class_order": 0}:
            best = max(best, float(prices.evaluate_steps(inst, level)[1][0]))
    assert prices.rule_breaks(inst, state.level) == {"max_step": 0, "class_order": 0}
    outside = [d for d in range(4) if d not in days]
    assert (state.level[0][:, outside] == 2).all()
    assert state.earned.sum() == pytest.approx(best, rel=1e-6, abs=1e-3)
    assert state.earned.sum() == pytest.approx(float(prices.evaluate_steps(inst, state.level)[1][0]), rel=1e-9)


def test_progress_runs_from_zero_to_one() -> None:
    seen: list[float] = []
    optimise_prices(parse_instance(random_instance(3, branches=4, classes=3, days=10)), time_limit_s=3,
                    progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in seen) and seen == sorted(seen)


def test_capacity_that_binds_lowers_the_accepts_not_below_zero() -> None:
    data = {"horizon_days": 2, "ladder": [1.0, 2.0], "classes": [{"id": "eco", "rank": 1, "rental_days": 2}],
            "segments": [{"branch": "A", "class": "eco", "day": d, "list_rate": 10.0, "capacity": 5,
                          "base_demand": 8.0, "elasticity": 0.5} for d in range(2)]}
    plan = solve(data)
    # elasticity below 1: the higher price earns more per start; day 0 fills the car park for both days
    assert plan["status"] == "optimal"
    assert [p["multiplier"] for p in plan["prices"]] == [2.0, 2.0]
    assert plan["objective"] == pytest.approx(5 * 20.0 * 2, abs=0.01)
    assert check_plan(data, plan) == pytest.approx(200.0, abs=0.01)


# ---------------------------------------------------------------- infeasible instances


def ordered_pair(**segment_overrides: Any) -> dict[str, Any]:
    return {"horizon_days": 1, "ladder": [0.8, 1.0, 1.2], "class_order": True,
            "classes": [{"id": "economy", "rank": 1, "rental_days": 1}, {"id": "suv", "rank": 2, "rental_days": 1}],
            "segments": [{"branch": "A", "class": "economy", "day": 0, "list_rate": 100.0, "capacity": 3,
                          "base_demand": 2.0, "elasticity": 1.5},
                         {"branch": "A", "class": "suv", "day": 0, "list_rate": 50.0, "capacity": 3,
                          "base_demand": 2.0, "elasticity": 1.5, **segment_overrides}]}


def test_class_order_that_no_rates_can_keep_is_infeasible_with_the_reason() -> None:
    plan = solve(ordered_pair())
    assert plan["status"] == "infeasible" and plan["objective"] is None and plan["prices"] == []
    assert "class_order" in plan["reason"] and "'suv'" in plan["reason"] and "day 0" in plan["reason"]


def test_class_order_with_max_step_can_be_infeasible_although_every_day_alone_is_not() -> None:
    classes = [{"id": "a", "rank": 1, "rental_days": 1}, {"id": "b", "rank": 2, "rental_days": 1},
               {"id": "c", "rank": 3, "rental_days": 1}]
    rates = {("a", 0): 100, ("b", 0): 60, ("c", 0): 130, ("a", 1): 50, ("b", 1): 110, ("c", 1): 100}
    data = {"horizon_days": 2, "ladder": [1.0, 2.0], "classes": classes, "max_step": 0, "class_order": True,
            "segments": [{"branch": "A", "class": c, "day": d, "list_rate": r, "capacity": 2, "base_demand": 1,
                          "elasticity": 1} for (c, d), r in rates.items()]}
    plan = solve(data)
    assert plan["status"] == "infeasible" and "max_step 0" in plan["reason"]
    assert solve({**data, "max_step": 1})["status"] == "optimal"


# ---------------------------------------------------------------- bad input


BASE = random_instance(1, branches=1, classes=2, days=2)


def broken(change) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    change(data)
    return data


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.pop("ladder"), "ladder must be a non-empty list"),
    (lambda d: d.pop("horizon_days"), "horizon_days is missing"),
    (lambda d: d["segments"][1].pop("capacity"), "segments[1] has no capacity"),
    (lambda d: d["segments"][0].pop("elasticity"), "segments[0] has no elasticity"),
    (lambda d: d["classes"][0].pop("rental_days"), "rental_days of class 'class0' is missing"),
    (lambda d: d["segments"][2].update(capacity=-1), "capacity of segments[2] must not be negative"),
    (lambda d: d["segments"][0].update(base_demand=-0.5), "base_demand of segments[0] must not be negative"),
    (lambda d: d.update(ladder=[0.8, 0.9, 1.1]), "ladder must contain 1.0"),
    (lambda d: d.update(ladder=[1.0, 0.8, 1.2]), "ladder must be sorted"),
    (lambda d: d["segments"][3].update({"class": "limousine"}), "segments[3] names unknown class 'limousine'"),
    (lambda d: d["segments"].append(dict(d["segments"][0])), "duplicate segment: branch 'B0', class 'class0', day 0"),
    (lambda d: d["segments"][0].update(day=5), "outside the horizon"),
    (lambda d: d["segments"][0].update(list_rate="cheap"), "list_rate of segments[0] must be a number"),
    (lambda d: d.update(max_step=-1), "max_step must not be negative"),
    (lambda d: d.update(class_order="yes"), "class_order must be true or false"),
    (lambda d: d.update(segments=[]), "segments must be a non-empty list"),
])
def test_bad_instances_are_refused_with_one_line_naming_the_problem(change, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_instance(broken(change))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_time_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="time_limit_s"):
        optimise_prices(parse_instance(BASE), time_limit_s=0)
