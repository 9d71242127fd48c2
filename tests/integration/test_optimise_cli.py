"""`fleetdesk optimise rebalance`: a plan on stdout or in a file, one-line errors, exit 1 when infeasible."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from db.config import PROJECT_ROOT

INSTANCE: dict[str, Any] = {
    "horizon_days": 3,
    "classes": ["economy", "suv"],
    "branches": [{"id": "B001", "lat": 51.47, "lon": -0.45, "capacity": 10},
                 {"id": "B002", "lat": 51.50, "lon": -0.12, "capacity": None}],
    "initial": [{"branch": "B001", "class": "economy", "count": 4}],
    "returns": [{"branch": "B002", "class": "suv", "day": 1, "count": 1}],
    "demand": [{"branch": "B002", "class": "economy", "day": 0, "count": 2},
               {"branch": "B002", "class": "suv", "day": 2, "count": 2}],
    "lost_sale_cost": {"economy": 60, "suv": 90},
    "move_cost_per_km": 0.9, "move_fixed_cost": 25, "max_move_km": 150, "max_moves_out": 8,
}


def rebalance(tmp_path: Path, instance: Any, *extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / "instance.json"
    path.write_text(instance if isinstance(instance, str) else json.dumps(instance))
    return subprocess.run([sys.executable, "-m", "app.cli", "optimise", "rebalance", str(path), *extra],
                          capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert fragment in lines[0]


def test_the_plan_is_written_to_the_out_file(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    result = rebalance(tmp_path, INSTANCE, "--out", str(out), "--time-limit", "10")
    assert result.returncode == 0, result.stderr
    plan = json.loads(out.read_text())
    assert plan["status"] == "optimal" and plan["bound"] == plan["objective"]
    assert plan["moves"] == [{"from": "B001", "to": "B002", "class": "economy", "day": 0, "count": 2}]
    assert plan["lost_sales"] == [{"branch": "B002", "class": "suv", "day": 2, "count": 1}]
    assert set(plan["stats"]) == {"solve_seconds", "cars_moved", "demand_covered_pct"}
    assert plan["stats"]["cars_moved"] == 2 and plan["stats"]["demand_covered_pct"] == 75.0


def test_without_out_the_plan_goes_to_stdout(tmp_path: Path) -> None:
    result = rebalance(tmp_path, {**INSTANCE, "max_moves_out": None,
                                  "branches": [{**b, "capacity": None} for b in INSTANCE["branches"]]})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "optimal"


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = {**INSTANCE, "demand": [{"branch": "B999", "class": "suv", "day": 0, "count": 1}]}
    assert_one_line_error(rebalance(tmp_path, bad), "unknown branch 'B999'")


def test_a_file_that_is_not_json_is_one_line_and_exit_2(tmp_path: Path) -> None:
    assert_one_line_error(rebalance(tmp_path, "{not json"), "not valid JSON")


def test_a_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "app.cli", "optimise", "rebalance", str(tmp_path / "nope.json")],
                            capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert_one_line_error(result, "cannot read")


def test_an_infeasible_instance_exits_1_with_the_reason(tmp_path: Path) -> None:
    crowded = {**INSTANCE, "branches": [{**b, "capacity": 1} for b in INSTANCE["branches"]]}
    result = rebalance(tmp_path, crowded)
    assert result.returncode == 1
    plan = json.loads(result.stdout)
    assert plan["status"] == "infeasible" and "capacity" in plan["reason"]
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_big_instance_with_shared_limits_prints_a_plan_with_its_proven_bound(tmp_path: Path) -> None:
    # 60 branches all within reach of each other over 3 days and 2 classes: too many lanes for the whole-network
    # MIP, so the CLI takes the priced-out path; its plan must still be the only thing on stdout
    branches = [{"id": f"B{k:02d}", "lat": 51.0 + 0.05 * (k // 10), "lon": 0.08 * (k % 10), "capacity": 14}
                for k in range(60)]
    big = {**INSTANCE, "horizon_days": 3, "branches": branches, "max_moves_out": 3,
           "initial": [{"branch": b["id"], "class": c, "count": 6 if k % 10 >= 5 else 1}
                       for k, b in enumerate(branches) for c in ("economy", "suv")],
           "returns": [{"branch": b["id"], "class": "economy", "day": d, "count": 2}
                       for k, b in enumerate(branches) if k % 10 >= 5 for d in range(3)],
           "demand": [{"branch": b["id"], "class": c, "day": d, "count": 3}
                      for k, b in enumerate(branches) if k % 10 < 5 for c in ("economy", "suv") for d in range(3)]}
    result = rebalance(tmp_path, big, "--time-limit", "30")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["status"] in ("optimal", "feasible") and plan["bound"] <= plan["objective"]
    assert plan["stats"]["cars_moved"] > 0
