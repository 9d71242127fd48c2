"""Demand-based daily rates: one ladder multiplier and a booking limit per (branch, class, day), for the most revenue.

Branches are independent, so every step works on all branches at once (numpy arrays indexed [branch, class, day]
or [branch, class, day, ladder step]).

- **Capacity prices.** A rental of class c started on day d occupies a car on days d…d+L−1. Each day's capacity
  gets a price λ ≥ 0 (a Lagrange multiplier); a segment's start is then worth its rate times L minus the prices of
  the days it occupies, and its value at ladder step k is `demand(k) · max(0, that)`. By weak duality,
  `Σ λ·capacity + max over ladder choices of Σ value` is a proven upper bound for any λ ≥ 0.
- **Line moves.** With the values fixed, the best ladder steps of one class over all days (max_step, and the
  class_order bounds set by the other classes that day) are a dynamic programme over days, and the best steps of
  all classes on one day (class_order as a chain in rank order, max_step bounds from the days around) a dynamic
  programme over classes. Sweeping both kinds of line is a coordinate ascent that stays feasible throughout.
- **Exact booking limits.** For fixed prices the best accepts of one (branch, class) are a linear programme with
  consecutive-ones columns: a min-cost circulation (in 1/10,000 of a rental and cents), solved per (branch, class)
  by a compiled successive-shortest-path solver (booking_limits) that also returns the optimal day prices (duals).
  λ follows a subgradient step on the capacity left over; the best evaluated plan is kept.
- **Climbing.** Classes earn apart, so with every other day fixed the best steps of all classes on one day are
  exact: each class's revenue at each step by its booking limits, then the dynamic programme over classes. The
  climb sweeps these day lines, then pattern lines (runs of 2–3 days where each class takes its own shift on
  each day: cheap one day, dear the next), then runs of days where each class shifts by its own number of steps,
  then small moves of a few cells; a move that failed at a branch waits until something it depends on has
  changed there. A pattern is solved only where the duals' bound says it could help.
- **Exact branches.** A branch small enough (or every branch, given `exact_segments`) is then solved to proven
  optimality by a MIP (SCIP: one binary per ladder step, accepts per step, max_step as transition flows,
  class_order in cumulative form), started from the heuristic plan. Time the climb leaves over (it converges
  early on a few branches) goes to the same MIP for the other branches, widest gap first, for a better plan and a
  tighter bound.

The bound reported is the sum over branches of the MIP's bound where it ran, else the best Lagrangian bound.
Offline, `bound_branch` proves a much tighter bound per branch (class_order relaxed at the LP's prices, then at prices
moved by subgradient steps, one exact MIP per class), to certify how far the plans of big instances are from the
optimum.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from ortools.linear_solver import pywraplp
from ortools.sat.python import cp_model

from services.optimise import fields

ACCEPT_UNITS = 10_000  # accepts are solved by min-cost flow in whole 1/10,000 of a rental
COST_UNITS = 100  # and revenue per rental in whole cents
EXACT_SEGMENTS = 64  # branches with at most this many segments are also solved by the exact MIP
POLISH_MIN_S = 1.0  # time left after the climb: at least this long for the exact MIP of a branch
POLISH_MARGIN_S = 0.3  # kept back for building a branch's MIP and handing the plan on
RATE_TOLERANCE = 1e-9
PATTERNS = ((2, 3), (3, 1))  # the climb's pattern lines: (days in a run, largest shift a day)
_NEG = -1e30


@dataclass(frozen=True, eq=False)
class PriceInstance:
    """Segment arrays are indexed [branch, class, day]; `present` marks the segments the instance lists."""

    horizon_days: int
    ladder: np.ndarray
    class_ids: tuple[str, ...]
    class_rank: np.ndarray
    rental_days: np.ndarray
    branch_ids: tuple[str, ...]
    present: np.ndarray
    list_rate: np.ndarray
    capacity: np.ndarray
    base_demand: np.ndarray
    elasticity: np.ndarray
    max_step: int | None = None
    class_order: bool = False

    @property
    def segment_count(self) -> int:
        return int(self.present.sum())

    def rates(self) -> np.ndarray:
        """Daily rate at every ladder step, [branch, class, day, step]."""
        return self.list_rate[..., None] * self.ladder

    def demand(self) -> np.ndarray:
        """Expected rentals starting at every ladder step, [branch, class, day, step]; 0 where no segment."""
        return np.where(self.present[..., None],
                        self.base_demand[..., None] * self.ladder ** -self.elasticity[..., None], 0.0)

    def revenue_per_rental(self) -> np.ndarray:
        return self.rates() * self.rental_days[None, :, None, None]

    def select(self, branches: list[int] | np.ndarray) -> PriceInstance:
        """The same instance restricted to some branches (by index)."""
        idx = np.asarray(branches, dtype=np.int64)
        return PriceInstance(self.horizon_days, self.ladder, self.class_ids, self.class_rank, self.rental_days,
                             tuple(self.branch_ids[i] for i in idx), self.present[idx], self.list_rate[idx],
                             self.capacity[idx], self.base_demand[idx], self.elasticity[idx], self.max_step,
                             self.class_order)


@dataclass(frozen=True, eq=False)
class PricePlan:
    """`level` is the ladder index per [branch, class, day] (−1 where no segment), `accept` the booking limit."""

    status: str  # "optimal" | "feasible" | "infeasible" | "unknown" (time limit reached before any plan)
    objective: float | None
    bound: float | None
    level: np.ndarray
    accept: np.ndarray
    instance: PriceInstance
    solve_seconds: float
    reason: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def gap_pct(self) -> float | None:
        """How far the objective may be from the optimum, in % of the bound."""
        if self.objective is None or self.bound is None or self.bound <= 0:
            return None
        return round(100.0 * max(0.0, self.bound - self.objective) / self.bound, 4)

    def prices(self) -> pd.DataFrame:
        """One row per segment: branch, class, day, multiplier, rate, accept, revenue."""
        inst = self.instance
        b, c, d = np.nonzero(inst.present)
        if self.status == "infeasible":
            b, c, d = b[:0], c[:0], d[:0]
        k = self.level[b, c, d]
        multiplier = inst.ladder[k]
        rate = inst.list_rate[b, c, d] * multiplier
        accept = self.accept[b, c, d]
        return pd.DataFrame({
            "branch": np.asarray(inst.branch_ids, dtype=object)[b],
            "class": np.asarray(inst.class_ids, dtype=object)[c],
            "day": d,
            "multiplier": multiplier,
            "rate": rate,
            "accept": accept,
            "revenue": accept * rate * inst.rental_days[c],
        })


# ---------------------------------------------------------------- parsing


_SEGMENT_FIELDS = ("branch", "class", "day", "list_rate", "capacity", "base_demand", "elasticity")


def parse_instance(data: dict[str, Any]) -> PriceInstance:
    """Check a pricing instance read from JSON; ValueError with one line naming the first problem."""
    if not isinstance(data, dict):
        raise ValueError("the instance must be a JSON object")
    horizon = fields.whole(data.get("horizon_days"), "horizon_days")
    if horizon < 1:
        raise ValueError("horizon_days must be at least 1")
    ladder = _ladder(data.get("ladder"))
    class_ids, rank, rental_days = _classes(data.get("classes"))
    max_step = data.get("max_step")
    if max_step is not None:
        max_step = fields.whole(max_step, "max_step")
    class_order = data.get("class_order", False)
    if class_order is None:
        class_order = False
    if not isinstance(class_order, bool):
        raise ValueError("class_order must be true or false")
    raw = data.get("segments")
    if not isinstance(raw, list) or not raw:
        raise ValueError("segments must be a non-empty list")
    class_index = {c: i for i, c in enumerate(class_ids)}
    rows: list[tuple[str, int, int, float, float, float, float]] = []
    seen: set[tuple[str, int, int]] = set()
    branch_order: dict[str, int] = {}
    for n, seg in enumerate(raw):
        where = f"segments[{n}]"
        if not isinstance(seg, dict):
            raise ValueError(f"{where} must be an object")
        missing = [f for f in _SEGMENT_FIELDS if seg.get(f) is None]
        if missing:
            raise ValueError(f"{where} has no {missing[0]}")
        branch = seg["branch"]
        if not isinstance(branch, str) or not branch:
            raise ValueError(f"{where} branch must be a non-empty string")
        if seg["class"] not in class_index:
            raise ValueError(f"{where} names unknown class {seg['class']!r}")
        day = fields.whole(seg["day"], f"day of {where}")
        if day >= horizon:
            raise ValueError(f"{where} has day {day}, outside the horizon 0..{horizon - 1}")
        key = (branch, class_index[seg["class"]], day)
        if key in seen:
            raise ValueError(f"duplicate segment: branch {branch!r}, class {seg['class']!r}, day {day}")
        seen.add(key)
        branch_order.setdefault(branch, len(branch_order))
        list_rate = fields.number(seg["list_rate"], f"list_rate of {where}")
        if list_rate <= 0:
            raise ValueError(f"list_rate of {where} must be positive (got {list_rate:g})")
        rows.append((branch, key[1], day, list_rate,
                     fields.non_negative(seg["capacity"], f"capacity of {where}"),
                     fields.non_negative(seg["base_demand"], f"base_demand of {where}"),
                     fields.non_negative(seg["elasticity"], f"elasticity of {where}")))
    branch_ids = tuple(branch_order)
    shape = (len(branch_ids), len(class_ids), horizon)
    present = np.zeros(shape, dtype=bool)
    arrays = [np.zeros(shape) for _ in range(4)]
    for branch, c, d, *values in rows:
        b = branch_order[branch]
        present[b, c, d] = True
        for array, value in zip(arrays, values, strict=True):
            array[b, c, d] = value
    return PriceInstance(horizon, ladder, class_ids, rank, rental_days, branch_ids, present, *arrays,
                         max_step=max_step, class_order=class_order)


def _ladder(raw: Any) -> np.ndarray:
    if not isinstance(raw, list) or not raw:
        raise ValueError("ladder must be a non-empty list of multipliers")
    steps = [fields.number(m, f"ladder[{i}]") for i, m in enumerate(raw)]
    if any(m <= 0 for m in steps):
        raise ValueError("ladder multipliers must be positive")
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise ValueError("ladder must be sorted in increasing order without repeats")
    if not any(abs(m - 1.0) < 1e-12 for m in steps):
        raise ValueError("ladder must contain 1.0 (the list price)")
    return np.array(steps)


def _classes(raw: Any) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("classes must be a non-empty list")
    ids: list[str] = []
    rank: list[float] = []
    days: list[int] = []
    for n, cls in enumerate(raw):
        if not isinstance(cls, dict) or not isinstance(cls.get("id"), str) or not cls["id"]:
            raise ValueError(f"classes[{n}] needs an id")
        if cls["id"] in ids:
            raise ValueError(f"duplicate class {cls['id']!r} in classes")
        ids.append(cls["id"])
        if cls.get("rank") is None:
            raise ValueError(f"class {cls['id']!r} has no rank")
        rank.append(fields.number(cls["rank"], f"rank of class {cls['id']!r}"))
        length = fields.whole(cls.get("rental_days"), f"rental_days of class {cls['id']!r}")
        if length < 1:
            raise ValueError(f"rental_days of class {cls['id']!r} must be at least 1")
        days.append(length)
    return tuple(ids), np.array(rank), np.array(days, dtype=np.int64)








# ---------------------------------------------------------------- the arrays every step shares


@dataclass(frozen=True, eq=False)
class _Data:
    inst: PriceInstance
    present: np.ndarray  # [b, c, d]
    revenue: np.ndarray  # per accepted rental, [b, c, d, k]
    demand: np.ndarray  # [b, c, d, k]
    rate: np.ndarray  # [b, c, d, k]
    chain: np.ndarray  # classes in rank order
    step_ok: np.ndarray  # [j, k]: ladder step k may follow step j on the next day
    tolerance: float

    @classmethod
    def of(cls, inst: PriceInstance) -> _Data:
        k = len(inst.ladder)
        steps = np.arange(k)
        reach = k if inst.max_step is None else inst.max_step
        rate = inst.rates()
        return cls(inst, inst.present, inst.revenue_per_rental(), inst.demand(), rate,
                   np.argsort(inst.class_rank, kind="stable"), np.abs(steps[:, None] - steps[None, :]) <= reach,
                   1e-9 * max(1.0, float(rate.max(initial=1.0))))


def _window_sum(values: np.ndarray, rental_days: np.ndarray, *, forward: bool) -> np.ndarray:
    """Per class c, Σ over days d…d+L−1 (forward) or d−L+1…d (backward) of values[b, c, ·], clipped to the horizon."""
    n_b, n_c, n_d = values.shape
    cum = np.concatenate([np.zeros((n_b, n_c, 1)), np.cumsum(values, axis=2)], axis=2)
    days = np.arange(n_d)
    out = np.empty_like(values)
    for c, length in enumerate(rental_days.tolist()):
        if forward:
            out[:, c] = cum[:, c, np.minimum(days + length, n_d)] - cum[:, c, days]
        else:
            out[:, c] = cum[:, c, days + 1] - cum[:, c, np.maximum(days - length + 1, 0)]
    return out


def _values(data: _Data, price: np.ndarray) -> np.ndarray:
    """Worth of each segment at each ladder step when each day's capacity costs `price`."""
    occupied = _window_sum(price * data.present, data.inst.rental_days, forward=True)
    return data.demand * np.maximum(0.0, data.revenue - occupied[..., None])


