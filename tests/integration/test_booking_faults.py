"""Bookings when things go wrong: the database going away mid-transaction, and the same request twice at once.

These need committed transactions seen from other connections, so they run on a committed database of their own.
A connection is "lost" by `pg_terminate_backend` from another connection, exactly what a server restart, a
failover or a network cut does to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from db.models import UserRole
from db.session import make_engine, session_scope
from services import bookings
from services.actors import Actor
from services.customers import create_customer
from tests import factories as f
from tests.conftest import recreate_database

KEY = "8t9s83BB4gZrz8HlbtH7FQ9vyQBHIHi50iNKgjItCmM="
AGENT = Actor(None, "desk@example.test", UserRole.DESK_AGENT, "Desk")
PICKUP = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in London
DROPOFF = PICKUP + timedelta(days=3)
NOW = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def faults_url(database_url) -> URL:
    url = database_url.set(database=f"{database_url.database}_faults")
    recreate_database(url)
    return url


@pytest.fixture
def engine(faults_url):
    engine = make_engine(faults_url, pool_size=4, max_overflow=0)
    yield engine
    engine.dispose()


@pytest.fixture
def desk(engine, monkeypatch):
    """A branch, a car and an eligible driver, committed."""
    monkeypatch.setenv("FLEETDESK_ENCRYPTION_KEYS", KEY)
    with session_scope(engine) as session:
        vtype = f.vehicle_type(session, min_driver_age=21)
        branch = f.location(session)
        car = f.vehicle(session, vtype, branch)
        driver = create_customer(session, AGENT, email=f"driver{car.id}@example.test", first_name="Dana",
                                 last_name="Driver", date_of_birth=date(1990, 1, 1),
                                 licence_number=f"FAULT{car.id:06d}DD9AB", licence_country="GB",
                                 licence_expiry=date(2035, 1, 1))
        return {"car": car.id, "branch": branch.id, "driver": driver.id}


def request(desk, **overrides):
    values = dict(customer_id=desk["driver"], vehicle_id=desk["car"], pickup_location_id=desk["branch"],
                  dropoff_location_id=desk["branch"], pickup_at=PICKUP, dropoff_at=DROPOFF, now=NOW)
    values.update(overrides)
    return values


def admin_connection(url: URL) -> psycopg.Connection:
    return psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                           dbname=url.database, autocommit=True)


def footprint(url: URL, car_id: int) -> dict[str, int]:
    """What a booking attempt writes: the booking, its hold on the car, its audit entry, its outbox event."""
    with admin_connection(url) as conn:
        return {
            "bookings": conn.execute("SELECT count(*) FROM bookings WHERE vehicle_id = %s", (car_id,)).fetchone()[0],
            "occupancy": conn.execute("SELECT count(*) FROM vehicle_occupancy WHERE vehicle_id = %s",
                                      (car_id,)).fetchone()[0],
            "audit": conn.execute("SELECT count(*) FROM audit_log WHERE entity_type = 'booking'").fetchone()[0],
            "events": conn.execute("SELECT count(*) FROM domain_events WHERE aggregate_type = 'booking'"
                                   ).fetchone()[0],
            "free_periods": conn.execute("SELECT count(*) FROM vehicle_free_periods WHERE vehicle_id = %s",
                                         (car_id,)).fetchone()[0],
        }


@pytest.fixture
def connection_killer(engine, faults_url) -> Iterator[list[str]]:
    """Kills this engine's connection from another one just before the first statement that starts with one of
    the prefixes the test appends ("COMMIT" for the commit itself); records what it killed."""
    armed: list[str] = []
    killed: list[str] = []

    def kill(conn) -> None:
        pid = conn.connection.driver_connection.info.backend_pid
        with admin_connection(faults_url) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()[0]

    def before_statement(conn, cursor, statement, parameters, context, executemany):
        for prefix in armed:
            if statement.lstrip().startswith(prefix):
                armed.clear()
                killed.append(prefix)
                kill(conn)

    def before_commit(conn):
        if "COMMIT" in armed:
            armed.clear()
            killed.append("COMMIT")
            kill(conn)

    event.listen(engine, "before_cursor_execute", before_statement)
    event.listen(engine, "commit", before_commit)
    yield armed, killed
    event.remove(engine, "before_cursor_execute", before_statement)
    event.remove(engine, "commit", before_commit)


@pytest.mark.parametrize("dies_before", [
    "SELECT c.role",  # the customer, car and branches are being read and the car locked for the check
    "SELECT (o.booking)",  # the car is locked and checked; the booking, its audit entry and event are next
    "COMMIT",  # create_booking returned (everything written); the caller's unit of work is committing
])
def test_the_database_going_away_mid_booking_leaves_nothing_half_written(engine, faults_url, desk,
                                                                         connection_killer, dies_before):
    armed, killed = connection_killer
    before = footprint(faults_url, desk["car"])
    armed.append(dies_before)
    with pytest.raises(OperationalError) as lost, session_scope(engine) as session:
        bookings.create_booking(session, AGENT, **request(desk))
    assert killed == [dies_before], "the connection was killed where the test meant"
    message = str(lost.value.orig)
    assert "terminating connection due to administrator command" in message \
        or "server closed the connection unexpectedly" in message \
        or "consuming input failed" in message, message

    assert footprint(faults_url, desk["car"]) == before, "a booking, hold, audit entry or event of the lost " \
                                                         "transaction was left behind"
    # the pool replaced the dead connection, and the car is still free: the same request now goes through
    with session_scope(engine) as session:
        made = bookings.create_booking(session, AGENT, **request(desk))
    assert made.created
    after = footprint(faults_url, desk["car"])
    assert (after["bookings"], after["occupancy"], after["audit"], after["events"]) == \
           (before["bookings"] + 1, before["occupancy"] + 1, before["audit"] + 1, before["events"] + 1)


def test_the_same_request_twice_at_once_makes_one_booking(engine, faults_url, desk):
    """A double click on "Book" from two desks (or a retried API call) with one idempotency key: the first holds
    the car while the second waits for it, then the second is handed the first one's booking."""
    results: dict[str, bookings.BookingResult | BaseException] = {}
    second_pid: list[int] = []
    first_booked = threading.Event()
    may_commit = threading.Event()

    def first() -> None:
        try:
            with session_scope(engine) as session:
                results["first"] = bookings.create_booking(session, AGENT, idempotency_key="desk-7-click",
                                                           **request(desk))
                first_booked.set()
                assert may_commit.wait(30), "the second request never started waiting"
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            results["first"] = error
            first_booked.set()

    def second() -> None:
        try:
            with session_scope(engine) as session:
                second_pid.append(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
                results["second"] = bookings.create_booking(session, AGENT, idempotency_key="desk-7-click",
                                                            **request(desk))
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            results["second"] = error

    threads = [threading.Thread(target=first, daemon=True), threading.Thread(target=second, daemon=True)]
    threads[0].start()
    assert first_booked.wait(30)
    threads[1].start()
    try:
        assert _waits_for_a_lock(faults_url, second_pid), "the second request did not wait for the first"
    finally:
        may_commit.set()
        for thread in threads:
            thread.join(30)
    assert not any(thread.is_alive() for thread in threads)

    made, again = results["first"], results["second"]
    assert isinstance(made, bookings.BookingResult), made
    assert isinstance(again, bookings.BookingResult), again
    assert (made.created, again.created) == (True, False)
    assert made.booking.id == again.booking.id
    with admin_connection(faults_url) as conn:
        rows = conn.execute("SELECT id FROM bookings WHERE idempotency_key = 'desk-7-click'").fetchall()
        assert rows == [(made.booking.id,)]
        assert conn.execute("SELECT count(*) FROM audit_log WHERE entity_type = 'booking' AND entity_id = %s",
                            (str(made.booking.id),)).fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM domain_events WHERE aggregate_type = 'booking' "
                            "AND aggregate_id = %s", (str(made.booking.id),)).fetchone()[0] == 1


def test_confirming_one_booking_from_two_desks_at_once_confirms_it_once(engine, faults_url, desk):
    with session_scope(engine) as session:
        booking_id = bookings.create_booking(session, AGENT, **request(desk)).booking.id  # held until 2030
    start_line = threading.Barrier(2)
    outcomes: list[object] = []

    def confirm() -> None:
        start_line.wait()
        try:
            with session_scope(engine) as session:
                outcomes.append(bookings.confirm_booking(session, AGENT, booking_id).status.value)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcomes.append(error)

    threads = [threading.Thread(target=confirm, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes == ["confirmed", "confirmed"]
    with admin_connection(faults_url) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log WHERE entity_id = %s AND action = 'booking.confirmed'",
                            (str(booking_id),)).fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM domain_events WHERE aggregate_id = %s "
                            "AND event_type = 'booking.confirmed'", (str(booking_id),)).fetchone()[0] == 1


def _waits_for_a_lock(url: URL, pid: list[int], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    with admin_connection(url) as conn:
        while time.monotonic() < deadline:
            if pid and conn.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                                    (pid[0],)).fetchone() == (True,):
                return True
            time.sleep(0.02)
    return False
