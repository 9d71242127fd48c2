"""The compiled booking-limit solver: every answer feasible, proved optimal by its own duals, and equal to OR-Tools'
min-cost flow on the same problems."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ortools.graph.python import min_cost_flow

from services.optimise.booking_limits import solve_many


def occupied(length: int, accepts: np.ndarray) -> np.ndarray:
    """Cars out on each day: the rentals started on the `length` days up to it."""
    n = len(accepts)
    return np.array([accepts[max(0, d - length + 1):d + 1].sum() for d in range(n)])


def dual_value(length: int, cars: np.ndarray, demand: np.ndarray, gain: np.ndarray, price: np.ndarray) -> int:
    n = len(cars)
    held = np.array([price[s:min(s + length, n)].sum() for s in range(n)])
    return int((cars * price).sum() + (demand * np.maximum(0, gain - held)).sum())


def ortools_optimum(length: int, cars: np.ndarray, demand: np.ndarray, gain: np.ndarray) -> int:
    """The same problem as a min-cost circulation in OR-Tools: forward arcs carry the cars out, each start's arc
    comes back from its return day paying its gain."""
    n = len(cars)
    flow = min_cost_flow.SimpleMinCostFlow()
    for d in range(n):
        flow.add_arc_with_capacity_and_unit_cost(d, d + 1, int(cars[d]), 0)
    starts = []
    for s in range(n):
        if demand[s] > 0 and gain[s] > 0:
            starts.append(flow.add_arc_with_capacity_and_unit_cost(min(s + length, n), s, int(demand[s]), -int(gain[s])))
    if not starts:
        return 0
    assert flow.solve() == flow.OPTIMAL
    return -flow.optimal_cost()


problems = st.integers(1, 16).flatmap(lambda n: st.tuples(
    st.integers(1, 9),
    st.lists(st.integers(0, 60), min_size=n, max_size=n),
    st.lists(st.integers(0, 80), min_size=n, max_size=n),
    st.lists(st.integers(0, 500), min_size=n, max_size=n),
))


@settings(max_examples=300, deadline=None)
@given(problems)
def test_accepts_are_feasible_optimal_and_agree_with_ortools(problem) -> None:
    length, cars, demand, gain = (np.array(x, dtype=np.int64) for x in problem)
    length = int(length)
    accepts, price = solve_many(np.array([length]), cars[None], demand[None], gain[None])
    accepts, price = accepts[0], price[0]
    assert (accepts >= 0).all() and (accepts <= demand).all()
    assert (occupied(length, accepts) <= cars).all()
    assert (price >= 0).all()
    revenue = int((accepts * gain).sum())
    # a feasible plan whose revenue equals a dual bound is optimal: the solver proves its own answer
    assert dual_value(length, cars, demand, gain, price) == revenue
    assert revenue == ortools_optimum(length, cars, demand, gain)


def test_many_problems_at_once_each_solved_on_its_own() -> None:
    rng = np.random.default_rng(5)
    m, n = 400, 14
    length = rng.integers(1, 8, m)
    cars = rng.integers(0, 41, (m, n)) * 10_000
    demand = (rng.uniform(0.0, 2.5, (m, n)) * (cars + 1) / length[:, None]).astype(np.int64)
    gain = rng.integers(0, 60_000, (m, n))
    accepts, price = solve_many(length, cars, demand, gain)
    for i in range(m):
        one, one_price = solve_many(length[i:i + 1], cars[i:i + 1], demand[i:i + 1], gain[i:i + 1])
        assert (one[0] == accepts[i]).all() and (one_price[0] == price[i]).all()
        assert int((accepts[i] * gain[i]).sum()) == dual_value(int(length[i]), cars[i], demand[i], gain[i], price[i])


@pytest.mark.parametrize(("cars", "demand", "expected"), [
    ([1, 1, 1], [1, 1, 1], [1, 0, 1]),  # two-day rentals, one car: the first and the last, not the middle
    ([5, 5, 5], [0, 0, 0], [0, 0, 0]),  # nobody asks
    ([0, 0, 0], [3, 3, 3], [0, 0, 0]),  # no cars
])
def test_small_cases_by_hand(cars, demand, expected) -> None:
    gain = np.array([[10, 15, 10]])
    accepts, _ = solve_many(np.array([2]), np.array([cars]), np.array([demand]), gain)
    assert accepts[0].tolist() == expected


def test_a_rental_never_worth_anything_is_not_taken() -> None:
    accepts, price = solve_many(np.array([3]), np.array([[9, 9, 9]]), np.array([[4, 4, 4]]), np.array([[0, 7, 0]]))
    assert accepts[0].tolist() == [0, 4, 0]
    assert price[0].tolist() == [0, 0, 0]  # cars to spare: one more is worth nothing
