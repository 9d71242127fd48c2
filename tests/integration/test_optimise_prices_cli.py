"""`fleetdesk optimise prices`: rates on stdout or in a file, one-line errors (exit 2), exit 1 when infeasible."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from db.config import PROJECT_ROOT

INSTANCE: dict[str, Any] = {
    "horizon_days": 3,
    "ladder": [0.8, 1.0, 1.25],
    "classes": [{"id": "economy", "rank": 1, "rental_days": 2}, {"id": "suv", "rank": 2, "rental_days": 1}],
    "segments": [{"branch": "B001", "class": klass, "day": day, "list_rate": rate, "capacity": 4,
                  "base_demand": demand, "elasticity": 1.4}
                 for klass, rate, demand in (("economy", 45.0, 3.0), ("suv", 80.0, 6.0)) for day in range(3)],
    "max_step": 1,
    "class_order": True,
}


def prices(tmp_path: Path, instance: Any, *extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / "instance.json"
    path.write_text(instance if isinstance(instance, str) else json.dumps(instance))
    return subprocess.run([sys.executable, "-m", "app.cli", "optimise", "prices", str(path), *extra],
                          capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert fragment in lines[0]
    assert result.stdout == ""


def test_the_rates_are_written_to_the_out_file(tmp_path: Path) -> None:
    out = tmp_path / "prices.json"
    result = prices(tmp_path, INSTANCE, "--out", str(out), "--time-limit", "20")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    plan = json.loads(out.read_text())
    assert plan["status"] == "optimal" and plan["bound"] == plan["objective"]
    assert len(plan["prices"]) == 6
    assert set(plan["prices"][0]) == {"branch", "class", "day", "multiplier", "rate", "accept", "revenue"}
    assert "solve_seconds" in plan["stats"]
    assert abs(sum(p["revenue"] for p in plan["prices"]) - plan["objective"]) < 0.05


def test_without_out_the_rates_go_to_stdout(tmp_path: Path) -> None:
    result = prices(tmp_path, INSTANCE, "--time-limit", "20")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["status"] == "optimal"
    by_day = {(p["class"], p["day"]): p["rate"] for p in plan["prices"]}
    assert all(by_day[("suv", d)] >= by_day[("economy", d)] for d in range(3))


def test_a_ladder_without_list_price_is_one_line_and_exit_2(tmp_path: Path) -> None:
    assert_one_line_error(prices(tmp_path, {**INSTANCE, "ladder": [0.8, 1.25]}), "ladder must contain 1.0")


def test_an_unknown_class_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = {**INSTANCE, "segments": [*INSTANCE["segments"], {**INSTANCE["segments"][0], "class": "van"}]}
    assert_one_line_error(prices(tmp_path, bad), "unknown class 'van'")


def test_a_file_that_is_not_json_is_one_line_and_exit_2(tmp_path: Path) -> None:
    assert_one_line_error(prices(tmp_path, "{not json"), "not valid JSON")


def test_a_bad_time_limit_is_one_line_and_exit_2(tmp_path: Path) -> None:
    assert_one_line_error(prices(tmp_path, INSTANCE, "--time-limit", "-3"), "positive number of seconds")


def test_an_infeasible_instance_exits_1_with_the_reason(tmp_path: Path) -> None:
    cheap_suv = {**INSTANCE, "segments": [{**s, "list_rate": 20.0} if s["class"] == "suv" else s
                                          for s in INSTANCE["segments"]]}
    result = prices(tmp_path, cheap_suv)
    assert result.returncode == 1
    plan = json.loads(result.stdout)
    assert plan["status"] == "infeasible" and "class_order" in plan["reason"]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fleetdesk: infeasible: class_order")
