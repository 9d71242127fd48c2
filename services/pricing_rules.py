"""Rate rules: which apply to a rental day, how they stack, and the analysts' edits of them.

How rules combine — deterministic, and the same for the desk, the API, bulk search and the optimiser's evaluation:

1. **Which apply.** A rule prices a *rental day* (day i of a rental starts i × 24 hours after the pick-up; its date is
   that moment's date in the pick-up branch's own time zone). An active rule applies to the day when every condition
   it sets holds (an empty condition holds always): its vehicle type is the car's type; its location is the pick-up
   branch; the day's date lies in [start date, end date]; `days_of_week` is `all`, or `weekend` and the date is a
   Saturday or Sunday, or `weekday` and it is Monday–Friday; and the rental's length in charged days lies in
   [min days, max days] (this is how length-of-rental tiers are written: e.g. 7–13 days × 0.90, 14+ days × 0.80).
2. **In which order.** Ascending `priority` (a smaller number first), then ascending id.
3. **How they stack.** At each priority level **at most one rule applies to a day**: the first by id. Two active
   rules of equal priority that can meet on some day are a *conflict*; the rule editor flags them (see
   `conflicts`) and asks the analyst to change one's priority or scope — the quote never guesses silently beyond
   this fixed tie-break. Rules of different priorities stack multiplicatively: the day's rate is the list daily rate
   × Π (daily rate modifier × (1 + seasonal surcharge % / 100)) over the rules applied. Multiplication commutes, so
   the order only decides how the breakdown attributes the change to each rule (each rule is credited with what it
   changed, given the rules before it).

The published dynamic multiplier (the optimiser's, see `services.pricing`) scales the result afterwards.
Nothing here rounds: amounts stay exact `Decimal` until the quote rounds once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.models import PricingRule, UserRole
from services import audit
from services.actors import Actor, require_role
from services.errors import InvalidInput, NotFound
from services.events import record_event

DAYS_OF_WEEK = {"all": "Every day", "weekend": "Saturdays and Sundays", "weekday": "Monday to Friday"}
ONE = Decimal(1)
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Rule:
    """A rule as the pricing arithmetic sees it (plain values, no session)."""

    id: int
    name: str
    vehicle_type_id: int | None = None
    location_id: int | None = None
    start_date: date | None = None
    end_date: date | None = None
    daily_rate_modifier: Decimal = ONE
    seasonal_surcharge_pct: Decimal = Decimal(0)
    min_days: int | None = None
    max_days: int | None = None
    priority: int = 100
    days_of_week: str = "all"
    active: bool = True

    @property
    def factor(self) -> Decimal:
        """What the rule multiplies a day's rate by."""
        return Decimal(self.daily_rate_modifier) * (ONE + Decimal(self.seasonal_surcharge_pct) / HUNDRED)

    def applies(self, vehicle_type_id: int, location_id: int, day: date, rental_days: int) -> bool:
        return (self.active
                and (self.vehicle_type_id is None or self.vehicle_type_id == vehicle_type_id)
                and (self.location_id is None or self.location_id == location_id)
                and (self.start_date is None or self.start_date <= day)
                and (self.end_date is None or day <= self.end_date)
                and _weekday_matches(self.days_of_week, day)
                and (self.min_days is None or rental_days >= self.min_days)
                and (self.max_days is None or rental_days <= self.max_days))


def _weekday_matches(days_of_week: str, day: date) -> bool:
    if days_of_week == "weekend":
        return day.weekday() >= 5
    if days_of_week == "weekday":
        return day.weekday() < 5
    return True


def ordered(rules: Iterable[Rule]) -> list[Rule]:
    """Rules in the order they are applied: priority, then id."""
    return sorted(rules, key=lambda r: (r.priority, r.id))


def rules_for_day(rules: Sequence[Rule], vehicle_type_id: int, location_id: int, day: date,
                  rental_days: int) -> list[Rule]:
    """The rules that price this day, in order: the first applicable rule of each priority level.

    `rules` must already be `ordered`.
    """
    chosen: list[Rule] = []
    for rule in rules:
        if chosen and chosen[-1].priority == rule.priority:
            continue  # a level already has its rule; an equal-priority overlap is a flagged conflict
        if rule.applies(vehicle_type_id, location_id, day, rental_days):
            chosen.append(rule)
    return chosen


