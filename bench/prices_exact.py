"""`python -m bench.prices_exact [SECONDS_PER_BRANCH] [MAX_BRANCHES]`: the exact optimum of the 100-branch benchmark
instance, branch by branch, by the per-branch MIP (SCIP, one thread) started from the fast optimiser's plan.

Long and resumable: each branch's result is added to bench/results/prices_exact.json as soon as it is known, and
branches already there are skipped. A branch whose MIP ends at the time limit is kept with status "feasible", its
best plan and its proven bound, so the benchmark can say how exact the reference is."""

from __future__ import annotations

import json
import sys
import time

from bench.prices_instances import SEED, generate
from bench.results_io import RESULTS
from services.optimise.prices import optimise_prices, parse_instance, solve_branch_exactly

BRANCHES = 100
PATH = RESULTS / "prices_exact.json"


def main(argv: list[str]) -> int:
    seconds = float(argv[0]) if argv else 600.0
    limit = int(argv[1]) if len(argv) > 1 else BRANCHES
    instance = parse_instance(generate(BRANCHES))
    done = json.loads(PATH.read_text()) if PATH.exists() else {}
    if done.get("instance") != {"branches": BRANCHES, "seed": SEED}:
        done = {"instance": {"branches": BRANCHES, "seed": SEED}, "branches": {}}
    for b, branch in enumerate(instance.branch_ids[:limit]):
        if branch in done["branches"]:
            continue
        one = instance.select([b])
        start = optimise_prices(one, time_limit_s=5.0, exact_segments=0)
        started = time.perf_counter()
        exact = solve_branch_exactly(instance, b, time_limit_s=seconds, hint=start.level[0])
        best = max(exact.objective or 0.0, start.objective or 0.0)
        done["branches"][branch] = {"status": exact.status, "objective": round(best, 4),
                                    "bound": None if exact.bound is None else round(max(exact.bound, best), 4),
                                    "seconds": round(time.perf_counter() - started, 1),
                                    "time_limit_s": seconds}
        RESULTS.mkdir(parents=True, exist_ok=True)
        PATH.write_text(json.dumps(done, indent=2) + "\n")
        print(f"{branch}: {done['branches'][branch]}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
