"""Quotes: the itemised price of a rental, frozen into the booking when it is made — one service for the desk, the
API, bulk search and the optimiser's evaluation.

How a quote is built (`price_rental`, a plain function of `RentalTerms`; `quote` loads the terms from the database):

1. **Base**: the car's list daily rate × the charged days (every started 24 hours, at least one).
2. **Rules** (`services.pricing_rules`): each rental day gets the list rate × the factors of the rules that apply to
   it; each rule appears as a line of its own, by name, with what it changed.
3. **Dynamic multiplier**: the multiplier published by the price optimiser for (pick-up branch, vehicle type,
   pick-up day in the branch's time zone) scales every day's rate of the whole rental (1 when none is published).
   Base + rules + dynamic multiplier make the *rental charge*.
4. **Discounts** on the rental charge only: the customer's loyalty tier (a percentage), then a promotion code
   (a percentage of what is left, or a fixed amount, never more than what is left).
5. **One-way fee** when the drop-off branch differs: the fee set for that pair of branches (direction matters), else
   £25 + £0.40 per km between them (rounded to whole km).
6. **Extras**: a price per day with an optional cap per rental.
7. **Taxes**: prices include the pick-up branch's VAT rate; the VAT included is shown beside the total.

**Rounding, once:** every amount above is an exact `Decimal` (no rounding on the way). At the end (`_settle`) the
total is rounded once to the penny (ROUND_HALF_UP); the printed lines are then apportioned to the penny by the
largest-remainder method, so they add up to exactly that total and a line that is already a whole number of pennies
never moves. The VAT included is derived from the rounded total (rounded half-up for the receipt).

Bulk search (`services.quotes_bulk`) and the price optimiser's evaluation use the same arithmetic through plain
functions: `day_factor_sum` / `total_without_extras`, and `segment_list_rate(s)` — the mean daily rate under the rules
that the optimiser's `list_rate · m · L` multiplies, so its revenue is what the quotes charge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from services import pricing_rules, promotions
from services.errors import InvalidInput, NotFound
from services.pricing_rules import Rule
from services.promotions import PromotionTerms

PENNY = Decimal("0.01")
VAT_RATE = Decimal("0.20")  # a branch's default (locations.vat_rate)
ONE_WAY_BASE = Decimal("25.00")
ONE_WAY_PER_KM = Decimal("0.40")
ONE = Decimal(1)


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


def rental_dates(pickup_at: datetime, days: int, timezone: str) -> tuple[date, ...]:
    """The date of each charged day (its start, in the pick-up branch's time zone)."""
    zone = ZoneInfo(timezone)
    return tuple((pickup_at + timedelta(days=i)).astimezone(zone).date() for i in range(days))


@dataclass(frozen=True)
class QuoteLine:
    code: str
    label: str
    amount: Decimal


@dataclass(frozen=True)
class Quote:
    currency: str
    days: int
    daily_rate: Decimal  # the car's list daily rate
    lines: tuple[QuoteLine, ...]
    vat_rate: Decimal = VAT_RATE
    multiplier: Decimal = ONE
    rules: tuple[tuple[int, str], ...] = ()  # (id, name) of the rules applied, in order
    promotion: PromotionTerms | None = None
    loyalty_tier: str | None = None

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))

    @property
    def vat_included(self) -> Decimal:
        return money(self.total * self.vat_rate / (1 + self.vat_rate))

    @property
    def discount(self) -> Decimal:
        """The promotion's part of the quote (a positive amount), for the redemption record."""
        return -sum((line.amount for line in self.lines if line.code == "promotion"), Decimal("0.00"))

    def as_breakdown(self) -> dict[str, Any]:
        """The JSON frozen into the booking: money as strings, never floats (the keys of the interim quote kept)."""
        breakdown: dict[str, Any] = {
            "currency": self.currency, "days": self.days, "daily_rate": str(self.daily_rate),
            "lines": [{"code": line.code, "label": line.label, "amount": str(line.amount)} for line in self.lines],
            "total": str(self.total), "vat_included": str(self.vat_included), "vat_rate": str(self.vat_rate),
            "multiplier": str(self.multiplier), "rules": [{"id": i, "name": n} for i, n in self.rules],
        }
        if self.promotion is not None:
            breakdown["promotion"] = {"id": self.promotion.id, "code": self.promotion.code,
                                      "discount": str(self.discount)}
        if self.loyalty_tier is not None:
            breakdown["loyalty_tier"] = self.loyalty_tier
        return breakdown


