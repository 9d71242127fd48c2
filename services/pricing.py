"""Quotes: the itemised price of a rental, frozen into the booking when it is made.

Until the pricing issue brings rules, promotions and optimised rates, a quote is the car's list daily rate for each
started day, a one-way fee when the drop-off branch differs, and the chosen extras. Money is Decimal throughout;
each line is rounded to the penny once, where it is computed (ROUND_HALF_UP), and the total is the sum of the lines.
Prices include VAT (20%), shown as a line of its own for the receipt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.errors import InvalidInput, NotFound

PENNY = Decimal("0.01")
VAT_RATE = Decimal("0.20")
ONE_WAY_BASE = Decimal("25.00")
ONE_WAY_PER_KM = Decimal("0.40")


@dataclass(frozen=True)
class Extra:
    code: str
    name: str
    per_day: Decimal
    max_total: Decimal | None  # a cap per rental, e.g. a child seat never costs more than a week of it


EXTRAS: dict[str, Extra] = {
    e.code: e for e in (
        Extra("child_seat", "Child seat", Decimal("8.00"), Decimal("56.00")),
        Extra("additional_driver", "Additional driver", Decimal("12.00"), Decimal("84.00")),
        Extra("cdw", "Collision damage waiver (no excess)", Decimal("15.00"), None),
        Extra("gps", "Satellite navigation", Decimal("6.00"), Decimal("42.00")),
    )
}


def money(value: Decimal | int | str) -> Decimal:
    return Decimal(value).quantize(PENNY, rounding=ROUND_HALF_UP)


def rental_days(pickup_at: datetime, dropoff_at: datetime) -> int:
    """Started 24-hour periods: 49 hours are three days."""
    return max(1, math.ceil((dropoff_at - pickup_at).total_seconds() / 86400))


@dataclass(frozen=True)
class QuoteLine:
    code: str
    label: str
    amount: Decimal


@dataclass(frozen=True)
class Quote:
    currency: str
    days: int
    daily_rate: Decimal
    lines: tuple[QuoteLine, ...]

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))

    @property
    def vat_included(self) -> Decimal:
        return money(self.total * VAT_RATE / (1 + VAT_RATE))

    def as_breakdown(self) -> dict[str, Any]:
        """The JSON frozen into the booking: money as strings, never floats."""
        return {"currency": self.currency, "days": self.days, "daily_rate": str(self.daily_rate),
                "lines": [{"code": line.code, "label": line.label, "amount": str(line.amount)} for line in self.lines],
                "total": str(self.total), "vat_included": str(self.vat_included), "vat_rate": str(VAT_RATE)}


def check_extras(extras: tuple[str, ...] | list[str]) -> None:
    """Raise InvalidInput naming any extra that is not on offer."""
    unknown = sorted(set(extras) - set(EXTRAS))
    if unknown:
        raise InvalidInput(f"Unknown extra {', '.join(unknown)}; choose from {', '.join(EXTRAS)}.")


def quote(session: Session, vehicle_id: int, pickup_location_id: int, dropoff_location_id: int,
          pickup_at: datetime, dropoff_at: datetime, extras: tuple[str, ...] | list[str] = ()) -> Quote:
    """The itemised price of renting this car for this period, with these extras."""
    check_extras(extras)
    row = session.execute(text("""
        SELECT v.daily_rate, v.currency, v.license_plate, ST_Distance(p.geog, d.geog) / 1000 AS one_way_km
        FROM vehicles v, locations p, locations d
        WHERE v.id = :vehicle AND p.id = :pickup AND d.id = :dropoff
    """), {"vehicle": vehicle_id, "pickup": pickup_location_id, "dropoff": dropoff_location_id}).first()
    if row is None:
        raise NotFound("The car or one of the branches does not exist; pick them again from the search.")
    return price(row.daily_rate, row.currency, row.one_way_km if pickup_location_id != dropoff_location_id else None,
                 pickup_at, dropoff_at, extras)


def price(daily_rate: Decimal, currency: str, one_way_km: float | None, pickup_at: datetime, dropoff_at: datetime,
          extras: tuple[str, ...] | list[str] = ()) -> Quote:
    """The quote for a car's daily rate and currency, the distance between the branches of a one-way rental (None
    for a round trip), the period and known extras — no database."""
    days = rental_days(pickup_at, dropoff_at)
    lines = [QuoteLine("base", f"{days} day{'s' if days != 1 else ''} × £{daily_rate}", money(daily_rate * days))]
    if one_way_km is not None:
        km = Decimal(str(round(one_way_km)))
        lines.append(QuoteLine("one_way", f"One-way fee ({km} km)", money(ONE_WAY_BASE + ONE_WAY_PER_KM * km)))
    for code in dict.fromkeys(extras):  # each extra once, in the order chosen
        extra = EXTRAS[code]
        amount = extra.per_day * days
        if extra.max_total is not None:
            amount = min(amount, extra.max_total)
        lines.append(QuoteLine(code, extra.name, money(amount)))
    return Quote(currency, days, money(daily_rate), tuple(lines))
