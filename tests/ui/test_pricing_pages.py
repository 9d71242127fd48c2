"""The rule editor, the promotions page and the walk-in's promotion code, through AppTest on their own database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from db.models import LoyaltyTier, UserRole
from db.session import make_engine, session_scope
from services import customers, pricing_rules, promotions
from services.actors import Actor
from services.pricing_rules import RuleInput
from services.promotions import PromotionInput
from tests import factories as f
from tests.conftest import recreate_database
from tests.db_helpers import scalar
from tests.ui.page_helpers import clear_caches, point_app_at, signed_in

KEY = "8t9s83BB4gZrz8HlbtH7FQ9vyQBHIHi50iNKgjItCmM="
ALWAYS = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
SETUP = Actor(None, "setup", UserRole.ADMIN)
LONDON = ZoneInfo("Europe/London")


@pytest.fixture(scope="module")
def page_db(database_url):
    url = database_url.set(database=f"{database_url.database}_priceui")
    recreate_database(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    with pytest.MonkeyPatch.context() as patch, session_scope(engine) as session:
        patch.setenv("FLEETDESK_ENCRYPTION_KEYS", KEY)
        economy = f.vehicle_type(session, code="economy", name="Economy", base_daily_rate=Decimal("30.00"))
        airport = f.location(session, lat=51.47, lon=-0.45, code="PAIR", name="Price Airport", kind="airport",
                             operating_hours=ALWAYS)
        f.vehicle(session, economy, airport, license_plate="PR21 AAA", daily_rate=Decimal("30.00"),
                  last_service_at=now, last_service_km=12_000)
        customers.create_customer(session, SETUP, email="polly.promo@example.test", first_name="Polly",
                                  last_name="Promo", date_of_birth=date(1985, 6, 1),
                                  licence_number="PROMO850601XX9AB", licence_country="GB",
                                  licence_expiry=now.date() + timedelta(days=900))
        promotions.create_promotion(session, SETUP, PromotionInput(
            code="DESK20", discount_kind="percent", discount_value=Decimal("20"), currency="GBP",
            valid_from=now - timedelta(days=10), valid_until=now + timedelta(days=60), max_redemptions=5))
        promotions.create_promotion(session, SETUP, PromotionInput(
            code="LONGONLY", discount_kind="fixed", discount_value=Decimal("10"), currency="GBP",
            valid_from=now - timedelta(days=10), valid_until=now + timedelta(days=60), min_days=10))
        session.add(LoyaltyTier(code="gold", name="Gold", rank=1, discount_pct=Decimal("10")))
        f.customer(session, email="lou.loyal@example.test")
        f.location(session, code="PCTY", name="Price City")
        pricing_rules.create_rule(session, SETUP, RuleInput(name="Airport uplift", location_id=airport.id,
                                                            daily_rate_modifier=Decimal("1.10"), priority=60))
    engine.dispose()
    yield url
    with psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def page_env(page_db, monkeypatch):
    point_app_at(monkeypatch, page_db, FLEETDESK_ENCRYPTION_KEYS=KEY)
    yield
    clear_caches()


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r} among {[b.label for b in at.button]}"
    return matches[0]


def submit(at: AppTest, label: str) -> AppTest:
    return button(at, label).click().run()


def texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


@pytest.mark.parametrize("page, title", [("pricing_rules.py", "Pricing rules"), ("promotions.py", "Promotions")])
def test_the_pricing_pages_render_for_an_analyst_and_are_refused_to_a_desk_agent(page, title):
    at = signed_in("pricing_analyst", page)
    assert not at.exception, at.exception
    assert at.title[0].value == title and not at.error
    refused = signed_in("desk_agent", page)
    assert not refused.exception
    assert any("ask an admin if you need access" in e for e in texts(refused, "error"))


def test_an_analyst_adds_a_rule_sees_an_equal_priority_overlap_flagged_and_a_bad_rule_explained(page_db):
    at = signed_in("pricing_analyst", "pricing_rules.py")
    assert "Airport uplift" in list(at.dataframe[0].value["name"])
    at.text_input(key="new-rule-name").input("Weekend economy")
    economy = scalar(page_db, "SELECT id FROM vehicle_types WHERE code = 'economy'")
    at.selectbox(key="new-rule-vehicle_type").select(economy)
    at.number_input(key="new-rule-modifier").set_value(1.2)
    at.number_input(key="new-rule-priority").set_value(60)  # the priority of "Airport uplift": they can meet
    at = submit(at, "Add rule")
    assert not at.exception, at.exception
    assert any("Rule “Weekend economy” added" in s for s in texts(at, "success"))
    assert scalar(page_db, "SELECT daily_rate_modifier FROM pricing_rules WHERE name = 'Weekend economy'") == \
        Decimal("1.2000")
    assert any("“Airport uplift” and “Weekend economy” both have priority 60" in w for w in texts(at, "warning"))

    at.text_input(key="new-rule-name").input("Backwards")
    at.date_input(key="new-rule-start").set_value(date(2031, 5, 2))
    at.date_input(key="new-rule-end").set_value(date(2031, 5, 1))
    at = submit(at, "Add rule")
    assert any("The rule was not saved" in e and "swap them" in e for e in texts(at, "error"))
    assert at.text_input(key="new-rule-name").value == "Backwards"  # nothing typed is lost
    assert scalar(page_db, "SELECT count(*) FROM pricing_rules WHERE name = 'Backwards'") == 0


def test_the_rule_editor_previews_a_price_with_the_rules_at_work():
    at = signed_in("pricing_analyst", "pricing_rules.py")
    receipt = at.table[0].value
    assert "Airport uplift" in list(receipt["Item"])
    assert any("Rules applied, in order: Airport uplift" in c for c in texts(at, "caption"))


def test_an_analyst_adds_a_promotion_and_a_bad_one_is_explained(page_db):
    at = signed_in("pricing_analyst", "promotions.py")
    assert {"DESK20", "LONGONLY"} <= set(at.dataframe[0].value["code"])
    at.text_input(key="new-promotion-code").input("summer15")
    at.number_input(key="new-promotion-value").set_value(15.0)
    at = submit(at, "Add promotion")
    assert not at.exception, at.exception
    assert any("Promotion SUMMER15 added" in s for s in texts(at, "success"))
    assert scalar(page_db, "SELECT discount_value FROM promotions WHERE code = 'SUMMER15'") == Decimal("15.00")

    at.text_input(key="new-promotion-code").input("TOOMUCH")
    at.number_input(key="new-promotion-value").set_value(150.0)
    at = submit(at, "Add promotion")
    assert any("A percentage discount is at most 100" in e for e in texts(at, "error"))
    assert scalar(page_db, "SELECT count(*) FROM promotions WHERE code = 'TOOMUCH'") == 0


def _to_the_quote(page_db) -> AppTest:
    at = signed_in("desk_agent", "walk_in.py",
                   state={"walkin_branch": scalar(page_db, "SELECT id FROM locations WHERE code = 'PAIR'")})
    start = (datetime.now(LONDON) + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0,
                                                                 tzinfo=None)
    at.datetime_input(key="walkin_pickup").set_value(start)
    at.datetime_input(key="walkin_dropoff").set_value(start + timedelta(days=3))
    at = submit(at, "Find free cars")
    at = at.selectbox(key="walkin_car_pick").select(
        scalar(page_db, "SELECT id FROM vehicles WHERE license_plate = 'PR21 AAA'")).run()
    at.text_input(key="walkin_customer_query").input("polly.promo@").run()
    at = submit(at, "Choose")
    return submit(at, "Continue")


def test_the_desk_takes_a_promotion_code_shows_it_on_the_quote_and_the_booking_redeems_it(page_db):
    at = _to_the_quote(page_db)
    assert not at.exception, at.exception
    # 3 days × £30 = £90, the airport rule +10% = £9
    assert list(at.table[0].value["Amount"]) == ["£90.00", "£9.00", "£99.00", "£16.50"]
    at.text_input(key="walkin_promo").input("longonly").run()
    assert any("needs a rental of at least 10 days" in e and "without the code" in e for e in texts(at, "error"))
    assert list(at.table[0].value["Amount"])[-2] == "£99.00"
    at.text_input(key="walkin_promo").input("desk20").run()
    assert not at.error
    receipt = at.table[0].value
    assert "Promotion DESK20 (20% off the rental)" in list(receipt["Item"])
    assert list(receipt["Amount"]) == ["£90.00", "£9.00", "-£19.80", "£79.20", "£13.20"]
    at.radio(key="walkin_payment").set_value("cash")
    at = submit(at, "Confirm booking")
    assert not at.exception, at.exception
    booking = at.session_state["walkin_booking_id"]
    assert scalar(page_db, "SELECT total_price FROM bookings WHERE id = :b", b=booking) == Decimal("79.20")
    assert scalar(page_db, "SELECT p.code FROM promotion_redemptions r JOIN promotions p ON p.id = r.promotion_id "
                           "WHERE r.booking_id = :b", b=booking) == "DESK20"
    assert scalar(page_db, "SELECT redemptions_count FROM promotions WHERE code = 'DESK20'") == 1


def test_an_analyst_sets_a_branch_vat_rate_and_puts_a_customer_in_a_loyalty_tier(page_db):
    at = signed_in("pricing_analyst", "pricing_rules.py")
    at.selectbox(key="vat-branch").select(scalar(page_db, "SELECT id FROM locations WHERE code = 'PCTY'"))
    at.number_input(key="vat-percent").set_value(17.5)
    at = submit(at, "Set VAT rate")
    assert any("VAT at PCTY · Price City set to 17.50%" in s for s in texts(at, "success"))
    assert scalar(page_db, "SELECT vat_rate FROM locations WHERE code = 'PCTY'") == Decimal("0.1750")

    at = signed_in("pricing_analyst", "promotions.py")
    at.text_input(key="loyalty-email").input("nobody@example.test")
    at.selectbox(key="loyalty-tier").select("gold")
    at = submit(at, "Set tier")
    assert any("There is no customer with the email nobody@example.test" in e for e in texts(at, "error"))
    at.text_input(key="loyalty-email").input("lou.loyal@example.test")
    at = submit(at, "Set tier")
    assert any("is now in Gold (10%)" in s for s in texts(at, "success"))
    assert scalar(page_db, "SELECT loyalty_tier FROM users WHERE email = 'lou.loyal@example.test'") == "gold"
