"""Benchmark of the price optimiser against three baselines in the same run, on seeded instances.

- **instances** (bench/prices_instances.py): 100 branches × 10 classes × 14 days × 8 ladder steps (14,000
  segments) and 500 branches (70,000), both with max_step 2 and class_order.
- **ours**: `optimise_prices` with a 10 s limit on 100 branches and 30 s on 500; its revenue, its proven bound
  and the gap between them.
- **baselines**, each priced with its exact booking limits (the same accept LP): list price everywhere; a
  capacity-blind myopic price per segment (the step with the highest rate × demand); the fluid LP (one
  convex mix of ladder steps per segment, capacities kept, max_step and class_order dropped) with each segment's
  mean multiplier rounded to the nearest ladder step. The two last ones may break max_step and class_order: the
  breaks are counted. The fluid LP's optimum is itself a proven (weaker) upper bound.
- **reference**: bench/results/prices_exact.json, written offline by `python -m bench.prices_exact` (per branch a
  proven upper bound: the Lagrangian relaxation of class_order with one exact MIP per class). The gap of ours is
  reported on exactly the branches it covers, to that certified bound and to the fluid LP's bound on the same
  branches, and to the best plans a long whole-branch MIP run found where it ran.
- **simulated uplift over list price**: the true demand of each (branch, class) differs from the estimate the
  optimiser saw (base demand × lognormal(0, 0.25), elasticity × normal(1, 0.2)); arrivals are Poisson draws from
  the true demand at the posted rate; cars are given first come, first served while a car is free on every day of
  the rental (no booking limits, for both policies). 40 scenarios; mean uplift and its 5th–95th percentiles.
"""

from __future__ import annotations

import json
import os
import platform
import time
from typing import Any

import numpy as np
from ortools.linear_solver import pywraplp

from bench.prices_exact import PATH as EXACT_PATH
from bench.prices_instances import SEED, generate
from bench.results_io import write_results
from services.optimise.prices import (
    PriceInstance,
    evaluate_steps,
    optimise_prices,
    parse_instance,
    rule_breaks,
)

SIZES = ((100, 10.0), (500, 30.0))
TARGET_GAP_PCT = 0.5
SCENARIOS = 40


def list_price_steps(inst: PriceInstance) -> np.ndarray:
    return np.full(inst.present.shape, int(np.flatnonzero(np.isclose(inst.ladder, 1.0))[0]))


def myopic_steps(inst: PriceInstance) -> np.ndarray:
    return (inst.rates() * inst.demand()).argmax(axis=3)


def fluid_lp(inst: PriceInstance) -> tuple[float, np.ndarray, np.ndarray]:
    """The fluid relaxation (GLOP): its optimum, its optimum per branch (each a proven bound on that branch), and
    each segment's mean multiplier rounded to the nearest ladder step."""
    solver = pywraplp.Solver.CreateSolver("GLOP")
    revenue, demand = inst.revenue_per_rental(), inst.demand()
    b_idx, c_idx, d_idx = np.nonzero(inst.present)
    n_k = len(inst.ladder)
    mix: dict[tuple[int, int, int], list] = {}
    sold: dict[tuple[int, int, int], list] = {}
    objective = []
    for b, c, d in zip(b_idx.tolist(), c_idx.tolist(), d_idx.tolist(), strict=True):
        mix[b, c, d] = [solver.NumVar(0.0, 1.0, "") for _ in range(n_k)]
        sold[b, c, d] = [solver.NumVar(0.0, float(demand[b, c, d, k]), "") for k in range(n_k)]
        solver.Add(solver.Sum(mix[b, c, d]) == 1)
        for k in range(n_k):
            solver.Add(sold[b, c, d][k] <= float(demand[b, c, d, k]) * mix[b, c, d][k])
            objective.append(float(revenue[b, c, d, k]) * sold[b, c, d][k])
    for b, c, d in mix:
        length = int(inst.rental_days[c])
        window = [v for e in range(max(0, d - length + 1), d + 1) if (b, c, e) in sold for v in sold[b, c, e]]
        solver.Add(solver.Sum(window) <= float(inst.capacity[b, c, d]))
    solver.Maximize(solver.Sum(objective))
    if solver.Solve() != pywraplp.Solver.OPTIMAL:
        raise RuntimeError("the fluid LP did not solve")
    steps = np.zeros(inst.present.shape, dtype=np.int64)
    by_branch = np.zeros(len(inst.branch_ids))
    for (b, c, d), row in mix.items():
        mean = sum(v.solution_value() * m for v, m in zip(row, inst.ladder, strict=True))
        steps[b, c, d] = int(np.abs(inst.ladder - mean).argmin())
        by_branch[b] += sum(float(revenue[b, c, d, k]) * v.solution_value() for k, v in enumerate(sold[b, c, d]))
    return solver.Objective().Value(), by_branch, steps


