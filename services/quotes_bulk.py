"""Quotes for many cars at once: what `pricing.quote` gives each of them, without a query per car.

A search answers with up to 500 cars; each needs its full price for the period. The price of a car without extras
depends only on its daily rate, the number of days and, for a one-way rental, the distance between the two
branches, so the one-way fee is computed once per pair of branches (one query) and the rest in Python, with the
same rounding as `pricing.quote`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.pricing import ONE_WAY_BASE, ONE_WAY_PER_KM, money, rental_days


def one_way_fees(session: Session, pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], Decimal]:
    """The one-way fee for each (pick-up, drop-off) pair of branches; 0.00 when they are the same branch."""
    wanted = {(int(p), int(d)) for p, d in pairs}
    fees = {pair: Decimal("0.00") for pair in wanted if pair[0] == pair[1]}
    distinct = sorted(pair for pair in wanted if pair[0] != pair[1])
    if distinct:
        rows = session.execute(text("""
            SELECT w.p, w.d, ST_Distance(p.geog, d.geog) / 1000 AS km
            FROM unnest(CAST(:ps AS int[]), CAST(:ds AS int[])) AS w(p, d)
            JOIN locations p ON p.id = w.p JOIN locations d ON d.id = w.d
        """), {"ps": [p for p, _ in distinct], "ds": [d for _, d in distinct]})
        for p, d, km in rows:
            fees[(p, d)] = money(ONE_WAY_BASE + ONE_WAY_PER_KM * Decimal(str(round(km))))
    return fees


def totals(session: Session, cars: Iterable[tuple[int, Decimal, int]], dropoff_location_id: int | None,
           pickup_at: datetime, dropoff_at: datetime) -> dict[int, Decimal]:
    """Total price without extras per car, from (vehicle id, daily rate, pick-up branch) triples.

    The drop-off branch is `dropoff_location_id`, or each car's own pick-up branch when it is None.
    """
    cars = list(cars)
    days = rental_days(pickup_at, dropoff_at)
    pairs = {(branch, dropoff_location_id or branch) for _, _, branch in cars}
    fees = one_way_fees(session, pairs)
    return {vehicle_id: money(Decimal(rate) * days) + fees[(branch, dropoff_location_id or branch)]
            for vehicle_id, rate, branch in cars}
