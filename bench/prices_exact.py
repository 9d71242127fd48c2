"""`python -m bench.prices_exact [BUDGET_SECONDS] [MAX_BRANCHES] [PROCESSES]`: a proven upper bound on the best
revenue of every branch of the 100-branch benchmark instance, to certify how far the fast optimiser's plan can be
from the optimum. `python -m bench.prices_exact mip SECONDS [MAX_BRANCHES] [PROCESSES]`: then the whole branch's MIP
(SCIP, one thread) for SECONDS, started from our 10-s plan, widest certified gap first: its bound where lower, and
the best plan it found (`mip_hint_*`). `python -m bench.prices_exact refine BUDGET_SECONDS [MAX_BRANCHES]
[PROCESSES]`: subgradient rounds again within that budget, towards our current 10-s plan, widest gap first.
`python -m bench.prices_exact groups SIZE [MAX_BRANCHES] [PROCESSES]`: the same relaxation with runs of SIZE classes
next in rank kept together (class_order exact inside a run, priced at the LP's duals between runs), widest gap
first (`group<SIZE>_*`; GROUP_SECONDS a run's MIP).

Per branch (`bound_branch` in services/optimise/prices.py, one thread): the LP relaxation of the exact MIP, then the
Lagrangian relaxation of class_order, where every class is a small MIP of its own solved exactly (HiGHS; SCIP's bound
where HiGHS does not finish in CLASS_SECONDS), first at the LP's dual prices, then at prices moved by subgradient
steps towards the revenue of our own 10-s plan for that branch, as long as another round fits BUDGET_SECONDS. The
branch MIP itself cannot do this: at 240 s of SCIP per branch it proved no branch and its bound was barely under
the LP's.

Long and resumable: each branch's result is added to bench/results/prices_exact.json as soon as it is known, and
branches already there under this method are skipped. Bounds of earlier runs (`mip_bound` of a 240-s SCIP run of the
whole branch, `lagrangian_bound_scip6s` of the first certifying run: class_order priced at the LP's duals, SCIP 6 s a
class) are kept, as is the best plan the SCIP run found (`mip_best_plan`): every one of those bounds is proven, so
the smallest counts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import cache
from multiprocessing import get_context

import numpy as np

from bench.prices_instances import SEED, generate
from bench.results_io import RESULTS
from services.optimise.prices import bound_branch, branch_mip, evaluate_steps, optimise_prices, parse_instance

BRANCHES = 100
BUDGET_SECONDS = 60.0
CLASS_SECONDS = 30.0
GROUP_SECONDS = 120.0
PLAN_SECONDS = 10.0
PATH = RESULTS / "prices_exact.json"
METHOD = ("LP relaxation of the per-branch MIP, then the Lagrangian relaxation of class_order with one exact MIP per "
          "class (HiGHS, one thread; SCIP's bound where HiGHS did not finish), at the LP's dual prices and then at "
          "prices moved by subgradient steps towards our own plan's revenue, within a budget per branch; then the "
          "same with classes next in rank kept together in pairs, class_order exact inside each pair and priced at "
          "the LP's duals between pairs; the lowest bound of all counts")
VERSION = 2


def main(argv: list[str]) -> int:
    if argv and argv[0] == "mip":
        return _mip(argv[1:])
    if argv and argv[0] == "refine":
        return _refine(argv[1:])
    if argv and argv[0] == "groups":
        return _groups(argv[1:])
    budget = float(argv[0]) if argv else BUDGET_SECONDS
    limit = int(argv[1]) if len(argv) > 1 else BRANCHES
    processes = int(argv[2]) if len(argv) > 2 else 2
    data = generate(BRANCHES)
    instance = parse_instance(data)
    plan = optimise_prices(instance, time_limit_s=PLAN_SECONDS)
    _, ours = evaluate_steps(instance, plan.level)
    print(f"our {PLAN_SECONDS:g}-s plan: {plan.objective:,.0f}", flush=True)
    done = _load()
    todo = [(b, branch, float(ours[b]), budget) for b, branch in enumerate(instance.branch_ids[:limit])
            if done["branches"].get(branch, {}).get("version") != VERSION]
    with get_context("spawn").Pool(processes) as pool:
        for branch, known, result in pool.imap_unordered(_one, todo):
            entry = done["branches"].setdefault(branch, {})
            earlier = [entry[k] for k in ("mip_bound", "lagrangian_bound_scip6s") if entry.get(k) is not None]
            entry.update({"version": VERSION, "known_plan": round(known, 4), "lp_bound": round(result.lp, 4),
                          "lagrangian_bound": _rounded(result.lagrangian),
                          "bound": round(min([result.bound, *earlier]), 4), "rounds": result.rounds,
                          "classes_proved": result.classes_proved, "seconds": round(result.seconds, 1),
                          "budget_s": budget, "class_time_limit_s": CLASS_SECONDS})
            RESULTS.mkdir(parents=True, exist_ok=True)
            PATH.write_text(json.dumps(done, indent=2) + "\n")
            print(f"{branch}: {entry}", flush=True)
    return 0


def _mip(argv: list[str]) -> int:
    seconds = float(argv[0])
    return _widest_first(argv[1:], lambda entry: entry.get("mip_hint_seconds", 0) < seconds,
                         lambda b, branch, level, known: (b, branch, level, seconds), _one_mip)


def _refine(argv: list[str]) -> int:
    budget = float(argv[0])
    return _widest_first(argv[1:], lambda entry: entry.get("refine_budget_s", 0) < budget,
                         lambda b, branch, level, known: (b, branch, known, budget), _one_refine)


def _groups(argv: list[str]) -> int:
    size = int(argv[0])
    return _widest_first(argv[1:], lambda entry: entry.get(f"group{size}_bound") is None,
                         lambda b, branch, level, known: (b, branch, size), _one_group)


def _widest_first(argv: list[str], pending: Callable[[dict], bool], task: Callable[..., tuple],
                  worker: Callable[[tuple], tuple[str, dict, float | None]]) -> int:
    """The further runs: our 10-s plan, then `worker(task(...))` in processes for the branches `pending` says are to
    do, widest certified gap first ([MAX_BRANCHES] [PROCESSES] in argv). A worker returns the branch, the fields
    to store in its entry and the bound it proves (None: none), which replaces the branch's bound where lower."""
    limit = int(argv[0]) if argv else BRANCHES
    processes = int(argv[1]) if len(argv) > 1 else 2
    instance = _instance()
    plan = optimise_prices(instance, time_limit_s=PLAN_SECONDS)
    _, ours = evaluate_steps(instance, plan.level)
    done = _load()
    names = list(instance.branch_ids)
    todo = [(names.index(branch), branch) for branch, entry in done["branches"].items() if pending(entry)]
    todo.sort(key=lambda item: float(ours[item[0]]) / done["branches"][item[1]]["bound"])
    tasks = [task(b, branch, plan.level[b], float(ours[b])) for b, branch in todo[:limit]]
    with get_context("spawn").Pool(processes) as pool:
        for branch, fields, lower in pool.imap_unordered(worker, tasks):
            entry = done["branches"][branch]
            entry.update(fields)
            if lower is not None:
                entry["bound"] = round(min(entry["bound"], lower), 4)
            PATH.write_text(json.dumps(done, indent=2) + "\n")
            print(f"{branch}: ours {float(ours[names.index(branch)]):,.0f}, bound {entry['bound']:,.0f}", flush=True)
    return 0


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _one_mip(task: tuple[int, str, np.ndarray, float]) -> tuple[str, dict, float | None]:
    b, branch, level, seconds = task
    result = branch_mip(_instance(), b, seconds, level)
    return branch, {"mip_hint_seconds": seconds, "mip_hint_status": result.status,
                    "mip_hint_plan": _rounded(result.objective), "mip_hint_bound": _rounded(result.bound)}, result.bound