@dataclass(frozen=True)
class DayPrice:
    """A rental day's exact rate before the dynamic multiplier, and what each rule added to it (in order)."""

    day: date
    rate: Decimal
    effects: tuple[tuple[Rule, Decimal], ...]


def price_day(rules: Sequence[Rule], list_rate: Decimal, vehicle_type_id: int, location_id: int, day: date,
              rental_days: int) -> DayPrice:
    """One rental day's rate under the rules (exact, unrounded)."""
    rate = Decimal(list_rate)
    effects = []
    for rule in rules_for_day(rules, vehicle_type_id, location_id, day, rental_days):
        changed = rate * rule.factor
        effects.append((rule, changed - rate))
        rate = changed
    return DayPrice(day, rate, tuple(effects))


# --- conflicts: overlapping rules of equal priority ------------------------------------------------------------------

@dataclass(frozen=True)
class RuleConflict:
    first: Rule
    second: Rule

    @property
    def message(self) -> str:
        return (f"“{self.first.name}” and “{self.second.name}” both have priority {self.first.priority} and can "
                f"apply to the same rental day; only “{self.first.name}” (the older) would count. Give one a "
                "different priority, or narrow its vehicle type, branch, dates, days of the week or length.")


def _ranges_meet(lo1: Any, hi1: Any, lo2: Any, hi2: Any) -> bool:
    """Closed ranges with None for open ends have a common point."""
    return (hi1 is None or lo2 is None or lo2 <= hi1) and (hi2 is None or lo1 is None or lo1 <= hi2)


def can_meet(a: Rule, b: Rule) -> bool:
    """Whether some rental day can match both rules."""
    if a.vehicle_type_id is not None and b.vehicle_type_id is not None and a.vehicle_type_id != b.vehicle_type_id:
        return False
    if a.location_id is not None and b.location_id is not None and a.location_id != b.location_id:
        return False
    if {a.days_of_week, b.days_of_week} == {"weekend", "weekday"}:
        return False
    if not _ranges_meet(a.min_days, a.max_days, b.min_days, b.max_days):
        return False
    if not _ranges_meet(a.start_date, a.end_date, b.start_date, b.end_date):
        return False
    if a.start_date is not None or b.start_date is not None:
        lo = max(d for d in (a.start_date, b.start_date) if d is not None)
        his = [d for d in (a.end_date, b.end_date) if d is not None]
        hi = min(his) if his else None
        wanted = {a.days_of_week, b.days_of_week} - {"all"}
        if wanted and hi is not None and (hi - lo).days < 6:  # a short common window may miss the weekdays asked
            window = [lo + timedelta(days=i) for i in range((hi - lo).days + 1)]
            if not any(_weekday_matches(w, day) for w in wanted for day in window):
                return False
    return True


def conflicts(rules: Iterable[Rule]) -> list[RuleConflict]:
    """Pairs of active rules of equal priority that can apply to the same day (older rule first)."""
    live = ordered(r for r in rules if r.active)
    found = []
    for i, first in enumerate(live):
        for second in live[i + 1:]:
            if second.priority != first.priority:
                break
            if can_meet(first, second):
                found.append(RuleConflict(first, second))
    return found


# --- reading and editing ---------------------------------------------------------------------------------------------

def as_rule(row: PricingRule | Any) -> Rule:
    return Rule(**{f.name: getattr(row, f.name) for f in fields(Rule)})


