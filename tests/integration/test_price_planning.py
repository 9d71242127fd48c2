"""Price planning on the live demo company: the optimiser's instance, the proposal against the current rates,
what binds, the what-if, and publishing (audited, announced, upserted)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from db.models import PricingRule, UserRole
from services import price_planning, pricing
from services.actors import Actor, Forbidden
from services.errors import InvalidInput
from services.price_planning import WhatIf
from tests.conftest import rolled_back_session
from tests.demand_world import *  # noqa: F403
from tests.demand_world import TODAY

START = TODAY + timedelta(days=1)
ANALYST = Actor(None, "pricing@example.test", UserRole.PRICING_ANALYST, "Pricing analyst")


@pytest.fixture
def live(demand_engine):
    with rolled_back_session(demand_engine) as session:
        yield session


def _instance(session, fit, **changes):
    options = {"location_ids": [1, 2], "vehicle_type_ids": [1, 2, 3], "start": START, "days": 7, "fit": fit}
    return price_planning.build_instance(session, **{**options, **changes})


def test_the_instance_has_one_segment_per_branch_type_and_day_from_the_live_fleet(live, year_fit):
    planning = _instance(live, year_fit)
    instance = planning.instance
    assert instance["horizon_days"] == 7 and instance["max_step"] == 2 and instance["class_order"] is True
    assert instance["ladder"] == list(price_planning.DEFAULT_LADDER)
    assert [c["id"] for c in instance["classes"]] == ["economy", "compact", "midsize"]
    assert all(c["rental_days"] >= 1 for c in instance["classes"])
    segments = instance["segments"]
    assert len(segments) == 2 * 3 * 7
    assert {(s["branch"], s["class"], s["day"]) for s in segments} == {
        (b, c, d) for b in planning.branches["branch"] for c in ("economy", "compact", "midsize") for d in range(7)}
    cars = dict(live.execute(text("""
        SELECT l.code || '/' || vt.code, count(*) FROM vehicles v JOIN locations l ON l.id = v.current_location_id
        JOIN vehicle_types vt ON vt.id = v.vehicle_type_id WHERE v.status <> 'retired' GROUP BY 1
    """)).all())
    returning = dict(live.execute(text("""
        SELECT l.code || '/' || vt.code, count(*) FROM bookings b JOIN locations l ON l.id = b.dropoff_location_id
        JOIN vehicle_types vt ON vt.id = b.vehicle_type_id WHERE b.status = 'picked_up' GROUP BY 1
    """)).all())
    for s in segments:
        key = f"{s['branch']}/{s['class']}"
        assert 0 <= s["capacity"] <= cars.get(key, 0) + returning.get(key, 0)
        assert s["base_demand"] >= 0 and s["list_rate"] > 0
    elasticity = {c: year_fit.elasticity.set_index("code").loc[c, "elasticity"] for c in ("economy", "midsize")}
    assert {s["elasticity"] for s in segments if s["class"] == "economy"} == {round(elasticity["economy"], 4)}


def test_a_pricing_rule_in_force_scales_the_list_rate_as_quotes_will(live, year_fit):
    def segments():
        planning = _instance(live, year_fit)
        return planning, {(s["branch"], s["class"], s["day"]): s["list_rate"] for s in planning.instance["segments"]}

    def quoted(planning):  # the desk's quote of a typical economy rental from the first branch on the first day
        days = int(planning.classes.set_index("class").loc["economy", "rental_days"])
        noon = datetime.combine(START, time(12), ZoneInfo("Europe/London"))
        return pricing.preview(live, 1, 1, noon, days).total

    planning, before = segments()
    quote_before = quoted(planning)
    live.add(PricingRule(name="Winter surcharge on economy at the first branch", vehicle_type_id=1, location_id=1,
                         start_date=START, end_date=START + timedelta(days=60), daily_rate_modifier=Decimal("1.2000")))
    live.flush()
    planning, after = segments()
    quote_after = quoted(planning)
    first_branch = live.execute(text("SELECT code FROM locations WHERE id = 1")).scalar_one()
    assert quote_after > quote_before
    for key, rate in after.items():
        if key[0] == first_branch and key[1] == "economy":
            assert rate > before[key]
            if key[2] == 0:
                assert rate / before[key] == pytest.approx(float(quote_after / quote_before), rel=0.005)
        else:
            assert rate == before[key], key


def test_demand_already_booked_is_taken_off_the_forecast(live, year_fit):
    planning = _instance(live, year_fit, days=3)
    forecast = year_fit.expected([1, 2], [1, 2, 3], [START + timedelta(days=i) for i in range(3)])
    total_forecast = forecast["expected_pickups"].sum()
    total_base = sum(s["base_demand"] for s in planning.instance["segments"])
    booked = live.execute(text("""
        SELECT count(*) FROM bookings WHERE status IN ('pending', 'confirmed') AND pickup_location_id IN (1, 2)
          AND vehicle_type_id IN (1, 2, 3) AND pickup_at >= :start AND pickup_at < :end
    """), {"start": START, "end": START + timedelta(days=3)}).scalar_one()
    assert booked > 0
    assert total_forecast - booked - 1e-6 <= total_base < total_forecast


def test_what_if_changes_the_elasticity_and_the_capacity_in_the_instance(live, year_fit):
    base = _instance(live, year_fit)
    changed = _instance(live, year_fit, what_if=WhatIf(elasticity={1: 3.0}, capacity_factor=0.5))
    for before, after in zip(base.instance["segments"], changed.instance["segments"], strict=True):
        assert after["capacity"] == int(before["capacity"] * 0.5)
        assert after["elasticity"] == (3.0 if after["class"] == "economy" else before["elasticity"])


@pytest.mark.parametrize(("changes", "complaint"), [
    ({"location_ids": []}, "at least one branch"),
    ({"vehicle_type_ids": []}, "at least one vehicle type"),
    ({"days": 0}, "horizon is 1 to 28 days"),
    ({"location_ids": [1, 424242]}, "do not exist"),
    ({"what_if": WhatIf(capacity_factor=0)}, "capacity factor"),
    ({"what_if": WhatIf(elasticity={1: -1.0})}, "elasticity is between 0 and 10"),
])
def test_bad_choices_are_refused_with_what_to_do(live, year_fit, changes, complaint):
    with pytest.raises(InvalidInput, match=complaint):
        _instance(live, year_fit, **changes)


def test_the_proposal_earns_at_least_the_current_rates_under_the_same_model(live, year_fit):
    result = price_planning.plan_prices(_instance(live, year_fit), time_limit_s=20)
    assert result.status in ("optimal", "feasible") and result.publishable
    rows = result.summary.set_index("rates")
    assert rows.loc["current", "revenue"] > 0
    # List price everywhere is a feasible choice (1.0 is on the ladder, no step, same order), so an optimal plan
    # can only do better.
    assert rows.loc["proposed", "revenue"] >= rows.loc["current", "revenue"] - 0.01
    assert result.objective == pytest.approx(result.prices["revenue"].sum(), abs=0.01 * len(result.prices))
    prices = result.prices
    assert len(prices) == 2 * 3 * 7
    # Accepts come back rounded to 1/10,000 of a rental.
    assert ((prices["accept"] <= prices["demand"] + 1e-3) & (prices["occupied"] <= prices["capacity"] + 1e-3)).all()
    assert (prices["current_multiplier"] == 1.0).all()


def test_binding_constraints_are_the_full_days_the_step_limits_and_the_class_order(live, year_fit):
    result = price_planning.plan_prices(_instance(live, year_fit, what_if=WhatIf(capacity_factor=0.3)),
                                        time_limit_s=20)
    prices, binding = result.prices, result.binding
    full = prices[(prices["capacity"] > 0) & (prices["occupied"] >= prices["capacity"] - 1e-3)]
    reported = binding[binding["constraint"] == "capacity full"]
    assert len(full) > 0
    assert set(zip(reported["branch"], reported["class"], reported["day"], strict=True)) == set(
        zip(full["branch"], full["class"], full["day"], strict=True))
    for row in binding[binding["constraint"] == "class order"].to_dict("records"):
        lower, higher = row["class"].split(" / ")
        day = prices[(prices["branch"] == row["branch"]) & (prices["day"] == row["day"])].set_index("class")
        assert day.loc[lower, "rate"] == pytest.approx(day.loc[higher, "rate"], abs=0.01)


def test_a_less_elastic_demand_gets_higher_rates(live, year_fit):
    # Revenue per segment goes as m^(1 - elasticity): above 1 a lower rate earns more until the cars run out,
    # below 1 a higher rate always earns more.
    as_fitted = price_planning.plan_prices(_instance(live, year_fit, vehicle_type_ids=[1], max_step=None),
                                           time_limit_s=20)
    inelastic = price_planning.plan_prices(
        _instance(live, year_fit, vehicle_type_ids=[1], max_step=None, what_if=WhatIf(elasticity={1: 0.5})),
        time_limit_s=20)
    assert year_fit.elasticity_of(1) > 1
    assert inelastic.prices["multiplier"].mean() > as_fitted.prices["multiplier"].mean()
    wanted = inelastic.prices[inelastic.prices["demand"] > 0]
    assert len(wanted) and (wanted["multiplier"] == max(price_planning.DEFAULT_LADDER)).all()


def test_publishing_writes_the_rates_audited_and_announced_in_one_transaction(live, year_fit):
    result = price_planning.plan_prices(_instance(live, year_fit), time_limit_s=20)
    publication = price_planning.publish_plan(live, result, by=ANALYST, note="first run")
    row = live.execute(text("SELECT horizon_start, horizon_days, expected_revenue, summary FROM rate_publications "
                            "WHERE id = :id"), {"id": publication}).one()
    assert (row.horizon_start, row.horizon_days) == (START, 7)
    assert row.expected_revenue == Decimal(str(result.objective)).quantize(Decimal("0.01"))
    assert row.summary["branches"] == result.planning.branches["branch"].tolist()
    rates = live.execute(text("SELECT count(*), count(DISTINCT publication_id) FROM published_rates "
                              "WHERE publication_id = :id"), {"id": publication}).one()
    assert tuple(rates) == (42, 1)
    audited = live.execute(text("SELECT count(*) FROM audit_log WHERE entity_type = 'rate_publication' "
                                "AND entity_id = :id AND action = 'publish'"), {"id": str(publication)}).scalar_one()
    announced = live.execute(text("SELECT payload FROM domain_events WHERE event_type = 'rates.published' "
                                  "AND aggregate_id = :id"), {"id": str(publication)}).scalar_one()
    assert audited == 1 and announced["rates"] == 42

    # Published rates are the current ones next time, and a second publication replaces them day by day.
    again = price_planning.plan_prices(_instance(live, year_fit), time_limit_s=20)
    assert sorted(again.prices["current_multiplier"]) == sorted(result.prices["multiplier"])
    second = price_planning.publish_plan(live, again, by=ANALYST)
    owners = live.execute(text("SELECT DISTINCT publication_id FROM published_rates WHERE location_id IN (1, 2) "
                               "AND vehicle_type_id IN (1, 2, 3) AND day >= :start"), {"start": START}).scalars().all()
    assert owners == [second]


def test_only_pricing_analysts_publish(live, year_fit):
    result = price_planning.plan_prices(_instance(live, year_fit, days=2), time_limit_s=10)
    desk = Actor(None, "desk@example.test", UserRole.DESK_AGENT, "Desk")
    with pytest.raises(Forbidden):
        price_planning.publish_plan(live, result, by=desk)
    assert live.execute(text("SELECT count(*) FROM rate_publications")).scalar_one() == 0
