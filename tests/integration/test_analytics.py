"""Operations analytics on a real PostGIS, against a company small enough to add up by hand.

Two branches (A, B; on UTC so a day is a day), two types (compact, suv), four cars, a handful of bookings, one
maintenance block and one transfer. The period is 1–10 March 2026; the company's records begin with the first
rental on 20 February; the summary is refreshed as of 20 March. Every expected figure below is worked out in the
comments from the rows, in fractions of a day, and never with the service's SQL.

    car1 compact  A  rented 20–22 Feb (100.00); rented 2–5 Mar (150.00, on time); then stands at A
    car2 compact  A  stands at A; rented 3 Mar 12:00 → one-way to B, back 4 Mar 13:00 (60.00 + 20.00 late fee,
                     an hour late); stands at B, in the workshop 6 Mar 00:00 – 7 Mar 12:00; a no-show on 9 Mar
    car3 suv      B  stands at B; rented 8 Mar, still out (200.00, 4 days booked)
    car4 compact  A  joins 6 Mar; transferred A → B on 8 Mar 00:00, due 05:00, arrived 06:00 (45.50); at B
    also: a cancelled booking for 7 Mar at A, a pending hold for 9 Mar at A, a cancelled transfer.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from sqlalchemy import text

from db.models import AnalyticsDaily, BookingStatus, Transfer, TransferStatus, TurnedAway, VehicleStatus
from services import analytics
from services.analytics import AnalyticsFilter
from services.errors import InvalidInput
from tests import factories as f

NOW = datetime(2026, 3, 20, tzinfo=UTC)
MARCH = AnalyticsFilter(start=date(2026, 3, 1), end=date(2026, 3, 10), idle_days=5)
GRACE = 29


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def share(fraction: Fraction, places: int = 4) -> Decimal:
    """Rounded half-up like PostgreSQL's round(numeric)."""
    exact = Decimal(fraction.numerator) / Decimal(fraction.denominator)
    return exact.quantize(Decimal(1).scaleb(-places), rounding="ROUND_HALF_UP")


@pytest.fixture
def company(session):
    compact = f.vehicle_type(session, code="compact", service_interval_km=15_000, service_interval_days=3650)
    suv = f.vehicle_type(session, code="suv", service_interval_km=15_000, service_interval_days=3650)
    a = f.location(session, code="ANA", timezone="UTC", lat=51.5, lon=-0.1)
    b = f.location(session, code="ANB", timezone="UTC", lat=51.6, lon=-0.2)
    joined = at(1, 1)
    car1 = f.vehicle(session, compact, a, created_at=joined, odometer_km=40_000, last_service_km=20_000)
    car2 = f.vehicle(session, compact, b, created_at=joined, odometer_km=30_000, last_service_km=10_000)
    car3 = f.vehicle(session, suv, None, status=VehicleStatus.RENTED, created_at=joined, odometer_km=30_000,
                     last_service_km=10_000)
    car4 = f.vehicle(session, compact, b, created_at=at(3, 6))
    driver = f.customer(session)
    done = BookingStatus.COMPLETED

    def book(car, start, end, pickup, dropoff, **values):
        return f.booking(session, car, driver, start, end, pickup_location_id=pickup.id,
                         dropoff_location_id=dropoff.id, **values)

    book(car1, at(2, 20), at(2, 22), a, a, status=done, actual_return_at=at(2, 22), total_price=Decimal("100.00"))
    book(car1, at(3, 2), at(3, 5), a, a, status=done, actual_return_at=at(3, 5), total_price=Decimal("150.00"))
    book(car2, at(3, 3, 12), at(3, 4, 12), a, b, status=done, actual_return_at=at(3, 4, 13),
         total_price=Decimal("60.00"), late_fee=Decimal("20.00"))
    book(car3, at(3, 8), at(3, 12), b, b, status=BookingStatus.PICKED_UP, total_price=Decimal("200.00"))
    book(car1, at(3, 7), at(3, 8), a, a, status=BookingStatus.CANCELLED, cancelled_at=at(3, 1))
    book(car2, at(3, 9), at(3, 10), b, b, status=BookingStatus.NO_SHOW)
    book(car1, at(3, 9), at(3, 10), a, a, status=BookingStatus.PENDING, hold_expires_at=at(3, 8))
    f.maintenance(session, car2, at(3, 6), at(3, 7, 12), status="completed")
    f.maintenance(session, car2, datetime(2099, 1, 10, tzinfo=UTC), datetime(2099, 1, 11, tzinfo=UTC))
    session.add_all([
        Transfer(vehicle_id=car4.id, from_location_id=a.id, to_location_id=b.id, depart_at=at(3, 8),
                 arrive_at=at(3, 8, 5), arrived_at=at(3, 8, 6), status=TransferStatus.ARRIVED, cost=Decimal("45.50"),
                 currency="GBP"),
        Transfer(vehicle_id=car1.id, from_location_id=a.id, to_location_id=b.id, depart_at=at(3, 6),
                 arrive_at=at(3, 6, 6), status=TransferStatus.CANCELLED, cost=Decimal("99.00"), currency="GBP",
                 cancelled_at=at(3, 1), cancel_reason="Not needed after all"),
    ])
    # walk-ins the desk turned away: one for a compact at A on 3 Mar, one for after the period
    session.add_all([
        TurnedAway(location_id=a.id, vehicle_type_id=compact.id, pickup_at=at(3, 3, 10), dropoff_at=at(3, 5, 10),
                   reason="no_car"),
        TurnedAway(location_id=b.id, vehicle_type_id=suv.id, pickup_at=at(3, 12, 9), dropoff_at=at(3, 13, 9),
                   reason="price"),
    ])
    session.flush()
    result = analytics.refresh(session, now=NOW, full=True, late_grace_minutes=GRACE)
    return {"a": a, "b": b, "compact": compact, "result": result}