def check_extras(extras: tuple[str, ...] | list[str]) -> None:
    """Raise InvalidInput naming any extra that is not on offer."""
    unknown = sorted(set(extras) - set(EXTRAS))
    if unknown:
        raise InvalidInput(f"Unknown extra {', '.join(unknown)}; choose from {', '.join(EXTRAS)}.")


@dataclass(frozen=True)
class Loyalty:
    code: str
    name: str
    discount_pct: Decimal


@dataclass(frozen=True)
class RentalTerms:
    """Everything a quote depends on, as plain values (no database): `price_rental` turns them into a quote."""

    list_rate: Decimal
    currency: str
    vehicle_type_id: int
    pickup_location_id: int
    dates: tuple[date, ...]  # of each charged day, in the pick-up branch's time zone
    rules: tuple[Rule, ...] = ()
    multiplier: Decimal = ONE
    one_way_fee: Decimal | None = None  # None: a round trip
    one_way_label: str = "One-way fee"
    vat_rate: Decimal = VAT_RATE
    loyalty: Loyalty | None = None
    promotion: PromotionTerms | None = None
    extras: tuple[str, ...] = field(default_factory=tuple)

    @property
    def days(self) -> int:
        return len(self.dates)


def _symbol(currency: str) -> str:
    return {"GBP": "£", "EUR": "€", "USD": "$"}.get(currency, f"{currency} ")


def _multiplier_text(m: Decimal) -> str:
    return f"{m.normalize():f}"


def _rental_charge(terms: RentalTerms) -> tuple[Decimal, list[tuple[str, str, Decimal]], list[tuple[int, str]]]:
    """The exact rental charge (base × rules × dynamic multiplier), its lines, and the rules applied in order."""
    rules = pricing_rules.ordered(terms.rules)
    rate = Decimal(terms.list_rate)
    base = rate * terms.days
    effects: dict[int, Decimal] = {}
    order: list[Rule] = []
    ruled_total = Decimal(0)
    for day in terms.dates:
        priced = pricing_rules.price_day(rules, rate, terms.vehicle_type_id, terms.pickup_location_id, day,
                                         terms.days)
        ruled_total += priced.rate
        for rule, change in priced.effects:
            if rule.id not in effects:
                effects[rule.id] = Decimal(0)
                order.append(rule)
            effects[rule.id] += change
    order = pricing_rules.ordered(order)
    plural = "s" if terms.days != 1 else ""
    lines = [("base", f"{terms.days} day{plural} × {_symbol(terms.currency)}{money(rate)}", base)]
    lines += [(f"rule:{rule.id}", rule.name, effects[rule.id]) for rule in order]
    multiplier = Decimal(terms.multiplier)
    charge = ruled_total * multiplier
    if multiplier != ONE:
        lines.append(("dynamic", f"Dynamic rate ×{_multiplier_text(multiplier)}", charge - ruled_total))
    return charge, lines, [(rule.id, rule.name) for rule in order]


def price_rental(terms: RentalTerms) -> Quote:
    """The itemised quote for these terms (see the module's docstring for the order and the rounding)."""
    with localcontext() as exact:
        exact.prec = 60  # enough digits that products of several 4-place factors stay exact until `_settle`
        return _price_rental(terms)