# A rule's columns as JSON with exact values (numbers as text, never JSON floats), for a query that brings the rules
# of a quote along with its other terms: `rules_json(alias)` in its SELECT, `rules_from_json` on what comes back.
def rules_json(alias: str) -> str:
    """A SQL expression: the rows of pricing_rules `alias` as one JSON array, in the order they apply."""
    a = alias
    return (f"coalesce(json_agg(json_build_object('id', {a}.id, 'name', {a}.name, 'vehicle_type_id', "
            f"{a}.vehicle_type_id, 'location_id', {a}.location_id, 'start_date', {a}.start_date, 'end_date', "
            f"{a}.end_date, 'daily_rate_modifier', {a}.daily_rate_modifier::text, 'seasonal_surcharge_pct', "
            f"{a}.seasonal_surcharge_pct::text, 'min_days', {a}.min_days, 'max_days', {a}.max_days, 'priority', "
            f"{a}.priority, 'days_of_week', {a}.days_of_week, 'active', {a}.active) ORDER BY {a}.priority, {a}.id), "
            "'[]')")


def rules_from_json(items: list[dict[str, Any]]) -> list[Rule]:
    """The rules of a `rules_json` array, in the same order."""
    return [Rule(id=r["id"], name=r["name"], vehicle_type_id=r["vehicle_type_id"], location_id=r["location_id"],
                 start_date=date.fromisoformat(r["start_date"]) if r["start_date"] else None,
                 end_date=date.fromisoformat(r["end_date"]) if r["end_date"] else None,
                 daily_rate_modifier=Decimal(r["daily_rate_modifier"]),
                 seasonal_surcharge_pct=Decimal(r["seasonal_surcharge_pct"]), min_days=r["min_days"],
                 max_days=r["max_days"], priority=r["priority"], days_of_week=r["days_of_week"], active=r["active"])
            for r in items]


def load_rules(session: Session, *, vehicle_type_ids: Iterable[int] | None = None,
               location_ids: Iterable[int] | None = None, first_day: date | None = None,
               last_day: date | None = None) -> list[Rule]:
    """Active rules that could price rentals of these types at these branches between these dates, in order."""
    conditions = ["active"]
    params: dict[str, Any] = {}
    if vehicle_type_ids is not None:
        conditions.append("(vehicle_type_id IS NULL OR vehicle_type_id = ANY(:types))")
        params["types"] = sorted(set(vehicle_type_ids))
    if location_ids is not None:
        conditions.append("(location_id IS NULL OR location_id = ANY(:branches))")
        params["branches"] = sorted(set(location_ids))
    if last_day is not None:
        conditions.append("(start_date IS NULL OR start_date <= :last_day)")
        params["last_day"] = last_day
    if first_day is not None:
        conditions.append("(end_date IS NULL OR end_date >= :first_day)")
        params["first_day"] = first_day
    rules = session.execute(text(f"""
        SELECT {rules_json("r")} FROM pricing_rules r WHERE {' AND '.join(conditions)}
    """), params).scalar_one()
    return rules_from_json(rules)


def all_rules(session: Session) -> list[PricingRule]:
    """Every rule, active first, in the order they apply."""
    return list(session.scalars(select(PricingRule).order_by(PricingRule.active.desc(), PricingRule.priority,
                                                             PricingRule.id)))


@dataclass(frozen=True)
class RuleInput:
    """What an analyst enters for a rule."""

    name: str
    vehicle_type_id: int | None = None
    location_id: int | None = None
    start_date: date | None = None
    end_date: date | None = None
    daily_rate_modifier: Decimal = ONE
    seasonal_surcharge_pct: Decimal = Decimal(0)
    min_days: int | None = None
    max_days: int | None = None
    priority: int = 100
    days_of_week: str = "all"
    active: bool = True