def _chain_dp(value: np.ndarray, allowed: np.ndarray, linked: np.ndarray,
              step_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best path through positions 0…n−1 (axis 1) of a batch (axis 0): value/allowed [n_batch, n, K],
    step_ok [n_batch, n, K, K] or [K, K] for moves from position i−1 to i where linked[n_batch, n] (else free).
    Returns the best total per batch row (−inf when no path) and the chosen step per position."""
    n_batch, n, k = value.shape
    score = np.where(allowed[:, 0], value[:, 0], -np.inf)
    back = np.zeros((n_batch, n, k), dtype=np.int64)
    for i in range(1, n):
        ok = step_ok if step_ok.ndim == 2 else step_ok[:, i]
        cand = np.where(ok, score[:, :, None], -np.inf)  # [batch, j, k]
        best_linked = cand.argmax(axis=1)
        best_free = np.broadcast_to(score.argmax(axis=1)[:, None], (n_batch, k))
        choice = np.where(linked[:, i, None], best_linked, best_free)
        back[:, i] = choice
        prev = np.take_along_axis(score, choice, axis=1)
        score = np.where(allowed[:, i], value[:, i] + prev, -np.inf)
    total = score.max(axis=1)
    path = np.zeros((n_batch, n), dtype=np.int64)
    path[:, n - 1] = score.argmax(axis=1)
    for i in range(n - 1, 0, -1):
        path[:, i - 1] = np.take_along_axis(back[:, i], path[:, i, None], axis=1)[:, 0]
    return total, path


def _chain_through(value: np.ndarray, step_ok: np.ndarray) -> np.ndarray:
    """For each option k at each position i of a batch of chains (value [n_batch, n, K], −inf: not allowed;
    step_ok [n_batch, n, K, K] from position i−1 to i), the best total of a whole path through it (−inf: none)."""
    n_batch, n, k = value.shape
    ahead = np.empty_like(value)  # best over positions 0…i ending at k
    behind = np.empty_like(value)  # best over positions i…n−1 starting at k
    ahead[:, 0] = value[:, 0]
    for i in range(1, n):
        ahead[:, i] = value[:, i] + np.where(step_ok[:, i], ahead[:, i - 1, :, None], -np.inf).max(axis=1)
    behind[:, n - 1] = value[:, n - 1]
    for i in range(n - 2, -1, -1):
        behind[:, i] = value[:, i] + np.where(step_ok[:, i + 1], behind[:, i + 1, None, :], -np.inf).max(axis=2)
    with np.errstate(invalid="ignore"):
        through = ahead + behind - value
    return np.where(np.isfinite(value), through, -np.inf)


def _order_steps(data: _Data, steps: np.ndarray, span: slice) -> np.ndarray:
    """For a dynamic programme over the classes in rank order where each class picks one of some options on a run
    of days (`steps` [branch, class, day of the run, option]: its ladder steps there): step_ok [branch, position in
    the chain, option of the class before, option of this one], true where class_order holds on every day of the run
    on which both classes are present."""
    inst = data.inst
    n_b, n_c, _, n_o = steps.shape
    rate = np.take_along_axis(data.rate[:, :, span], steps, axis=3)
    present = data.present[:, :, span]
    chain = data.chain.tolist()
    step_ok = np.ones((n_b, n_c, n_o, n_o), dtype=bool)
    for i in range(1, n_c):
        lo, hi = chain[i - 1], chain[i]
        if inst.class_order and inst.class_rank[hi] > inst.class_rank[lo]:
            both = (present[:, lo] & present[:, hi])[:, :, None, None]
            fits = rate[:, hi, :, None, :] >= rate[:, lo, :, :, None] - data.tolerance  # [b, day, lo's, hi's]
            step_ok[:, i] = (fits | ~both).all(axis=1)
    return step_ok


def _order_bounds(data: _Data, level: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest rate class c may have per [branch, day] given the other classes' steps."""
    inst = data.inst
    n_b, _, n_d = level.shape
    low, high = np.full((n_b, n_d), -np.inf), np.full((n_b, n_d), np.inf)
    if not inst.class_order:
        return low, high
    chosen = np.take_along_axis(data.rate, np.maximum(level, 0)[..., None], axis=3)[..., 0]
    for other in range(len(inst.class_ids)):
        if inst.class_rank[other] < inst.class_rank[c]:
            low = np.where(data.present[:, other], np.maximum(low, chosen[:, other]), low)
        elif inst.class_rank[other] > inst.class_rank[c]:
            high = np.where(data.present[:, other], np.minimum(high, chosen[:, other]), high)
    return low, high


def _sweep_class(data: _Data, value: np.ndarray, level: np.ndarray, c: int) -> None:
    """Re-choose class c on every day of every branch, the other classes fixed (in place)."""
    low, high = _order_bounds(data, level, c)
    rate = data.rate[:, c]
    present = data.present[:, c]
    allowed = ((rate >= low[..., None] - data.tolerance) & (rate <= high[..., None] + data.tolerance)) | \
        ~present[..., None]
    linked = np.zeros_like(present)
    linked[:, 1:] = present[:, 1:] & present[:, :-1]
    total, path = _chain_dp(np.where(present[..., None], value[:, c], 0.0), allowed, linked, data.step_ok)
    keep = ~np.isfinite(total)
    level[:, c] = np.where(keep[:, None] | ~present, level[:, c], path)


def _step_bounds(data: _Data, level: np.ndarray, d: int) -> np.ndarray:
    """Which ladder steps each [branch, class] may take on day d given its steps on days d−1 and d+1."""
    n_b, n_c, n_d = level.shape
    allowed = np.ones((n_b, n_c, len(data.inst.ladder)), dtype=bool)
    for other in (d - 1, d + 1):
        if 0 <= other < n_d:
            near = data.step_ok[np.maximum(level[:, :, other], 0)]
            allowed &= near | ~(data.present[:, :, other] & data.present[:, :, d])[..., None]
    return allowed


def _sweep_day(data: _Data, value: np.ndarray, level: np.ndarray, d: int) -> None:
    """Re-choose every class on day d of every branch, the other days fixed (in place)."""
    chain = data.chain
    present = data.present[:, chain, d]
    allowed = _step_bounds(data, level, d)[:, chain] | ~present[..., None]
    total, path = _order_chain(data, np.where(present[..., None], value[:, chain, d], 0.0), allowed, present,
                               data.rate[:, chain, d])
    keep = ~np.isfinite(total)
    current = level[:, chain, d]
    level[:, chain, d] = np.where(keep[:, None] | ~present, current, path)


def _order_chain(data: _Data, value: np.ndarray, allowed: np.ndarray, present: np.ndarray,
                 rate: np.ndarray, *, relax_ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A chain DP over classes in rank order where each present class's rate is at least the last present one's.
    value/allowed/rate [batch, class, K], present [batch, class]; an absent class carries the last state through.
    Classes of equal rank are ordered too (a stricter rule, so every path is feasible) unless `relax_ties`, where
    a class need not follow one of its own rank (a looser rule, for bounds)."""
    n_batch, n_c, k = value.shape
    rank = data.inst.class_rank[data.chain]
    eye = np.eye(k, dtype=bool)
    effective = rate.copy()  # the rate of the last present class, in the state carried to each position
    effective_rank = np.where(present[:, 0], rank[0], -np.inf)
    step_ok = np.empty((n_batch, n_c, k, k), dtype=bool)
    step_ok[:, 0] = True
    for i in range(1, n_c):
        effective[:, i] = np.where(present[:, i, None], rate[:, i], effective[:, i - 1])
        if data.inst.class_order:
            ordered = rate[:, i, None, :] >= effective[:, i - 1, :, None] - data.tolerance
            free = effective_rank == -np.inf
            if relax_ties:
                free |= effective_rank >= rank[i]
            ordered |= free[:, None, None]
        else:
            ordered = np.ones((n_batch, k, k), dtype=bool)
        step_ok[:, i] = np.where(present[:, i, None, None], ordered, eye)
        effective_rank = np.where(present[:, i], rank[i], effective_rank)
    linked = np.ones((n_batch, n_c), dtype=bool)
    return _chain_dp(value, allowed, linked, step_ok)


# ---------------------------------------------------------------- bounds


def _lagrangian_bound(data: _Data, price: np.ndarray, column_value: np.ndarray,
                      row_value: np.ndarray) -> tuple[np.ndarray, ...]:
    """Two proven upper bounds per branch (less Σ price × capacity, returned first), and the steps attaining them.

    Dropping one of the two linking rules leaves independent chains, each solved exactly by dynamic programming:
    max_step alone (one chain per class, over days, worth `column_value`) or class_order alone (one chain per day,
    over classes, worth `row_value`)."""
    n_b, n_c, n_d = data.present.shape
    k = len(data.inst.ladder)
    fixed = (price * data.present * data.inst.capacity).sum(axis=(1, 2))
    present = data.present.reshape(n_b * n_c, n_d)
    linked = np.zeros_like(present)
    linked[:, 1:] = present[:, 1:] & present[:, :-1]
    by_class, class_path = _chain_dp(column_value.reshape(n_b * n_c, n_d, k),
                                     np.ones((n_b * n_c, n_d, k), dtype=bool), linked, data.step_ok)
    chain = data.chain
    days_first = np.moveaxis(row_value[:, chain], 2, 1).reshape(n_b * n_d, n_c, k)
    present_df = np.moveaxis(data.present[:, chain], 2, 1).reshape(n_b * n_d, n_c)
    rate_df = np.moveaxis(data.rate[:, chain], 2, 1).reshape(n_b * n_d, n_c, k)
    by_day, day_path = _order_chain(data, days_first, np.ones_like(days_first, dtype=bool), present_df, rate_df,
                                    relax_ties=True)
    level_day = np.empty((n_b, n_c, n_d), dtype=np.int64)
    level_day[:, chain] = np.moveaxis(day_path.reshape(n_b, n_d, n_c), 2, 1)
    by_class = by_class.reshape(n_b, n_c).sum(axis=1)
    by_day = by_day.reshape(n_b, n_d).sum(axis=1)
    return fixed, by_class, by_day, class_path.reshape(n_b, n_c, n_d), level_day


# ---------------------------------------------------------------- exact booking limits for fixed prices


def _best_accepts(data: _Data, level: np.ndarray, only: np.ndarray | None = None,
                  accept: np.ndarray | None = None) -> np.ndarray:
    """The booking limits that earn most at the given ladder steps, per (branch, class) exactly (a small min-cost
    circulation each, in booking_limits). With `only` ([branch, class] mask), just those are solved and the rest
    copied from `accept`."""
    out = np.zeros(level.shape) if only is None or accept is None else accept.copy()
    b, c, accepts, _ = _limits(data, level, only)
    out[b, c] = accepts / ACCEPT_UNITS
    return out


def _day_prices(data: _Data, level: np.ndarray, only: np.ndarray) -> np.ndarray:
    """What one more car on each day would earn with the best booking limits at these steps (the optimal duals of
    the cars' rows) per [branch, class, day]; zero outside `only`. By LP duality, a class's revenue at any other
    steps is at most Σ cars × price + Σ demand × max(0, revenue − the prices of the days each rental occupies)."""
    out = np.zeros(level.shape)
    b, c, _, prices = _limits(data, level, only)
    out[b, c] = prices / COST_UNITS
    return out


def _limits(data: _Data, level: np.ndarray,
            only: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The (branch, class) pairs solved, their accepts (in 1/ACCEPT_UNITS of a rental) and day prices (in
    1/COST_UNITS per rental)."""
    # numba: loaded on first use, not by every command that imports this module
    from services.optimise import booking_limits

    inst = data.inst
    keep = np.ones(level.shape[:2], dtype=bool) if only is None else only
    b, c = np.nonzero(keep)
    if not len(b):
        return b, c, np.zeros((0, level.shape[2])), np.zeros((0, level.shape[2]))
    step = np.maximum(level[b, c], 0)[..., None]
    present = data.present[b, c]
    demand = np.where(present, np.floor(np.take_along_axis(data.demand[b, c], step, axis=2)[..., 0]
                                        * ACCEPT_UNITS), 0).astype(np.int64)
    gain = np.where(present, np.rint(np.take_along_axis(data.revenue[b, c], step, axis=2)[..., 0] * COST_UNITS),
                    0).astype(np.int64)
    big = demand.sum(axis=1, keepdims=True) + 1  # a day without the class: no limit
    cars = np.where(present, np.minimum(np.floor(inst.capacity[b, c] * ACCEPT_UNITS + 1e-6).astype(np.int64), big),
                    big)
    accepts, prices = booking_limits.solve_many(inst.rental_days[c], cars, demand, gain)
    return b, c, accepts, prices


def _revenue(data: _Data, level: np.ndarray, accept: np.ndarray) -> np.ndarray:
    """Revenue per branch."""
    chosen = np.take_along_axis(data.revenue, np.maximum(level, 0)[..., None], axis=3)[..., 0]
    return (np.where(data.present, accept * chosen, 0.0)).sum(axis=(1, 2))


# ---------------------------------------------------------------- feasibility


def _order_ok(data: _Data, level: np.ndarray) -> np.ndarray:
    """Per branch: whether the ladder steps keep class_order (max_step is checked by the callers' moves)."""
    inst = data.inst
    if not inst.class_order:
        return np.ones(level.shape[0], dtype=bool)
    chosen = np.take_along_axis(data.rate, np.maximum(level, 0)[..., None], axis=3)[..., 0]
    ok = np.ones(level.shape[0], dtype=bool)
    for lo in range(len(inst.class_ids)):
        for hi in range(len(inst.class_ids)):
            if inst.class_rank[hi] > inst.class_rank[lo]:
                both = data.present[:, lo] & data.present[:, hi]
                bad = both & (chosen[:, hi] < chosen[:, lo] - data.tolerance)
                ok &= ~bad.any(axis=1)
    return ok


def _order_conflict(data: _Data, b: int) -> str | None:
    """A day at branch b where no rates at all keep class_order, named with the two classes that clash."""
    inst = data.inst
    for d in range(inst.horizon_days):
        for lo in range(len(inst.class_ids)):
            for hi in range(len(inst.class_ids)):
                if (inst.class_rank[hi] > inst.class_rank[lo] and data.present[b, lo, d] and data.present[b, hi, d]
                        and data.rate[b, hi, d, -1] < data.rate[b, lo, d, 0] - data.tolerance):
                    return (f"class_order cannot hold at branch {inst.branch_ids[b]} on day {d}: "
                            f"{inst.class_ids[hi]!r} (rank {inst.class_rank[hi]:g}) costs at most "
                            f"{data.rate[b, hi, d, -1]:.2f} but {inst.class_ids[lo]!r} (rank "
                            f"{inst.class_rank[lo]:g}) at least {data.rate[b, lo, d, 0]:.2f}; "
                            "fix the list rates or the ranks")
    return None


def _feasible_steps(data: _Data, b: int, time_limit_s: float) -> tuple[str, np.ndarray | None]:
    """Any ladder steps for branch b that keep max_step and class_order (CP-SAT): ("feasible", steps), or
    ("infeasible", None) when there are none, or ("unknown", None) when the time ran out first."""
    inst = data.inst
    n_c, n_d, k = data.rate.shape[1:]
    model = cp_model.CpModel()
    step = {(c, d): model.new_int_var(0, k - 1, "") for c in range(n_c) for d in range(n_d) if data.present[b, c, d]}
    scale = 1e6 / max(1.0, float(data.rate[b].max()))
    rate = {}
    for (c, d), var in step.items():
        table = np.rint(data.rate[b, c, d] * scale).astype(np.int64).tolist()
        rate[c, d] = model.new_int_var(min(table), max(table), "")
        model.add_element(var, table, rate[c, d])
        if inst.max_step is not None and (c, d - 1) in step:
            model.add(var - step[c, d - 1] <= inst.max_step)
            model.add(step[c, d - 1] - var <= inst.max_step)
    if inst.class_order:
        for (c, d) in step:
            for (o, e) in step:
                if e == d and inst.class_rank[c] > inst.class_rank[o]:
                    model.add(rate[c, d] >= rate[o, d])
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.1, time_limit_s)
    solver.parameters.num_workers = 1
    status = solver.solve(model)
    if status == cp_model.INFEASIBLE:
        return "infeasible", None
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return "unknown", None
    level = np.full((n_c, n_d), -1, dtype=np.int64)
    for (c, d), var in step.items():
        level[c, d] = solver.value(var)
    return "feasible", level


# ---------------------------------------------------------------- the exact model of one branch


@dataclass(frozen=True)
class BranchSolution:
    status: str  # "optimal" | "feasible" | "infeasible" | "unknown"
    objective: float | None
    bound: float | None
    level: np.ndarray | None
    accept: np.ndarray | None


@dataclass(frozen=True)
class BranchBound:
    """Proven upper bounds on one branch's best revenue: the MIP's LP relaxation, and the Lagrangian bound that
    relaxes class_order only (None where it did not run). `bound` is the smaller."""

    lp: float
    lagrangian: float | None
    classes_proved: int  # classes whose subproblem was solved to optimality at the best prices (else its bound)
    seconds: float
    rounds: int = 1  # Lagrangian bounds computed (prices tried)

    @property
    def bound(self) -> float:
        return self.lp if self.lagrangian is None else min(self.lp, self.lagrangian)


def bound_branch(instance: PriceInstance, b: int, *, class_time_limit_s: float, time_budget_s: float = 0.0,
                 known: float | None = None, step: float = 0.2, group: int = 1) -> BranchBound:
    """A proven upper bound on branch b's revenue, much tighter than the LP's, for certifying plans offline.

    The MIP's LP relaxation (GLOP) gives a bound and the prices (duals) of its class_order rows. With class_order
    moved into the objective at those prices (a Lagrangian relaxation, valid for any prices ≥ 0), the classes no
    longer meet and each is a small MIP of its own (HiGHS, one thread): the sum of their optima — or of the solver's
    bounds where the time limit cut one short — is a bound that knows each class picks one ladder step per day,
    which the LP does not. Given the revenue of a known plan (`known`) and a `time_budget_s`, subgradient steps
    (Polyak's, towards `known`, `step` of the way) move the prices towards the rows the classes' choices break, for
    as long as another round fits the budget; the lowest bound counts. With `group` > 1, runs of that many classes
    next in rank stay together, each run one MIP with class_order kept exactly inside it and priced only between
    runs: a tighter bound (pairs: about half the gap between the one-class bound and the best plans known), for
    MIPs a little harder."""
    started = time.perf_counter()
    data = _Data.of(instance.select([b]))
    lp = _branch_model(data, 0, relax=True)
    if lp.solver.Solve() != pywraplp.Solver.OPTIMAL:
        raise RuntimeError(f"the LP relaxation of branch {instance.branch_ids[b]} did not solve")
    lp_bound = lp.solver.Objective().Value()
    groups = _runs_of_classes(data, group)
    member = {c: g for g, classes in enumerate(groups) for c in classes}
    # a row reads Σ x[hi][:upto + 1] ≤ Σ x[lo][fits]; rows inside a group are kept in its MIP, not priced
    order_rows = [(key, row) for key, row in lp.order_rows if member[key[0]] != member[key[1]]]
    rows = [key for key, _ in order_rows]
    price = np.array([max(0.0, row.dual_value()) for _, row in order_rows])
    best: tuple[float, int] | None = None
    rounds, took, stalled = 0, 0.0, 0
    while True:
        before = time.perf_counter()
        relaxed = _order_relaxed(data, rows, price, class_time_limit_s, groups)
        rounds += 1
        if relaxed is None:  # no bound from some class: the LP bound stands alone
            return BranchBound(lp_bound, None if best is None else best[0], 0 if best is None else best[1],
                               time.perf_counter() - started, rounds)
        total, proved, level = relaxed
        if best is None or total < best[0]:
            best, stalled = (total, proved), 0
        else:
            stalled += 1
            if stalled >= 2:
                step, stalled = step / 2, 0
        took = max(took, time.perf_counter() - before)
        if known is None or time.perf_counter() + took > started + time_budget_s:
            break
        # the subgradient: +1 where a row's left side is chosen and its right side is not
        broken = np.array([float(level[hi, d] <= upto) - float(fits[level[lo, d]])
                           for hi, lo, d, upto, fits in rows], dtype=float).reshape(len(rows))
        broken[(price <= 0.0) & (broken < 0.0)] = 0.0  # a price at zero cannot fall
        norm = float(broken @ broken)
        if norm == 0.0:  # the classes' choices keep every row: their plan is optimal and the bound is tight
            break
        price = np.maximum(0.0, price + step * max(0.0, total - known) / norm * broken)
    assert best is not None
    return BranchBound(lp_bound, best[0], best[1], time.perf_counter() - started, rounds)


def _runs_of_classes(data: _Data, size: int) -> list[list[int]]:
    """Branch 0's present classes in rank order, in runs of `size`."""
    chain = [c for c in data.chain.tolist() if data.present[0, c].any()]
    return [chain[i:i + size] for i in range(0, len(chain), max(1, size))]


def _order_relaxed(data: _Data, rows: list[tuple[int, int, int, int, np.ndarray]], price: np.ndarray,
                   class_time_limit_s: float, groups: list[list[int]]) -> tuple[float, int, np.ndarray] | None:
    """The Lagrangian bound of branch 0 of `data` with class_order's rows between `groups` priced at `price`: one
    exact MIP per group of classes (class_order kept inside it). Returns the bound, how many groups were proved
    optimal, and each class's chosen steps; None when a group gave no bound in time."""
    present = data.present[0]
    cost = np.zeros(present.shape + (len(data.inst.ladder),))  # per class, day and step
    for (hi, lo, d, upto, fits), p in zip(rows, price, strict=True):
        cost[hi, d, :upto + 1] += p
        cost[lo, d, fits] -= p
    level = np.zeros(present.shape, dtype=np.int64)
    total, proved = 0.0, 0
    for classes in groups:
        # HiGHS is three times SCIP's speed here, but reports no bound when its time is up: SCIP then, for that
        for solver_id in ("HIGHS", "SCIP"):
            one = _branch_model(data, 0, classes=classes, x_cost=cost, solver_id=solver_id)
            status = _solve_mip(one.solver, class_time_limit_s)
            if status == pywraplp.Solver.OPTIMAL or solver_id == "SCIP":
                break
        if status == pywraplp.Solver.OPTIMAL:
            total += one.solver.Objective().Value()
            proved += 1
        elif status == pywraplp.Solver.FEASIBLE:
            total += one.solver.Objective().BestBound()
        else:
            return None
        for (c, d), row in one.x.items():
            level[c, d] = int(np.argmax([v.solution_value() for v in row]))
    # the solver's optimum is within its feasibility tolerances: a relative hair keeps the bound on the safe side
    return total + 1e-7 * abs(total), proved, level


def _solve_mip(solver: pywraplp.Solver, time_limit_s: float, threads: int = 1) -> int:
    """Solve to a relative gap of 1e-9 (proven optimal, not "close") unless the time limit stops it first."""
    solver.SetNumThreads(threads)
    solver.SetTimeLimit(max(1, int(time_limit_s * 1000)))
    params = pywraplp.MPSolverParameters()
    params.SetDoubleParam(params.RELATIVE_MIP_GAP, 1e-9)
    return solver.Solve(params)


@dataclass
class _BranchModel:
    solver: pywraplp.Solver
    x: dict[tuple[int, int], list]  # one binary (or [0, 1] in the LP) per ladder step of each segment
    y: dict[tuple[int, int], list]  # the accepts at each ladder step
    order_rows: list[tuple[tuple[int, int, int, int, np.ndarray], Any]]  # (hi, lo, day, step, lo's fitting steps)


def _branch_model(data: _Data, b: int, *, relax: bool = False, classes: list[int] | None = None,
                  x_cost: np.ndarray | None = None, solver_id: str = "SCIP") -> _BranchModel:
    """The exact model of branch b (or of some of its classes): one binary per ladder step, accepts per step capped
    by the demand and by the fewest cars on the days a start occupies, max_step as transition flows, class_order
    in cumulative form; `x_cost` [class, day, step] is taken off the objective per chosen step."""
    inst = data.inst
    n_c, n_d, k = data.rate.shape[1:]
    solver = pywraplp.Solver.CreateSolver("GLOP" if relax else solver_id)
    present = data.present[b].copy()
    if classes is not None:
        present[np.setdiff1d(np.arange(n_c), classes)] = False
    cars = np.where(present, inst.capacity[b], np.inf)
    x: dict[tuple[int, int], list] = {}
    y: dict[tuple[int, int], list] = {}
    objective = []
    for c, d in zip(*np.nonzero(present), strict=True):
        c, d = int(c), int(d)
        fewest = float(cars[c, d:d + int(inst.rental_days[c])].min())
        x[c, d] = [solver.NumVar(0.0, 1.0, "") if relax else solver.BoolVar("") for _ in range(k)]
        y[c, d] = [solver.NumVar(0.0, min(float(data.demand[b, c, d, j]), fewest), "") for j in range(k)]
        solver.Add(solver.Sum(x[c, d]) == 1)
        for j in range(k):
            solver.Add(y[c, d][j] <= y[c, d][j].ub() * x[c, d][j])
            objective.append(float(data.revenue[b, c, d, j]) * y[c, d][j])
            if x_cost is not None and x_cost[c, d, j] != 0.0:
                objective.append(-float(x_cost[c, d, j]) * x[c, d][j])
    for c, d in x:
        length = int(inst.rental_days[c])
        starts = [y[c, s] for s in range(max(0, d - length + 1), d + 1) if (c, s) in y]
        solver.Add(solver.Sum([v for row in starts for v in row]) <= float(inst.capacity[b, c, d]))
        if inst.max_step is not None and (c, d - 1) in x:
            # transitions as flows: tighter than bounding each step by the steps of the day before
            moves = {(i, j): solver.NumVar(0.0, 1.0, "") for i in range(k) for j in range(k) if data.step_ok[i, j]}
            for i in range(k):
                solver.Add(solver.Sum([v for (a, _), v in moves.items() if a == i]) == x[c, d - 1][i])
                solver.Add(solver.Sum([v for (_, e), v in moves.items() if e == i]) == x[c, d][i])
    order_rows = []
    if inst.class_order:
        for d in range(n_d):
            here = [c for c in range(n_c) if present[c, d]]
            ranks = sorted({float(inst.class_rank[c]) for c in here})
            for low_rank, high_rank in zip(ranks, ranks[1:], strict=False):
                for lo in (c for c in here if inst.class_rank[c] == low_rank):
                    for hi in (c for c in here if inst.class_rank[c] == high_rank):
                        for j in range(k):
                            # if hi sits at step j or below, lo must be at a step whose rate is no higher
                            fits = data.rate[b, lo, d] <= data.rate[b, hi, d, j] + data.tolerance
                            row = solver.Add(solver.Sum(x[hi, d][:j + 1])
                                             <= solver.Sum([x[lo, d][i] for i in np.flatnonzero(fits)]))
                            order_rows.append(((hi, lo, d, j, fits), row))
    solver.Maximize(solver.Sum(objective))
    return _BranchModel(solver, x, y, order_rows)


def branch_mip(instance: PriceInstance, b: int, time_limit_s: float, hint: np.ndarray | None) -> BranchSolution:
    """Branch b's exact MIP alone (SCIP, one thread), started from `hint` ([class, day] steps) if given: its best plan
    and its proven bound, for certifying plans offline."""
    return _branch_mip(_Data.of(instance.select([b])), 0, time_limit_s, hint)


def _branch_mip(data: _Data, b: int, time_limit_s: float, hint: np.ndarray | None,
                threads: int = 1) -> BranchSolution:
    model = _branch_model(data, b)
    solver, x, y = model.solver, model.x, model.y
    n_c, n_d = data.present.shape[1:]
    if hint is not None:
        variables, values = [], []
        for (c, d), row in x.items():
            for j, var in enumerate(row):
                variables.append(var)
                values.append(1.0 if hint[c, d] == j else 0.0)
        solver.SetHint(variables, values)
    status = _solve_mip(solver, time_limit_s, threads)
    if status == pywraplp.Solver.INFEASIBLE:
        return BranchSolution("infeasible", None, None, None, None)
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return BranchSolution("unknown", None, None, None, None)
    level = np.full((n_c, n_d), -1, dtype=np.int64)
    accept = np.zeros((n_c, n_d))
    for (c, d), row in x.items():
        level[c, d] = int(np.argmax([v.solution_value() for v in row]))
        accept[c, d] = min(float(data.demand[b, c, d, level[c, d]]), max(0.0, y[c, d][level[c, d]].solution_value()))
    value = float(sum(accept[c, d] * data.revenue[b, c, d, level[c, d]] for c, d in x))
    if status == pywraplp.Solver.OPTIMAL:
        return BranchSolution("optimal", value, value, level, accept)
    return BranchSolution("feasible", value, max(value, solver.Objective().BestBound()), level, accept)


# ---------------------------------------------------------------- solving


def optimise_prices(instance: PriceInstance, *, time_limit_s: float,
                    progress: Callable[[float], None] | None = None,
                    exact_segments: int = EXACT_SEGMENTS, max_rounds: int = 400) -> PricePlan:
    """The ladder step and booking limit of every segment that earn the most, with a proven bound; or why none."""
    if not time_limit_s > 0:
        raise ValueError("time_limit_s must be positive")
    started = time.perf_counter()
    deadline = started + time_limit_s
    data = _Data.of(instance)
    report = _Monotone(progress)
    report(0.0)
    level = np.where(data.present, int(np.flatnonzero(np.isclose(instance.ladder, 1.0))[0]), -1)
    for b in np.flatnonzero(~_order_ok(data, level)).tolist():
        conflict = _order_conflict(data, b)
        status, steps = ("infeasible", None) if conflict else _feasible_steps(
            data, b, max(0.5, deadline - time.perf_counter()))
        if steps is None:
            if status == "unknown":
                reason = (f"no ladder steps keeping class_order at branch {instance.branch_ids[b]} were found within "
                          f"the time limit of {time_limit_s:g} s; allow more time")
            else:
                reason = conflict or (f"no ladder steps at branch {instance.branch_ids[b]} keep class_order "
                                      f"together with max_step {instance.max_step}; raise max_step or fix the "
                                      "list rates")
            empty = np.full(level.shape, -1, dtype=np.int64)
            return PricePlan(status, None, None, empty, np.zeros(level.shape), instance,
                             time.perf_counter() - started, reason)
        level[b] = steps
    small = np.flatnonzero(data.present.sum(axis=(1, 2)) <= exact_segments)
    exact_share = (0.85 if len(small) == len(instance.branch_ids) else 0.5) if len(small) else 0.0
    heuristic_deadline = started + time_limit_s * (1.0 - exact_share) * 0.9
    if len(small) == len(instance.branch_ids):
        max_rounds = min(max_rounds, 40)  # the exact MIP follows for every branch: a good start is enough
    level = _sweep_separable(data, level, heuristic_deadline)
    accept = _best_accepts(data, level)
    objective = _revenue(data, level, accept)
    share = 1.0 - exact_share
    report(0.1 * share)
    bound_deadline = time.perf_counter() + (heuristic_deadline - time.perf_counter()) * 0.15
    bound, rounds = _bound(data, level, accept, objective, bound_deadline, max_rounds,
                           lambda f: report((0.1 + 0.3 * f) * share))
    level, accept, objective, converged = _climb(data, level, accept, heuristic_deadline,
                                      lambda f: report((0.4 + 0.6 * f) * share))
    bound = np.maximum(bound, objective)
    proved = objective >= bound - 1e-9 * np.maximum(1.0, bound)
    for n, b in enumerate(small.tolist()):
        if proved[b]:
            continue
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            break
        _solve_branch(data, b, remaining / (len(small) - n), level, accept, objective, bound, proved)
        report(1.0 - exact_share + exact_share * (n + 1) / len(small))
    if converged:  # the climb stopped short of its time: what is left goes to the exact MIP
        _polish(data, level, accept, objective, bound, proved, deadline)
    total, total_bound = float(objective.sum()), float(bound.sum())
    report(1.0)
    stats = {"rounds": rounds, "branches": len(instance.branch_ids), "segments": instance.segment_count,
             "branches_proved_optimal": int(proved.sum())}
    return PricePlan("optimal" if proved.all() else "feasible", total, max(total, total_bound),
                     np.where(data.present, level, -1), np.where(data.present, accept, 0.0), instance,
                     time.perf_counter() - started, None, stats)


def _polish(data: _Data, level: np.ndarray, accept: np.ndarray, objective: np.ndarray, bound: np.ndarray,
            proved: np.ndarray, deadline: float) -> None:
    """Time the climb left over (it stops early on a few branches) goes to the exact MIP of the branches not proved
    yet, the widest gap first, started from the plan: at least POLISH_MIN_S each, so none is cut too short to help.
    In place: a better plan replaces the branch's, a lower bound its bound."""
    left = [b for b in np.argsort(objective - bound, kind="stable").tolist() if not proved[b]]
    for n, b in enumerate(left):
        remaining = deadline - time.perf_counter() - POLISH_MARGIN_S
        share = max(remaining / (len(left) - n), POLISH_MIN_S)
        if share > remaining:
            break
        _solve_branch(data, b, share, level, accept, objective, bound, proved)


def _solve_branch(data: _Data, b: int, time_limit_s: float, level: np.ndarray, accept: np.ndarray,
                  objective: np.ndarray, bound: np.ndarray, proved: np.ndarray) -> None:
    """Branch b's exact MIP, started from its plan, in place: its plan where it earns at least as much, its bound
    where lower (never under the plan kept), and whether it is proved optimal."""
    exact = _branch_mip(data, b, time_limit_s, level[b])
    if exact.level is not None and exact.objective is not None and exact.objective >= objective[b] - 1e-9:
        level[b], accept[b], objective[b] = exact.level, exact.accept, exact.objective
    if exact.bound is not None:
        bound[b] = min(bound[b], max(exact.bound, objective[b]))
    proved[b] = exact.status == "optimal"


class _Monotone:
    """Passes progress on as a fraction that never goes back."""

    def __init__(self, progress: Callable[[float], None] | None) -> None:
        self.progress, self.last = progress, 0.0

    def __call__(self, fraction: float) -> None:
        self.last = max(self.last, min(1.0, fraction))
        if self.progress is not None:
            self.progress(self.last)


def _sweep_separable(data: _Data, level: np.ndarray, deadline: float, sweeps: int = 6) -> np.ndarray:
    """A first plan: line sweeps where each day may sell at most its capacity over the rental length."""
    inst = data.inst
    share = np.where(data.present, inst.capacity / inst.rental_days[None, :, None], 0.0)
    value = data.revenue * np.minimum(data.demand, share[..., None])
    level = level.copy()
    for _ in range(sweeps):
        before = level.copy()
        for c in data.chain.tolist():
            _sweep_class(data, value, level, c)
        for d in range(inst.horizon_days):
            _sweep_day(data, value, level, d)
        if (level == before).all() or time.perf_counter() > deadline:
            break
    return level


def _class_revenue(data: _Data, level: np.ndarray, accept: np.ndarray) -> np.ndarray:
    chosen = np.take_along_axis(data.revenue, np.maximum(level, 0)[..., None], axis=3)[..., 0]
    return np.where(data.present, accept * chosen, 0.0).sum(axis=2)


def _climb(data: _Data, level: np.ndarray, accept: np.ndarray, deadline: float,
           progress: Callable[[float], None]) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Hill climbing with exact booking limits, every branch at once, in tiers of moves, each kept where it keeps
    every rule and earns more: (1) all classes of one day re-chosen at once, exactly (`_Climb.day_line`), and every
    class shifted by its own number of steps, as far as the ladder goes, on the whole horizon and on each half of it
    (`_Climb.block_line`); (2) the same on runs of 2–4 days, by up to 3 steps; (3) some cells shifted one
    or two ladder steps: one class on one day, two classes next in rank on one day, one class on two days running;
    (4) the same wider: three classes, three days, two classes on two days. A tier runs once nothing before it
    helps, and after any move of a later tier helped the first runs again. Until no move helps (converged: the last
    value returned) or time is up."""
    n_d = level.shape[2]
    state = _Climb(data, level.copy(), accept.copy(), _class_revenue(data, level, accept))
    small = _moves(data, classes=2, days=2, n_d=n_d)
    wide = [move for move in _moves(data, classes=3, days=3, n_d=n_d) if move not in small]
    blocks = [list(range(d, d + length)) for length in (2, 3, 4) for d in range(n_d - length + 1)]
    # a class held low by the class above it may need the classes above to rise far, on many days at once
    halves = [list(range(n_d))] + ([list(range(n_d // 2)), list(range(n_d // 2, n_d))] if n_d > 7 else [])
    reach = range(1 - len(data.inst.ladder), len(data.inst.ladder))
    runs = [(list(range(d, d + length)), shift) for length, shift in PATTERNS for d in range(n_d - length + 1)]
    tiers: list[list[Callable[[], bool]]] = [
        [lambda d=d: state.day_line(d) for d in range(n_d)]
        + [lambda days=days: state.block_line(days, reach) for days in halves],
        [lambda days=days, shift=shift: state.pattern_line(days, shift) for days, shift in runs],
        [lambda days=days: state.block_line(days) for days in blocks],
        *([lambda units=units, days=days, delta=delta: state.attempt(units, days, delta)
           for units, days in batches for delta in (1, -1, 2, -2)] for batches in (small, wide)),
    ]
    started = time.perf_counter()
    took: dict[tuple[int, int], float] = {}  # how long each move took last time: none starts that would end late
    tier, converged = 0, False
    while time.perf_counter() < deadline:
        improved = False
        for n, move in enumerate(tiers[tier]):
            before = time.perf_counter()
            # a move not made yet is expected to take as long as the slowest of its tier so far
            expected = took.get((tier, n), max((t for (k, _), t in took.items() if k == tier), default=0.0))
            if before + expected > deadline:
                continue
            improved |= move()
            took[tier, n] = time.perf_counter() - before
            progress((time.perf_counter() - started) / max(1e-9, deadline - started))
        if improved:
            tier = 0
        elif tier == len(tiers) - 1:
            converged = True
            break
        else:
            tier += 1
    progress(1.0)
    return state.level, state.accept, state.earned.sum(axis=1), converged


@cache
def _patterns(days: int, reach: int) -> np.ndarray:
    """Every pattern of shifts of −reach…reach over a run of days, [pattern, day]; the all-zero one included."""
    return np.array(list(itertools.product(range(-reach, reach + 1), repeat=days)), dtype=np.int64)


def _moves(data: _Data, *, classes: int, days: int, n_d: int) -> list[tuple[list[list[int]], list[int]]]:
    """Batches of moves: runs of up to `classes` classes next in rank on one day (with class_order), one class on
    runs of up to `days` days (with max_step), and pairs of classes on two days (with both); the runs of one
    batch are disjoint, so they are tried side by side."""
    inst = data.inst
    chain = data.chain.tolist()
    n_c = len(chain)
    out: list[tuple[list[list[int]], list[int]]] = []
    for parity in (0, 1):
        singles = [[c] for c in chain[parity::2]]
        out += [(singles, [d]) for d in range(n_d)]
    if inst.class_order:
        for width in range(2, min(classes, n_c) + 1):
            for offset in range(width):
                runs = [chain[p:p + width] for p in range(offset, n_c - width + 1, width)]
                if runs:
                    out += [(runs, [d]) for d in range(n_d)]
    if inst.max_step is not None:
        for length in range(2, min(days, n_d) + 1):
            for parity in (0, 1):
                singles = [[c] for c in chain[parity::2]]
                out += [(singles, list(range(d, d + length))) for d in range(n_d - length + 1)]
        if inst.class_order and classes > 2 and days > 2 and n_c > 1 and n_d > 1:
            for offset in (0, 1):
                pairs = [chain[p:p + 2] for p in range(offset, n_c - 1, 2)]
                out += [(pairs, [d, d + 1]) for d in range(n_d - 1)]
    return [(units, days) for units, days in out if units]


@dataclass
class _Climb:
    """The climb's state. A move's outcome at a branch depends only on the steps of its own classes (their revenue,
    max_step) and of every class on its own days (class_order): a move that failed is not tried again at a branch
    until one of those has changed, which the version counters tell."""

    data: _Data
    level: np.ndarray
    accept: np.ndarray
    earned: np.ndarray  # revenue per [branch, class]
    class_version: np.ndarray = field(init=False)  # [branch, class], bumped when that class moves
    day_version: np.ndarray = field(init=False)  # [branch, day], bumped when any class moves on that day
    failed: dict[tuple, np.ndarray] = field(init=False, default_factory=dict)  # move → versions when it failed

    def __post_init__(self) -> None:
        self.class_version = np.zeros(self.level.shape[:2], dtype=np.int64)
        self.day_version = np.zeros((self.level.shape[0], self.level.shape[2]), dtype=np.int64)

    def attempt(self, units: list[list[int]], days: list[int], delta: int) -> bool:
        data, inst = self.data, self.data.inst
        n_b, n_c, n_d = self.level.shape
        key = (tuple(tuple(unit) for unit in units), tuple(days), delta)
        version = (np.stack([self.class_version[:, unit].sum(axis=1) for unit in units], axis=1)
                   + self.day_version[:, days].sum(axis=1)[:, None])
        stale = self.failed.get(key)
        fresh = np.ones((n_b, len(units)), dtype=bool) if stale is None else stale != version
        if not fresh.any():
            return False
        failed = np.full((n_b, len(units)), -1, dtype=np.int64) if stale is None else stale.copy()
        classes = [c for unit in units for c in unit]
        cells = np.zeros(self.level.shape, dtype=bool)
        cells[:, classes, days[0]:days[-1] + 1] = True
        cells &= data.present
        target = self.level + delta
        cells &= (target >= 0) & (target < len(inst.ladder))
        trial = np.where(cells, target, self.level)
        label = np.full(n_c, -1)
        for u, unit in enumerate(units):
            label[unit] = u
        # a unit moves only when all its cells can move and its classes keep max_step
        whole = np.zeros((n_b, len(units)), dtype=bool)
        for u, unit in enumerate(units):
            wanted = data.present[:, unit, days[0]:days[-1] + 1]
            whole[:, u] = (cells[:, unit, days[0]:days[-1] + 1] == wanted).all(axis=(1, 2)) & wanted.any(axis=(1, 2))
        if inst.max_step is not None:
            linked = data.present[:, :, 1:] & data.present[:, :, :-1]
            jumps = (linked & (np.abs(np.diff(trial, axis=2)) > inst.max_step)).any(axis=2)
            for u, unit in enumerate(units):
                whole[:, u] &= ~jumps[:, unit].any(axis=1)
        if inst.class_order:
            whole &= self._order_kept(trial, units, days)
        failed[fresh & ~whole] = version[fresh & ~whole]
        whole &= fresh
        if not whole.any():
            self.failed[key] = failed
            return False
        moving = np.zeros((n_b, n_c), dtype=bool)
        for u, unit in enumerate(units):
            moving[:, unit] = whole[:, u, None]
        trial = np.where(moving[..., None], trial, self.level)
        tried = _best_accepts(data, trial, moving, self.accept)
        gain = _class_revenue(data, trial, tried)
        better = np.zeros((n_b, len(units)), dtype=bool)
        for u, unit in enumerate(units):
            better[:, u] = whole[:, u] & (gain[:, unit].sum(axis=1) > self.earned[:, unit].sum(axis=1) + 1e-6)
        failed[whole & ~better] = version[whole & ~better]
        self.failed[key] = failed
        if not better.any():
            return False
        keep = np.zeros((n_b, n_c), dtype=bool)
        for u, unit in enumerate(units):
            keep[:, unit] = better[:, u, None]
        final = np.where(keep[..., None], trial, self.level)
        if inst.class_order:
            # the bounds were not checked move by move: a branch whose moves break class_order keeps none
            keep &= _order_ok(data, final)[:, None]
            if not keep.any():
                return False
            final = np.where(keep[..., None], trial, self.level)
        self.level = final
        self.accept[keep] = tried[keep]
        self.earned[keep] = gain[keep]
        self.class_version += keep
        self.day_version[:, days] += keep.any(axis=1)[:, None]
        return True

    def day_line(self, d: int) -> bool:
        """Re-choose the steps of every class on day d at once, the other days fixed: each class's revenue at each
        step is exact (its booking limits solved again), classes earn apart, so a dynamic programme over the
        classes in rank order (class_order) within the steps max_step leaves open finds the best choice."""
        data = self.data
        n_b, n_c, _ = self.level.shape
        k = len(data.inst.ladder)
        key = ("day", d)
        fresh = self._fresh(key)
        present = data.present[:, :, d]
        if not (fresh[:, None] & present).any():
            return False
        allowed = _step_bounds(data, self.level, d) & present[..., None] & fresh[:, None, None]
        earned = np.full((n_b, n_c, k), -np.inf)
        accepts = []
        for j in range(k):
            trial = self.level.copy()
            trial[:, :, d] = np.where(allowed[:, :, j], j, self.level[:, :, d])
            change = allowed[:, :, j] & (self.level[:, :, d] != j)  # the current step earns what it earns
            tried = _best_accepts(data, trial, change, self.accept)
            earned[:, :, j] = np.where(change, _class_revenue(data, trial, tried),
                                       np.where(allowed[:, :, j], self.earned, -np.inf))
            accepts.append(tried)
        chain = data.chain
        value = np.where(present[..., None], earned, 0.0)[:, chain]
        total, path = _order_chain(data, np.where(np.isfinite(value), value, 0.0),
                                   (np.isfinite(value) | ~present[:, chain, None]), present[:, chain],
                                   data.rate[:, chain, d])
        now = np.where(present, self.earned, 0.0).sum(axis=1)
        better = fresh & np.isfinite(total) & (total > now + 1e-6)
        self._failed(key, fresh & ~better)
        if not better.any():
            return False
        steps = np.empty((n_b, n_c), dtype=np.int64)
        steps[:, chain] = path
        moved = better[:, None] & present & (steps != self.level[:, :, d])
        if not moved.any():
            return False
        b, c = np.nonzero(moved)
        j = steps[b, c]
        self.level[b, c, d] = j
        stacked = np.stack(accepts)  # [step, branch, class, day]
        self.accept[b, c] = stacked[j, b, c]
        self.earned[b, c] = earned[b, c, j]
        self.class_version += moved
        self.day_version[:, d] += moved.any(axis=1)
        return True

    def block_line(self, days: list[int], shifts: range = range(-3, 4)) -> bool:
        """Shift every class by its own number of ladder steps (clipped at the ends of the ladder) on a run of days
        at once, the other days fixed: as in `day_line`, each class's revenue per shift is exact and a dynamic
        programme over the classes in rank order picks the best shifts that keep class_order on every day of the
        run and max_step at its ends."""
        data, inst = self.data, self.data.inst
        n_b, n_c, n_d = self.level.shape
        k = len(inst.ladder)
        key = ("block", tuple(days), tuple(shifts))
        fresh = self._fresh(key)
        span = slice(days[0], days[-1] + 1)
        present = data.present[:, :, span]
        if not fresh.any():
            return False
        options = list(shifts)
        earned = np.full((n_b, n_c, len(options)), -np.inf)
        trials, accepts = [], []
        for s, shift in enumerate(options):
            trial = self.level.copy()
            # clipped at the ends of the ladder, which keeps max_step inside the run
            trial[:, :, span] = np.where(present, np.clip(trial[:, :, span] + shift, 0, k - 1), trial[:, :, span])
            ok = fresh[:, None] & present.any(axis=2)
            if inst.max_step is not None:
                for before, after in ((days[0] - 1, days[0]), (days[-1], days[-1] + 1)):
                    if before >= 0 and after < n_d:
                        linked = data.present[:, :, before] & data.present[:, :, after]
                        ok &= ~linked | (np.abs(trial[:, :, before] - trial[:, :, after]) <= inst.max_step)
            trial = np.where(ok[..., None], trial, self.level)
            tried = _best_accepts(data, trial, ok, self.accept) if shift else self.accept
            earned[:, :, s] = np.where(ok, _class_revenue(data, trial, tried), -np.inf)
            trials.append(trial)
            accepts.append(tried)
        chain = data.chain.tolist()
        step_ok = _order_steps(data, np.stack([t[:, :, span] for t in trials], axis=3), span)
        value = earned[:, chain]
        allowed = np.isfinite(value)
        stuck = ~allowed.any(axis=2)  # classes that cannot move here stay, counted apart
        allowed[stuck, options.index(0)] = True
        total, path = _chain_dp(np.where(np.isfinite(value), value, 0.0), allowed, np.ones((n_b, n_c), dtype=bool),
                                step_ok)
        now = self.earned.sum(axis=1)
        rest = np.where(stuck, self.earned[:, chain], 0.0).sum(axis=1)
        better = fresh & np.isfinite(total) & (total + rest > now + 1e-6)
        choice = np.empty((n_b, n_c), dtype=np.int64)
        choice[:, chain] = path
        final = np.take_along_axis(np.stack(trials, axis=3), choice[:, :, None, None], axis=3)[..., 0]
        final = np.where(better[:, None, None], final, self.level)
        if inst.class_order:
            better &= _order_ok(data, final)  # classes apart in rank but not next in the chain, when some are absent
        self._failed(key, fresh & ~better)
        moved = better[:, None] & (choice != options.index(0))
        if not moved.any():
            return False
        b, c = np.nonzero(moved)
        picked = choice[b, c]
        self.level[b, c] = np.stack(trials)[picked, b, c]
        self.accept[b, c] = np.stack(accepts)[picked, b, c]
        self.earned[b, c] = earned[b, c, picked]
        self.class_version += moved
        self.day_version[:, span] += moved.any(axis=1)[:, None]
        return True

    def pattern_line(self, days: list[int], reach: int) -> bool:
        """Re-choose every class on a short run of days at once, each class by its own pattern of shifts (any shift
        of −reach…reach on each day of the run), the other days fixed. As in `block_line`, each class's revenue
        under each pattern is exact and a dynamic programme over the classes in rank order picks the patterns that
        keep class_order on every day of the run; max_step is kept inside the run and at its ends. Unlike a block,
        a class may go down one day and up the next: sell cars cheaply on one day, keep them for a dearer one.

        Most patterns cannot help, and solving a class's booking limits is the cost: the day prices of the current
        booking limits (their optimal duals) bound each class's revenue under any pattern from above, and a pattern
        is solved only where the dynamic programme over those bounds says a plan through it could earn more."""
        data, inst = self.data, self.data.inst
        n_b, n_c, n_d = self.level.shape
        k = len(inst.ladder)
        key = ("pattern", tuple(days), reach)
        fresh = self._fresh(key)
        if not fresh.any():
            return False
        span = slice(days[0], days[-1] + 1)
        patterns = _patterns(len(days), reach)
        still = int(np.flatnonzero(~patterns.any(axis=1))[0])
        steps = self.level[:, :, span, None] + patterns.T[None, None]  # [branch, class, day of the run, pattern]
        ok = ((steps >= 0) & (steps < k)).all(axis=2) & data.present[:, :, span].all(axis=2)[..., None]
        steps = np.clip(steps, 0, k - 1)
        if inst.max_step is not None:
            ok &= (np.abs(np.diff(steps, axis=2)) <= inst.max_step).all(axis=2)
            for outside, inside in ((days[0] - 1, 0), (days[-1] + 1, -1)):
                if 0 <= outside < n_d:
                    near = np.abs(steps[:, :, inside] - self.level[:, :, outside, None]) <= inst.max_step
                    ok &= near | ~data.present[:, :, outside, None]
        ok &= fresh[:, None, None]
        ok[:, :, still] = True
        chain = data.chain.tolist()
        step_ok = _order_steps(data, steps, span)
        now = self.earned.sum(axis=1)
        # the bound: the current revenue, plus what each start in the run would add at the current day prices
        occupied = _window_sum(_day_prices(data, self.level, fresh[:, None] & data.present.any(axis=2)),
                               inst.rental_days, forward=True)[:, :, span, None]
        worth = np.take_along_axis(data.demand[:, :, span], steps, axis=3) * np.maximum(
            0.0, np.take_along_axis(data.revenue[:, :, span], steps, axis=3) - occupied)
        bound = self.earned[..., None] + (worth - worth[..., still, None]).sum(axis=2)
        through = _chain_through(np.where(ok, bound, -np.inf)[:, chain], step_ok)
        wanted = np.zeros_like(ok)
        wanted[:, chain] = through > now[:, None, None] + 1e-6
        wanted &= ok
        wanted[:, :, still] = False
        earned = np.full((n_b, n_c, len(patterns)), -np.inf)
        earned[:, :, still] = self.earned
        for p in np.flatnonzero(wanted.any(axis=(0, 1))).tolist():
            trial = self.level.copy()
            trial[:, :, span] = np.where(wanted[:, :, p, None], steps[:, :, :, p], trial[:, :, span])
            tried = _best_accepts(data, trial, wanted[:, :, p], self.accept)
            earned[:, :, p] = np.where(wanted[:, :, p], _class_revenue(data, trial, tried), -np.inf)
        value = earned[:, chain]
        allowed = np.isfinite(value)
        total, path = _chain_dp(np.where(allowed, value, 0.0), allowed, np.ones((n_b, n_c), dtype=bool), step_ok)
        better = fresh & np.isfinite(total) & (total > now + 1e-6)
        choice = np.full((n_b, n_c), still, dtype=np.int64)
        choice[:, chain] = np.where(better[:, None], path, still)
        final = self.level.copy()
        final[:, :, span] = np.take_along_axis(steps, choice[:, :, None, None], axis=3)[..., 0]
        if inst.class_order:
            better &= _order_ok(data, final)  # classes apart in rank but not next in the chain, when some are absent
        self._failed(key, fresh & ~better)
        moved = better[:, None] & (choice != still)
        if not moved.any():
            return False
        final = np.where(moved[..., None], final, self.level)
        self.accept = _best_accepts(data, final, moved, self.accept)
        self.level = final
        self.earned = np.where(moved, _class_revenue(data, final, self.accept), self.earned)
        self.class_version += moved
        self.day_version[:, span] += moved.any(axis=1)[:, None]
        return True

    def _fresh(self, key: tuple) -> np.ndarray:
        """Per branch: whether a whole-branch move (`key`) may help there — it has not failed since the branch's
        steps last changed."""
        stale = self.failed.get(key)
        return np.ones(self.level.shape[0], dtype=bool) if stale is None else stale != self.class_version.sum(axis=1)

    def _failed(self, key: tuple, branches: np.ndarray) -> None:
        """Remember that the move `key` did not help at these branches, as of their steps now."""
        failed = self.failed.get(key, np.full(self.level.shape[0], -1, dtype=np.int64)).copy()
        failed[branches] = self.class_version.sum(axis=1)[branches]
        self.failed[key] = failed

    def _order_kept(self, trial: np.ndarray, units: list[list[int]], days: list[int]) -> np.ndarray:
        """Per [branch, unit]: whether moving that unit alone keeps class_order on the days it moves."""
        data, inst = self.data, self.data.inst
        span = slice(days[0], days[-1] + 1)
        now = np.take_along_axis(data.rate[:, :, span], np.maximum(self.level[:, :, span], 0)[..., None], 3)[..., 0]
        then = np.take_along_axis(data.rate[:, :, span], np.maximum(trial[:, :, span], 0)[..., None], 3)[..., 0]
        present = data.present[:, :, span]
        kept = np.ones((trial.shape[0], len(units)), dtype=bool)
        for u, unit in enumerate(units):
            rate = now.copy()
            rate[:, unit] = then[:, unit]
            for c in unit:
                for o in range(len(inst.class_ids)):
                    if o == c or inst.class_rank[o] == inst.class_rank[c]:
                        continue
                    lo, hi = (o, c) if inst.class_rank[o] < inst.class_rank[c] else (c, o)
                    broken = present[:, lo] & present[:, hi] & (rate[:, hi] < rate[:, lo] - data.tolerance)
                    kept[:, u] &= ~broken.any(axis=1)
        return kept


def _bound(data: _Data, level: np.ndarray, accept: np.ndarray, objective: np.ndarray, deadline: float,
           max_rounds: int, progress: Callable[[float], None]) -> tuple[np.ndarray, int]:
    """The lowest Lagrangian bound per branch found by subgradient steps on the capacity prices (Polyak steps
    towards the best known revenue), starting from prices read off the plan: where a day's cars are all taken,
    the rate less what one more rental would lower it by (rate / elasticity), else nothing."""
    inst = data.inst
    n_b = level.shape[0]
    chosen = np.take_along_axis(data.rate, np.maximum(level, 0)[..., None], axis=3)[..., 0]
    busy = _window_sum(accept, inst.rental_days, forward=False) >= inst.capacity - 1e-6
    margin = np.where(inst.elasticity > 1.0, 1.0 - 1.0 / np.maximum(inst.elasticity, 1e-9), 1.0)
    price = np.where(data.present & busy, chosen * margin / inst.rental_days[None, :, None], 0.0)
    bound = np.full(n_b, np.inf)
    theta = np.full(n_b, 1.0)
    stale = np.zeros(n_b, dtype=np.int64)
    started = time.perf_counter()
    rounds = 0
    while rounds < max_rounds:
        rounds += 1
        value = _values(data, price)
        fixed, by_class, by_day, class_level, day_level = _lagrangian_bound(data, price, value, value)
        ub = fixed + np.minimum(by_class, by_day)
        improved = ub < np.where(np.isfinite(bound), bound, np.inf) - 1e-9 * np.maximum(1.0, np.abs(ub))
        bound = np.minimum(bound, ub)
        stale = np.where(improved, 0, stale + 1)
        theta = np.where(stale >= 3, theta / 2, theta)
        stale[stale >= 3] = 0
        if (objective >= bound - 1e-6 * np.maximum(1.0, bound)).all():
            break
        # a subgradient of the smaller bound in the capacity prices: capacity minus what its plan would occupy
        occupied = _window_sum(price * data.present, inst.rental_days, forward=True)
        k = np.where((by_day < by_class)[:, None, None], day_level, class_level)[..., None]
        worth = np.take_along_axis(data.revenue, k, axis=3)[..., 0] > occupied
        starts = np.where(data.present & worth, np.take_along_axis(data.demand, k, axis=3)[..., 0], 0.0)
        slack = np.where(data.present, inst.capacity - _window_sum(starts, inst.rental_days, forward=False), 0.0)
        norm = (slack ** 2).sum(axis=(1, 2))
        step = np.where(norm > 0, theta * np.maximum(bound - objective, 0.0) / np.maximum(norm, 1e-12), 0.0)
        price = np.maximum(0.0, price - step[:, None, None] * slack)
        elapsed = time.perf_counter() - started
        progress(min(1.0, max(rounds / max_rounds, elapsed / max(1e-9, deadline - started))))
        if time.perf_counter() + elapsed / rounds > deadline:
            break
    return np.maximum(bound, objective), rounds


def plan_to_dict(plan: PricePlan) -> dict[str, Any]:
    """The plan as the JSON document of `fleetdesk optimise prices`."""
    frame = plan.prices()
    out: dict[str, Any] = {
        "status": plan.status,
        "objective": None if plan.objective is None else round(plan.objective, 2),
        "bound": None if plan.bound is None else round(plan.bound, 2),
        "prices": [{"branch": branch, "class": klass, "day": int(day), "multiplier": float(multiplier),
                    "rate": round(float(rate), 2), "accept": round(float(accept), 6),
                    "revenue": round(float(revenue), 2)}
                   for branch, klass, day, multiplier, rate, accept, revenue in frame.itertuples(index=False)],
        "stats": {"solve_seconds": round(plan.solve_seconds, 3), "gap_pct": plan.gap_pct, **plan.stats},
    }
    if plan.reason:
        out["reason"] = plan.reason
    return out


def evaluate_steps(instance: PriceInstance, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The best booking limits at fixed ladder steps [branch, class, day], and the revenue per branch they earn."""
    data = _Data.of(instance)
    level = np.where(data.present, level, 0)
    accept = _best_accepts(data, level)
    return accept, _revenue(data, level, accept)


def rule_breaks(instance: PriceInstance, level: np.ndarray) -> dict[str, int]:
    """How many (branch, class, day) pairs break max_step and how many (branch, day) break class_order."""
    data = _Data.of(instance)
    steps = 0
    if instance.max_step is not None:
        linked = data.present[:, :, 1:] & data.present[:, :, :-1]
        steps = int((linked & (np.abs(np.diff(level, axis=2)) > instance.max_step)).sum())
    order = 0
    if instance.class_order:
        chosen = np.take_along_axis(data.rate, np.maximum(level, 0)[..., None], axis=3)[..., 0]
        bad = np.zeros((level.shape[0], level.shape[2]), dtype=bool)
        for lo in range(len(instance.class_ids)):
            for hi in range(len(instance.class_ids)):
                if instance.class_rank[hi] > instance.class_rank[lo]:
                    bad |= (data.present[:, lo] & data.present[:, hi]
                            & (chosen[:, hi] < chosen[:, lo] - data.tolerance))
        order = int(bad.sum())
    return {"max_step": steps, "class_order": order}
