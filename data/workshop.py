"""The workshop: each car's service clock, and its maintenance blocks in the past, now and ahead.

Blocks only ever sit in a gap between two bookings that hold the car (after the first's turnaround, before the
second's pick-up), so none overlaps a booking. A car's last service is where its odometer says it was due: a
completed "Scheduled service" block after the rental that took it past that point (or, for older cars, before the
history starts). The cars most overdue get the services scheduled in the weeks ahead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.rentals import COMPLETED, NEVER

SERVICE = "Scheduled service"
REPAIRS = np.array(["Tyre replacement", "Windscreen repair", "MOT test", "Brake pads and discs", "Bodywork repair",
                    "Manufacturer recall", "Deep clean and valet"])
_IN_WORKSHOP_REASONS = np.array([SERVICE, SERVICE, SERVICE, *REPAIRS])
SCHEDULED_SHARE = 0.02
REPAIRED_PER_YEAR_SHARE = 0.15
_OVERDUE_SHARE = 0.06  # cars whose service falls due about now: the maintenance queue is never empty
_KM_PER_DAY_BEFORE_HISTORY = 70
_MIN_GAP = 30 * 60
_NOT_SERVICED = -1


@dataclass(frozen=True)
class Workshop:
    blocks: pd.DataFrame  # vehicle (index), start, end (UTC minutes), reason, status, created
    last_service_at: np.ndarray  # UTC minute, -1 if never serviced since joining the fleet
    last_service_km: np.ndarray  # odometer then, -1 if never


def plan_workshop(
    rng: np.random.Generator,
    vehicles: pd.DataFrame,
    held: pd.DataFrame,
    *,
    status: np.ndarray,
    in_workshop: np.ndarray,
    free_since: np.ndarray,
    next_pickup: np.ndarray,
    odometer: np.ndarray,
    interval_km: np.ndarray,
    now: int,
    history_start: int,
) -> Workshop:
    """Service history, the blocks in progress for the cars in_workshop, scheduled ones, and past repairs.

    held: the bookings that hold a car, sorted by vehicle and pick-up.
    """
    gaps = _gaps(held, vehicles)
    services, last_at, last_km = _service_history(rng, vehicles, held, gaps, odometer, interval_km, now,
                                                  history_start)
    urgency = (odometer - np.maximum(last_km, 0)) / interval_km
    count = len(vehicles)
    unused = gaps.merge(services[["vehicle", "gap_start"]], how="left", left_on=["vehicle", "start"],
                        right_on=["vehicle", "gap_start"], indicator=True)
    unused = unused[unused["_merge"] == "left_only"].drop(columns=["gap_start", "_merge"])
    years = (now - history_start) / (365 * 1440)
    blocks = pd.concat([
        services.drop(columns="gap_start"),
        _current_blocks(rng, in_workshop, free_since, next_pickup, now),
        _scheduled_blocks(rng, gaps, status, urgency, now, round(SCHEDULED_SHARE * count)),
        _past_repairs(rng, unused, now, history_start, round(REPAIRED_PER_YEAR_SHARE * count * years)),
    ], ignore_index=True)
    return Workshop(blocks=blocks, last_service_at=last_at, last_service_km=last_km)


def _blocks(vehicle, start, end, reason, status, created) -> pd.DataFrame:
    return pd.DataFrame({"vehicle": vehicle, "start": start, "end": end, "reason": reason, "status": status,
                         "created": created})


def _ceil15(minutes):
    return -(-minutes // 15) * 15


def _gaps(held: pd.DataFrame, vehicles: pd.DataFrame) -> pd.DataFrame:
    """Every stretch a car is not held: after each booking (row: its position in held) and before its first."""
    vehicle, pickup = held["vehicle"].to_numpy(), held["pickup"].to_numpy()
    next_pickup = np.full(len(held), NEVER)
    same_car_next = vehicle[1:] == vehicle[:-1]
    next_pickup[:-1][same_car_next] = pickup[1:][same_car_next]
    after = pd.DataFrame({"vehicle": vehicle, "start": held["free_again"].to_numpy(), "end": next_pickup,
                          "row": np.arange(len(held))})
    first_pickup = held.groupby("vehicle")["pickup"].min()
    before = pd.DataFrame({"vehicle": np.arange(len(vehicles)), "start": vehicles["joins_at"].to_numpy(),
                           "end": NEVER, "row": -1})
    before.loc[first_pickup.index, "end"] = first_pickup.to_numpy()
    return pd.concat([before, after], ignore_index=True)


def _service_history(rng, vehicles, held, gaps, odometer, interval_km, now: int, history_start: int):
    """Each car's last service, placed where its odometer was (r x interval) km ago, with its block."""
    count = len(vehicles)
    share_used = np.where(rng.random(count) < _OVERDUE_SHARE, rng.uniform(0.95, 1.15, count),
                          rng.uniform(0.05, 0.95, count))
    due_at_km = odometer - share_used * interval_km

    after = gaps[gaps["row"] >= 0]
    row = after["row"].to_numpy()
    vehicle = after["vehicle"].to_numpy()
    odometer_in = held["odometer_in"].to_numpy(dtype=np.float64, na_value=np.inf)[row]
    start, end = after["start"].to_numpy(), after["end"].to_numpy()
    before_due = (held["status"].to_numpy()[row] == COMPLETED) & (odometer_in <= due_at_km[vehicle])
    roomy = (end - start >= 150) & (start + 120 <= now) & (start >= history_start)
    chosen = after[before_due & roomy].assign(km=odometer_in[before_due & roomy]).groupby("vehicle").last()

    n = len(chosen)
    block_start = _ceil15(chosen["start"].to_numpy())
    room = np.minimum(chosen["end"].to_numpy(), now) - block_start - 30
    block_end = block_start + np.minimum(rng.integers(120, 301, size=n), room) // 15 * 15
    services = _blocks(chosen.index.to_numpy(), block_start, block_end, SERVICE, "completed",
                       block_start - rng.integers(1440, 21 * 1440, size=n))
    services["gap_start"] = chosen["start"].to_numpy()

    last_at = np.full(count, _NOT_SERVICED)
    last_km = np.full(count, _NOT_SERVICED)
    last_at[chosen.index] = block_end
    last_km[chosen.index] = chosen["km"].to_numpy().astype(np.int64)
    # The rest were last serviced before the history starts (or, if newer than that, not yet).
    initial = vehicles["initial_odometer"].to_numpy()
    joins = vehicles["joins_at"].to_numpy()
    earlier = (last_at == _NOT_SERVICED) & (due_at_km > 0) & (due_at_km <= initial) & (joins < history_start)
    days_before = (initial - due_at_km) / _KM_PER_DAY_BEFORE_HISTORY
    serviced_at = np.maximum(history_start - (days_before * 1440).astype(np.int64), joins + 1440) // 15 * 15
    last_at[earlier] = serviced_at[earlier]
    last_km[earlier] = np.round(due_at_km[earlier]).astype(np.int64)
    return services, last_at, last_km


