"""PostgreSQL itself refuses to let one car be in two places at once."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from db.models import BookingStatus
from tests import factories as f

T0 = datetime(2030, 5, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def car(session):
    return f.vehicle(session, f.vehicle_type(session), f.location(session))


@pytest.fixture
def driver(session):
    return f.customer(session)


def _violates_occupancy(exc: IntegrityError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "23P01" and "vehicle_occupancy_no_overlap" in str(exc.orig)


def test_two_overlapping_active_bookings_of_one_vehicle_are_rejected(session, car, driver):
    f.booking(session, car, driver, T0, T0 + timedelta(days=2))
    with pytest.raises(IntegrityError) as caught, session.begin_nested():
        f.booking(session, car, driver, T0 + timedelta(days=1), T0 + timedelta(days=3))
    assert _violates_occupancy(caught.value)


def test_the_turnaround_buffer_blocks_a_pickup_right_after_a_dropoff(session, car, driver):
    f.booking(session, car, driver, T0, T0 + timedelta(days=2), turnaround_minutes=60)
    with pytest.raises(IntegrityError) as caught, session.begin_nested():
        f.booking(session, car, driver, T0 + timedelta(days=2, minutes=30), T0 + timedelta(days=3))
    assert _violates_occupancy(caught.value)
    f.booking(session, car, driver, T0 + timedelta(days=2, minutes=60), T0 + timedelta(days=3))


def test_back_to_back_bookings_without_turnaround_are_allowed(session, car, driver):
    f.booking(session, car, driver, T0, T0 + timedelta(days=1), turnaround_minutes=0)
    f.booking(session, car, driver, T0 + timedelta(days=1), T0 + timedelta(days=2), turnaround_minutes=0)


def test_a_booking_overlapping_a_maintenance_block_is_rejected(session, car, driver):
    f.maintenance(session, car, T0, T0 + timedelta(days=1))
    with pytest.raises(IntegrityError) as caught, session.begin_nested():
        f.booking(session, car, driver, T0 + timedelta(hours=12), T0 + timedelta(days=2))
    assert _violates_occupancy(caught.value)


def test_a_maintenance_block_overlapping_a_booking_is_rejected(session, car, driver):
    f.booking(session, car, driver, T0, T0 + timedelta(days=2))
    with pytest.raises(IntegrityError) as caught, session.begin_nested():
        f.maintenance(session, car, T0 + timedelta(days=1), T0 + timedelta(days=3))
    assert _violates_occupancy(caught.value)


def test_cancelled_and_completed_bookings_free_the_car(session, car, driver):
    first = f.booking(session, car, driver, T0, T0 + timedelta(days=2))
    first.status = BookingStatus.CANCELLED
    session.flush()
    second = f.booking(session, car, driver, T0, T0 + timedelta(days=2))
    second.status = BookingStatus.COMPLETED
    session.flush()
    f.booking(session, car, driver, T0, T0 + timedelta(days=2))


def test_reactivating_a_cancelled_booking_into_a_clash_is_rejected(session, car, driver):
    first = f.booking(session, car, driver, T0, T0 + timedelta(days=2))
    first.status = BookingStatus.CANCELLED
    session.flush()
    f.booking(session, car, driver, T0, T0 + timedelta(days=2))
    first.status = BookingStatus.CONFIRMED
    with pytest.raises(IntegrityError) as caught, session.begin_nested():
        session.flush()
    assert _violates_occupancy(caught.value)


def test_moving_a_booking_onto_another_cars_period_is_rejected(session, car, driver):
    other = f.vehicle(session, f.vehicle_type(session), f.location(session))
    f.booking(session, other, driver, T0, T0 + timedelta(days=2))
    mine = f.booking(session, car, driver, T0, T0 + timedelta(days=2))
    mine.vehicle_id = other.id
    with pytest.raises(IntegrityError) as caught, session.begin_nested():
        session.flush()
    assert _violates_occupancy(caught.value)


def test_the_same_periods_on_different_cars_are_fine(session, car, driver):
    other = f.vehicle(session, f.vehicle_type(session), f.location(session))
    f.booking(session, car, driver, T0, T0 + timedelta(days=2))
    f.booking(session, other, driver, T0, T0 + timedelta(days=2))
    count = session.execute(text("SELECT count(*) FROM vehicle_occupancy WHERE vehicle_id IN (:a, :b)"),
                            {"a": car.id, "b": other.id}).scalar()
    assert count == 2


def test_a_raw_sql_insert_cannot_bypass_the_guard(session, car, driver):
    f.booking(session, car, driver, T0, T0 + timedelta(days=2))
    with pytest.raises(IntegrityError) as caught, session.begin_nested():
        session.execute(text(
            "INSERT INTO bookings (reference, user_id, vehicle_id, vehicle_type_id, pickup_location_id,"
            " dropoff_location_id, pickup_at, dropoff_at, total_price, currency, status, channel)"
            " VALUES ('RAW0001', :u, :v, :t, :l, :l, :a, :b, 10, 'GBP', 'confirmed', 'api')"),
            {"u": driver.id, "v": car.id, "t": car.vehicle_type_id, "l": car.current_location_id,
             "a": T0 + timedelta(hours=1), "b": T0 + timedelta(hours=5)})
    assert _violates_occupancy(caught.value)


def test_money_columns_are_numeric_never_float(session):
    rows = session.execute(text(
        "SELECT table_name, column_name, data_type, numeric_precision, numeric_scale"
        " FROM information_schema.columns WHERE table_schema = 'public'"
        " AND column_name ~ '(price|rate|amount|deposit)' AND table_name <> 'pricing_rules'"
        " AND data_type <> 'jsonb' AND column_name <> 'vat_rate'")).all()  # vat_rate is a fraction, not money
    assert rows, "expected money columns"
    for table, column, data_type, precision, scale in rows:
        assert (data_type, precision, scale) == ("numeric", 12, 2), f"{table}.{column} is {data_type}"
    floats = session.execute(text(
        "SELECT table_name || '.' || column_name FROM information_schema.columns WHERE table_schema = 'public'"
        " AND data_type IN ('real', 'double precision')")).scalars().all()
    assert floats == []
