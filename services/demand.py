"""The demand model: expected rentals starting per branch, vehicle type and day, and how demand answers to price.

Fitted by maximum likelihood on the booking history (scipy's L-BFGS on an exact gradient). For a branch b,
type t and local day d the demand (rentals customers ask for) is Poisson with mean

    mu = exp(level[b, t] + weekday[b, weekday(d)] + season[week(d)]) * m ** -elasticity[t]

where m is the price multiplier charged that day (the "multiplier" frozen into each booking's breakdown; 1 when
there is none). Three things in the history would bias a naive fit, and the likelihood handles each:

- a day with no booking does not say what price was charged: its likelihood sums over the price levels, weighted
  by how often each level was charged (estimated with the rest);
- customers who came while no car of the type was free were turned away and left no booking (more often at low
  prices): bookings are demand times the day's exposure, the share of its demand that found a free car
  (services.demand_history rebuilds it from the bookings of every car);
- a weekday on which a branch never had a pick-up is a closed day: left out of the fit, forecast as zero.

The season is one factor per week of the year, used only when the history covers a whole year. Weekday and
season factors carry a small ridge penalty so that they are identified and shrink to neutral without data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import logsumexp
from sqlalchemy import text
from sqlalchemy.orm import Session

from services import demand_history as history
from services.errors import InvalidInput

DEFAULT_ELASTICITY = 1.5  # used for a type whose history never saw more than one price level
MAX_FORECAST_DAYS = 366
_RIDGE = 1.0  # on weekday and week-of-year log factors: a prior of "no pattern" worth about one observation
_WEEKS = 53
_FULL_YEAR_DAYS = 364
_MIN_EXPOSURE = 0.02  # days on which less of the demand than this could find a car are left out
FORECAST_COLUMNS = ["location_id", "vehicle_type_id", "day", "expected_pickups"]


@dataclass(frozen=True)
class DemandFit:
    """A fitted demand model, with the frames an analyst needs to judge it."""

    history_start: date
    history_end: date  # first day not in the fit (today)
    ladder: tuple[float, ...]  # price multipliers seen in the history
    ladder_shares: tuple[float, ...]  # how often each was charged
    levels: pd.DataFrame  # location_id, vehicle_type_id, level: pick-ups per day at list price, average weekday
    weekday: pd.DataFrame  # location_id, weekday (0 = Monday), factor (0 on closed days)
    season: pd.DataFrame  # week (0..52), factor
    elasticity: pd.DataFrame  # vehicle_type_id, code, elasticity, std_error, identified
    by_weekday: pd.DataFrame  # vehicle_type_id, code, weekday, observed, fitted: mean pick-ups per branch and day
    by_price: pd.DataFrame  # vehicle_type_id, code, multiplier, days, observed, fitted: demand index, 1 at list
    observations: int  # branch-type-days in the fit
    sold_out_share: float  # share of demand (by time of day) that came when no car of the type was free
    converged: bool

    def elasticity_of(self, vehicle_type_id: int) -> float:
        row = self.elasticity.loc[self.elasticity["vehicle_type_id"] == vehicle_type_id, "elasticity"]
        return float(row.iloc[0]) if len(row) else DEFAULT_ELASTICITY

    def expected(self, location_ids: Sequence[int], vehicle_type_ids: Sequence[int],
                 days: Sequence[date]) -> pd.DataFrame:
        """Expected pick-ups at list price for every (branch, type, day) asked for; zero where none are known."""
        grid = pd.MultiIndex.from_product(
            [list(location_ids), list(vehicle_type_ids), list(days)], names=["location_id", "vehicle_type_id", "day"]
        ).to_frame(index=False)
        if grid.empty:
            return pd.DataFrame({"location_id": pd.Series(dtype=int), "vehicle_type_id": pd.Series(dtype=int),
                                 "day": pd.Series(dtype=object), "expected_pickups": pd.Series(dtype=float)})
        stamps = pd.to_datetime(grid["day"])
        grid["weekday"] = stamps.dt.day_of_week.to_numpy()
        grid["week"] = _week_of_year(stamps)
        grid = grid.merge(self.levels, how="left", on=["location_id", "vehicle_type_id"])
        grid = grid.merge(self.weekday, how="left", on=["location_id", "weekday"])
        grid = grid.merge(self.season.rename(columns={"factor": "season"}), how="left", on="week")
        expected = grid["level"].fillna(0.0) * grid["factor"].fillna(1.0) * grid["season"].fillna(1.0)
        return pd.DataFrame({
            "location_id": grid["location_id"].astype(int), "vehicle_type_id": grid["vehicle_type_id"].astype(int),
            "day": grid["day"], "expected_pickups": expected.astype(float),
        })


def forecast(session: Session, start: date, days: int, *, location_ids: Sequence[int] | None = None,
             vehicle_type_ids: Sequence[int] | None = None, fit: DemandFit | None = None) -> pd.DataFrame:
    """Rentals expected to start at list price per (branch, type, day) from start for days, zeros included.

    Columns location_id, vehicle_type_id, day (date), expected_pickups (float). None means every active branch
    or every vehicle type. Pass `fit` to reuse a fit (fitting reads the whole history).
    """
    if not 1 <= days <= MAX_FORECAST_DAYS:
        raise InvalidInput(f"a forecast covers 1 to {MAX_FORECAST_DAYS} days, not {days}; choose a shorter horizon")
    if location_ids is None:
        location_ids = session.execute(text("SELECT id FROM locations ORDER BY id")).scalars().all()
    if vehicle_type_ids is None:
        vehicle_type_ids = session.execute(text("SELECT id FROM vehicle_types ORDER BY rank, id")).scalars().all()
    fit = fit or fit_demand(session)
    return fit.expected(location_ids, vehicle_type_ids, [start + timedelta(days=i) for i in range(days)])


def fit_demand(session: Session, *, history_days: int = 365, today: date | None = None) -> DemandFit:
    """Fit weekday, season, base level per (branch, type) and elasticity per type on the last history_days."""
    if not 7 <= history_days <= 3 * 366:
        raise InvalidInput(f"fit demand on 7 to {3 * 366} days of history, not {history_days}")
    today = today or datetime.now(UTC).date()
    first = today - timedelta(days=history_days)
    # The history starts with the first booking: the days before it say nothing about demand.
    earliest = session.execute(text("""
        SELECT min((b.pickup_at AT TIME ZONE l.timezone)::date)
        FROM bookings b JOIN locations l ON l.id = b.pickup_location_id
        WHERE b.pickup_at >= :since
    """), {"since": datetime.combine(first, datetime.min.time(), UTC) - timedelta(days=1)}).scalar_one()
    if earliest is None or earliest >= today:
        raise InvalidInput(f"there are no bookings between {first} and {today} to fit demand on; load bookings or "
                           "choose a longer history")
    first = max(first, earliest)
    cells = history.observations(session, first, today)
    types = history.frame(session, "SELECT id AS vehicle_type_id, code FROM vehicle_types")
    return _fit(cells, types, first, today)


def _week_of_year(stamps: pd.Series) -> np.ndarray:
    return np.minimum(stamps.dt.day_of_year.to_numpy() - 1, 7 * _WEEKS - 1) // 7


# --- the fit ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Design:
    """Integer codes of each observation into the parameter blocks, and the data the likelihood needs."""

    cell: np.ndarray  # index into levels
    branch_weekday: np.ndarray  # index into weekday factors
    week: np.ndarray  # index into season factors (all 0 without a full year)
    vtype: np.ndarray  # index into elasticities
    y: np.ndarray
    level: np.ndarray  # index into the ladder, -1 where the price is unknown (no booking that day)
    log_exposure: np.ndarray  # log of the share of the day's demand that could find a free car
    sizes: tuple[int, int, int, int, int]  # levels, weekday factors, season factors, types, ladder
    known_end: int  # rows [0, known_end) have a known price, the rest (days without a booking) do not
    level_counts: np.ndarray  # days charged each ladder level, among the days whose price is known


def _fit(cells: pd.DataFrame, types: pd.DataFrame, first: date, today: date) -> DemandFit:
    stamps = pd.to_datetime(cells["day"])
    cells = cells.assign(weekday=stamps.dt.day_of_week.to_numpy(), week=_week_of_year(stamps))
    # A weekday on which a branch never had a pick-up, in any type, is a day it is closed.
    trading = cells.groupby(["location_id", "weekday"])["y"].transform("sum") > 0
    weekday_open = cells.groupby(["location_id", "weekday"])["y"].sum().gt(0).rename("open").reset_index()
    active = cells.groupby(["location_id", "vehicle_type_id"])["y"].transform("sum") > 0
    # A day on which (almost) no customer could have found a free car says nothing about demand.
    cells = cells[trading & active & (cells["exposure"] >= _MIN_EXPOSURE)]
    # Rows in two runs, so that the likelihood works on slices: known prices first, then unknown ones.
    kind = cells["m"].isna().to_numpy().astype(int)
    cells = cells.iloc[np.argsort(kind, kind="stable")].reset_index(drop=True)
    ladder = np.sort(cells["m"].dropna().unique())
    if len(cells) == 0 or len(ladder) == 0:
        raise InvalidInput(f"there are no bookings between {first} and {today} to fit demand on; load bookings or "
                           "choose a longer history")
    seasonal = (today - first).days >= _FULL_YEAR_DAYS

    level_keys = cells[["location_id", "vehicle_type_id"]].drop_duplicates().reset_index(drop=True)
    branches = np.sort(cells["location_id"].unique())
    type_ids = np.sort(cells["vehicle_type_id"].unique())
    cell = cells.merge(level_keys.reset_index(), how="left", on=["location_id", "vehicle_type_id"])["index"]
    cell = cell.to_numpy()
    branch_index = np.searchsorted(branches, cells["location_id"].to_numpy())
    known = cells["m"].notna().to_numpy()
    design = _Design(
        cell=cell,
        branch_weekday=branch_index * 7 + cells["weekday"].to_numpy(),
        week=cells["week"].to_numpy() if seasonal else np.zeros(len(cells), dtype=np.int64),
        vtype=np.searchsorted(type_ids, cells["vehicle_type_id"].to_numpy()),
        y=cells["y"].to_numpy().astype(float),
        level=np.where(known, np.searchsorted(ladder, cells["m"].fillna(1.0).to_numpy()), -1),
        log_exposure=np.log(cells["exposure"].to_numpy()),
        sizes=(len(level_keys), len(branches) * 7, _WEEKS if seasonal else 1, len(type_ids), len(ladder)),
        known_end=int((kind == 0).sum()),
        level_counts=np.bincount(np.searchsorted(ladder, cells["m"].dropna().to_numpy()), minlength=len(ladder)),
    )
    start = _starting_point(design)
    result = minimize(_negative_log_likelihood, start, args=(design, np.log(ladder)), jac=True,
                      method="L-BFGS-B", options={"maxiter": 3000})
    level, weekday, season, elasticity, share_logits = _unpack(result.x, design.sizes)
    identified = np.bincount(design.vtype[design.level >= 0] * len(ladder) + design.level[design.level >= 0],
                             minlength=len(type_ids) * len(ladder)).reshape(len(type_ids), len(ladder))
    identified = (identified > 0).sum(axis=1) >= 2
    errors = _elasticity_errors(result.x, design, np.log(ladder))
    elasticity = np.where(identified, elasticity, DEFAULT_ELASTICITY)
    shares = np.exp(share_logits - logsumexp(share_logits))

    # Report a level as the average weekday and week: move the means of those factors into it.
    weekday = weekday.reshape(len(branches), 7)
    is_open = weekday_open.set_index(["location_id", "weekday"])["open"]
    open_mask = np.array([[bool(is_open.get((b, d), False)) for d in range(7)] for b in branches])
    weekday_shift = np.array([row[mask].mean() if mask.any() else 0.0 for row, mask in zip(weekday, open_mask,
                                                                                          strict=True)])
    season_shift = season.mean() if seasonal else season[0]
    level_frame = level_keys.assign(level=np.exp(
        level + weekday_shift[np.searchsorted(branches, level_keys["location_id"])] + season_shift))
    weekday_frame = pd.DataFrame({
        "location_id": np.repeat(branches, 7), "weekday": np.tile(np.arange(7), len(branches)),
        "factor": np.where(open_mask, np.exp(weekday - weekday_shift[:, None]), 0.0).ravel(),
    })
    season_frame = pd.DataFrame({"week": np.arange(_WEEKS),
                                 "factor": np.exp(season - season_shift) if seasonal else np.ones(_WEEKS)})
    codes = types.set_index("vehicle_type_id")["code"]
    elasticity_frame = pd.DataFrame({
        "vehicle_type_id": type_ids, "code": [codes.get(t, str(t)) for t in type_ids],
        "elasticity": elasticity, "std_error": np.where(identified, errors, np.nan), "identified": identified,
    })
    by_weekday, by_price = _fit_frames(cells, design, result.x, np.log(ladder), ladder, shares, elasticity_frame)
    return DemandFit(
        history_start=first, history_end=today, ladder=tuple(float(m) for m in ladder),
        ladder_shares=tuple(float(p) for p in shares), levels=level_frame, weekday=weekday_frame,
        season=season_frame, elasticity=elasticity_frame, by_weekday=by_weekday, by_price=by_price,
        observations=len(cells), sold_out_share=float(1.0 - cells["exposure"].mean()),
        converged=bool(result.success),
    )


def _unpack(params: np.ndarray, sizes: tuple[int, ...]) -> list[np.ndarray]:
    return np.split(params, np.cumsum(sizes)[:-1])


def _starting_point(design: _Design) -> np.ndarray:
    n_levels, n_weekday, n_season, n_types, n_ladder = design.sizes
    mean = np.bincount(design.cell, design.y, n_levels) / np.maximum(np.bincount(design.cell, minlength=n_levels), 1)
    return np.concatenate([np.log(np.maximum(mean, 0.05)), np.zeros(n_weekday + n_season),
                           np.full(n_types, DEFAULT_ELASTICITY), np.zeros(n_ladder)])


def _negative_log_likelihood(params: np.ndarray, design: _Design, log_ladder: np.ndarray
                             ) -> tuple[float, np.ndarray]:
    """Minus the log likelihood (plus the ridge) and its exact gradient."""
    n_levels, n_weekday, n_season, n_types, n_ladder = design.sizes
    level, weekday, season, elasticity, share_logits = _unpack(params, design.sizes)
    log_shares = share_logits - logsumexp(share_logits)
    eta = level[design.cell] + weekday[design.branch_weekday] + season[design.week]
    y, known_end = design.y, design.known_end
    eta = eta + design.log_exposure  # the demand that could be served: demand x exposure
    e = elasticity[design.vtype]
    grad_eta = np.empty(len(y))
    grad_e = np.empty(len(y))

    # Days with a booking: the price is known, bookings are Poisson.
    known = slice(0, known_end)
    log_m = log_ladder[design.level[known]]
    log_mu = eta[known] - e[known] * log_m
    mu = np.exp(log_mu)
    log_lik = float(y[known] @ log_mu - mu.sum())  # less the constant sum of log(y!)
    grad_eta[known] = y[known] - mu
    grad_e[known] = -grad_eta[known] * log_m
    log_lik += float(log_shares[design.level[known]].sum())

    # Days without a booking: the price is unknown, so sum over the ladder.
    unknown = slice(known_end, len(y))
    mu_k = np.exp(eta[unknown, None] - e[unknown, None] * log_ladder[None, :])
    joint = log_shares[None, :] - mu_k
    top = joint.max(axis=1, keepdims=True)
    weights = np.exp(joint - top)
    total = weights.sum(axis=1, keepdims=True)
    posterior = weights / total
    log_lik += float((np.log(total) + top).sum())
    weighted = posterior * mu_k
    grad_eta[unknown] = -weighted.sum(axis=1)
    grad_e[unknown] = weighted @ log_ladder

    counts = design.level_counts + posterior.sum(axis=0)
    grad_shares = counts - len(y) * np.exp(log_shares)
    penalty = 0.5 * _RIDGE * (weekday @ weekday + season @ season)
    gradient = np.concatenate([
        np.bincount(design.cell, grad_eta, n_levels),
        np.bincount(design.branch_weekday, grad_eta, n_weekday) - _RIDGE * weekday,
        np.bincount(design.week, grad_eta, n_season) - _RIDGE * season,
        np.bincount(design.vtype, grad_e, n_types),
        grad_shares,
    ])
    return -log_lik + penalty, -gradient


def _elasticity_errors(params: np.ndarray, design: _Design, log_ladder: np.ndarray) -> np.ndarray:
    """Standard errors of the elasticities from the curvature of the likelihood along each (finite differences).

    Prices were set independently of everything else, so the elasticities are nearly orthogonal to the other
    parameters and the diagonal of the information is a fair approximation.
    """
    n_levels, n_weekday, n_season, n_types, _ = design.sizes
    offset = n_levels + n_weekday + n_season
    errors = np.full(n_types, np.nan)
    step = 1e-4
    for t in range(n_types):
        up, down = params.copy(), params.copy()
        up[offset + t] += step
        down[offset + t] -= step
        curvature = (_negative_log_likelihood(up, design, log_ladder)[1][offset + t]
                     - _negative_log_likelihood(down, design, log_ladder)[1][offset + t]) / (2 * step)
        if curvature > 0:
            errors[t] = 1.0 / np.sqrt(curvature)
    return errors


def _fit_frames(cells: pd.DataFrame, design: _Design, params: np.ndarray, log_ladder: np.ndarray,
                ladder: np.ndarray, shares: np.ndarray, elasticity: pd.DataFrame
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observed against fitted, by weekday and by price level, per type, for the analyst to judge the fit.

    Fitted bookings are demand times exposure (customers who came when no car was free left without one).
    By weekday: mean bookings per branch-day, observed and as fitted (averaged over the price levels charged).
    By price: a demand index, bookings over the fitted bookings at list price on the days charged each level (a
    day without a booking is shared out over the levels by how likely each was); the fitted index is m^-e.
    """
    level, weekday, season, elasticity_raw, _ = _unpack(params, design.sizes)
    base = np.exp(level[design.cell] + weekday[design.branch_weekday] + season[design.week] + design.log_exposure)
    e = elasticity_raw[design.vtype]
    known = np.arange(len(design.y)) < design.known_end
    mu_k = base[:, None] * np.exp(-e[:, None] * log_ladder[None, :])
    fitted_mean = mu_k @ shares
    codes = elasticity.set_index("vehicle_type_id")["code"]
    by_weekday = (cells.assign(observed=design.y, fitted=fitted_mean)
                  .groupby(["vehicle_type_id", "weekday"], as_index=False)[["observed", "fitted"]].mean())
    by_weekday.insert(1, "code", by_weekday["vehicle_type_id"].map(codes))

    joint = np.log(shares)[None, :] - mu_k
    weights = np.exp(joint - logsumexp(joint, axis=1)[:, None])  # where the price is unknown
    weights[known] = 0.0
    weights[known, design.level[known]] = 1.0
    n_types, n_ladder = design.sizes[3], design.sizes[4]
    key = design.vtype[:, None] * n_ladder + np.arange(n_ladder)[None, :]
    observed = np.bincount(key.ravel(), (weights * design.y[:, None]).ravel(), n_types * n_ladder)
    exposure = np.bincount(key.ravel(), (weights * base[:, None]).ravel(), n_types * n_ladder)
    days = np.bincount(key.ravel(), weights.ravel(), n_types * n_ladder)
    type_ids = np.sort(cells["vehicle_type_id"].unique())
    by_price = pd.DataFrame({
        "vehicle_type_id": np.repeat(type_ids, n_ladder), "multiplier": np.tile(ladder, n_types),
        "days": days, "observed": observed / np.where(exposure > 0, exposure, np.nan),
    })
    by_price["fitted"] = by_price["multiplier"] ** -by_price["vehicle_type_id"].map(
        elasticity.set_index("vehicle_type_id")["elasticity"])
    by_price.insert(1, "code", by_price["vehicle_type_id"].map(codes))
    return by_weekday, by_price