def _current_blocks(rng, vehicles: np.ndarray, free_since, next_pickup, now: int) -> pd.DataFrame:
    n = len(vehicles)
    start = _ceil15(np.maximum(free_since[vehicles], now - rng.integers(2 * 60, 48 * 60, size=n)))
    end = np.minimum(next_pickup[vehicles], now + rng.integers(8 * 60, 96 * 60, size=n)) // 15 * 15
    reasons = _IN_WORKSHOP_REASONS[rng.integers(0, len(_IN_WORKSHOP_REASONS), size=n)]
    return _blocks(vehicles, start, end, reasons, "in_progress", start - rng.integers(60, 14 * 1440, size=n))


def _place_in(rng, gaps: pd.DataFrame, earliest: np.ndarray, reasons, status: str, created):
    n = len(gaps)
    start = _ceil15(earliest + rng.integers(60, 360, size=n))
    end = np.minimum(start + rng.integers(4 * 4, 24 * 4, size=n) * 15, gaps["end"].to_numpy())
    return _blocks(gaps["vehicle"].to_numpy(), start, end, reasons, status, created(start))


def _scheduled_blocks(rng, gaps, status, urgency, now: int, wanted: int) -> pd.DataFrame:
    """Services booked in the next weeks for the available cars that most need one."""
    earliest = np.maximum(gaps["start"].to_numpy(), now + 120)
    usable = (
        (status[gaps["vehicle"].to_numpy()] == "available")
        & (gaps["end"].to_numpy() - earliest >= _MIN_GAP)
        & (earliest <= now + 60 * 1440)
    )
    candidates = gaps[usable].assign(earliest=earliest[usable], urgency=urgency[gaps["vehicle"].to_numpy()[usable]])
    chosen = (candidates.sort_values(["urgency", "vehicle", "earliest"], ascending=[False, True, True], kind="stable")
              .drop_duplicates("vehicle").iloc[:max(wanted, 0)].sort_values("vehicle", kind="stable"))
    reasons = np.where(chosen["urgency"].to_numpy() >= 0.8, SERVICE,
                       REPAIRS[rng.integers(0, len(REPAIRS), size=len(chosen))])
    return _place_in(rng, chosen, chosen["earliest"].to_numpy(), reasons, "scheduled",
                     lambda start: now - rng.integers(60, 10 * 1440, size=len(start)))


def _past_repairs(rng, gaps, now: int, history_start: int, wanted: int) -> pd.DataFrame:
    usable = (
        (gaps["start"].to_numpy() >= history_start)
        & (gaps["end"].to_numpy() <= now - 60)
        & (gaps["end"].to_numpy() - gaps["start"].to_numpy() >= _MIN_GAP)
    )
    pool = gaps[usable]
    chosen = pool.iloc[rng.permutation(len(pool))].drop_duplicates("vehicle").iloc[:max(wanted, 0)]
    chosen = chosen.sort_values("vehicle", kind="stable")
    reasons = REPAIRS[rng.integers(0, len(REPAIRS), size=len(chosen))]
    return _place_in(rng, chosen, chosen["start"].to_numpy(), reasons, "completed",
                     lambda start: start - rng.integers(60, 14 * 1440, size=len(start)))
