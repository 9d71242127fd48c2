"""The quote's arithmetic without a database: how rules combine, the dynamic multiplier, discounts, one rounding."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal, localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from services import pricing_rules
from services.pricing import (
    Loyalty,
    RentalTerms,
    day_factor_sum,
    money,
    price_rental,
    segment_list_rate,
    total_without_extras,
)
from services.pricing_rules import Rule, conflicts, price_day, rules_for_day
from services.promotions import PromotionTerms

MONDAY = date(2030, 5, 6)
TYPE, BRANCH = 7, 3


def week(start: date = MONDAY, days: int = 7) -> tuple[date, ...]:
    return tuple(start + timedelta(days=i) for i in range(days))


def terms(**overrides) -> RentalTerms:
    values = dict(list_rate=Decimal("40.00"), currency="GBP", vehicle_type_id=TYPE, pickup_location_id=BRANCH,
                  dates=week(days=3))
    values.update(overrides)
    return RentalTerms(**values)


def lines(quote) -> dict[str, Decimal]:
    return {line.code: line.amount for line in quote.lines}


def test_without_rules_the_quote_is_the_list_rate_times_the_days():
    quote = price_rental(terms(extras=("child_seat",)))
    assert lines(quote) == {"base": Decimal("120.00"), "child_seat": Decimal("24.00")}
    assert quote.total == Decimal("144.00")
    assert quote.vat_included == Decimal("24.00")  # 144 includes 20%: 144 / 1.2 * 0.2


def test_a_weekend_rule_prices_only_the_saturday_and_sunday_of_the_rental():
    weekend = Rule(1, "Weekend rate", daily_rate_modifier=Decimal("1.25"), days_of_week="weekend")
    quote = price_rental(terms(dates=week(), rules=(weekend,)))
    assert lines(quote) == {"base": Decimal("280.00"), "rule:1": Decimal("20.00")}  # 2 days × 40 × 0.25
    assert quote.rules == ((1, "Weekend rate"),)


def test_rules_of_different_priorities_stack_multiplicatively_in_priority_order():
    season = Rule(5, "Summer", seasonal_surcharge_pct=Decimal("10"), priority=10)
    long_rental = Rule(2, "A week or more", daily_rate_modifier=Decimal("0.90"), min_days=7, priority=20)
    quote = price_rental(terms(dates=week(), rules=(long_rental, season)))
    # 40 × 1.10 = 44 a day (+28 in all), then × 0.90 = 39.60 (−30.80 in all): 277.20
    assert [line.code for line in quote.lines] == ["base", "rule:5", "rule:2"]
    assert lines(quote) == {"base": Decimal("280.00"), "rule:5": Decimal("28.00"), "rule:2": Decimal("-30.80")}
    assert quote.total == Decimal("277.20")


def test_a_length_tier_applies_only_within_its_days():
    tier = Rule(3, "7 to 13 days", daily_rate_modifier=Decimal("0.85"), min_days=7, max_days=13)
    assert "rule:3" not in lines(price_rental(terms(dates=week(days=6), rules=(tier,))))
    assert "rule:3" in lines(price_rental(terms(dates=week(days=7), rules=(tier,))))
    assert "rule:3" not in lines(price_rental(terms(dates=week(days=14), rules=(tier,))))


def test_at_equal_priority_only_the_older_rule_counts_and_the_pair_is_flagged():
    older = Rule(1, "Airport uplift", daily_rate_modifier=Decimal("1.10"), location_id=BRANCH)
    newer = Rule(2, "Type uplift", daily_rate_modifier=Decimal("1.30"), vehicle_type_id=TYPE)
    assert rules_for_day([older, newer], TYPE, BRANCH, MONDAY, 3) == [older]
    assert rules_for_day([older, newer], TYPE, BRANCH + 1, MONDAY, 3) == [newer]  # the older does not apply there
    [conflict] = conflicts([newer, older])
    assert (conflict.first, conflict.second) == (older, newer)
    assert "priority 100" in conflict.message


def test_rules_that_cannot_meet_are_not_flagged():
    cases = [
        (Rule(1, "a", vehicle_type_id=1), Rule(2, "b", vehicle_type_id=2)),
        (Rule(1, "a", location_id=1), Rule(2, "b", location_id=2)),
        (Rule(1, "a", days_of_week="weekend"), Rule(2, "b", days_of_week="weekday")),
        (Rule(1, "a", max_days=6), Rule(2, "b", min_days=7)),
        (Rule(1, "a", end_date=date(2030, 6, 30)), Rule(2, "b", start_date=date(2030, 7, 1))),
        # a common window of Monday to Friday has no weekend day
        (Rule(1, "a", start_date=MONDAY, end_date=MONDAY + timedelta(days=4), days_of_week="weekend"),
         Rule(2, "b", start_date=MONDAY - timedelta(days=30))),
        (Rule(1, "a"), Rule(2, "b", priority=50)),
        (Rule(1, "a"), Rule(2, "b", active=False)),
    ]
    for a, b in cases:
        assert conflicts([a, b]) == [], (a, b)


def test_a_rule_dated_for_summer_does_not_touch_days_outside_it():
    summer = Rule(1, "Summer", seasonal_surcharge_pct=Decimal("20"), start_date=MONDAY + timedelta(days=1),
                  end_date=MONDAY + timedelta(days=1))
    assert price_day([summer], Decimal("40"), TYPE, BRANCH, MONDAY, 3).rate == Decimal("40")
    assert price_day([summer], Decimal("40"), TYPE, BRANCH, MONDAY + timedelta(days=1), 3).rate == Decimal("48.00")


def test_the_dynamic_multiplier_scales_the_whole_rental_and_has_its_own_line():
    quote = price_rental(terms(multiplier=Decimal("1.25")))
    assert lines(quote) == {"base": Decimal("120.00"), "dynamic": Decimal("30.00")}
    assert quote.lines[-1].label == "Dynamic rate ×1.25"
    assert quote.as_breakdown()["multiplier"] == "1.25"


def test_loyalty_then_promotion_come_off_the_rental_charge_but_not_the_extras_or_fees():
    promotion = PromotionTerms(9, "SPRING10", "percent", Decimal("10"), "GBP")
    quote = price_rental(terms(loyalty=Loyalty("gold", "Gold", Decimal("5")), promotion=promotion,
                               one_way_fee=Decimal("35.00"), extras=("gps",)))
    assert lines(quote) == {"base": Decimal("120.00"), "loyalty": Decimal("-6.00"), "promotion": Decimal("-11.40"),
                            "one_way": Decimal("35.00"), "gps": Decimal("18.00")}
    assert quote.discount == Decimal("11.40")
    assert quote.as_breakdown()["promotion"] == {"id": 9, "code": "SPRING10", "discount": "11.40"}


def test_a_fixed_promotion_never_takes_more_than_the_rental_charge():
    promotion = PromotionTerms(9, "FREEDAY", "fixed", Decimal("500.00"), "GBP")
    quote = price_rental(terms(promotion=promotion, extras=("cdw",)))
    assert lines(quote)["promotion"] == Decimal("-120.00")
    assert quote.total == Decimal("45.00")


def test_vat_follows_the_branch_rate():
    assert price_rental(terms(vat_rate=Decimal("0.10"))).vat_included == Decimal("10.91")  # 120 × 0.1 / 1.1


def test_the_breakdown_keeps_the_keys_existing_screens_read_with_money_as_strings():
    breakdown = price_rental(terms(extras=("gps",))).as_breakdown()
    assert {"currency", "days", "daily_rate", "lines", "total", "vat_included", "vat_rate"} <= set(breakdown)
    assert all(isinstance(line["amount"], str) for line in breakdown["lines"])
    assert breakdown["total"] == "138.00"


rates = st.decimals(min_value=Decimal("1.00"), max_value=Decimal("400.00"), places=2)
factors = st.decimals(min_value=Decimal("0.5"), max_value=Decimal("1.9"), places=4)


@settings(deadline=None, max_examples=200)  # no timing in tests
@given(rate=rates, modifiers=st.lists(factors, max_size=4), multiplier=factors, days=st.integers(1, 30),
       pct=st.decimals(min_value=Decimal("0"), max_value=Decimal("30"), places=2))
def test_lines_add_up_to_the_total_which_is_the_exact_sum_rounded_once(rate, modifiers, multiplier, days, pct):
    rules = tuple(Rule(i + 1, f"r{i}", daily_rate_modifier=m, priority=i) for i, m in enumerate(modifiers))
    quote = price_rental(terms(list_rate=rate, dates=week(days=days), rules=rules, multiplier=multiplier,
                               loyalty=Loyalty("silver", "Silver", pct), one_way_fee=Decimal("33.20")))
    with localcontext() as context:
        context.prec = 60
        exact = rate * days * multiplier
        for m in modifiers:
            exact *= m
        exact = exact * (1 - pct / 100) + Decimal("33.20")
    assert quote.total == exact.quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
    assert sum(line.amount for line in quote.lines) == quote.total
    assert all(line.amount == line.amount.quantize(Decimal("0.01")) for line in quote.lines)
    assert lines(quote)["base"] == rate * days and lines(quote)["one_way"] == Decimal("33.20")


weekdays = st.sampled_from(["all", "weekend", "weekday"])


@settings(deadline=None, max_examples=200)
@given(rate=rates, factors_=st.lists(st.tuples(factors, weekdays, st.integers(1, 3)), max_size=4),
       multiplier=factors, days=st.integers(1, 20), fee=st.sampled_from([None, Decimal("0"), Decimal("41.60")]))
def test_bulk_arithmetic_reaches_the_quotes_total(rate, factors_, multiplier, days, fee):
    rules = tuple(Rule(i + 1, f"r{i}", daily_rate_modifier=m, days_of_week=w, priority=p)
                  for i, (m, w, p) in enumerate(factors_))
    dates = week(days=days)
    quote = price_rental(terms(list_rate=rate, dates=dates, rules=rules, multiplier=multiplier, one_way_fee=fee))
    ordered_rules = pricing_rules.ordered(rules)
    assert total_without_extras(rate, day_factor_sum(ordered_rules, TYPE, BRANCH, dates), multiplier, fee) == \
        quote.total
    mean = segment_list_rate(ordered_rules, rate, TYPE, BRANCH, dates[0], days)
    assert money(mean * days * multiplier + (fee or 0)) == quote.total
