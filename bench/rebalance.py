"""Benchmark of the rebalancing optimiser (issue 9): the whole `fleetdesk optimise rebalance` call on M and L,
against doing nothing, a greedy nightly rule and a general LP solver, in the same run.

Instances come from bench/rebalance_instances.py (seeded). Each CLI run is a fresh subprocess timed from start
to exit: reading the JSON, building, solving, writing the plan. Every plan is replayed here day by day
(stocks never negative, lanes within max_move_km, parking and nightly caps kept) and its cost recomputed from
scratch, so the figures are the plan's, not the solver's say-so.

Baselines:
- no relocation: every branch serves what it can from its own stock and returns;
- greedy: night by night, each branch short of cars for the day pulls them from the nearest branches that have
  more than the day needs, while a move costs less than the sale it saves;
- a general LP solver (HiGHS, through OR-Tools' linear solver) on the same time-expanded network with every
  allowed lane, for one class of M (the whole of M is five times that).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from ortools.linear_solver import pywraplp

from bench.rebalance_instances import L, M, make_instance
from bench.results_io import write_results
from db.config import PROJECT_ROOT
from services.optimise import rebalance
from services.optimise.rebalance import CENTS, RebalanceInstance, haversine_km, move_lanes, parse_instance

TARGETS = {"M": 5.0, "M+limits": 30.0, "L": 60.0}
# the solver's own limit: the target less what starting the CLI and reading the instance take
TIME_LIMITS = {"M": 5.0, "M+limits": 25.0, "L": 55.0}
GAP_TARGET_PCT = 0.5
LP_CLASS = 0  # the class the general LP solver is given (economy, the biggest)


def main() -> None:
    started = time.monotonic()
    load = os.getloadavg()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rebalance-bench-") as tmp:
        for label, size, limits in (("M", M, False), ("M+limits", M, True), ("L", L, False)):
            document = make_instance(size, shared_limits=limits)
            path = Path(tmp) / f"{label}.json"
            path.write_text(json.dumps(document))
            instance = parse_instance(document)
            print(f"{label}: {_describe(instance)}", flush=True)
            runs.append(_cli_run(label, path, instance, TARGETS[label], TIME_LIMITS[label]))
            print(f"  optimiser: {runs[-1]}", flush=True)
            if label == "M+limits":
                continue
            for way, plan_fn in (("no relocation", _no_relocation), ("greedy", _greedy)):
                t0 = time.perf_counter()
                moves = plan_fn(instance)
                runs.append({"instance": label, "way": way, **_replay(instance, moves),
                             "seconds": time.perf_counter() - t0})
                print(f"  {way}: {runs[-1]}", flush=True)
            if label == "M":
                runs.extend(_one_class_comparison(label, instance))
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                          "load_average": load},
              "targets_seconds": TARGETS, "gap_target_pct": GAP_TARGET_PCT, "runs": runs,
              "wall_seconds": time.monotonic() - started}
    write_results("rebalance", report, _table(report))
    print(_table(report))


# ---------------------------------------------------------------- the CLI, timed as a whole


def _cli_run(label: str, path: Path, instance: RebalanceInstance, target: float,
             time_limit: float) -> dict[str, Any]:
    out = path.with_suffix(".plan.json")
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "app.cli", "optimise", "rebalance", str(path), "--out", str(out),
                             "--time-limit", f"{time_limit:g}"], capture_output=True, text=True, cwd=PROJECT_ROOT)
    seconds = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    if result.returncode == 2 or not out.exists():
        raise RuntimeError(f"{label}: the CLI exited {result.returncode}: {result.stderr.strip()}")
    plan = json.loads(out.read_text())
    if plan["status"] not in ("optimal", "feasible"):  # a miss is a result too: record it
        return {"instance": label, "way": "optimiser (CLI)", "cost": None, "demand_covered_pct": None,
                "cars_moved": None, "seconds": seconds, "cpu_seconds": cpu, "status": plan["status"],
                "reason": plan.get("reason"),
                "objective": None, "bound": None, "gap_pct": None, "solve_seconds": plan["stats"]["solve_seconds"],
                "target_seconds": target, "target_met": False}
    moves = np.array([[instance.branch_ids.index(m["from"]), instance.branch_ids.index(m["to"]),
                       instance.classes.index(m["class"]), m["day"], m["count"]] for m in plan["moves"]],
                     dtype=np.int64).reshape(-1, 5)
    replay = _replay(instance, moves)
    if abs(replay["cost"] - plan["objective"]) > 0.01 + 0.005 * replay["cars_moved"]:
        raise RuntimeError(f"{label}: the plan costs {replay['cost']} replayed, not {plan['objective']}")
    gap = None if plan["bound"] is None else 100 * (plan["objective"] - plan["bound"]) / max(plan["objective"], 1e-9)
    met = seconds <= target and (plan["status"] == "optimal" if label != "M+limits"
                                 else gap is not None and gap <= GAP_TARGET_PCT)
    return {"instance": label, "way": "optimiser (CLI)", **replay, "seconds": seconds, "cpu_seconds": cpu,
            "status": plan["status"],
            "objective": plan["objective"], "bound": plan["bound"], "gap_pct": gap,
            "solve_seconds": plan["stats"]["solve_seconds"], "target_seconds": target, "target_met": met}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------- replaying a plan


def _replay(instance: RebalanceInstance, moves: np.ndarray) -> dict[str, Any]:
    """Cost, demand covered and cars moved of a plan given as moves (from, to, class, night, count): each day
    serves what it can; raises if the plan breaks a rule."""
    n_b, n_c, n_d = instance.demand.shape
    dist = haversine_km(instance.lat, instance.lon)
    if len(moves):
        f, t, c, d, n = moves.T
        if (n <= 0).any() or (f == t).any() or (dist[f, t] > instance.max_move_km).any():
            raise RuntimeError("a move is empty, stays put or is longer than max_move_km")
        move_cost = float(np.sum(n * (instance.move_fixed_cost + instance.move_cost_per_km * dist[f, t])))
    else:
        move_cost = 0.0
    stock = instance.initial.astype(np.int64).copy()
    lost_cost, lost_total = 0.0, 0
    for day in range(n_d):
        out = np.zeros((n_b, n_c), dtype=np.int64)
        inn = np.zeros((n_b, n_c), dtype=np.int64)
        tonight = moves[moves[:, 3] == day] if len(moves) else moves
        np.add.at(out, (tonight[:, 0], tonight[:, 2]), tonight[:, 4])
        np.add.at(inn, (tonight[:, 1], tonight[:, 2]), tonight[:, 4])
        if (out > stock).any():
            raise RuntimeError(f"night {day}: more cars moved out of a branch than it had")
        if instance.max_moves_out is not None and (out.sum(axis=1) > instance.max_moves_out).any():
            raise RuntimeError(f"night {day}: a branch sends out more than max_moves_out")
        parked = stock - out + inn
        if (parked.sum(axis=1) > instance.capacity).any():
            raise RuntimeError(f"day {day}: a branch holds more cars than its capacity")
        avail = parked + instance.returns[:, :, day]
        served = np.minimum(avail, instance.demand[:, :, day])
        lost = instance.demand[:, :, day] - served
        lost_total += int(lost.sum())
        lost_cost += float((lost * instance.lost_sale_cost[None, :]).sum())
        stock = avail - served
    demand = int(instance.demand.sum())
    return {"cost": round(move_cost + lost_cost, 2),
            "demand_covered_pct": round(100 * (demand - lost_total) / demand, 2) if demand else 100.0,
            "cars_moved": int(moves[:, 4].sum()) if len(moves) else 0}


# ---------------------------------------------------------------- baselines


def _no_relocation(instance: RebalanceInstance) -> np.ndarray:
    return np.zeros((0, 5), dtype=np.int64)


def _greedy(instance: RebalanceInstance) -> np.ndarray:
    """Night by night and class by class: branches short for the day pull cars from the nearest branches with
    more than the day needs, while the move is cheaper than the lost sale."""
    n_b, n_c, n_d = instance.demand.shape
    src, dst, cost = move_lanes(instance)
    order = np.lexsort((cost, dst))
    src, dst, cost = src[order], dst[order], cost[order]
    starts = np.searchsorted(dst, np.arange(n_b + 1))
    stock = instance.initial.astype(np.int64).copy()
    moves: list[tuple[int, int, int, int, int]] = []
    for day in range(n_d):
        for c in range(n_c):
            lost_cents = instance.lost_sale_cost[c] * CENTS
            balance = stock[:, c] + instance.returns[:, c, day] - instance.demand[:, c, day]
            spare = np.minimum(np.maximum(balance, 0), stock[:, c])
            for t in np.argsort(balance):  # the shortest first
                short = -int(balance[t])
                if short <= 0:
                    break
                for k in range(starts[t], starts[t + 1]):
                    if cost[k] >= lost_cents:
                        break
                    s = src[k]
                    take = min(short, int(spare[s]))
                    if take:
                        moves.append((int(s), int(t), c, day, take))
                        spare[s] -= take
                        stock[s, c] -= take
                        stock[t, c] += take
                        short -= take
                        if short == 0:
                            break
            avail = stock[:, c] + instance.returns[:, c, day]
            stock[:, c] = avail - np.minimum(avail, instance.demand[:, c, day])
    return np.array(moves, dtype=np.int64).reshape(-1, 5)


def _one_class_comparison(label: str, instance: RebalanceInstance) -> list[dict[str, Any]]:
    """One class of M three ways: priced-out min-cost flow, every lane in one min-cost flow, HiGHS's LP."""
    lanes = rebalance._lanes(instance)
    every = rebalance._Lanes(lanes.src, lanes.dst, lanes.cost, np.arange(len(lanes.src)))
    name = instance.classes[LP_CLASS]
    rows = []
    for way, chosen in (("min-cost flow, lanes priced out", lanes), ("min-cost flow, every lane", every)):
        t0 = time.perf_counter()
        flow = rebalance._solve_class(instance, LP_CLASS, chosen)
        rows.append({"instance": f"{label}, class {name} only", "way": way, "cost": flow.cost / CENTS,
                     "cars_moved": int(flow.count.sum()), "arcs": flow.arcs, "rounds": flow.rounds,
                     "seconds": time.perf_counter() - t0})
        print(f"  {rows[-1]}", flush=True)
    rows.append(_highs_lp(label, instance, every, name))
    print(f"  {rows[-1]}", flush=True)
    return rows