def figures(session, period=MARCH) -> dict[str, analytics.Figure]:
    return {fig.spec.key: fig for fig in analytics.headline(session, period, now=NOW)}


# Car-days in March 1–10 (the period runs from 1 Mar 00:00 to 11 Mar 00:00), in 24ths of a day:
#   car1: 10 days at A, rented 2–5 Mar = 3 days
#   car2: at A 1 Mar → 4 Mar 13:00 = 85/24 (of which rented 3 Mar 12:00 → 4 Mar 13:00 = 25/24);
#         at B 4 Mar 13:00 → 11 Mar = 155/24, of which 36/24 in the workshop
#   car3: 10 days at B, rented from 8 Mar = 3 days
#   car4: at A 6 Mar → 8 Mar 06:00 = 54/24 (a transfer counts at the branch it leaves); at B from 06:00 = 66/24
A_FLEET = 10 + Fraction(85 + 54, 24)
A_RENTED = 3 + Fraction(25, 24)
B_FLEET = Fraction(155 + 66, 24) + 10
B_MAINTENANCE = Fraction(36, 24)
B_RENTED = Fraction(3)
AVAILABLE = A_FLEET + B_FLEET - B_MAINTENANCE


def test_the_company_adds_up_to_its_cars_days(session, company):
    assert A_FLEET + B_FLEET == 35  # car1, car2, car3 all ten days; car4 five
    # one row of the summary: compacts at A on 6 Mar are car1 (back since the 5th) and car4 (joined at midnight)
    row = session.get(AnalyticsDaily, (date(2026, 3, 6), company["a"].id, company["compact"].id))
    assert (row.fleet_days, row.rented_days, row.maintenance_days, row.rentals) == (2, 0, 0, 0)


def test_time_utilisation_is_rented_over_available_car_days(session, company):
    got = figures(session)["utilisation"]
    assert got.value == share((A_RENTED + B_RENTED) / AVAILABLE)  # (97/24 + 3) / (35 − 1.5) = 0.2102
    # previous period 19–28 Feb, records from 20 Feb: cars 1–3 for the 9 days 20–28 Feb, car1 rented 2 of them
    assert got.previous == share(Fraction(2, 3 * 9)) == Decimal("0.0741")
    assert got.change == share((A_RENTED + B_RENTED) / AVAILABLE) - Decimal("0.0741")


