"""Quotes for many cars at once: what `pricing.quote` gives each of them (no customer, no code, no extras), without
a query per car.

A search answers with up to 500 cars; each needs its full price for the period. That price depends only on the
car's daily rate, its type, its pick-up branch (rules, published multiplier, time zone) and, for a one-way rental,
the pair of branches. So three queries load the terms for every branch and type in the answer; the rules' factors
are summed once per branch and type, and each car's total is that sum × its rate × the multiplier + the fee, in exact
Decimal arithmetic rounded once — the same number `pricing.quote` reaches line by line (tests compare them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from services import availability, pricing, pricing_rules
from services.pricing import ONE, rental_dates, rental_days


def one_way_fees(session: Session, pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], tuple[Decimal | None,
                                                                                                     str]]:
    """The one-way fee and its label for each (pick-up, drop-off) pair of branches; None for the same branch."""
    wanted = {(int(p), int(d)) for p, d in pairs}
    fees: dict[tuple[int, int], tuple[Decimal | None, str]] = {pair: (None, "") for pair in wanted
                                                               if pair[0] == pair[1]}
    distinct = sorted(pair for pair in wanted if pair[0] != pair[1])
    if distinct:
        rows = session.execute(text("""
            SELECT w.p, w.d, ST_Distance(p.geog, d.geog) / 1000 AS km, f.fee
            FROM unnest(CAST(:ps AS int[]), CAST(:ds AS int[])) AS w(p, d)
            JOIN locations p ON p.id = w.p JOIN locations d ON d.id = w.d
            LEFT JOIN one_way_fees f ON f.from_location_id = w.p AND f.to_location_id = w.d
        """), {"ps": [p for p, _ in distinct], "ds": [d for _, d in distinct]})
        for p, d, km, fee in rows:
            fees[(p, d)] = pricing.one_way(p, d, km, fee)
    return fees


_BRANCH_TYPES = text("""
    SELECT l.id AS location_id, l.timezone, l.vat_rate, t.id AS type_id, t.code AS type_code, pr.multiplier
    FROM locations l
    CROSS JOIN vehicle_types t
    LEFT JOIN published_rates pr ON pr.location_id = l.id AND pr.vehicle_type_id = t.id
                                AND pr.day = (CAST(:pickup_at AS timestamptz) AT TIME ZONE l.timezone)::date
    WHERE l.id = ANY(:branches) AND t.code = ANY(:types)
""")


def totals(session: Session, cars: Iterable[tuple[int, Decimal, int, str]], dropoff_location_id: int | None,
           pickup_at: datetime, dropoff_at: datetime) -> dict[int, Decimal]:
    """Total price without extras per car, from (vehicle id, daily rate, pick-up branch, vehicle type code).

    The drop-off branch is `dropoff_location_id`, or each car's own pick-up branch when it is None.
    """
    cars = list(cars)
    if not cars:
        return {}
    days = rental_days(pickup_at, dropoff_at)
    branches = sorted({branch for _, _, branch, _ in cars})
    terms = {(row.location_id, row.type_code): row for row in session.execute(
        _BRANCH_TYPES, {"pickup_at": pickup_at, "branches": branches,
                        "types": sorted({code for *_, code in cars})})}
    # A day either side: the branches' local dates of the rental lie within it whatever their time zone.
    rules = pricing_rules.load_rules(
        session, vehicle_type_ids={row.type_id for row in terms.values()}, location_ids=branches,
        first_day=(pickup_at - timedelta(days=1)).date(), last_day=(pickup_at + timedelta(days=days + 1)).date())
    fees = one_way_fees(session, {(branch, dropoff_location_id or branch) for _, _, branch, _ in cars})
    # All rules multiply, so a car's rental charge is its list rate × (the sum over the days of the rules' factors)
    # × the multiplier — exact in Decimal, hence the very number `price_rental` reaches line by line; the sum is
    # worked out once per branch and type. The one rounding is `pricing.total_without_extras`'s.
    sums: dict[tuple[int, str], Decimal] = {}
    answer = {}
    for vehicle_id, rate, branch, type_code in cars:
        row = terms[(branch, type_code)]
        if (branch, type_code) not in sums:
            sums[(branch, type_code)] = pricing.day_factor_sum(
                rules, row.type_id, branch, rental_dates(pickup_at, days, row.timezone))
        fee, _ = fees[(branch, dropoff_location_id or branch)]
        answer[vehicle_id] = pricing.total_without_extras(
            Decimal(rate), sums[(branch, type_code)], row.multiplier if row.multiplier is not None else ONE, fee)
    return answer


def with_quoted_totals(session: Session, found: Any) -> Any:
    """An availability answer (`services.availability.Availability`) whose cars carry the quote's total for the
    period instead of the list rate × days — for screens that show a search's prices beside a quote."""
    if not found.vehicles:
        return found
    query = found.query
    totals_by_car = totals(session, ((v.id, v.daily_rate, v.location_id, v.vehicle_type) for v in found.vehicles),
                           query.dropoff_location_id, query.pickup_at, query.dropoff_at)
    return replace(found, vehicles=tuple(replace(v, total_price=totals_by_car[v.id]) for v in found.vehicles))


def find_priced(session: Session, query: availability.AvailabilityQuery) -> availability.Availability:
    """`availability.find_available`, each car carrying the quote's total for the period (what the desk will charge)."""
    return with_quoted_totals(session, availability.find_available(session, query))
