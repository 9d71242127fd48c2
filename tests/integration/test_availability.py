"""The availability search against a brute-force oracle, each of its rules, and every bad input it refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from db.config import turnaround_minutes
from db.models import BookingStatus, VehicleStatus
from services.availability import (
    AvailabilityQuery,
    check_opening_hours,
    find_available,
    free_counts,
    is_available,
    unavailable_reason,
)
from services.branches import is_open
from services.errors import InvalidInput, NotFound
from tests import factories as f
from tests.availability_world import (
    HOURS,
    NOW,
    ORIGIN_LAT,
    ORIGIN_LON,
    build_world,
    distance_m,
    expect,
    expected_free_counts,
    placement,
    world_specs,
)

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def at(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


# --- against the oracle ---------------------------------------------------------------------------------------------

query_specs = st.fixed_dictionaries({
    "pickup_q": st.integers(0, 4 * 24 * 12),  # quarter-hours from NOW, up to 12 days ahead
    "length_q": st.integers(1, 4 * 24 * 6),
    "where": st.sampled_from(["branch", "point"]),
    "branch": st.integers(0, 3),
    "dropoff": st.none() | st.integers(0, 3),
    "dlat": st.floats(-0.06, 0.06), "dlon": st.floats(-0.06, 0.06),
    "radius_km": st.sampled_from([0.5, 3, 10, 30, 80]),
    "types": st.sampled_from([(), (), (0,), (1,), (0, 1)]),
    "limit": st.sampled_from([1, 2, 3, 50]),
})


def _query(world, spec: dict) -> AvailabilityQuery:
    ids = sorted(world.branches)
    pickup = NOW + timedelta(minutes=15 * spec["pickup_q"])
    common = dict(
        dropoff_location_id=ids[spec["dropoff"] % len(ids)] if spec["dropoff"] is not None else None,
        vehicle_types=tuple(world.type_codes[i] for i in spec["types"]), limit=spec["limit"],
    )
    dropoff = pickup + timedelta(minutes=15 * spec["length_q"])
    if spec["where"] == "branch":
        return AvailabilityQuery(pickup, dropoff, pickup_location_id=ids[spec["branch"] % len(ids)], **common)
    # near a branch, and off the branches' 0.01° grid so that no point is exactly between two of them
    near = world.branches[ids[spec["branch"] % len(ids)]]
    return AvailabilityQuery(pickup, dropoff, lat=near.lat + 0.0037 + spec["dlat"], lon=near.lon + 0.0041 + spec["dlon"],
                             radius_km=spec["radius_km"], **common)


def _on_the_edge(world, query) -> bool:
    """A branch within a metre of the radius: PostGIS and the oracle may round it to different sides."""
    return query.around_point and any(
        abs(distance_m(query.lat, query.lon, b.lat, b.lon) - query.radius_km * 1000) < 1.0
        for b in world.branches.values())


def _check_against_oracle(session, world, query) -> None:
    expected = expect(world, query, turnaround_minutes())
    event("refused" if expected.error else "nothing free" if not expected.ids else
          f"{'around a point' if query.around_point else 'at a branch'}: cars found{', more' if expected.more else ''}")
    if expected.error:
        with pytest.raises(InvalidInput, match=expected.error):
            find_available(session, query, now=NOW)
        return
    answer = find_available(session, query, now=NOW)
    got = tuple(v.id for v in answer.vehicles)
    if expected.near_tie:
        if not expected.more:
            assert set(got) == set(expected.ids)
        return
    assert got == expected.ids, (query, expected)
    assert answer.more == expected.more
    for vehicle, metres in zip(answer.vehicles, expected.distances_m, strict=True):
        assert vehicle.distance_km == pytest.approx(metres / 1000, abs=0.002)
    assert {c.location_id for c in answer.closed_branches} == set(expected.closed_ids)
    days = -(-(query.dropoff_at - query.pickup_at) // timedelta(days=1))
    for vehicle in answer.vehicles:
        assert vehicle.total_price == vehicle.daily_rate * days
        assert vehicle.vehicle_type in (query.vehicle_types or world.type_codes)


@PROPERTY
@given(spec=world_specs(), queries=st.lists(query_specs, min_size=1, max_size=4))
def test_the_search_finds_exactly_the_cars_the_rules_allow(session, spec, queries):
    savepoint = session.begin_nested()
    try:
        world = build_world(session, spec)
        for query_spec in queries:
            query = _query(world, query_spec)
            if not _on_the_edge(world, query):
                _check_against_oracle(session, world, query)
    finally:
        savepoint.rollback()


@PROPERTY
@given(spec=world_specs(), pickup_q=st.integers(0, 4 * 24 * 12), length_q=st.integers(1, 4 * 24 * 6),
       pickup_branch=st.integers(0, 3), dropoff_branch=st.integers(0, 3))
def test_one_car_check_and_the_counts_agree_with_the_oracle(session, spec, pickup_q, length_q, pickup_branch,
                                                            dropoff_branch):
    savepoint = session.begin_nested()
    try:
        world = build_world(session, spec)
        ids = sorted(world.branches)
        start, end = ids[pickup_branch % len(ids)], ids[dropoff_branch % len(ids)]
        pickup = NOW + timedelta(minutes=15 * pickup_q)
        dropoff = pickup + timedelta(minutes=15 * length_q)
        turnaround = turnaround_minutes()
        for car in world.cars.values():
            placed = placement(world, car, pickup, dropoff, turnaround)
            allowed = placed is not None and placed[0] == start and placed[1] in (None, end)
            assert is_available(session, car.id, start, end, pickup, dropoff) == allowed, car
            reason = unavailable_reason(session, car.id, start, end, pickup, dropoff)
            assert (reason is None) == allowed and (reason is None or reason.startswith("TS"))
        counts = free_counts(session, pickup, dropoff, location_ids=ids, type_codes=world.type_codes, now=NOW)
        got = {(row.location_id, row.vehicle_type): row.free for row in counts.itertuples()}
        assert got == expected_free_counts(world, pickup, dropoff, turnaround)
    finally:
        savepoint.rollback()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spans=st.lists(st.tuples(st.integers(0, 24 * 60), st.integers(0, 24 * 60)), max_size=3),
       day=st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
       minute_of_week=st.integers(0, 7 * 24 * 60 - 1), second=st.integers(0, 59),
       zone=st.sampled_from(["Europe/London", "Asia/Kolkata", "America/St_Johns", "UTC"]))
def test_opening_hours_in_sql_agree_with_is_open(session, spans, day, minute_of_week, second, zone):
    hours = {day: [[f"{a // 60:02d}:{a % 60:02d}", f"{b // 60:02d}:{b % 60:02d}"] for a, b in spans],
             "wed": [["09:00", "17:00"]]}
    moment = datetime(2030, 6, 3, tzinfo=ZoneInfo(zone)) + timedelta(minutes=minute_of_week, seconds=second)
    in_sql = session.execute(text("""
        SELECT fd_opening_minutes(CAST(:hours AS jsonb)) @> fd_minute_of_week(:at, :zone)
    """), {"hours": json.dumps(hours), "at": moment, "zone": zone}).scalar_one()
    assert in_sql == is_open(hours, moment.astimezone(ZoneInfo(zone)))


# --- each rule --------------------------------------------------------------------------------------------------------

@pytest.fixture
def town(session):
    """Two branches 10 km apart in London's time zone, open 07:00–21:00, one car type, a driver."""
    north = f.location(session, lat=ORIGIN_LAT + 0.09, lon=ORIGIN_LON, name="North Depot")
    south = f.location(session, lat=ORIGIN_LAT, lon=ORIGIN_LON, name="South Depot")
    return {"north": north, "south": south, "type": f.vehicle_type(session, code="compact"),
            "driver": f.customer(session)}