def _highs_lp(label: str, instance: RebalanceInstance, every: Any, name: str) -> dict[str, Any]:
    n_d = instance.horizon_days
    active = np.arange(n_d * len(every.src))
    t0 = time.perf_counter()
    net = rebalance._class_network(instance, LP_CLASS, every, active)
    solver = pywraplp.Solver.CreateSolver("HIGHS_LP")
    solver.SetSolverSpecificParametersAsString("output_flag=false\nlog_to_console=false\n")
    x = [solver.NumVar(0.0, float(cap), "") for cap in net.capacity.tolist()]
    balance = [solver.Constraint(float(s), float(s)) for s in net.supply.tolist()]
    for a, (t, h) in enumerate(zip(net.tail.tolist(), net.head.tolist(), strict=True)):
        balance[t].SetCoefficient(x[a], 1.0)
        balance[h].SetCoefficient(x[a], -1.0)
    objective = solver.Objective()
    for a, cost in enumerate(net.cost.tolist()):
        if cost:
            objective.SetCoefficient(x[a], float(cost))
    objective.SetMinimization()
    built = time.perf_counter() - t0
    status = solver.Solve()
    seconds = time.perf_counter() - t0
    if status != pywraplp.Solver.OPTIMAL:
        raise RuntimeError(f"HiGHS ended with status {status}")
    moved = sum(x[a].solution_value() for a in range(net.n_fixed, len(x)))
    return {"instance": f"{label}, class {name} only", "way": "HiGHS LP (general LP solver), every lane",
            "cost": round((solver.Objective().Value() + net.constant) / CENTS, 2), "cars_moved": round(moved),
            "arcs": len(x), "build_seconds": built, "seconds": seconds}