def _one_refine(task: tuple[int, str, float, float]) -> tuple[str, dict, float]:
    b, branch, known, budget = task
    result = bound_branch(_instance(), b, class_time_limit_s=CLASS_SECONDS, time_budget_s=budget, known=known)
    return branch, {"refine_budget_s": budget, "refine_known_plan": round(known, 4), "refine_rounds": result.rounds,
                    "refine_seconds": round(result.seconds, 1), "refine_bound": _rounded(result.lagrangian)}, \
        result.bound


def _one_group(task: tuple[int, str, int]) -> tuple[str, dict, float]:
    b, branch, size = task
    result = bound_branch(_instance(), b, class_time_limit_s=GROUP_SECONDS, group=size)
    return branch, {f"group{size}_bound": _rounded(result.lagrangian), f"group{size}_proved": result.classes_proved,
                    f"group{size}_seconds": round(result.seconds, 1), f"group{size}_time_limit_s": GROUP_SECONDS}, \
        result.bound


@cache
def _instance():
    return parse_instance(generate(BRANCHES))  # once per worker process


def _one(task: tuple[int, str, float, float]):
    b, branch, known, budget = task
    return branch, known, bound_branch(_instance(), b, class_time_limit_s=CLASS_SECONDS, time_budget_s=budget,
                                       known=known)


def _load() -> dict:
    """The results so far; the first certifying run's bound is kept under its own name."""
    key = {"branches": BRANCHES, "seed": SEED}
    done = json.loads(PATH.read_text()) if PATH.exists() else {}
    if done.get("instance") != key:
        return {"instance": key, "method": METHOD, "branches": {}}
    done["method"] = METHOD
    for entry in done["branches"].values():
        for old, new in (("pair_bound", "group2_bound"), ("pairs_proved", "group2_proved"),
                         ("pair_seconds", "group2_seconds"), ("pair_time_limit_s", "group2_time_limit_s")):
            if old in entry:
                entry[new] = entry.pop(old)
        if entry.get("version") is None and "lagrangian_bound" in entry:
            entry["lagrangian_bound_scip6s"] = entry.pop("lagrangian_bound")
            entry["classes_proved_scip6s"] = entry.pop("classes_proved", None)
            for stale in ("bound", "seconds", "class_time_limit_s"):
                entry.pop(stale, None)
    return done


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