def _ids(answer) -> list[int]:
    return [v.id for v in answer.vehicles]


def _at_branch(branch, pickup, dropoff, **extra) -> AvailabilityQuery:
    return AvailabilityQuery(pickup, dropoff, pickup_location_id=branch.id, **extra)


def test_a_free_car_at_the_branch_is_found_with_its_price(session, town):
    car = f.vehicle(session, town["type"], town["south"], daily_rate=Decimal("42.50"))
    answer = find_available(session, _at_branch(town["south"], at(2), at(2 + 24 * 3 + 1)), now=NOW)
    assert _ids(answer) == [car.id]
    found = answer.vehicles[0]
    assert (found.distance_km, found.daily_rate, found.total_price) == (0.0, Decimal("42.50"), Decimal("170.00"))
    assert answer.rental_days == 4  # three days and an hour is four days
    assert (found.license_plate, found.location_id, found.currency) == (car.license_plate, town["south"].id, "GBP")


def test_the_turnaround_after_a_booking_keeps_the_car_until_it_ends(session, town):
    car = f.vehicle(session, town["type"], town["south"])
    f.booking(session, car, town["driver"], at(2), at(8), turnaround_minutes=60)
    south = town["south"]
    assert _ids(find_available(session, _at_branch(south, at(8.5), at(11)), now=NOW)) == []
    assert _ids(find_available(session, _at_branch(south, at(9), at(11)), now=NOW)) == [car.id]