# ---------------------------------------------------------------- the report


def _describe(instance: RebalanceInstance) -> str:
    n_b, n_c, n_d = instance.demand.shape
    cars = int(instance.initial.sum() + instance.returns.sum())
    limits = " with parking capacities and max_moves_out" if instance.max_moves_out is not None else ""
    return (f"{n_b} branches, {n_c} classes, {n_d} days, {cars:,} cars (on hand + returns), "
            f"{int(instance.demand.sum()):,} demanded, {len(move_lanes(instance)[0]):,} lanes{limits}")


def _table(report: dict[str, Any]) -> str:
    lines = ["# Rebalancing optimiser benchmark", "",
             f"{report['machine']['cpus']} CPUs, load average before the run "
             f"{', '.join(f'{x:.1f}' for x in report['machine']['load_average'])}. Whole run: "
             f"{report['wall_seconds']:.0f} s. Optimiser rows time the whole `fleetdesk optimise rebalance` "
             "subprocess (CPU s: its user + system CPU time, both cores together); every plan is replayed and "
             "its cost recomputed from unrounded distances (the solver rounds each move's cost to the cent, so its "
             "objective and bound may differ from that by under a cent per car moved). The one-class rows are "
             "the same model for one class, solved in this process.", "",
             "| instance | way | cost | bound | gap % | demand covered % | cars moved | seconds | CPU s | target |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for run in report["runs"]:
        target = ""
        if "target_met" in run:
            target = f"{'met' if run['target_met'] else 'MISSED'} (≤ {run['target_seconds']:g} s)"
        bound = "" if run.get("bound") is None else f"{run['bound']:,.2f}"
        gap = "" if run.get("gap_pct") is None else f"{run['gap_pct']:.3f}"
        covered = "" if run.get("demand_covered_pct") is None else f"{run['demand_covered_pct']:.2f}"
        cost = run.get("status") if run["cost"] is None else f"{run['cost']:,.2f}"
        moved = "" if run["cars_moved"] is None else f"{run['cars_moved']:,}"
        cpu = "" if run.get("cpu_seconds") is None else f"{run['cpu_seconds']:.1f}"
        lines.append(f"| {run['instance']} | {run['way']} | {cost} | {bound} | {gap} | {covered} | "
                     f"{moved} | {run['seconds']:.2f} | {cpu} | {target} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