def validate(rule: RuleInput) -> list[str]:
    """What is wrong with a rule, each as a sentence saying what to change (empty when it is fine)."""
    problems = []
    if not rule.name.strip():
        problems.append("Give the rule a name; quotes show it on the price line it adds.")
    elif len(rule.name.strip()) > 120:
        problems.append("Shorten the name to at most 120 characters.")
    modifier = Decimal(rule.daily_rate_modifier)
    if not modifier.is_finite() or modifier <= 0 or modifier >= 100:
        problems.append("The daily rate modifier must be above 0 and below 100 (1 leaves the rate as it is, "
                        "0.9 takes 10% off).")
    elif modifier != modifier.quantize(Decimal("0.0001")):
        problems.append("The daily rate modifier has at most 4 decimal places.")
    surcharge = Decimal(rule.seasonal_surcharge_pct)
    if not surcharge.is_finite() or surcharge <= -100 or surcharge >= 10000:
        problems.append("The seasonal surcharge is a percentage above -100 (a discount) and below 10000.")
    elif surcharge != surcharge.quantize(Decimal("0.01")):
        problems.append("The seasonal surcharge has at most 2 decimal places.")
    if rule.start_date and rule.end_date and rule.end_date < rule.start_date:
        problems.append("The end date is before the start date; swap them.")
    for label, value in (("minimum", rule.min_days), ("maximum", rule.max_days)):
        if value is not None and not 1 <= value <= 366:
            problems.append(f"The {label} number of days must be between 1 and 366, or left empty.")
    if rule.min_days and rule.max_days and rule.max_days < rule.min_days:
        problems.append("The maximum number of days is below the minimum; swap them.")
    if not -32768 <= rule.priority <= 32767:
        problems.append("The priority must be between -32768 and 32767 (smaller numbers apply first).")
    if rule.days_of_week not in DAYS_OF_WEEK:
        problems.append(f"Days of the week must be one of: {', '.join(DAYS_OF_WEEK)}.")
    return problems


def _snapshot(row: PricingRule) -> dict[str, Any]:
    return {f.name: getattr(row, f.name) for f in fields(RuleInput)}


def _checked(session: Session, rule: RuleInput) -> None:
    problems = validate(rule)
    if rule.vehicle_type_id is not None and session.execute(
            text("SELECT 1 FROM vehicle_types WHERE id = :id"), {"id": rule.vehicle_type_id}).first() is None:
        problems.append(f"There is no vehicle type {rule.vehicle_type_id}; pick one from the list.")
    if rule.location_id is not None and session.execute(
            text("SELECT 1 FROM locations WHERE id = :id"), {"id": rule.location_id}).first() is None:
        problems.append(f"There is no branch {rule.location_id}; pick one from the list.")
    if problems:
        raise InvalidInput(" ".join(problems))


def create_rule(session: Session, actor: Actor, rule: RuleInput) -> PricingRule:
    """Add a rule (audited); overlaps of equal priority are allowed but reported by `conflicts_with`."""
    require_role(actor, UserRole.PRICING_ANALYST, doing="edit pricing rules")
    _checked(session, rule)
    row = PricingRule(**{**vars(rule), "name": rule.name.strip()}, created_by=actor.user_id)
    session.add(row)
    session.flush()
    audit.record(session, actor, "pricing_rule.created", "pricing_rule", row.id, None, _snapshot(row))
    record_event(session, "pricing_rule", row.id, "pricing_rule.created", {"rule_id": row.id})
    return row