def simulate(inst: PriceInstance, policies: dict[str, np.ndarray], scenarios: int = SCENARIOS) -> dict[str, Any]:
    """Realised revenue of each policy (ladder steps) under demand drawn apart from the model's estimates."""
    rng = np.random.default_rng(SEED + 1)
    n_b, n_c, n_d = inst.present.shape
    out: dict[str, list[float]] = {name: [] for name in policies}
    for _ in range(scenarios):
        base = inst.base_demand * rng.lognormal(0.0, 0.25, size=(n_b, n_c, 1))
        elasticity = inst.elasticity * np.clip(rng.normal(1.0, 0.2, size=(n_b, n_c, 1)), 0.2, None)
        uniform = rng.random((n_b, n_c, n_d))  # common random numbers: the same customers face every policy
        for name, steps in policies.items():
            multiplier = inst.ladder[steps]
            mean = np.where(inst.present, base * multiplier ** -elasticity, 0.0)
            arrivals = _poisson_from_uniform(mean, uniform)
            rate = inst.list_rate * multiplier
            occupied = np.zeros((n_b, n_c, n_d))
            total = 0.0
            for d in range(n_d):
                for c in range(n_c):
                    end = min(n_d, d + int(inst.rental_days[c]))
                    free = np.min(inst.capacity[:, c, d:end] - occupied[:, c, d:end]
                                  + np.where(inst.present[:, c, d:end], 0.0, np.inf), axis=1)
                    taken = np.minimum(arrivals[:, c, d], np.floor(np.maximum(free, 0.0)))
                    occupied[:, c, d:end] += taken[:, None]
                    total += float((taken * rate[:, c, d]).sum()) * int(inst.rental_days[c])
            out[name].append(total)
    return {name: np.array(values) for name, values in out.items()}