def test_our_own_turnaround_must_end_before_the_next_booking(session, town):
    car = f.vehicle(session, town["type"], town["south"])
    f.booking(session, car, town["driver"], at(24), at(30))
    south = town["south"]
    assert turnaround_minutes() == 60
    assert _ids(find_available(session, _at_branch(south, at(2), at(23.5)), now=NOW)) == []
    assert _ids(find_available(session, _at_branch(south, at(2), at(23)), now=NOW)) == [car.id]


def test_maintenance_blocks_take_the_car_and_finished_ones_do_not(session, town):
    car = f.vehicle(session, town["type"], town["south"])
    block = f.maintenance(session, car, at(5), at(9))
    query = _at_branch(town["south"], at(2), at(6))
    assert _ids(find_available(session, query, now=NOW)) == []
    block.status = "completed"
    session.flush()
    assert _ids(find_available(session, query, now=NOW)) == [car.id]


def test_cancelled_and_completed_bookings_do_not_take_the_car(session, town):
    car = f.vehicle(session, town["type"], town["south"])
    booking = f.booking(session, car, town["driver"], at(2), at(30))
    query = _at_branch(town["south"], at(3), at(8))
    assert _ids(find_available(session, query, now=NOW)) == []
    booking.status = BookingStatus.CANCELLED
    session.flush()
    assert _ids(find_available(session, query, now=NOW)) == [car.id]


def test_a_one_way_booking_moves_the_car_to_its_drop_off_branch(session, town):
    car = f.vehicle(session, town["type"], town["south"])
    f.booking(session, car, town["driver"], at(2), at(10), dropoff_location_id=town["north"].id)
    assert _ids(find_available(session, _at_branch(town["south"], at(30), at(34)), now=NOW)) == []
    assert _ids(find_available(session, _at_branch(town["north"], at(30), at(34)), now=NOW)) == [car.id]
    # before that booking starts it is still at the south branch
    assert _ids(find_available(session, _at_branch(town["south"], at(0.25), at(0.75)), now=NOW)) == [car.id]


def test_a_one_way_rental_may_not_strand_a_car_its_next_customer_expects_elsewhere(session, town):
    car = f.vehicle(session, town["type"], town["south"])
    f.booking(session, car, town["driver"], at(48), at(60))  # picks up at the south branch
    one_way = _at_branch(town["south"], at(2), at(24), dropoff_location_id=town["north"].id)
    assert _ids(find_available(session, one_way, now=NOW)) == []
    assert "next booking" in unavailable_reason(session, car.id, town["south"].id, town["north"].id, at(2), at(24))
    round_trip = _at_branch(town["south"], at(2), at(24))
    assert _ids(find_available(session, round_trip, now=NOW)) == [car.id]