def _price_rental(terms: RentalTerms) -> Quote:
    charge, lines, applied = _rental_charge(terms)
    left = charge
    if terms.loyalty is not None and terms.loyalty.discount_pct > 0:
        off = charge * Decimal(terms.loyalty.discount_pct) / 100
        lines.append(("loyalty", f"{terms.loyalty.name} loyalty discount "
                                 f"({Decimal(terms.loyalty.discount_pct).normalize():f}%)", -off))
        left -= off
    if terms.promotion is not None:
        lines.append(("promotion", terms.promotion.label, -terms.promotion.discount(left)))
    if terms.one_way_fee is not None:
        lines.append(("one_way", terms.one_way_label, Decimal(terms.one_way_fee)))
    for code in dict.fromkeys(terms.extras):  # each extra once, in the order chosen
        extra = EXTRAS[code]
        amount = extra.per_day * terms.days
        if extra.max_total is not None:
            amount = min(amount, extra.max_total)
        lines.append((code, extra.name, amount))
    return Quote(terms.currency, terms.days, money(terms.list_rate), _settle(lines),
                 vat_rate=Decimal(terms.vat_rate), multiplier=Decimal(terms.multiplier), rules=tuple(applied),
                 promotion=terms.promotion, loyalty_tier=terms.loyalty.code if terms.loyalty else None)


def _settle(lines: Sequence[tuple[str, str, Decimal]]) -> tuple[QuoteLine, ...]:
    """The one rounding: the total to the penny, then the lines apportioned so they add up to it exactly."""
    total = money(sum((amount for _, _, amount in lines), Decimal(0)))
    floors = [amount.quantize(PENNY, rounding=ROUND_FLOOR) for _, _, amount in lines]
    short = int((total - sum(floors, Decimal(0))) / PENNY)
    by_remainder = sorted(range(len(lines)), key=lambda i: (-(lines[i][2] - floors[i]), i))
    for i in by_remainder[:short]:
        floors[i] += PENNY
    return tuple(QuoteLine(code, label, floors[i]) for i, (code, label, _) in enumerate(lines))


def day_factor_sum(rules: Sequence[Rule], vehicle_type_id: int, location_id: int, dates: Sequence[date]) -> Decimal:
    """Σ over the rental's days of the product of the rules' factors that day (exact): the rental charge before the
    dynamic multiplier is the list rate × this. `rules` must be `pricing_rules.ordered`."""
    with localcontext() as exact:
        exact.prec = 60
        return sum((pricing_rules.price_day(rules, ONE, vehicle_type_id, location_id, day, len(dates)).rate
                    for day in dates), Decimal(0))


def total_without_extras(list_rate: Decimal, factor_sum: Decimal, multiplier: Decimal,
                         one_way_fee: Decimal | None) -> Decimal:
    """The total of a quote without customer, code or extras, from `day_factor_sum` (rounded once, like a quote)."""
    with localcontext() as exact:
        exact.prec = 60
        return money(Decimal(list_rate) * factor_sum * Decimal(multiplier) + (one_way_fee or Decimal(0)))


# --- from the database -----------------------------------------------------------------------------------------------

# Everything a quote reads, in one round trip: the car and its type, both branches, the fee and distance between
# them, the multiplier published for the pick-up day, the customer's loyalty tier, and the active rules that can
# apply within a day of the rental's dates (`rules_for_day` decides per day). Parameters: `terms_params`. A caller
# may run it as a LATERAL subquery of its own query (as creating a booking does) and pass the row to `quote`.
TERMS = f"""
    SELECT v.daily_rate, v.currency, v.vehicle_type_id, t.code AS vehicle_type_code,
           p.timezone, p.vat_rate, ST_Distance(p.geog, d.geog) / 1000 AS one_way_km, f.fee AS one_way_fee,
           pr.multiplier, lt.code AS tier_code, lt.name AS tier_name, lt.discount_pct AS tier_discount_pct,
           (SELECT {pricing_rules.rules_json("r")} FROM pricing_rules r
            WHERE r.active AND (r.vehicle_type_id IS NULL OR r.vehicle_type_id = v.vehicle_type_id)
              AND (r.location_id IS NULL OR r.location_id = p.id)
              AND (r.start_date IS NULL OR r.start_date <= local.pickup_day + CAST(:days AS integer))
              AND (r.end_date IS NULL OR r.end_date >= local.pickup_day - 1)) AS rules
    FROM vehicles v
    JOIN vehicle_types t ON t.id = v.vehicle_type_id
    CROSS JOIN locations p
    CROSS JOIN locations d
    CROSS JOIN LATERAL (SELECT (CAST(:pickup_at AS timestamptz) AT TIME ZONE p.timezone)::date AS pickup_day) local
    LEFT JOIN one_way_fees f ON f.from_location_id = p.id AND f.to_location_id = d.id
    LEFT JOIN published_rates pr ON pr.location_id = p.id AND pr.vehicle_type_id = v.vehicle_type_id
                                AND pr.day = local.pickup_day
    LEFT JOIN users u ON u.id = CAST(:customer AS integer)
    LEFT JOIN loyalty_tiers lt ON lt.code = u.loyalty_tier
    WHERE v.id = :vehicle AND p.id = :pickup_location AND d.id = :dropoff_location
"""
_TERMS = text(TERMS)


