"""Promotion codes through bookings: terms, limits, redemption once per booking — also when desks race for the last."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import select, text

from db.models import AuditEntry, Promotion, PromotionRedemption, UserRole
from db.session import make_engine, session_scope
from services import bookings, promotions
from services.actors import Actor, Forbidden
from services.customers import create_customer
from services.errors import Conflict, FleetdeskError, InvalidInput
from services.promotions import PromotionInput
from tests import factories as f
from tests.conftest import recreate_database

NOW = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)
PICKUP = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)
DROPOFF = PICKUP + timedelta(days=3)
AGENT = Actor(None, "desk@example.test", UserRole.DESK_AGENT, "Desk")
ANALYST = Actor(None, "pricing@example.test", UserRole.PRICING_ANALYST, "Pricing")
POLICY = f.desk_policy()
RACERS = 8


@pytest.fixture(autouse=True)
def turnaround(monkeypatch):
    monkeypatch.setenv("FLEETDESK_TURNAROUND_MINUTES", "60")


def _driver(session, n: int) -> int:
    return create_customer(session, AGENT, email=f"promo{n}@example.test", first_name="Pat", last_name=f"Promo{n}",
                           date_of_birth=date(1988, 1, 1), licence_number=f"PROMO{n:03d}88AB9CD",
                           licence_country="GB", licence_expiry=date(2036, 1, 1)).id


@pytest.fixture
def desk(session):
    vtype = f.vehicle_type(session, code="promo_t")
    branch = f.location(session)
    cars = [f.vehicle(session, vtype, branch, daily_rate=Decimal("50.00")) for _ in range(3)]
    return {"cars": cars, "branch": branch, "drivers": [_driver(session, n) for n in range(2)]}


def promotion(session, **overrides) -> Promotion:
    values = dict(code="SPRING10", discount_kind="percent", discount_value=Decimal("10"), currency="GBP",
                  valid_from=PICKUP - timedelta(days=30), valid_until=PICKUP + timedelta(days=30))
    values.update(overrides)
    return promotions.create_promotion(session, ANALYST, PromotionInput(**values))


def book(session, desk, car=0, driver=0, **overrides):
    values = dict(customer_id=desk["drivers"][driver], vehicle_id=desk["cars"][car].id,
                  pickup_location_id=desk["branch"].id, dropoff_location_id=desk["branch"].id, pickup_at=PICKUP,
                  dropoff_at=DROPOFF, now=NOW, policy=POLICY)
    values.update(overrides)
    return bookings.create_booking(session, AGENT, **values).booking


def test_a_booking_with_a_code_freezes_the_discount_and_counts_one_redemption(session, desk):
    promo = promotion(session)
    booking = book(session, desk, promo_code=" spring10 ")
    lines = {line["code"]: line["amount"] for line in booking.price_breakdown["lines"]}
    assert lines == {"base": "150.00", "promotion": "-15.00"}
    assert booking.total_price == Decimal("135.00")
    session.refresh(promo)
    assert promo.redemptions_count == 1
    redemption = session.scalars(select(PromotionRedemption).where(PromotionRedemption.booking_id == booking.id)).one()
    assert (redemption.promotion_id, redemption.user_id, redemption.discount) == (promo.id, desk["drivers"][0],
                                                                                  Decimal("15.00"))


def test_the_per_customer_limit_is_enforced_and_another_customer_may_still_use_it(session, desk):
    promotion(session, max_per_customer=1)
    book(session, desk, car=0, promo_code="SPRING10")
    with pytest.raises(InvalidInput, match="already used promotion SPRING10 1 time"):
        book(session, desk, car=1, promo_code="SPRING10")
    assert book(session, desk, car=1, driver=1, promo_code="SPRING10").total_price == Decimal("135.00")


@pytest.mark.parametrize(("terms", "refusal"), [
    (dict(min_days=5), "at least 5 days"),
    (dict(vehicle_type_codes=("other_t",)), None),  # refused by validation: unknown type
    (dict(valid_from=PICKUP + timedelta(days=1)), "Unknown or expired promotion code SPRING10"),
    (dict(active=False), "Unknown or expired"),
    (dict(max_redemptions=1), "fully used"),
])
def test_a_code_the_rental_does_not_qualify_for_is_refused_and_books_nothing(session, desk, terms, refusal):
    if refusal is None:
        with pytest.raises(InvalidInput, match="Unknown vehicle type other_t"):
            promotion(session, **terms)
        return
    promo = promotion(session, **terms)
    if "max_redemptions" in terms:
        book(session, desk, car=1, driver=1, promo_code="SPRING10")
    with pytest.raises(InvalidInput, match=refusal):
        book(session, desk, promo_code="SPRING10")
    assert session.execute(text("SELECT count(*) FROM bookings WHERE vehicle_id = :v"),
                           {"v": desk["cars"][0].id}).scalar_one() == 0
    session.refresh(promo)
    assert promo.redemptions_count == (1 if "max_redemptions" in terms else 0)


def test_changing_a_booking_reprices_its_promotion_and_gives_it_back_when_it_no_longer_qualifies(session, desk):
    promo = promotion(session, min_days=3)
    booking = book(session, desk, promo_code="SPRING10")
    longer = bookings.change_booking(session, AGENT, booking.id, dropoff_at=DROPOFF + timedelta(days=1), now=NOW)
    assert longer.total_price == Decimal("180.00")  # 4 days × 50 less 10%
    assert session.scalar(select(PromotionRedemption.discount).where(
        PromotionRedemption.booking_id == booking.id)) == Decimal("20.00")
    shorter = bookings.change_booking(session, AGENT, booking.id, dropoff_at=PICKUP + timedelta(days=2), now=NOW)
    assert shorter.total_price == Decimal("100.00")
    assert "promotion" not in shorter.price_breakdown
    session.refresh(promo)
    assert promo.redemptions_count == 0


def test_a_cancelled_booking_or_an_expired_hold_gives_its_redemption_back(session, desk):
    promo = promotion(session, max_redemptions=2)
    cancelled = book(session, desk, car=0, promo_code="SPRING10")
    held = book(session, desk, car=1, driver=1, promo_code="SPRING10")
    session.refresh(promo)
    assert promo.redemptions_count == 2
    bookings.cancel_booking(session, AGENT, cancelled.id, reason="plans changed", now=NOW, policy=POLICY)
    session.refresh(promo)
    assert promo.redemptions_count == 1
    assert bookings.expire_holds(session, now=held.hold_expires_at + timedelta(minutes=1)) >= 1
    session.refresh(promo)
    assert promo.redemptions_count == 0
    assert session.scalar(select(PromotionRedemption.id).where(
        PromotionRedemption.booking_id.in_([cancelled.id, held.id]))) is None
    assert book(session, desk, car=2, promo_code="SPRING10").total_price == Decimal("135.00")


def test_one_booking_redeems_at_most_once(session, desk):
    promo = promotion(session)
    booking = book(session, desk, promo_code="SPRING10")
    with pytest.raises(Conflict, match="already used a promotion"):
        promotions.redeem(session, promo.id, booking_id=booking.id, customer_id=desk["drivers"][0],
                          discount=Decimal("1.00"))


def test_promotions_are_edited_by_pricing_analysts_with_validation_and_audit(session, desk):
    with pytest.raises(Forbidden):
        promotions.create_promotion(session, AGENT, PromotionInput(
            code="X", discount_kind="fixed", discount_value=Decimal("5"), currency="GBP", valid_from=PICKUP,
            valid_until=DROPOFF))
    with pytest.raises(InvalidInput) as refused:
        promotion(session, code="no spaces!", discount_value=Decimal("150"), valid_until=PICKUP - timedelta(days=60),
                  max_redemptions=0)
    for part in ("The code is 1 to 32", "at most 100", "end after it starts", "total number of redemptions"):
        assert part in str(refused.value)
    promo = promotion(session, max_redemptions=10)
    book(session, desk, promo_code="SPRING10")
    book(session, desk, car=1, driver=1, promo_code="SPRING10")
    with pytest.raises(InvalidInput, match="redeemed 2 times; the total limit cannot be lower"):
        promotions.update_promotion(session, ANALYST, promo.id, PromotionInput(
            code="SPRING10", discount_kind="percent", discount_value=Decimal("10"), currency="GBP",
            valid_from=PICKUP - timedelta(days=30), valid_until=PICKUP + timedelta(days=30), max_redemptions=1))
    with pytest.raises(Conflict, match="already a promotion SPRING10"):
        promotion(session)
    assert session.scalar(select(AuditEntry.action).where(AuditEntry.entity_type == "promotion",
                                                          AuditEntry.entity_id == str(promo.id))) == "promotion.created"


# --- the race for the last redemption --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def race_world(database_url):
    """A committed database of its own: one branch, a car per desk, a driver per desk, a code with one use left."""
    url = database_url.set(database=f"{database_url.database}_promo")
    recreate_database(url)
    engine = make_engine(url)
    with session_scope(engine) as session:
        vtype = f.vehicle_type(session, code="race_t")
        branch = f.location(session)
        cars = [f.vehicle(session, vtype, branch).id for _ in range(RACERS)]
        drivers = [_driver(session, 100 + n) for n in range(RACERS)]
        promotion(session, code="LASTONE", max_redemptions=5)
        session.execute(text("UPDATE promotions SET redemptions_count = 4 WHERE code = 'LASTONE'"))
        branch_id = branch.id
    yield engine, branch_id, cars, drivers
    engine.dispose()
    with psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


def test_desks_racing_for_the_last_redemption_get_it_exactly_once(race_world):
    engine, branch, cars, drivers = race_world
    start = threading.Barrier(RACERS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def desk(n: int) -> None:
        start.wait()
        try:
            with session_scope(engine) as session:
                bookings.create_booking(session, AGENT, customer_id=drivers[n], vehicle_id=cars[n],
                                        pickup_location_id=branch, dropoff_location_id=branch, pickup_at=PICKUP,
                                        dropoff_at=DROPOFF, now=NOW, policy=POLICY, promo_code="LASTONE")
            outcome = "booked"
        except FleetdeskError as error:
            outcome = f"refused: {error}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=desk, args=(n,)) for n in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == RACERS, outcomes  # every desk got an answer a person can act on, none a traceback
    assert outcomes.count("booked") == 1, outcomes
    assert all("fully used" in outcome for outcome in outcomes if outcome != "booked"), outcomes
    with session_scope(engine) as session:
        promo = session.scalars(select(Promotion).where(Promotion.code == "LASTONE")).one()
        assert promo.redemptions_count == 5
        assert session.execute(text("SELECT count(*) FROM promotion_redemptions WHERE promotion_id = :p"),
                               {"p": promo.id}).scalar_one() == 1
        assert session.execute(text("SELECT count(*) FROM bookings")).scalar_one() == 1