def test_a_car_out_on_a_rental_is_found_where_that_rental_ends(session, town):
    car = f.vehicle(session, town["type"], None, status=VehicleStatus.RENTED)
    f.booking(session, car, town["driver"], at(-30), at(6), status=BookingStatus.PICKED_UP,
              pickup_location_id=town["north"].id, dropoff_location_id=town["south"].id)
    assert _ids(find_available(session, _at_branch(town["south"], at(3), at(5)), now=NOW)) == []
    assert _ids(find_available(session, _at_branch(town["south"], at(7), at(9)), now=NOW)) == [car.id]
    assert _ids(find_available(session, _at_branch(town["north"], at(7), at(9)), now=NOW)) == []


def test_a_rented_car_with_no_booking_bringing_it_back_is_never_found(session, town):
    car = f.vehicle(session, town["type"], None, status=VehicleStatus.RENTED)
    for branch in (town["north"], town["south"]):
        assert _ids(find_available(session, _at_branch(branch, at(7), at(9)), now=NOW)) == []
    assert "out on a rental" in unavailable_reason(session, car.id, town["south"].id, town["south"].id, at(7), at(9))


def test_retired_and_moving_cars_are_never_available(session, town):
    retired = f.vehicle(session, town["type"], town["south"], status=VehicleStatus.RETIRED)
    moving = f.vehicle(session, town["type"], town["south"], status=VehicleStatus.IN_TRANSIT)
    in_workshop = f.vehicle(session, town["type"], town["south"], status=VehicleStatus.MAINTENANCE)
    answer = find_available(session, _at_branch(town["south"], at(2), at(5)), now=NOW)
    assert _ids(answer) == [in_workshop.id]  # a car in maintenance is taken only by its blocks
    assert "retired" in unavailable_reason(session, retired.id, town["south"].id, town["south"].id, at(2), at(5))
    assert "moved" in unavailable_reason(session, moving.id, town["south"].id, town["south"].id, at(2), at(5))


def test_changes_to_cars_and_bookings_show_at_once(session, town):
    car = f.vehicle(session, town["type"], town["south"], daily_rate=Decimal("40.00"))
    south, north = town["south"], town["north"]
    booking = f.booking(session, car, town["driver"], at(2), at(6))
    booking.dropoff_location_id = north.id  # the customer will now return it to the north branch
    session.flush()
    assert _ids(find_available(session, _at_branch(north, at(8), at(9)), now=NOW)) == [car.id]
    booking.status = BookingStatus.CANCELLED
    car.current_location_id = north.id  # driven over by a member of staff
    car.daily_rate = Decimal("55.00")
    session.flush()
    answer = find_available(session, _at_branch(north, at(3), at(4)), now=NOW)
    assert [(v.id, v.total_price) for v in answer.vehicles] == [(car.id, Decimal("55.00"))]
    assert _ids(find_available(session, _at_branch(south, at(3), at(4)), now=NOW)) == []
    car.status = VehicleStatus.RETIRED
    session.flush()
    assert _ids(find_available(session, _at_branch(north, at(3), at(4)), now=NOW)) == []


def test_a_branch_closed_at_pick_up_says_when_it_opens(session, town):
    gatwick = f.location(session, name="Gatwick North", operating_hours=HOURS["day"] | {"sun": [["05:00", "23:00"]]})
    sunday_3am = datetime(2030, 6, 9, 3, 0, tzinfo=ZoneInfo("Europe/London"))
    with pytest.raises(InvalidInput) as refused:
        find_available(session, _at_branch(gatwick, sunday_3am, sunday_3am + timedelta(days=1, hours=6)), now=NOW)
    assert str(refused.value).startswith("Gatwick North is closed at 03:00 on Sunday 9 June (the pick-up); "
                                         "it opens at 05:00.")


def test_a_branch_closed_at_drop_off_says_when_it_opens_next(session, town):
    city = f.location(session, name="Guildford Town Centre", operating_hours=HOURS["city"])
    friday_9 = datetime(2030, 6, 7, 9, 0, tzinfo=ZoneInfo("Europe/London"))
    saturday_15 = datetime(2030, 6, 8, 15, 0, tzinfo=ZoneInfo("Europe/London"))
    with pytest.raises(InvalidInput, match="closed at 15:00 on Saturday 8 June .the drop-off.; it opens at 08:00 "
                                           "on Monday 10 June"):
        find_available(session, _at_branch(city, friday_9, saturday_15), now=NOW)
    with pytest.raises(InvalidInput, match="Guildford Town Centre is closed"):
        check_opening_hours(session, city.id, city.id, friday_9, saturday_15)
    check_opening_hours(session, city.id, city.id, friday_9, friday_9 + timedelta(hours=3))