def test_revenue_revpac_daily_rate_and_length_of_rental(session, company):
    got = figures(session)
    revenue = Decimal("150.00") + Decimal("60.00") + Decimal("20.00") + Decimal("200.00")  # picked up 2, 3 and 8 Mar
    assert got["revenue"].value == revenue == Decimal("430.00")
    assert got["revenue"].previous == Decimal("100.00")
    assert got["revpac"].value == share(Fraction(430) / AVAILABLE, 2) == Decimal("12.84")  # 430 / 33.5
    contracted = 3 + 1 + 4  # booked days of the three rentals, whatever happened after
    assert got["adr"].value == Decimal("53.75") == revenue / contracted
    assert got["alr"].value == share(Fraction(contracted, 3), 2) == Decimal("2.67")


def test_one_way_cancellations_and_no_shows(session, company):
    got = figures(session)
    assert got["one_way_share"].value == share(Fraction(1, 3))  # car2's trip to B of three rentals
    # bookings for a pick-up in the period, the pending hold left out: three rentals, one cancelled, one no-show
    assert (got["cancellations"].value, got["no_shows"].value) == (1, 1)
    assert got["cancellation_rate"].value == got["no_show_rate"].value == share(Fraction(1, 5))
    assert (got["cancellations"].previous, got["no_show_rate"].previous) == (0, Decimal("0.0000"))


def test_returns_within_the_grace_are_on_time_and_the_rest_late(session, company):
    got = figures(session)
    # car1 back on the dot on 5 Mar; car2 an hour late (grace 29 minutes); car3 still out
    assert got["on_time_share"].value == share(Fraction(1, 2))
    assert got["late_returns"].value == 1
    assert got["on_time_share"].previous == Decimal("1.0000")  # car1 on 22 Feb


def test_transfers_and_their_cost_leave_out_the_cancelled_one(session, company):
    got = figures(session)
    assert (got["transfers"].value, got["transfer_cost"].value) == (1, Decimal("45.50"))
    assert (got["transfers"].previous, got["transfer_cost"].previous) == (0, Decimal("0"))


def test_idle_cars_are_those_standing_unrented_longer_than_the_threshold(session, company):
    got = figures(session)["idle_cars"]
    # at 11 Mar 00:00: car1 has stood at A since 5 Mar (6 days), car2 at B since 4 Mar 13:00 (6.5 days);
    # car4 arrived at B on 8 Mar; car3 is out
    assert got.value == 2
    # at 1 Mar 00:00: car1 since 22 Feb, car2 and car3 since the records began on 20 Feb; car4 not yet joined
    assert got.previous == 3
    assert figures(session, AnalyticsFilter(MARCH.start, MARCH.end, idle_days=7))["idle_cars"].value == 0


def test_a_car_in_the_workshop_is_in_maintenance_not_idle(session, company):
    sixth = AnalyticsFilter(date(2026, 3, 6), date(2026, 3, 6), idle_days=1)
    got = figures(session, sixth)
    # at 7 Mar 00:00 car2 is under its block; car1 (since 5 Mar) and car3 (since 20 Feb) have stood over a day,
    # car4 (joined 6 Mar 00:00) exactly a day, which is not more than one
    assert (got["in_maintenance"].value, got["idle_cars"].value) == (1, 2)
    assert got["utilisation"].value == share(Fraction(0, 1))  # nobody out on 6 Mar
    # 6 Mar: car1, car2, car3 a whole day, car4 from midnight; car2's whole day in the workshop
    assert analytics.over_time(session, sixth).iloc[0]["utilisation"] == Decimal("0.0000")


def test_service_backlog_counts_cars_due_without_a_block(session, company):
    got = figures(session)["service_backlog"]
    # car1 and car3 have run 20,000 km since service (interval 15,000); car2 too but has a block booked
    assert (got.value, got.previous) == (2, None)


