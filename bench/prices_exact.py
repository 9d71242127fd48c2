"""`python -m bench.prices_exact [CLASS_SECONDS] [MAX_BRANCHES]`: a proven upper bound on the best revenue of every
branch of the 100-branch benchmark instance, to certify how far the fast optimiser's plan can be from the optimum.

Per branch (`bound_branch` in services/optimise/prices.py, one thread): the LP relaxation of the exact MIP, then the
Lagrangian relaxation of class_order at the LP's prices, where every class is a small MIP of its own given at most
CLASS_SECONDS (SCIP's bound counts where it stops short). The branch MIP itself cannot do this: at 240 s of SCIP per
branch it proved no branch and its bound was barely under the LP's.

Long and resumable: each branch's result is added to bench/results/prices_exact.json as soon as it is known, and
branches already there are skipped. Plans and bounds of an earlier run of the whole MIP (`mip_best_plan`,
`mip_bound`) are kept: the plan is the best known for its branch and the bound is proven too, so the smallest
bound counts."""

from __future__ import annotations

import json
import sys

from bench.prices_instances import SEED, generate
from bench.results_io import RESULTS
from services.optimise.prices import bound_branch, parse_instance

BRANCHES = 100
CLASS_SECONDS = 6.0
PATH = RESULTS / "prices_exact.json"
METHOD = ("LP relaxation of the per-branch MIP, then the Lagrangian relaxation of class_order at the LP's dual "
          "prices with one exact MIP per class (SCIP, one thread, its bound where the class time limit cut it short)")


def main(argv: list[str]) -> int:
    class_seconds = float(argv[0]) if argv else CLASS_SECONDS
    limit = int(argv[1]) if len(argv) > 1 else BRANCHES
    instance = parse_instance(generate(BRANCHES))
    done = _load()
    for b, branch in enumerate(instance.branch_ids[:limit]):
        entry = done["branches"].setdefault(branch, {})
        if "lagrangian_bound" in entry:
            continue
        result = bound_branch(instance, b, class_time_limit_s=class_seconds)
        bounds = [result.bound] + ([entry["mip_bound"]] if entry.get("mip_bound") is not None else [])
        entry.update({"lp_bound": round(result.lp, 4),
                      "lagrangian_bound": None if result.lagrangian is None else round(result.lagrangian, 4),
                      "bound": round(min(bounds), 4), "classes_proved": result.classes_proved,
                      "seconds": round(result.seconds, 1), "class_time_limit_s": class_seconds})
        RESULTS.mkdir(parents=True, exist_ok=True)
        PATH.write_text(json.dumps(done, indent=2) + "\n")
        print(f"{branch}: {entry}", flush=True)
    return 0


def _load() -> dict:
    """The results so far; entries of the earlier whole-MIP layout keep their plan and bound under new names."""
    key = {"branches": BRANCHES, "seed": SEED}
    done = json.loads(PATH.read_text()) if PATH.exists() else {}
    if done.get("instance") != key:
        return {"instance": key, "method": METHOD, "branches": {}}
    done["method"] = METHOD
    for entry in done["branches"].values():
        if "objective" in entry and "lagrangian_bound" not in entry:
            old = {k: entry.pop(k) for k in list(entry)}
            entry.update({"mip_best_plan": old["objective"], "mip_bound": old["bound"],
                          "mip_seconds": old.get("time_limit_s")})
    return done


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