def test_hours_are_read_on_the_branch_s_own_clock(session, town):
    tokyo = f.location(session, name="Tokyo Station", timezone="Asia/Tokyo", operating_hours=HOURS["day"])
    car = f.vehicle(session, town["type"], tokyo)
    ten_am_tokyo = datetime(2030, 6, 4, 1, 0, tzinfo=UTC)
    assert _ids(find_available(session, _at_branch(tokyo, ten_am_tokyo, ten_am_tokyo + timedelta(hours=5)),
                               now=NOW)) == [car.id]
    with pytest.raises(InvalidInput, match="closed at 04:00"):
        find_available(session, _at_branch(tokyo, ten_am_tokyo - timedelta(hours=6), ten_am_tokyo), now=NOW)


def test_around_a_point_the_nearest_cars_come_first_with_their_distance(session, town):
    north, south = town["north"], town["south"]
    far = f.location(session, lat=ORIGIN_LAT + 0.3, lon=ORIGIN_LON)
    cheap_south = f.vehicle(session, town["type"], south, daily_rate=Decimal("30.00"))
    dear_south = f.vehicle(session, town["type"], south, daily_rate=Decimal("50.00"))
    at_north = f.vehicle(session, town["type"], north, daily_rate=Decimal("20.00"))
    f.vehicle(session, town["type"], far)
    query = AvailabilityQuery(at(2), at(5), lat=ORIGIN_LAT + 0.01, lon=ORIGIN_LON, radius_km=20)
    answer = find_available(session, query, now=NOW)
    assert _ids(answer) == [cheap_south.id, dear_south.id, at_north.id]
    assert [v.distance_km for v in answer.vehicles] == pytest.approx([1.112, 1.112, 8.896], abs=0.002)
    assert answer.closed_branches == () and not answer.more
    two = find_available(session, AvailabilityQuery(at(2), at(5), lat=ORIGIN_LAT + 0.01, lon=ORIGIN_LON,
                                                    radius_km=20, limit=2), now=NOW)
    assert _ids(two) == [cheap_south.id, dear_south.id] and two.more


def test_around_a_point_closed_branches_are_skipped_and_listed(session, town):
    night = f.location(session, lat=ORIGIN_LAT + 0.02, lon=ORIGIN_LON, name="Night Owl", operating_hours=HOURS["24h"])
    city = f.location(session, lat=ORIGIN_LAT + 0.01, lon=ORIGIN_LON, name="Office Hours",
                      operating_hours=HOURS["city"])
    owl = f.vehicle(session, town["type"], night)
    f.vehicle(session, town["type"], city)
    three_am = datetime(2030, 6, 4, 3, 0, tzinfo=ZoneInfo("Europe/London"))
    answer = find_available(session, AvailabilityQuery(three_am, three_am + timedelta(days=1, hours=9), lat=ORIGIN_LAT,
                                                       lon=ORIGIN_LON, radius_km=5), now=NOW)
    assert _ids(answer) == [owl.id]
    assert [(c.name, c.distance_km) for c in answer.closed_branches] == [("South Depot", 0.0),
                                                                         ("Office Hours", 1.112)]
    assert answer.closed_branches[1].reason == "closed at 03:00 on Tuesday 4 June (the pick-up); it opens at 08:00"


def test_an_empty_answer_says_why(session, town):
    far_point = AvailabilityQuery(at(2), at(5), lat=ORIGIN_LAT - 1, lon=ORIGIN_LON, radius_km=10)
    answer = find_available(session, far_point, now=NOW)
    assert answer.vehicles == () and "the nearest" in answer.hint and "Widen the radius" in answer.hint
    nothing_free = find_available(session, _at_branch(town["south"], at(2), at(5)), now=NOW)
    assert nothing_free.hint.startswith("No car is free at South Depot")