def test_the_branch_table_explains_which_branch_is_under_used(session, company):
    table = analytics.by_branch(session, MARCH, now=NOW).set_index("code")
    assert list(table.index) == ["ANB", "ANA"]  # least utilised first
    assert table.loc["ANA", "utilisation"] == share(A_RENTED / A_FLEET)  # 97/379
    assert table.loc["ANB", "utilisation"] == share(B_RENTED / (B_FLEET - B_MAINTENANCE))  # 72/425
    assert table.loc["ANB", "maintenance_days"] == Decimal("1.5")
    assert table.loc["ANA", "revenue"] == Decimal("230.00") and table.loc["ANB", "revenue"] == Decimal("200.00")
    # A loses car2 one way and car4 by transfer; B gains both
    assert (table.loc["ANA", "one_way_drift"], table.loc["ANB", "one_way_drift"]) == (-2, 2)
    assert (table.loc["ANA", "idle_cars"], table.loc["ANB", "idle_cars"]) == (1, 1)
    assert (table.loc["ANA", "service_backlog"], table.loc["ANB", "service_backlog"]) == (1, 0)  # car3 is out
    assert (table.loc["ANA", "transfers"], table.loc["ANA", "transfer_cost"]) == (1, Decimal("45.50"))
    assert (table.loc["ANA", "turned_away"], table.loc["ANB", "turned_away"]) == (1, 0)  # B's is after the period


def test_customers_turned_away_count_by_the_pick_up_day_asked_for(session, company):
    assert figures(session)["turned_away"].value == 1
    later = AnalyticsFilter(date(2026, 3, 11), date(2026, 3, 19), idle_days=5)
    assert figures(session, later)["turned_away"].value == 1
    assert figures(session, AnalyticsFilter(MARCH.start, MARCH.end, type_codes=("suv",), idle_days=5))[
        "turned_away"].value == 0


def test_filters_narrow_every_figure_to_branches_and_types(session, company):
    suvs = figures(session, AnalyticsFilter(MARCH.start, MARCH.end, type_codes=("suv",), idle_days=5))
    assert suvs["utilisation"].value == share(Fraction(3, 10)) and suvs["revenue"].value == Decimal("200.00")
    only_a = figures(session, AnalyticsFilter(MARCH.start, MARCH.end, location_ids=(company["a"].id,), idle_days=5))
    assert only_a["utilisation"].value == share(A_RENTED / A_FLEET)
    assert only_a["revenue"].value == Decimal("230.00") and only_a["idle_cars"].value == 1


def test_the_figures_over_time_are_the_same_figures_per_day(session, company):
    days = analytics.over_time(session, MARCH).set_index("day")
    # 2 Mar: cars 1–3 in the fleet, car1 out all day; 3 Mar: car1 all day and car2 from noon
    assert days.loc[date(2026, 3, 2), "utilisation"] == share(Fraction(1, 3))
    assert days.loc[date(2026, 3, 3), "utilisation"] == share(Fraction(3, 2) / 3)
    assert days.loc[date(2026, 3, 8), "revenue"] == Decimal("200.00")
    assert days["revenue"].sum() == Decimal("430.00")
    weeks = analytics.over_time(session, MARCH, bucket="week")
    assert list(weeks["day"]) == [date(2026, 2, 23), date(2026, 3, 2), date(2026, 3, 9)]  # Mondays


