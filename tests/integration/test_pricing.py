"""Quotes from the database: rules, published multipliers, branch VAT, one-way fees, loyalty; bulk equals single."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from db.models import (
    AuditEntry,
    DomainEvent,
    LoyaltyTier,
    OneWayFee,
    PublishedRate,
    RatePublication,
    UserRole,
)
from services import pricing, pricing_rules, quotes_bulk
from services.actors import Actor, Forbidden
from services.errors import InvalidInput, NotFound
from services.pricing_rules import RuleInput
from tests import factories as f

PICKUP = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in London
DROPOFF = PICKUP + timedelta(days=7)
ANALYST = Actor(None, "pricing@example.test", UserRole.PRICING_ANALYST, "Pricing")
AGENT = Actor(None, "desk@example.test", UserRole.DESK_AGENT, "Desk")


@pytest.fixture
def world(session):
    economy = f.vehicle_type(session, code="econ_p")
    suv = f.vehicle_type(session, code="suv_p", base_daily_rate=Decimal("70.00"))
    city = f.location(session)
    airport = f.location(session, lat=51.4700, lon=-0.4543, vat_rate=Decimal("0.1500"))
    cars = [f.vehicle(session, economy, city, daily_rate=Decimal("40.00")),
            f.vehicle(session, economy, city, daily_rate=Decimal("40.00")),
            f.vehicle(session, suv, city, daily_rate=Decimal("70.00")),
            f.vehicle(session, economy, airport, daily_rate=Decimal("42.50")),
            f.vehicle(session, suv, airport, daily_rate=Decimal("73.30"))]
    return {"economy": economy, "suv": suv, "city": city, "airport": airport, "cars": cars}


def rule(session, **values):
    return pricing_rules.create_rule(session, ANALYST, RuleInput(**values))


def publish(session, location, vtype, day: date, multiplier: str) -> None:
    publication = RatePublication(horizon_start=day, horizon_days=1, summary={})
    session.add(publication)
    session.flush()
    session.add(PublishedRate(location_id=location.id, vehicle_type_id=vtype.id, day=day,
                              multiplier=Decimal(multiplier), publication_id=publication.id))
    session.flush()


def codes(quote) -> dict[str, Decimal]:
    return {line.code: line.amount for line in quote.lines}


def test_a_quote_applies_the_rules_by_name_the_published_multiplier_and_the_branch_vat(session, world):
    car = world["cars"][3]  # economy at the airport, 42.50 a day
    weekend = rule(session, name="Weekend", days_of_week="weekend", daily_rate_modifier=Decimal("1.20"))
    week = rule(session, name="Week or more", min_days=7, daily_rate_modifier=Decimal("0.90"), priority=200,
                vehicle_type_id=world["economy"].id)
    rule(session, name="Other branch only", location_id=world["city"].id, daily_rate_modifier=Decimal("3"),
         priority=5)
    publish(session, world["airport"], world["economy"], PICKUP.date(), "1.1000")
    quote = pricing.quote(session, car.id, world["airport"].id, world["airport"].id, PICKUP, DROPOFF)
    # 7 days × 42.50 = 297.50; weekend +20% on 2 days = +17.00; a week × 0.90 = −31.45; × 1.1 = +28.305
    assert codes(quote) == {"base": Decimal("297.50"), f"rule:{weekend.id}": Decimal("17.00"),
                            f"rule:{week.id}": Decimal("-31.45"), "dynamic": Decimal("28.31")}
    assert quote.total == Decimal("311.36")  # 311.355 rounded once, half up
    assert [name for _, name in quote.rules] == ["Weekend", "Week or more"]
    assert quote.vat_rate == Decimal("0.1500") and quote.vat_included == Decimal("40.61")


def test_the_multiplier_is_the_one_of_the_pickup_day_in_the_branch_time_zone(session, world):
    car = world["cars"][0]
    late = datetime(2030, 5, 6, 23, 30, tzinfo=UTC)  # already Tuesday 00:30 in London
    publish(session, world["city"], world["economy"], date(2030, 5, 7), "0.8000")
    publish(session, world["city"], world["economy"], date(2030, 5, 6), "1.5000")
    quote = pricing.quote(session, car.id, world["city"].id, world["city"].id, late, late + timedelta(days=2))
    assert quote.multiplier == Decimal("0.8000") and codes(quote)["dynamic"] == Decimal("-16.00")


def test_a_one_way_fee_set_for_the_pair_wins_over_the_distance_default(session, world):
    car = world["cars"][0]
    default = pricing.quote(session, car.id, world["city"].id, world["airport"].id, PICKUP, DROPOFF)
    assert default.lines[-1].label.startswith("One-way fee (") and codes(default)["one_way"] > Decimal("25")
    session.add(OneWayFee(from_location_id=world["city"].id, to_location_id=world["airport"].id,
                          fee=Decimal("19.00")))
    session.flush()
    assert codes(pricing.quote(session, car.id, world["city"].id, world["airport"].id, PICKUP,
                               DROPOFF))["one_way"] == Decimal("19.00")
    back = pricing.quote(session, car.id, world["airport"].id, world["city"].id, PICKUP, DROPOFF)
    assert codes(back)["one_way"] == codes(default)["one_way"]  # the other direction has no fee of its own


def test_a_loyal_customer_gets_the_tier_discount(session, world):
    session.add(LoyaltyTier(code="gold_t", name="Gold", rank=90, discount_pct=Decimal("10")))
    session.flush()
    driver = f.customer(session, loyalty_tier="gold_t")
    quote = pricing.quote(session, world["cars"][0].id, world["city"].id, world["city"].id, PICKUP, DROPOFF,
                          customer_id=driver.id)
    assert codes(quote)["loyalty"] == Decimal("-28.00")
    assert quote.as_breakdown()["loyalty_tier"] == "gold_t"


def test_bulk_totals_are_the_single_quote_totals(session, world):
    rule(session, name="SUV summer", vehicle_type_id=world["suv"].id, seasonal_surcharge_pct=Decimal("12.5"),
         start_date=date(2030, 5, 8), end_date=date(2030, 8, 31))
    rule(session, name="Airport weekend", location_id=world["airport"].id, days_of_week="weekend",
         daily_rate_modifier=Decimal("1.0733"), priority=50)
    publish(session, world["airport"], world["suv"], PICKUP.date(), "1.2500")
    publish(session, world["city"], world["economy"], PICKUP.date(), "0.9000")
    session.add(OneWayFee(from_location_id=world["airport"].id, to_location_id=world["city"].id,
                          fee=Decimal("12.00")))
    session.flush()
    cars = [(c.id, c.daily_rate, c.current_location_id, "suv_p" if c.vehicle_type_id == world["suv"].id
             else "econ_p") for c in world["cars"]]
    for dropoff_branch in (None, world["city"].id, world["airport"].id):
        for end in (PICKUP + timedelta(hours=5), DROPOFF, DROPOFF + timedelta(days=9, hours=1)):
            bulk = quotes_bulk.totals(session, cars, dropoff_branch, PICKUP, end)
            for vehicle_id, _, branch, _ in cars:
                single = pricing.quote(session, vehicle_id, branch, dropoff_branch or branch, PICKUP, end)
                assert bulk[vehicle_id] == single.total, (vehicle_id, dropoff_branch, end)
    assert quotes_bulk.totals(session, [], None, PICKUP, DROPOFF) == {}


def test_a_quote_for_a_missing_car_says_what_to_do(session, world):
    with pytest.raises(NotFound, match="pick them again"):
        pricing.quote(session, 10**9, world["city"].id, world["city"].id, PICKUP, DROPOFF)


# --- the rule editor's services ---------------------------------------------------------------------------------------

def test_a_rule_is_created_and_changed_with_audit_and_events(session, world):
    made = rule(session, name="  Easter  ", start_date=date(2030, 4, 1), end_date=date(2030, 4, 10),
                seasonal_surcharge_pct=Decimal("15"))
    assert made.name == "Easter"
    changed = pricing_rules.update_rule(session, ANALYST, made.id, RuleInput(
        name="Easter", start_date=date(2030, 4, 1), end_date=date(2030, 4, 12), seasonal_surcharge_pct=Decimal("18")))
    assert changed.seasonal_surcharge_pct == Decimal("18")
    actions = session.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "pricing_rule",
                                                              AuditEntry.entity_id == str(made.id))
                              .order_by(AuditEntry.id)).all()
    assert actions == ["pricing_rule.created", "pricing_rule.changed"]
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "pricing_rule.changed",
                                                     AuditEntry.entity_id == str(made.id))).one()
    assert set(entry.changes) >= {"end_date", "seasonal_surcharge_pct"}
    assert session.scalar(select(DomainEvent.event_type).where(DomainEvent.aggregate_type == "pricing_rule",
                                                               DomainEvent.aggregate_id == str(made.id))
                          .order_by(DomainEvent.id.desc()).limit(1)) == "pricing_rule.changed"


def test_a_bad_rule_is_refused_with_every_problem_named_and_nothing_saved(session, world):
    before = len(pricing_rules.all_rules(session))
    with pytest.raises(InvalidInput) as refused:
        rule(session, name=" ", daily_rate_modifier=Decimal("0"), start_date=date(2030, 5, 2),
             end_date=date(2030, 5, 1), min_days=5, max_days=3, days_of_week="fridays", vehicle_type_id=32000)
    message = str(refused.value)
    for part in ("Give the rule a name", "modifier must be above 0", "swap them", "maximum number of days",
                 "Days of the week", "no vehicle type 32000"):
        assert part in message
    assert len(pricing_rules.all_rules(session)) == before


def test_overlapping_rules_of_equal_priority_are_flagged_not_refused(session, world):
    first = rule(session, name="City uplift", location_id=world["city"].id, daily_rate_modifier=Decimal("1.1"))
    second = rule(session, name="Economy uplift", vehicle_type_id=world["economy"].id,
                  daily_rate_modifier=Decimal("1.2"))
    [flagged] = pricing_rules.conflicts_with(session, second.id)
    assert (flagged.first.id, flagged.second.id) == (first.id, second.id)
    pricing_rules.update_rule(session, ANALYST, second.id, RuleInput(
        name="Economy uplift", vehicle_type_id=world["economy"].id, daily_rate_modifier=Decimal("1.2"), priority=90))
    assert pricing_rules.conflicts_with(session, second.id) == []


def test_only_pricing_analysts_edit_rules(session, world):
    with pytest.raises(Forbidden, match="pricing analyst"):
        pricing_rules.create_rule(session, AGENT, RuleInput(name="Sneaky"))
    with pytest.raises(NotFound, match="reload the list"):
        pricing_rules.update_rule(session, ANALYST, 10**8, RuleInput(name="Gone"))


# --- branch terms, loyalty membership, the optimiser's list rates ------------------------------------------------------

def test_an_analyst_sets_a_branch_vat_rate_and_a_one_way_fee_and_quotes_follow(session, world):
    car, city, airport = world["cars"][0], world["city"].id, world["airport"].id
    pricing_rules.set_vat_rate(session, ANALYST, city, Decimal("0.05"))
    assert pricing.quote(session, car.id, city, city, PICKUP, DROPOFF).vat_included == Decimal("13.33")  # 280/21
    pricing_rules.set_one_way_fee(session, ANALYST, city, airport, Decimal("7.50"))
    assert codes(pricing.quote(session, car.id, city, airport, PICKUP, DROPOFF))["one_way"] == Decimal("7.50")
    pricing_rules.set_one_way_fee(session, ANALYST, city, airport, None)
    assert codes(pricing.quote(session, car.id, city, airport, PICKUP, DROPOFF))["one_way"] > Decimal("25")
    actions = session.scalars(select(AuditEntry.action).where(AuditEntry.action.in_(
        ["location.vat_rate_set", "one_way_fee.set"])).order_by(AuditEntry.id)).all()
    assert actions[-3:] == ["location.vat_rate_set", "one_way_fee.set", "one_way_fee.set"]


@pytest.mark.parametrize(("call", "message"), [
    (lambda s, w: pricing_rules.set_vat_rate(s, ANALYST, w["city"].id, Decimal("1.5")), "fraction from 0"),
    (lambda s, w: pricing_rules.set_vat_rate(s, ANALYST, 10**8, Decimal("0.2")), "no branch"),
    (lambda s, w: pricing_rules.set_one_way_fee(s, ANALYST, w["city"].id, w["city"].id, Decimal("1")),
     "two different branches"),
    (lambda s, w: pricing_rules.set_one_way_fee(s, ANALYST, w["city"].id, w["airport"].id, Decimal("-1")),
     "at least 0"),
    (lambda s, w: pricing_rules.set_vat_rate(s, AGENT, w["city"].id, Decimal("0.2")), "pricing analyst"),
])
def test_bad_branch_terms_are_refused_with_a_reason(session, world, call, message):
    with pytest.raises((InvalidInput, NotFound, Forbidden), match=message):
        call(session, world)


def test_a_customer_is_put_in_a_loyalty_tier_by_email(session, world):
    from services import promotions

    session.add(LoyaltyTier(code="silver_t", name="Silver", rank=91, discount_pct=Decimal("5")))
    session.flush()
    driver = f.customer(session, email="loyal@example.test")
    assert promotions.set_loyalty_tier(session, ANALYST, " LOYAL@example.test", "silver_t") == driver.id
    quote = pricing.quote(session, world["cars"][0].id, world["city"].id, world["city"].id, PICKUP, DROPOFF,
                          customer_id=driver.id)
    assert codes(quote)["loyalty"] == Decimal("-14.00")
    with pytest.raises(InvalidInput, match="no loyalty tier"):
        promotions.set_loyalty_tier(session, ANALYST, "loyal@example.test", "diamond")
    with pytest.raises(NotFound, match="no customer"):
        promotions.set_loyalty_tier(session, ANALYST, "nobody@example.test", None)


def test_the_optimisers_list_rate_times_days_is_what_the_quote_charges_before_the_multiplier(session, world):
    rule(session, name="Weekend", days_of_week="weekend", daily_rate_modifier=Decimal("1.20"))
    rule(session, name="Three days or more", min_days=3, daily_rate_modifier=Decimal("0.95"), priority=300)
    rates = pricing.segment_list_rates(session, [world["city"].id], [world["economy"].id, world["suv"].id],
                                       date(2030, 5, 9), 4, {world["economy"].id: 3, world["suv"].id: 1})
    assert len(rates) == 8
    # economy (base 40) picked up Thursday 9 May for 3 days: Thu, Fri at 38, Sat at 45.60
    assert rates[(world["city"].id, world["economy"].id, date(2030, 5, 9))] * 3 == Decimal("121.60")
    pickup = datetime(2030, 5, 9, 9, 0, tzinfo=UTC)
    publish(session, world["city"], world["economy"], pickup.date(), "1.2500")
    quote = pricing.quote(session, world["cars"][0].id, world["city"].id, world["city"].id, pickup,
                          pickup + timedelta(days=3))
    assert quote.total == Decimal("121.60") * Decimal("1.25")
    assert rates[(world["city"].id, world["suv"].id, date(2030, 5, 11))] == Decimal("84.00")  # Saturday, 1 day


def test_a_search_answer_can_carry_the_quote_totals_instead_of_list_rate_times_days(session, world):
    from services.availability import AvailabilityQuery, find_available

    rule(session, name="Economy surcharge", vehicle_type_id=world["economy"].id,
         seasonal_surcharge_pct=Decimal("10"))
    found = find_available(session, AvailabilityQuery(pickup_at=PICKUP, dropoff_at=DROPOFF,
                                                      pickup_location_id=world["city"].id),
                           now=PICKUP - timedelta(days=1))
    assert len(found.vehicles) == 3
    quoted = quotes_bulk.with_quoted_totals(session, found)
    for car in quoted.vehicles:
        assert car.total_price == pricing.quote(session, car.id, world["city"].id, world["city"].id, PICKUP,
                                                DROPOFF).total
    economy = next(c for c in quoted.vehicles if c.vehicle_type == "econ_p")
    assert economy.total_price == Decimal("308.00")  # 7 × 40 × 1.10, where the list price says 280.00