def test_only_the_types_asked_for_are_found(session, town):
    van_type = f.vehicle_type(session, code="van")
    car = f.vehicle(session, town["type"], town["south"])
    van = f.vehicle(session, van_type, town["south"])
    south = town["south"]
    assert _ids(find_available(session, _at_branch(south, at(2), at(5), vehicle_types=("van",)), now=NOW)) == [van.id]
    assert _ids(find_available(session, _at_branch(south, at(2), at(5), vehicle_types=("compact",)),
                               now=NOW)) == [car.id]
    both = find_available(session, _at_branch(south, at(2), at(5), vehicle_types=("van", "compact")), now=NOW)
    assert sorted(_ids(both)) == sorted([car.id, van.id])


def test_free_counts_are_per_branch_and_type_with_zeros(session, town):
    f.vehicle(session, town["type"], town["south"])
    f.vehicle(session, town["type"], town["south"])
    counts = free_counts(session, at(2), at(5), location_ids=[town["south"].id, town["north"].id],
                         type_codes=["compact"], now=NOW)
    assert dict(zip(counts["location_id"], counts["free"], strict=True)) == {town["south"].id: 2, town["north"].id: 0}
    assert list(counts.columns) == ["location_id", "code", "name", "lat", "lon", "vehicle_type", "free"]


def test_a_booking_can_recheck_its_car_leaving_itself_out_and_locking_it(session, town):
    car = f.vehicle(session, town["type"], town["south"])
    booking = f.booking(session, car, town["driver"], at(2), at(6))
    south = town["south"].id
    assert not is_available(session, car.id, south, south, at(2), at(8))
    assert is_available(session, car.id, south, south, at(2), at(8), ignore_booking_id=booking.id, lock=True)
    assert "taken by booking" in unavailable_reason(session, car.id, south, south, at(5), at(8))


# --- bad input ------------------------------------------------------------------------------------------------------

def test_a_drop_off_before_the_pick_up_is_refused_naming_both():
    with pytest.raises(InvalidInput, match=r"The drop-off \(Mon 3 Jun 2030 09:00 UTC\) is before the pick-up "
                                           r"\(Mon 3 Jun 2030 10:00 UTC\); choose a drop-off after the pick-up"):
        AvailabilityQuery(at(2), at(1), pickup_location_id=1)
    with pytest.raises(InvalidInput, match="is the same as the pick-up"):
        AvailabilityQuery(at(2), at(2), pickup_location_id=1)


def test_times_without_a_time_zone_are_refused():
    with pytest.raises(InvalidInput, match="pick-up time 2030-06-03 10:00 has no time zone"):
        AvailabilityQuery(datetime(2030, 6, 3, 10), at(5), pickup_location_id=1)
    with pytest.raises(InvalidInput, match="drop-off time .* has no time zone"):
        AvailabilityQuery(at(2), datetime(2030, 6, 3, 15), pickup_location_id=1)
    with pytest.raises(InvalidInput, match="must be a date and time"):
        AvailabilityQuery("2030-06-03", at(5), pickup_location_id=1)


def test_a_pick_up_in_the_past_is_refused(session, town):
    with pytest.raises(InvalidInput, match=r"The pick-up \(Mon 3 Jun 2030 07:00 UTC\) is in the past"):
        find_available(session, _at_branch(town["south"], at(-1), at(5)), now=NOW)
    find_available(session, _at_branch(town["south"], at(-0.2), at(5)), now=NOW)  # "now", typed a minute ago


def test_a_rental_longer_than_the_maximum_is_refused(session, town, monkeypatch):
    query = _at_branch(town["south"], at(2), at(2 + 24 * 91))
    with pytest.raises(InvalidInput, match="A rental of 91 days is longer than the 90-day maximum"):
        find_available(session, query, now=NOW)
    monkeypatch.setenv("FLEETDESK_MAX_RENTAL_DAYS", "120")
    find_available(session, query, now=NOW)
    monkeypatch.setenv("FLEETDESK_MAX_RENTAL_DAYS", "7")
    with pytest.raises(InvalidInput, match="7-day maximum"):
        free_counts(session, at(2), at(2 + 24 * 8), now=NOW)