def _poisson_from_uniform(mean: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Poisson quantiles of `uniform` (inverse CDF), so one draw of customers serves every policy."""
    count = np.zeros_like(mean)
    term = np.exp(-mean)
    cdf = term.copy()
    k = 0
    while (todo := uniform > cdf).any() and k < 500:
        k += 1
        count += todo
        term = term * mean / k
        cdf = cdf + term
    return count


def exact_reference(inst: PriceInstance, ours_level: np.ndarray,
                    fluid_by_branch: np.ndarray) -> dict[str, Any] | None:
    """Ours against the offline proven bounds (bench/results/prices_exact.json) on the branches they cover, beside
    the fluid LP's bound and the best plans an earlier long MIP run found, on the same branches."""
    if not EXACT_PATH.exists():
        return None
    data = json.loads(EXACT_PATH.read_text())
    if data.get("instance") != {"branches": len(inst.branch_ids), "seed": SEED}:
        return None
    index = {b: i for i, b in enumerate(inst.branch_ids)}
    entries = {b: e for b, e in data["branches"].items() if b in index and e.get("bound") is not None}
    if not entries:
        return None
    _, per_branch = evaluate_steps(inst, ours_level)
    ours = float(sum(per_branch[index[b]] for b in entries))
    bound = float(sum(e["bound"] for e in entries.values()))
    lp_bound = float(sum(e.get("lp_bound", e["bound"]) for e in entries.values()))
    fluid = float(sum(fluid_by_branch[index[b]] for b in entries))
    out: dict[str, Any] = {
        "method": data.get("method"), "branches": len(entries),
        "class_time_limit_s": next(iter(entries.values())).get("class_time_limit_s"),
        "seconds_per_branch": round(float(np.mean([sum(v for k, v in e.items() if k.endswith("seconds")
                                                        and not k.startswith("mip"))
                                                    for e in entries.values()])), 1),
        "branches_with_pairs": sum(1 for e in entries.values() if e.get("group2_bound") is not None),
        "rounds_per_branch": round(float(np.mean([e.get("rounds", 1) for e in entries.values()])), 2),
        "classes_proved": int(sum(e.get("classes_proved") or 0 for e in entries.values())),
        "ours": round(ours, 2), "certified_bound": round(bound, 2), "mip_lp_bound": round(lp_bound, 2),
        "fluid_lp_bound": round(fluid, 2),
        "gap_to_certified_bound_pct": round(100 * (bound - ours) / bound, 3),
        "gap_to_mip_lp_bound_pct": round(100 * (lp_bound - ours) / lp_bound, 3),
        "gap_to_fluid_lp_bound_pct": round(100 * (fluid - ours) / fluid, 3),
        "target_certified": ours >= (1 - TARGET_GAP_PCT / 100) * bound,
        "branches_certified": sum(1 for b, e in entries.items()
                                  if per_branch[index[b]] >= (1 - TARGET_GAP_PCT / 100) * e["bound"]),
    }
    known = {b: max(e.get("mip_best_plan") or 0.0, e.get("mip_hint_plan") or 0.0) for b, e in entries.items()
             if e.get("mip_best_plan") is not None or e.get("mip_hint_plan") is not None}
    if known:
        ours_there = float(sum(per_branch[index[b]] for b in known))
        best = float(sum(max(v, per_branch[index[b]]) for b, v in known.items()))
        bound_there = float(sum(entries[b]["bound"] for b in known))
        out["best_known_plans"] = {"branches": len(known), "ours": round(ours_there, 2), "best": round(best, 2),
                                   "bound": round(bound_there, 2),
                                   "gap_to_best_pct": round(100 * (best - ours_there) / best, 3),
                                   "best_to_bound_pct": round(100 * (bound_there - best) / bound_there, 3)}
    return out


def run_size(branches: int, limit: float, log=print) -> dict[str, Any]:
    inst = parse_instance(generate(branches))
    log(f"{branches} branches, {inst.segment_count:,} segments: optimiser ({limit:g} s)…")
    started = time.perf_counter()
    plan = optimise_prices(inst, time_limit_s=limit)
    seconds = time.perf_counter() - started
    row: dict[str, Any] = {"branches": branches, "segments": inst.segment_count, "time_limit_s": limit,
                           "seconds": round(seconds, 2), "status": plan.status,
                           "revenue": round(plan.objective or 0.0, 2), "bound": round(plan.bound or 0.0, 2),
                           "gap_to_own_bound_pct": plan.gap_pct, "rounds": plan.stats.get("rounds"),
                           "rule_breaks": rule_breaks(inst, plan.level)}
    log("  baselines…")
    lp_started = time.perf_counter()
    fluid_bound, fluid_by_branch, lp_steps = fluid_lp(inst)
    baselines = {"list price": list_price_steps(inst), "myopic, capacity-blind": myopic_steps(inst),
                 "fluid LP rounded": lp_steps}
    row["fluid_lp_bound"] = round(fluid_bound, 2)
    row["fluid_lp_seconds"] = round(time.perf_counter() - lp_started, 2)
    row["gap_to_fluid_bound_pct"] = round(100 * (fluid_bound - row["revenue"]) / fluid_bound, 3)
    row["baselines"] = {}
    for name, steps in baselines.items():
        _, per_branch = evaluate_steps(inst, steps)
        revenue = float(per_branch.sum())
        row["baselines"][name] = {"revenue": round(revenue, 2),
                                  "ours_above_pct": round(100 * (row["revenue"] - revenue) / revenue, 2),
                                  "rule_breaks": rule_breaks(inst, steps)}
    if branches == SIZES[0][0]:
        row["exact"] = exact_reference(inst, plan.level, fluid_by_branch)
        log("  simulation…")
        realised = simulate(inst, {"ours": plan.level, "list price": baselines["list price"]})
        uplift = 100 * (realised["ours"] - realised["list price"]) / realised["list price"]
        row["simulated_uplift_pct"] = {"scenarios": SCENARIOS, "mean": round(float(uplift.mean()), 2),
                                       "p5": round(float(np.percentile(uplift, 5)), 2),
                                       "p95": round(float(np.percentile(uplift, 95)), 2),
                                       "model_uplift_pct": row["baselines"]["list price"]["ours_above_pct"]}
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["# Price optimiser benchmark", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
             "Instances from bench/prices_instances.py (seeded), max_step 2 and class_order.", "",
             "| branches | segments | limit s | took s | status | revenue | own bound | gap to own bound % | "
             "fluid LP bound | gap to fluid bound % |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['branches']} | {r['segments']:,} | {r['time_limit_s']:g} | {r['seconds']} | {r['status']} "
                     f"| {r['revenue']:,.0f} | {r['bound']:,.0f} | {r['gap_to_own_bound_pct']} | "
                     f"{r['fluid_lp_bound']:,.0f} | {r['gap_to_fluid_bound_pct']} |")
    lines += ["", "| branches | baseline | revenue | ours above it % | max_step breaks | class_order breaks |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        for name, base in r["baselines"].items():
            lines.append(f"| {r['branches']} | {name} | {base['revenue']:,.0f} | {base['ours_above_pct']} | "
                         f"{base['rule_breaks']['max_step']} | {base['rule_breaks']['class_order']} |")
    first = rows[0]
    exact = first.get("exact")
    lines.append("")
    if exact:
        verdict = "met and certified" if exact["target_certified"] else "not certified"
        lines += [f"Reference (bench/results/prices_exact.json, {exact['seconds_per_branch']} s per branch, one thread): "
                  f"a proven upper bound on the optimum of {exact['branches']} of {first['branches']} branches — "
                  f"{exact['method']} (classes kept in pairs on {exact.get('branches_with_pairs', 0)} branches). "
                  "No branch's optimum itself is known.", "",
                  "| on those branches | revenue or bound | ours below it % |", "|---|---|---|",
                  f"| ours | {exact['ours']:,.0f} | |",
                  f"| certified bound (Lagrangian) | {exact['certified_bound']:,.0f} | "
                  f"{exact['gap_to_certified_bound_pct']} |",
                  f"| LP relaxation of the branch MIP | {exact['mip_lp_bound']:,.0f} | "
                  f"{exact['gap_to_mip_lp_bound_pct']} |",
                  f"| fluid LP bound | {exact['fluid_lp_bound']:,.0f} | {exact['gap_to_fluid_lp_bound_pct']} |", "",
                  f"Target: within {TARGET_GAP_PCT}% of the exact optimum — {verdict} (ours is within "
                  f"{TARGET_GAP_PCT}% of the bound on {exact['branches_certified']} of {exact['branches']} branches)."]
        known = exact.get("best_known_plans")
        if known:
            lines.append(f"On the {known['branches']} branches where a long run of the whole branch MIP found plans, "
                         f"the best known plans earn {known['best']:,.0f}, ours {known['gap_to_best_pct']}% less; "
                         f"they lie {known['best_to_bound_pct']}% under the certified bound, so the optimum is "
                         "somewhere in that band.")
    else:
        lines.append("No reference yet: run `python -m bench.prices_exact`.")
    sim = first.get("simulated_uplift_pct")
    if sim:
        lines += ["", f"Simulated uplift over list price ({sim['scenarios']} scenarios, true demand drawn apart from "
                  f"the estimates, Poisson arrivals, first come first served): mean {sim['mean']}% "
                  f"(5th–95th percentile {sim['p5']}% … {sim['p95']}%); the model's own expectation was "
                  f"{sim['model_uplift_pct']}%."]
    return "\n".join(lines) + "\n"


def main() -> None:
    only = os.environ.get("FLEETDESK_BENCH_PRICES_SIZES")
    sizes = [s for s in SIZES if only is None or str(s[0]) in only.split(",")]
    rows = [run_size(branches, limit) for branches, limit in sizes]
    write_results("prices", {"rows": rows, "target_gap_pct": TARGET_GAP_PCT}, table(rows))
    print(table(rows))


if __name__ == "__main__":
    main()