def terms_params(vehicle_id: int, pickup_location_id: int, dropoff_location_id: int, pickup_at: datetime,
                 dropoff_at: datetime, customer_id: int | None) -> dict[str, Any]:
    """The parameters of `TERMS` for this rental."""
    return {"vehicle": vehicle_id, "pickup_location": pickup_location_id, "dropoff_location": dropoff_location_id,
            "pickup_at": pickup_at, "days": rental_days(pickup_at, dropoff_at), "customer": customer_id}


def default_one_way_fee(km: float) -> Decimal:
    """£25 + £0.40 per whole km: the fee between branches that have none of their own."""
    return ONE_WAY_BASE + ONE_WAY_PER_KM * Decimal(str(round(km)))


def one_way(pickup_location_id: int, dropoff_location_id: int, km: float | None,
            fee: Decimal | None) -> tuple[Decimal | None, str]:
    """The one-way fee and its label for a pair of branches (None for a round trip)."""
    if pickup_location_id == dropoff_location_id:
        return None, ""
    if fee is not None:
        return Decimal(fee), "One-way fee"
    return default_one_way_fee(km or 0.0), f"One-way fee ({round(km or 0.0)} km)"


def quote(session: Session, vehicle_id: int, pickup_location_id: int, dropoff_location_id: int,
          pickup_at: datetime, dropoff_at: datetime, extras: tuple[str, ...] | list[str] = (), *,
          customer_id: int | None = None, promo_code: str | None = None,
          promotion: PromotionTerms | None = None, terms: Any = None) -> Quote:
    """The itemised price of renting this car for this period, with these extras, for this customer and code.

    `promotion` applies terms already redeemed (a booking being changed) instead of checking a code. `terms` is the
    `TERMS` row of this very rental when the caller has read it already.
    """
    check_extras(extras)
    days = rental_days(pickup_at, dropoff_at)
    row = terms if terms is not None else session.execute(_TERMS, terms_params(
        vehicle_id, pickup_location_id, dropoff_location_id, pickup_at, dropoff_at, customer_id)).first()
    if row is None or row.timezone is None:
        raise NotFound("The car or one of the branches does not exist; pick them again from the search.")
    dates = rental_dates(pickup_at, days, row.timezone)
    currency = row.currency.strip()
    if promo_code is not None and promo_code.strip():
        promotion = promotions.usable_promotion(
            session, promo_code, pickup_at=pickup_at, rental_days=days, vehicle_type_code=row.vehicle_type_code,
            currency=currency, customer_id=customer_id)
    loyalty = Loyalty(row.tier_code, row.tier_name, row.tier_discount_pct) if row.tier_code is not None else None
    if promotion is not None and not promotion.fits(days, row.vehicle_type_code):
        promotion = None  # a changed booking that no longer qualifies loses the code
    fee, label = one_way(pickup_location_id, dropoff_location_id, row.one_way_km, row.one_way_fee)
    rules = pricing_rules.rules_from_json(row.rules)
    return price_rental(RentalTerms(
        list_rate=row.daily_rate, currency=currency, vehicle_type_id=row.vehicle_type_id,
        pickup_location_id=pickup_location_id, dates=dates, rules=tuple(rules),
        multiplier=row.multiplier if row.multiplier is not None else ONE, one_way_fee=fee, one_way_label=label,
        vat_rate=row.vat_rate, loyalty=loyalty, promotion=promotion, extras=tuple(extras)))