def update_rule(session: Session, actor: Actor, rule_id: int, rule: RuleInput) -> PricingRule:
    """Change a rule (audited); quotes made from now on use the new terms, frozen bookings keep theirs."""
    require_role(actor, UserRole.PRICING_ANALYST, doing="edit pricing rules")
    row = session.get(PricingRule, rule_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFound(f"There is no pricing rule {rule_id}; it may have been deleted — reload the list.")
    _checked(session, rule)
    before = _snapshot(row)
    for name, value in vars(rule).items():
        setattr(row, name, value.strip() if name == "name" else value)
    row.updated_at = datetime.now(UTC)
    session.flush()
    audit.record(session, actor, "pricing_rule.changed", "pricing_rule", row.id, before, _snapshot(row))
    record_event(session, "pricing_rule", row.id, "pricing_rule.changed", {"rule_id": row.id})
    return row


def conflicts_with(session: Session, rule_id: int) -> list[RuleConflict]:
    """The flagged overlaps that involve this rule."""
    return [c for c in conflicts(load_rules(session)) if rule_id in (c.first.id, c.second.id)]


def choices(session: Session) -> tuple[dict[int, str], dict[int, str]]:
    """Vehicle types and branches a rule may name: {id: label}, in the order to offer them."""
    types = {row.id: f"{row.name} ({row.code})" for row in session.execute(
        text("SELECT id, code, name FROM vehicle_types ORDER BY rank, code"))}
    branches = {row.id: f"{row.code} · {row.name}" for row in session.execute(
        text("SELECT id, code, name FROM locations ORDER BY code"))}
    return types, branches


# --- branch terms: VAT and one-way fees ------------------------------------------------------------------------------

def branch_terms(session: Session) -> tuple[list[tuple[int, str, Decimal]], list[tuple[int, int, str, str, Decimal]]]:
    """(branch id, label, VAT rate) of every branch, and (from id, to id, from label, to label, fee) of every
    one-way fee set."""
    vat = [tuple(row) for row in session.execute(text(
        "SELECT id, code || ' · ' || name, vat_rate FROM locations ORDER BY code"))]
    fees = [tuple(row) for row in session.execute(text("""
        SELECT f.from_location_id, f.to_location_id, p.code || ' · ' || p.name, d.code || ' · ' || d.name, f.fee
        FROM one_way_fees f JOIN locations p ON p.id = f.from_location_id JOIN locations d ON d.id = f.to_location_id
        ORDER BY p.code, d.code
    """))]
    return vat, fees


def set_vat_rate(session: Session, actor: Actor, location_id: int, rate: Decimal) -> None:
    """Set a branch's VAT rate (a fraction: 0.20 is 20%); quotes from now on include it (audited)."""
    require_role(actor, UserRole.PRICING_ANALYST, doing="set VAT rates")
    rate = Decimal(rate)
    if not rate.is_finite() or not Decimal(0) <= rate < ONE or rate != rate.quantize(Decimal("0.0001")):
        raise InvalidInput("The VAT rate is a fraction from 0 to below 1 with at most 4 places (0.20 is 20%).")
    before = session.execute(text("SELECT vat_rate FROM locations WHERE id = :id FOR UPDATE"),
                             {"id": location_id}).scalar()
    if before is None:
        raise NotFound(f"There is no branch {location_id}; pick one from the list.")
    session.execute(text("UPDATE locations SET vat_rate = :r WHERE id = :id"), {"r": rate, "id": location_id})
    audit.record(session, actor, "location.vat_rate_set", "location", location_id, {"vat_rate": before},
                 {"vat_rate": rate})


def set_one_way_fee(session: Session, actor: Actor, from_location_id: int, to_location_id: int,
                    fee: Decimal | None) -> None:
    """Set the one-way fee from one branch to another, or remove it (None: the distance-based default applies)."""
    require_role(actor, UserRole.PRICING_ANALYST, doing="set one-way fees")
    if from_location_id == to_location_id:
        raise InvalidInput("A one-way fee is between two different branches; pick another drop-off branch.")
    if fee is not None:
        fee = Decimal(fee)
        if not fee.is_finite() or fee < 0 or fee >= Decimal("1e10") or fee != fee.quantize(Decimal("0.01")):
            raise InvalidInput("The fee is an amount of at least 0 with at most 2 decimal places.")
    known = session.execute(text("SELECT count(*) FROM locations WHERE id IN (:a, :b)"),
                            {"a": from_location_id, "b": to_location_id}).scalar_one()
    if known != 2:
        raise NotFound("One of the branches does not exist; pick them from the list.")
    key = {"a": from_location_id, "b": to_location_id}
    before = session.execute(text("SELECT fee FROM one_way_fees WHERE from_location_id = :a AND to_location_id = :b"),
                             key).scalar()
    if fee is None:
        session.execute(text("DELETE FROM one_way_fees WHERE from_location_id = :a AND to_location_id = :b"), key)
    else:
        session.execute(text("""
            INSERT INTO one_way_fees (from_location_id, to_location_id, fee) VALUES (:a, :b, :fee)
            ON CONFLICT (from_location_id, to_location_id) DO UPDATE SET fee = EXCLUDED.fee
        """), {**key, "fee": fee})
    audit.record(session, actor, "one_way_fee.set", "one_way_fee", f"{from_location_id}>{to_location_id}",
                 {"fee": before}, {"fee": fee})
