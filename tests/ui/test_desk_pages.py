"""The desk pages — walk-in, returns, bookings — through Streamlit's AppTest, on a committed database of their own.

The clock is the real one: the airport branch is open around the clock, so "now" is always a time it can hand over
a car; the city branch is closed on Sundays, for the closed-branch message.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from db.models import UserRole
from db.session import make_engine, session_scope
from services import bookings, customers
from services.actors import Actor
from tests import factories as f
from tests.conftest import recreate_database
from tests.db_helpers import scalar
from tests.payments_fixtures import localstripe  # noqa: F401 - a fixture
from tests.ui.page_helpers import clear_caches, point_app_at, signed_in

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")
KEY = "8t9s83BB4gZrz8HlbtH7FQ9vyQBHIHi50iNKgjItCmM="
LONDON = ZoneInfo("Europe/London")
CITY_HOURS = {**{d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}, "sat": [["09:00", "13:00"]],
              "sun": []}
ALWAYS = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
SETUP = Actor(None, "setup", UserRole.DESK_AGENT)


@pytest.fixture(scope="module")
def page_db(database_url):
    url = database_url.set(database=f"{database_url.database}_deskui")
    recreate_database(url)
    engine = make_engine(url)
    today = datetime.now(UTC).date()
    with pytest.MonkeyPatch.context() as patch, session_scope(engine) as session:
        patch.setenv("FLEETDESK_ENCRYPTION_KEYS", KEY)
        economy = f.vehicle_type(session, code="economy", name="Economy", rank=1, min_driver_age=21)
        premium = f.vehicle_type(session, code="premium", name="Premium", rank=2, min_driver_age=27,
                                 base_daily_rate=Decimal("90.00"))
        airport = f.location(session, lat=51.47, lon=-0.45, code="DAIR", name="Desk Airport", kind="airport",
                             operating_hours=ALWAYS)
        city = f.location(session, code="DCTY", name="Desk City", operating_hours=CITY_HOURS)
        for plate, make, model, rate in (("DK21 AAA", "Ford", "Fiesta", "30.00"), ("DK21 BBB", "Kia", "Picanto",
                                                                                      "32.00"),
                                         ("DK21 RTD", "Fiat", "Panda", "28.00"), ("DK21 MNT", "Seat", "Ibiza",
                                                                                   "29.00")):
            f.vehicle(session, economy, airport, license_plate=plate, make=make, model=model,
                      daily_rate=Decimal(rate), odometer_km=20_000, fuel_level=100,
                      last_service_at=datetime.now(UTC) - timedelta(days=10), last_service_km=19_000)
        f.vehicle(session, premium, airport, license_plate="DK21 PRM", make="BMW", model="5 Series",
                  daily_rate=Decimal("90.00"), last_service_at=datetime.now(UTC), last_service_km=12_000)
        f.vehicle(session, economy, city, license_plate="DK21 CTY", make="Toyota", model="Aygo",
                  last_service_at=datetime.now(UTC), last_service_km=12_000)
        returning = f.vehicle(session, economy, airport, license_plate="DK21 RET", make="Skoda", model="Fabia",
                              daily_rate=Decimal("40.00"), odometer_km=30_000, fuel_level=100,
                              last_service_at=datetime.now(UTC), last_service_km=29_000)
        for email, first, last, born, expires in (
                ("ada.adult@example.test", "Ada", "Adult", date(1985, 6, 1), today + timedelta(days=900)),
                ("tom.teen@example.test", "Tom", "Teen", today.replace(year=today.year - 19), today + timedelta(
                    days=900)),
                ("eve.expiring@example.test", "Eve", "Expiring", date(1980, 1, 1), today + timedelta(days=1)),
                ("rex.returns@example.test", "Rex", "Returns", date(1975, 3, 3), today + timedelta(days=900))):
            customers.create_customer(session, SETUP, email=email, first_name=first, last_name=last,
                                      date_of_birth=born, licence_number=f"{last.upper()[:5]}{born:%y%m%d}XX9AB",
                                      licence_country="GB", licence_expiry=expires)
        rex = session.execute(text("SELECT id FROM users WHERE email = 'rex.returns@example.test'")).scalar_one()
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        out = bookings.create_booking(session, SETUP, customer_id=rex, vehicle_id=returning.id,
                                      pickup_location_id=airport.id, dropoff_location_id=airport.id,
                                      pickup_at=now, dropoff_at=now + timedelta(days=2)).booking
        bookings.confirm_booking(session, SETUP, out.id, payment="due")
        bookings.check_out(session, SETUP, out.id, odometer_km=30_000, fuel_level=100, licence_checked=True)
        out.reference = "FDRETURN"  # a reference the test can type
        ahead = now + timedelta(days=20)
        later = bookings.create_booking(session, SETUP, customer_id=rex, vehicle_id=returning.id,
                                        pickup_location_id=airport.id, dropoff_location_id=airport.id,
                                        pickup_at=ahead, dropoff_at=ahead + timedelta(days=1)).booking
        bookings.confirm_booking(session, SETUP, later.id, payment="paid")
        later.reference = "FDCANCEL"
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




def open_page(role: str, page: str, **state) -> AppTest:
    return signed_in(role, page, state=state)


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r} among {[b.label for b in at.button]}"
    return matches[0]


def texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def branch_id(url, code: str) -> int:
    return scalar(url, "SELECT id FROM locations WHERE code = :c", c=code)


def vehicle_id(url, plate: str) -> int:
    return scalar(url, "SELECT id FROM vehicles WHERE license_plate = :p", p=plate)


def local_now() -> datetime:
    return datetime.now(LONDON).replace(tzinfo=None, second=0, microsecond=0)


# --- who may open them ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("page, title", [("walk_in.py", "Walk-in desk"), ("returns.py", "Returns"),
                                         ("bookings.py", "Bookings")])
def test_each_desk_page_renders_for_a_desk_agent_and_is_refused_to_a_pricing_analyst(page_db, page, title):
    at = open_page("desk_agent", page)
    assert not at.exception, at.exception
    assert at.title[0].value == title and not at.error
    refused = open_page("pricing_analyst", page)
    assert not refused.exception
    assert any("ask an admin if you need access" in e for e in texts(refused, "error"))
    assert not refused.dataframe and not refused.metric and not refused.text_input


# --- the walk-in ----------------------------------------------------------------------------------------------------

def walk_in(url, **state) -> AppTest:
    return open_page("desk_agent", "walk_in.py", walkin_branch=branch_id(url, "DAIR"), **state)


def search(at: AppTest, *, pickup: datetime | None = None, dropoff: datetime | None = None) -> AppTest:
    if pickup is not None:
        at.datetime_input(key="walkin_pickup").set_value(pickup)
    if dropoff is not None:
        at.datetime_input(key="walkin_dropoff").set_value(dropoff)
    return button(at, "Find free cars").click().run()


def pick_car(url, at: AppTest, plate: str) -> AppTest:
    return at.selectbox(key="walkin_car_pick").select(vehicle_id(url, plate)).run()


def choose_driver(at: AppTest, email: str) -> AppTest:
    at.text_input(key="walkin_customer_query").input(email).run()
    return button(at, "Choose").click().run()


def test_a_whole_walk_in_from_the_search_to_the_keys(page_db):
    at = walk_in(page_db)
    assert at.datetime_input(key="walkin_pickup").value > local_now()  # now + 15 minutes, to the quarter hour
    assert at.datetime_input(key="walkin_pickup").value.minute % 15 == 0
    at = search(at)
    assert not at.exception and not at.error
    cars = at.dataframe[0].value
    assert list(cars["plate"])[:2] == ["DK21 RTD", "DK21 MNT"]  # cheapest first
    assert "DK21 CTY" not in set(cars["plate"])  # at another branch
    at = pick_car(page_db, at, "DK21 AAA")
    assert any("DK21 AAA" in m for m in texts(at, "markdown"))

    # a new customer, with a mistake first: every field error beside its field, nothing typed lost
    at.text_input(key="walkin_new_first_name").input("Wanda")
    at.text_input(key="walkin_new_last_name").input("Walkin")
    at.text_input(key="walkin_new_email").input("not-an-email")
    at.date_input(key="walkin_new_date_of_birth").set_value(date(1990, 4, 2))
    at.text_input(key="walkin_new_licence_number").input("WALKI904020WW9AB")
    at.text_input(key="walkin_new_licence_country").input("GB")
    at.date_input(key="walkin_new_licence_expiry").set_value(datetime.now(UTC).date() + timedelta(days=800))
    at = button(at, "Add customer").click().run()
    assert any("email" in e.lower() for e in texts(at, "error"))
    assert at.text_input(key="walkin_new_first_name").value == "Wanda"
    at.text_input(key="walkin_new_email").input("wanda.walkin@example.test")
    at = button(at, "Add customer").click().run()
    assert not at.exception
    assert any("Added customer" in s for s in texts(at, "success"))
    assert any("Wanda Walkin" in m and "eligible" in m for m in texts(at, "markdown"))

    # extras, each with its price for these 3 days
    labels = {c.key: c.label for c in at.checkbox}
    assert "£24.00" in labels["walkin_extra_child_seat"] and "£45.00" in labels["walkin_extra_cdw"]
    at.checkbox(key="walkin_extra_child_seat").check()
    at.checkbox(key="walkin_extra_cdw").check()
    at = button(at, "Continue").click().run()
    receipt = at.table[0].value
    assert list(receipt["Amount"]) == ["£90.00", "£24.00", "£45.00", "£159.00", "£26.50"]
    at.radio(key="walkin_payment").set_value("cash")

    # confirm — then again, as a second click whose first answer was lost would: still one booking
    at = button(at, "Confirm booking").click().run()
    assert not at.exception, at.exception
    reference = at.metric[0].value
    assert reference.startswith("FD") and any(f"Booking {reference} confirmed" in s for s in texts(at, "success"))
    booking_id = at.session_state["walkin_booking_id"]
    del at.session_state["walkin_booking_id"]
    at = at.run()
    at = button(at, "Confirm booking").click().run()
    assert at.session_state["walkin_booking_id"] == booking_id
    assert scalar(page_db, "SELECT count(*) FROM bookings b JOIN users u ON u.id = b.user_id "
                           "WHERE u.email = 'wanda.walkin@example.test'") == 1
    assert scalar(page_db, "SELECT status || '/' || payment_status FROM bookings WHERE id = :b",
                  b=booking_id) == "confirmed/paid"
    assert at.download_button[0].label == "Rental agreement (PDF)"
    assert not [b for b in at.button if b.label == "Edit"]  # booked: the steps above are locked

    # the keys: the odometer comes from the car; no tick, no keys
    assert at.number_input(key="walkin_out_odometer").value == 20_000
    at = button(at, "Hand over the keys").click().run()
    assert any("Check the driver's licence in person" in e for e in texts(at, "error"))
    at.checkbox(key="walkin_out_licence").check()
    at = button(at, "Hand over the keys").click().run()
    assert any("handed over" in s for s in texts(at, "success"))
    assert scalar(page_db, "SELECT status FROM bookings WHERE id = :b", b=booking_id) == "picked_up"
    at = button(at, "Next customer").click().run()
    assert at.session_state["walkin_branch"] == branch_id(page_db, "DAIR")  # the branch stays
    assert "walkin_booking_id" not in at.session_state
    assert [s.value for s in at.subheader][:1] == ["1 · Where, when and what"]


def test_a_customer_who_leaves_without_a_car_is_recorded_as_lost_demand(page_db):
    at = search(walk_in(page_db))
    assert at.dataframe[0].value is not None  # cars were found, but the customer found them too dear
    assert at.radio(key="walkin-ta-reason").value == "price"
    at.selectbox(key="walkin-ta-type").select("economy")
    at.text_input(key="walkin-ta-note").input("wanted it for under £25 a day")
    at = button(at, "Record the lost rental").click().run()
    assert not at.exception and not at.error
    assert any("It counts on the Analytics page as turned away" in s for s in texts(at, "success"))
    row = scalar(page_db, """SELECT l.code || '/' || t.code || '/' || a.reason || '/' || a.note FROM turned_away a
                             JOIN locations l ON l.id = a.location_id JOIN vehicle_types t ON t.id = a.vehicle_type_id
                             ORDER BY a.id DESC LIMIT 1""")
    assert row == "DAIR/economy/price/wanted it for under £25 a day"
    at = at.run()
    assert any("recorded as turned away" in c for c in texts(at, "caption"))  # once per customer


def test_going_back_to_a_step_keeps_everything_typed(page_db):
    at = walk_in(page_db)
    start = local_now().replace(minute=0) + timedelta(days=2)
    at = search(at, pickup=start, dropoff=start + timedelta(days=1))
    at = pick_car(page_db, at, "DK21 BBB")
    at.text_input(key="walkin_customer_query").input("ada.adult@").run()
    at = button(at, "Edit").click().run()  # back to the search
    assert at.datetime_input(key="walkin_pickup").value == start
    assert at.datetime_input(key="walkin_dropoff").value == start + timedelta(days=1)
    at.datetime_input(key="walkin_dropoff").set_value(start + timedelta(days=9))
    at = button(at, "Keep the last search").click().run()  # changed my mind: as it was, car and all
    assert at.session_state["walkin_dropoff"] == start + timedelta(days=1)
    assert any("DK21 BBB" in m and "£32.00 for 1 day" in m for m in texts(at, "markdown"))
    at = button(at, "Edit").click().run()
    at = search(at, dropoff=start + timedelta(days=2))  # a day longer: the same car stays, re-priced
    assert any("DK21 BBB" in m and "£64.00 for 2 days" in m for m in texts(at, "markdown"))
    assert at.text_input(key="walkin_customer_query").value == "ada.adult@"
    at.switch_page("../pages/bookings.py").run()  # another page, and back: still all there
    at.switch_page("../pages/walk_in.py").run()
    assert at.text_input(key="walkin_customer_query").value == "ada.adult@"
    assert any("DK21 BBB" in m for m in texts(at, "markdown"))
    at = button(at, "Start over").click().run()
    assert "walkin_search" not in at.session_state and "walkin_customer_query" not in at.session_state
    assert at.session_state["walkin_branch"] == branch_id(page_db, "DAIR")


def test_bad_times_are_explained_at_the_search(page_db):
    at = walk_in(page_db)
    yesterday = local_now() - timedelta(days=1)
    at = search(at, pickup=yesterday, dropoff=yesterday + timedelta(days=3))
    assert any("is in the past" in e for e in texts(at, "error"))
    soon = local_now() + timedelta(days=1)
    at = search(at, pickup=soon, dropoff=soon - timedelta(hours=5))
    assert any("choose a drop-off after the pick-up" in e for e in texts(at, "error"))
    sunday = (local_now() + timedelta(days=7 - local_now().weekday() + 6)).replace(hour=11, minute=0)
    at.selectbox(key="walkin_branch").select(branch_id(page_db, "DCTY"))
    at = search(at, pickup=sunday, dropoff=sunday + timedelta(days=1, hours=-1))
    closed = [e for e in texts(at, "error") if "Desk City is closed at 11:00 on Sunday" in e]
    assert closed and "it opens at 08:00 on Monday" in closed[0], texts(at, "error")
    assert not at.exception and "walkin_search" not in at.session_state


@pytest.mark.parametrize("email, plate, reason", [
    ("tom.teen@example.test", "DK21 BBB", "You must be at least 21 to drive our Economy cars; you will be 19"),
    ("eve.expiring@example.test", "DK21 BBB", "Your driving licence expires on"),
    ("ada.adult@example.test", "DK21 PRM", None),
])
def test_a_driver_who_may_not_take_the_car_is_stopped_with_the_reasons(page_db, email, plate, reason):
    at = search(walk_in(page_db))
    at = choose_driver(pick_car(page_db, at, plate), email)
    warnings = texts(at, "warning")
    if reason is None:  # Ada is 40-something: premium is fine
        assert not warnings and any(s.value == "4 · Extras" for s in at.subheader)
    else:
        assert any(reason in w for w in warnings), warnings
        assert not any(s.value.startswith("4 ·") for s in at.subheader)  # no way on to the extras


def test_a_car_retired_after_it_was_picked_is_refused_at_confirm_and_maintenance_at_the_keys(page_db):
    at = search(walk_in(page_db))
    at = choose_driver(pick_car(page_db, at, "DK21 RTD"), "ada.adult@example.test")
    at = button(at, "Continue").click().run()
    scalar(page_db, "UPDATE vehicles SET status = 'retired' WHERE license_plate = 'DK21 RTD' RETURNING id")
    at = button(at, "Confirm booking").click().run()
    assert any("DK21 RTD is retired; pick another car" in e for e in texts(at, "error"))
    assert "walkin_booking_id" not in at.session_state
    at = pick_car(page_db, _edit(at, 2), "DK21 MNT")  # the driver and the extras stay chosen
    at = button(at, "Confirm booking").click().run()
    assert at.metric and not at.error
    scalar(page_db, "UPDATE vehicles SET status = 'maintenance' WHERE license_plate = 'DK21 MNT' RETURNING id")
    at.checkbox(key="walkin_out_licence").check()
    at = button(at, "Hand over the keys").click().run()
    assert any(e.startswith("DK21 MNT is") and "not ready at the pick-up branch" in e
               for e in texts(at, "error")), texts(at, "error")


def _edit(at: AppTest, step: int) -> AppTest:
    return at.button(key=f"walkin-edit-{step}").click().run()


def test_a_search_around_the_branch_finds_cars_at_nearby_branches_and_books_there(page_db):
    at = open_page("desk_agent", "walk_in.py", walkin_branch=branch_id(page_db, "DCTY"))
    at.toggle(key="walkin_nearby").set_value(True)
    at.number_input(key="walkin_radius").set_value(40.0)
    at = search(at)
    assert not at.error, texts(at, "error")
    cars = at.dataframe[0].value
    at_airport = cars[cars["plate"] == "DK21 BBB"].iloc[0]
    assert at_airport["branch"] == "DAIR · Desk Airport" and 20 < at_airport["km"] < 30
    at = pick_car(page_db, at, "DK21 BBB")
    assert any("DK21 BBB" in m and "at Desk Airport" in m for m in texts(at, "markdown"))
    at = button(choose_driver(at, "ada.adult@example.test"), "Continue").click().run()
    at = button(at, "Confirm booking").click().run()
    assert scalar(page_db, "SELECT p.code || '>' || d.code FROM bookings b JOIN locations p ON p.id = "
                           "b.pickup_location_id JOIN locations d ON d.id = b.dropoff_location_id WHERE b.id = :b",
                  b=at.session_state["walkin_booking_id"]) == "DAIR>DAIR"


# --- returns --------------------------------------------------------------------------------------------------------

def test_a_return_by_plate_explains_the_charges_and_closes(page_db):
    at = open_page("desk_agent", "returns.py")
    at.text_input(key="returns_query").input("FDNOSUCH")
    at = button(at, "Find").click().run()
    assert any("No booking has the reference 'FDNOSUCH'" in e for e in texts(at, "error"))
    at.text_input(key="returns_query").input("dk21 ret")
    at = button(at, "Find").click().run()
    assert not at.exception and any("FDRETURN" in s.value for s in at.subheader)
    assert at.number_input(key="returns_odometer").value == 30_000
    at.slider(key="returns_fuel").set_value(75)
    at.number_input(key="returns_odometer").set_value(29_000)
    at = button(at, "Work out the charges").click().run()
    assert any("read it again" in e for e in texts(at, "error")), (texts(at, "error"), at.exception)
    at.number_input(key="returns_odometer").set_value(30_420)
    at = button(at, "Work out the charges").click().run()
    explained = " ".join(texts(at, "markdown"))
    assert "Fuel: 25% of a tank short, £22.50 including refuelling." in explained
    assert "Extra charges £22.50" in explained
    assert scalar(page_db, "SELECT status FROM bookings WHERE reference = 'FDRETURN'") == "picked_up"
    at = button(at, "Close the rental").click().run()
    assert any("FDRETURN completed" in s for s in texts(at, "success"))
    assert scalar(page_db, "SELECT status || ' ' || odometer_in_km || ' ' || fuel_charge FROM bookings "
                           "WHERE reference = 'FDRETURN'") == "completed 30420 22.50"
    assert any("Returned" in m for m in texts(at, "markdown"))  # the charges stay explained


# --- bookings -------------------------------------------------------------------------------------------------------

def test_bookings_are_found_opened_with_their_history_and_cancelled_with_a_reason(page_db):
    at = open_page("desk_agent", "bookings.py")
    at.date_input(key="bookings_dates").set_value(())
    at.text_input(key="bookings_reference").input("fdcan").run()
    assert list(at.dataframe[0].value["reference"]) == ["FDCANCEL"]
    at.multiselect(key="bookings_status").set_value(["completed"]).run()
    assert at.dataframe[0].value.empty
    booking_id = scalar(page_db, "SELECT id FROM bookings WHERE reference = 'FDCANCEL'")
    at.query_params["booking"] = str(booking_id)
    at = at.run()
    assert any(h.value.startswith("FDCANCEL · Rex Returns") for h in at.header)
    history = at.dataframe[1].value
    assert list(history["action"]) == ["Held", "Confirmed"]
    assert "Cancelling now: fee **£0.00**, refund due **£40.00**" in " ".join(texts(at, "markdown"))
    at = button(at, "Cancel booking FDCANCEL").click().run()
    assert any("Give a reason for the cancellation" in e for e in texts(at, "error"))
    at.text_input(key="bookings_cancel_reason").input("customer's flight was cancelled")
    at = button(at, "Cancel booking FDCANCEL").click().run()
    assert any("FDCANCEL cancelled: fee £0.00, refund due £40.00" in s for s in texts(at, "success"))
    assert list(at.dataframe[1].value["action"]) == ["Held", "Confirmed", "Cancelled"]
    at.query_params["booking"] = "nonsense"
    assert any("not a booking number" in w for w in texts(at.run(), "warning"))


def test_a_declined_card_keeps_the_hold_and_another_card_confirms_it(page_db, localstripe, monkeypatch):  # noqa: F811
    """The card path through a real Stripe-compatible server: confirmed only once a charge has succeeded."""
    monkeypatch.setenv("STRIPE_API_BASE", localstripe.api_base)
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_fleetdesk")
    at = walk_in(page_db)
    start = at.datetime_input(key="walkin_pickup").value + timedelta(days=21)  # clear of the other tests' rentals
    at = search(at, pickup=start, dropoff=start + timedelta(days=3))
    at = choose_driver(pick_car(page_db, at, "DK21 BBB"), "ada.adult@example.test")
    at = button(at, "Continue").click().run()
    at.radio(key="walkin_payment").set_value("card").run()
    at.selectbox(key="walkin_card").set_value("pm_card_chargeCustomerFail")
    at = button(at, "Confirm booking").click().run()
    assert any(e.startswith("The card was declined") and "is held" in e for e in texts(at, "error")), \
        texts(at, "error")
    assert "walkin_booking_id" not in at.session_state
    latest = ("SELECT max(b.id) FROM bookings b JOIN vehicles v ON v.id = b.vehicle_id "
              "WHERE v.license_plate = 'DK21 BBB'")
    booking_id = scalar(page_db, latest)
    state = "SELECT status || '/' || payment_status FROM bookings WHERE id = :b"
    assert scalar(page_db, state, b=booking_id).startswith("pending/")
    at.selectbox(key="walkin_card").set_value("pm_card_visa")
    at = button(at, "Confirm booking").click().run()
    assert not at.exception and at.metric, texts(at, "error")
    assert at.session_state["walkin_booking_id"] == booking_id
    assert scalar(page_db, state, b=booking_id) == "confirmed/paid"
    attempts = scalar(page_db, "SELECT string_agg(status::text, ',' ORDER BY id) FROM payments WHERE booking_id = :b",
                      b=booking_id)
    assert attempts == "failed,succeeded"