def test_whole_months_read_from_the_monthly_summary_give_the_same_figures(session, company):
    spring = AnalyticsFilter(date(2026, 2, 1), date(2026, 3, 31), idle_days=5)  # two whole months, read monthly
    got = figures(session, spring)
    # records run 20 Feb → 20 Mar (now): cars 1–3 for 28 days, car4 from 6 Mar for 14; 1.5 in the workshop
    # rented: car1 2 + 3 days, car2 25 hours, car3 from 8 to 20 Mar
    assert got["utilisation"].value == share((5 + Fraction(25, 24) + 12) / (3 * 28 + 14 - Fraction(3, 2)))
    assert got["revenue"].value == Decimal("530.00")
    months = analytics.over_time(session, spring, bucket="month").set_index("day")
    assert list(months.index) == [date(2026, 2, 1), date(2026, 3, 1)]
    assert months.loc[date(2026, 2, 1), "utilisation"] == share(Fraction(2, 27))
    assert months.loc[date(2026, 3, 1), "revenue"] == Decimal("430.00")
    # a period that starts and ends inside months takes its ends from the daily rows
    odd = AnalyticsFilter(date(2026, 2, 21), date(2026, 3, 2), idle_days=5)
    # 21–28 Feb and 1–2 Mar: cars 1–3 on 10 days; car1 out on 21 Feb and 2 Mar
    assert figures(session, odd)["utilisation"].value == share(Fraction(2, 30))


def stays(session) -> list[tuple]:
    return session.execute(text("SELECT vehicle_id, location_id, rented, lower(period), upper(period) "
                                "FROM analytics_vehicle_stays ORDER BY 1, 4")).all()


def test_a_routine_refresh_of_recent_days_agrees_with_a_full_one(session, company):
    before, full_stays = analytics.by_branch(session, MARCH, now=NOW), stays(session)
    assert len(full_stays) == 4 + 3 + 2 + 2  # car1 rented, stands, rented, stands; car2 stands, rented, stands; ...
    result = analytics.refresh(session, now=NOW, since=date(2026, 3, 4), late_grace_minutes=GRACE)
    assert result.since == date(2026, 3, 4) and result.stays < len(full_stays)  # only the recent ones redone
    assert stays(session) == full_stays
    after = analytics.by_branch(session, MARCH, now=NOW)
    assert before.equals(after)
    assert analytics.refreshed_at(session) == NOW


def test_a_new_rental_shows_after_the_next_refresh(session, company):
    car = session.execute(text("SELECT id FROM vehicles WHERE created_at = :at"), {"at": at(3, 6)}).scalar_one()
    from db.models import Vehicle

    f.booking(session, session.get(Vehicle, car), f.customer(session), at(3, 9), at(3, 10),
              pickup_location_id=company["b"].id, dropoff_location_id=company["b"].id,
              status=BookingStatus.COMPLETED, actual_return_at=at(3, 10), total_price=Decimal("70.00"))
    assert figures(session)["revenue"].value == Decimal("430.00")  # the summary is as of the last refresh
    analytics.refresh(session, now=NOW, late_grace_minutes=GRACE)
    assert figures(session)["revenue"].value == Decimal("500.00")


def test_the_worker_refreshes_only_when_the_figures_are_old(session, company):
    assert analytics.refresh_if_due(session, now=NOW + timedelta(minutes=59), every=timedelta(hours=1)) == 0
    assert analytics.refreshed_at(session) == NOW
    assert analytics.refresh_if_due(session, now=NOW + timedelta(hours=1), every=timedelta(hours=1)) > 0
    assert analytics.refreshed_at(session) == NOW + timedelta(hours=1)


@pytest.mark.parametrize(("period", "message"), [
    (AnalyticsFilter(date(2026, 3, 10), date(2026, 3, 1)), "ends"),
    (AnalyticsFilter(date(2020, 1, 1), date(2026, 3, 1)), "at most 731 days"),
    (AnalyticsFilter(date(2026, 3, 1), date(2026, 3, 10), idle_days=0), "between 1 and 365"),
])
def test_an_impossible_period_is_refused_with_what_to_do(session, period, message):
    with pytest.raises(InvalidInput, match=message):
        analytics.overview(session, period)


def test_before_any_refresh_there_is_nothing_but_no_error(session):
    view = analytics.overview(session, MARCH, now=NOW)
    assert view.as_of is None
    assert {fig.spec.key: fig.value for fig in view.figures}["idle_cars"] == 0
    assert view.over_time.empty