@pytest.mark.parametrize(("radius", "message"), [
    (0, "The radius must be more than 0 km, not 0 km"),
    (-5, "The radius must be more than 0 km, not -5 km"),
    (500.5, "A radius of 500.5 km is more than the 500 km a search can cover"),
    (float("nan"), "The radius must be a number of kilometres"),
])
def test_a_radius_of_nothing_or_too_much_is_refused(radius, message):
    with pytest.raises(InvalidInput, match=message):
        AvailabilityQuery(at(2), at(5), lat=51.5, lon=-0.1, radius_km=radius)


@pytest.mark.parametrize(("lat", "lon", "message"), [
    (91, 0, "Latitude 91 is off the globe; it must be between -90 and 90 degrees"),
    (-90.5, 0, "Latitude -90.5 is off the globe"),
    (0, 180.01, "Longitude 180.01 is off the globe; it must be between -180 and 180 degrees"),
    (float("inf"), 0, "Latitude must be a number of degrees"),
    (51.5, None, r"The point has no longitude \(lon\); give both lat and lon"),
    (None, -0.1, r"The point has no latitude \(lat\)"),
])
def test_a_point_off_the_globe_or_half_given_is_refused(lat, lon, message):
    with pytest.raises(InvalidInput, match=message):
        AvailabilityQuery(at(2), at(5), lat=lat, lon=lon)


def test_a_branch_and_a_point_together_or_neither_are_refused():
    with pytest.raises(InvalidInput, match="either at a pick-up branch or around a point"):
        AvailabilityQuery(at(2), at(5), pickup_location_id=1, lat=51.5, lon=-0.1)
    with pytest.raises(InvalidInput, match="Say where to search"):
        AvailabilityQuery(at(2), at(5))


@pytest.mark.parametrize("limit", [0, 501, 2.5, True])
def test_a_limit_out_of_range_is_refused(limit):
    with pytest.raises(InvalidInput, match="The limit must be a whole number from 1 to 500"):
        AvailabilityQuery(at(2), at(5), pickup_location_id=1, limit=limit)


def test_an_unknown_branch_is_not_found(session, town):
    missing = session.execute(text("SELECT coalesce(max(id), 0) + 1000 FROM locations")).scalar_one()
    with pytest.raises(NotFound, match=f"There is no branch with id {missing}; pick a branch from the list"):
        find_available(session, AvailabilityQuery(at(2), at(5), pickup_location_id=missing), now=NOW)
    with pytest.raises(NotFound, match=f"no branch with id {missing}"):
        find_available(session, _at_branch(town["south"], at(2), at(5), dropoff_location_id=missing), now=NOW)
    with pytest.raises(NotFound, match=f"no branch with id {missing}"):
        free_counts(session, at(2), at(5), location_ids=[missing], now=NOW)


def test_an_unknown_vehicle_type_is_refused_naming_the_known_ones(session, town):
    with pytest.raises(InvalidInput, match="Unknown vehicle type 'limousine'; use one of .*compact"):
        find_available(session, _at_branch(town["south"], at(2), at(5), vehicle_types=("limousine",)), now=NOW)
    with pytest.raises(InvalidInput, match="A vehicle type is blank"):
        _at_branch(town["south"], at(2), at(5), vehicle_types=(" ",))


def test_an_unknown_vehicle_is_not_found(session, town):
    with pytest.raises(NotFound, match="There is no vehicle with id 0"):
        is_available(session, 0, town["south"].id, town["south"].id, at(2), at(5))


def test_the_maximum_rental_setting_must_make_sense(monkeypatch):
    from services.availability import max_rental_days

    monkeypatch.setenv("FLEETDESK_MAX_RENTAL_DAYS", "a month")
    with pytest.raises(ValueError, match="FLEETDESK_MAX_RENTAL_DAYS must be whole days"):
        max_rental_days()


def test_is_open_matches_what_the_search_uses_for_a_plain_week():
    assert is_open(HOURS["city"], datetime(2030, 6, 8, 12, 59)) and not is_open(HOURS["city"], datetime(2030, 6, 8, 13))
