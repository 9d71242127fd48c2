"""The Availability page, rendered by AppTest against the committed demo company."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import streamlit as st
from sqlalchemy import text

from db.session import make_engine, session_scope
from services.availability import AvailabilityQuery, find_available
from services.pricing import quote

PAGE = "../pages/availability.py"
LONDON = ZoneInfo("Europe/London")
KEY = "availability-"


@pytest.fixture(autouse=True)
def fresh_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def demo(app_env):
    engine = make_engine(app_env)
    try:
        with session_scope(engine) as session:
            branches = {row.code: row for row in session.execute(text(
                "SELECT id, code, name, ST_Y(geog::geometry) AS lat, ST_X(geog::geometry) AS lon FROM locations"))}
        yield {"engine": engine, "branches": branches}
    finally:
        engine.dispose()


def _day(days_ahead: int) -> date:
    return datetime.now(LONDON).date() + timedelta(days=days_ahead)


def _when(at, day: date, clock: time) -> None:
    at.date_input(key=KEY + "pickup-day").set_value(day)
    at.time_input(key=KEY + "pickup-time").set_value(clock)


def _service(demo, **query) -> list[str]:
    with session_scope(demo["engine"]) as session:
        return [v.license_plate for v in find_available(session, AvailabilityQuery(**query)).vehicles]


def test_a_desk_agent_finds_the_free_cars_at_a_branch_with_their_prices(app_as, demo):
    at = app_as("desk_agent", PAGE).run()
    assert not at.exception
    assert at.title[0].value == "Availability"
    heathrow = demo["branches"]["B001"]
    pickup, dropoff = _day(2), _day(5)
    at.selectbox(key=KEY + "branch").set_value(heathrow.id)
    _when(at, pickup, time(10, 0))
    at.date_input(key=KEY + "dropoff-day").set_value(dropoff)
    at.time_input(key=KEY + "dropoff-time").set_value(time(10, 0)).run()
    assert not at.exception and not at.error
    table = at.dataframe[-1].value
    expected = _service(demo, pickup_at=datetime.combine(pickup, time(10), LONDON),
                        dropoff_at=datetime.combine(dropoff, time(10), LONDON), pickup_location_id=heathrow.id)
    assert list(table["license_plate"]) == expected and expected
    # The price shown is what the desk would charge (the one quote service: rules, published multipliers), per car.
    with session_scope(demo["engine"]) as session:
        ids = dict(session.execute(text("SELECT license_plate, id FROM vehicles")).all())
        quoted = [quote(session, ids[plate], heathrow.id, heathrow.id, datetime.combine(pickup, time(10), LONDON),
                        datetime.combine(dropoff, time(10), LONDON)).total for plate in table["license_plate"]]
    assert list(table["total_price"]) == [float(q) for q in quoted]
    assert "Times are local to B001" in at.caption[0].value and "Europe/London" in at.caption[0].value
    assert len(at.get("deck_gl_json_chart")) == 1


def test_around_a_point_the_nearest_come_first_and_types_narrow_it(app_as, demo):
    at = app_as("fleet_manager", PAGE).run()
    at.segmented_control(key=KEY + "where").set_value("Around a point").run()
    kings_cross = demo["branches"]["B002"]
    at.number_input(key=KEY + "lat").set_value(round(kings_cross.lat, 4))
    at.number_input(key=KEY + "lon").set_value(round(kings_cross.lon, 4))
    at.number_input(key=KEY + "radius").set_value(40.0)
    _when(at, _day(3), time(11, 0))
    at.date_input(key=KEY + "dropoff-day").set_value(_day(4))
    at.time_input(key=KEY + "dropoff-time").set_value(time(11, 0))
    at.multiselect(key=KEY + "types").set_value(["compact"]).run()
    assert not at.exception and not at.error
    table = at.dataframe[-1].value
    assert len(table) > 0 and set(table["vehicle_type"]) == {"compact"}
    assert list(table["distance_km"]) == sorted(table["distance_km"])


def test_a_drop_off_before_the_pick_up_is_shown_as_an_error(app_as):
    at = app_as("desk_agent", PAGE).run()
    _when(at, _day(4), time(10, 0))
    at.date_input(key=KEY + "dropoff-day").set_value(_day(2)).run()
    assert not at.exception
    assert "is before the pick-up" in at.error[0].value
    assert not at.dataframe


def test_a_branch_closed_at_the_pick_up_says_when_it_opens(app_as, demo):
    at = app_as("desk_agent", PAGE).run()
    guildford = demo["branches"]["B004"]  # a town-centre branch, closed on Sundays
    sunday = _day(1) + timedelta(days=(6 - _day(1).weekday()) % 7)
    at.selectbox(key=KEY + "branch").set_value(guildford.id)
    _when(at, sunday, time(10, 0))
    at.date_input(key=KEY + "dropoff-day").set_value(sunday + timedelta(days=1)).run()
    assert not at.exception
    assert at.error[0].value.startswith("Guildford Town Centre is closed at 10:00 on Sunday")
    assert "it opens at 08:00 on Monday" in at.error[0].value


def test_a_pick_up_in_the_past_is_refused(app_as):
    at = app_as("pricing_analyst", PAGE).run()
    _when(at, _day(-2), time(10, 0))
    at.run()
    assert not at.exception
    assert "is in the past" in at.error[0].value


def test_clicking_a_branch_on_the_map_searches_there(app_as, demo):
    at = app_as("desk_agent", PAGE).run()
    gatwick = demo["branches"]["B003"]
    at.session_state[KEY + "map"] = {"selection": {"indices": {"search-branches": [2]},
                                                   "objects": {"search-branches": [{"location_id": gatwick.id}]}}}
    at.run()
    assert not at.exception
    assert at.selectbox(key=KEY + "branch").value == gatwick.id


def test_the_search_never_needs_a_now_in_the_past(app_as):
    """The default pick-up is in the future whatever the time of day the test runs."""
    at = app_as("desk_agent", PAGE).run()
    day, clock = at.date_input(key=KEY + "pickup-day").value, at.time_input(key=KEY + "pickup-time").value
    assert datetime.combine(day, clock, LONDON) > datetime.now(UTC)