def preview(session: Session, vehicle_type_id: int, location_id: int, pickup_at: datetime, days: int) -> Quote:
    """What a car of this type at its list rate would cost from this branch (round trip, no customer): the rules
    and the published multiplier at work, for the rule editor."""
    row = session.execute(text("""
        SELECT t.base_daily_rate, t.currency, l.timezone, l.vat_rate, pr.multiplier
        FROM vehicle_types t CROSS JOIN locations l
        LEFT JOIN published_rates pr ON pr.location_id = l.id AND pr.vehicle_type_id = t.id
                                    AND pr.day = (CAST(:pickup_at AS timestamptz) AT TIME ZONE l.timezone)::date
        WHERE t.id = :type AND l.id = :branch
    """), {"type": vehicle_type_id, "branch": location_id, "pickup_at": pickup_at}).first()
    if row is None:
        raise NotFound("There is no such vehicle type or branch; pick them from the lists.")
    if not 1 <= days <= 366:
        raise InvalidInput("A rental lasts 1 to 366 days.")
    dates = rental_dates(pickup_at, days, row.timezone)
    rules = pricing_rules.load_rules(session, vehicle_type_ids=[vehicle_type_id], location_ids=[location_id],
                                     first_day=dates[0], last_day=dates[-1])
    return price_rental(RentalTerms(
        list_rate=row.base_daily_rate, currency=row.currency.strip(), vehicle_type_id=vehicle_type_id,
        pickup_location_id=location_id, dates=dates, rules=tuple(rules),
        multiplier=row.multiplier if row.multiplier is not None else ONE, vat_rate=row.vat_rate))


# --- for the price optimiser: the list rate a segment starts from --------------------------------------------------

def segment_list_rate(rules: Sequence[Rule], list_rate: Decimal, vehicle_type_id: int, location_id: int,
                      pickup_day: date, rental_days: int) -> Decimal:
    """The mean daily rate under the rules of a rental picked up on this day (exact, before the dynamic multiplier).

    A segment's revenue in the optimiser, accept · list_rate · m · L, then equals what the quotes of those rentals
    charge (without extras, fees or discounts): Σ day rates × m. `rules` must be `pricing_rules.ordered`.
    """
    dates = [pickup_day + timedelta(days=i) for i in range(rental_days)]
    return Decimal(list_rate) * day_factor_sum(rules, vehicle_type_id, location_id, dates) / rental_days


def segment_rule_factors(session: Session, location_ids: Sequence[int], vehicle_type_ids: Sequence[int],
                         first_day: date, horizon_days: int,
                         rental_days: dict[int, int]) -> dict[tuple[int, int, date], Decimal]:
    """What the rules in force multiply the list rate of each (branch, type, pick-up day) segment by, on average over
    a rental of the type's typical length (`rental_days` per vehicle type id): any list rate × it is the segment's
    `segment_list_rate`. One query for the rules."""
    longest = max(rental_days.values(), default=1)
    rules = pricing_rules.load_rules(session, vehicle_type_ids=vehicle_type_ids, location_ids=location_ids,
                                     first_day=first_day, last_day=first_day + timedelta(days=horizon_days + longest))
    factors = {}
    for vtype in vehicle_type_ids:
        length = rental_days.get(vtype, 1)
        for d in range(horizon_days):
            pickup_day = first_day + timedelta(days=d)
            dates = [pickup_day + timedelta(days=i) for i in range(length)]
            for branch in location_ids:
                factors[(branch, vtype, pickup_day)] = day_factor_sum(rules, vtype, branch, dates) / length
    return factors


def segment_list_rates(session: Session, location_ids: Sequence[int], vehicle_type_ids: Sequence[int],
                       first_day: date, horizon_days: int, rental_days: dict[int, int]) -> dict[tuple[int, int, date],
                                                                                                 Decimal]:
    """`segment_list_rate` of every (branch, type, pick-up day) in the horizon, from each type's base daily rate."""
    base = dict(session.execute(text("SELECT id, base_daily_rate FROM vehicle_types WHERE id = ANY(:ids)"),
                                {"ids": list(vehicle_type_ids)}).all())
    factors = segment_rule_factors(session, location_ids, [t for t in vehicle_type_ids if t in base], first_day,
                                   horizon_days, rental_days)
    return {key: base[key[1]] * factor for key, factor in factors.items()}
