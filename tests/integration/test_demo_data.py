"""The demo company: loaded by COPY to the size asked for, reproducible, idempotent, and believable."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import text

from data.company import build_branches, haversine_km
from data.demo import DemoSpec, load_demo
from data.identifiers import is_valid_vin, plate_age_identifier
from data.reference import places
from services.errors import Conflict
from tests import factories as f

NOW = datetime(2026, 7, 15, 9, 30, tzinfo=UTC)  # a Wednesday in the busy season
SMALL = DemoSpec(branches=5, vehicles=60, history_days=60, seed=11)
# Big enough per branch and class for the weekly pattern and the price response to stand out of the noise.
MEDIUM = DemoSpec(branches=4, vehicles=480, history_days=150, seed=5)
LOADED_TABLES = ("vehicle_types", "locations", "users", "vehicles", "bookings", "maintenance_blocks")
HOLDING = "('pending', 'confirmed', 'picked_up', 'completed')"  # bookings that had the car; others released it


def _scalar(session, sql: str, **params):
    return session.execute(text(sql), params).scalar()


def _count(session, table: str) -> int:
    return _scalar(session, f"SELECT count(*) FROM {table}")


def _digest(session) -> dict[str, str]:
    # Fernet ciphertexts carry a random IV, so the encrypted licence is left out; its keyed hash stays in.
    return {
        table: _scalar(session, "SELECT md5(string_agg((to_jsonb(t) - 'licence_number_encrypted')::text, '|' "
                                f"ORDER BY t.id)) FROM {table} t")
        for table in LOADED_TABLES
    }


@pytest.fixture
def small(session):
    load_demo(session, SMALL, now=NOW)
    return session


def test_the_company_is_loaded_to_the_size_asked_for(session):
    report = load_demo(session, SMALL, now=NOW)

    assert _count(session, "locations") == 5
    assert _count(session, "vehicles") == 60
    assert _count(session, "vehicle_types") == 6
    assert _count(session, "users") == 200
    bookings = _count(session, "bookings")
    assert bookings > 300
    assert f"{bookings:,} bookings" in report
    meta = _scalar(session, "SELECT value FROM app_meta WHERE key = 'demo'")
    assert meta["spec"] == {"branches": 5, "vehicles": 60, "history_days": 60, "seed": 11}
    assert meta["counts"]["bookings"] == bookings


def test_the_same_seed_and_day_give_the_same_rows_and_another_seed_does_not(session):
    load_demo(session, SMALL, now=NOW)
    first = _digest(session)
    load_demo(session, SMALL, now=NOW, force=True)
    assert _digest(session) == first

    load_demo(session, DemoSpec(branches=5, vehicles=60, history_days=60, seed=12), now=NOW, force=True)
    other = _digest(session)
    assert other["locations"] == first["locations"]  # the same branches at the same places
    assert other["bookings"] != first["bookings"]
    assert other["vehicles"] != first["vehicles"]


def test_loading_the_spec_already_loaded_does_nothing(small):
    before = _digest(small)
    report = load_demo(small, SMALL, now=datetime(2026, 8, 1, tzinfo=UTC))

    assert report.startswith("demo data already loaded (5 branches, 60 vehicles")
    assert report.endswith("nothing to do")
    assert _digest(small) == before


def test_another_spec_is_refused_without_force_and_replaces_the_demo_with_force(small):
    bigger = DemoSpec(branches=6, vehicles=80, history_days=30, seed=11)
    with pytest.raises(Conflict) as refused:
        load_demo(small, bigger, now=NOW)
    assert "add --force" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert _count(small, "vehicles") == 60

    load_demo(small, bigger, now=NOW, force=True)
    assert (_count(small, "locations"), _count(small, "vehicles")) == (6, 80)
    assert _scalar(small, "SELECT value->'spec'->>'branches' FROM app_meta WHERE key = 'demo'") == "6"
    # Identities continue after the loaded ids, so the application can add rows.
    assert _scalar(small, "SELECT nextval(pg_get_serial_sequence('bookings', 'id'))") == (
        _scalar(small, "SELECT max(id) FROM bookings") + 1
    )


def test_data_that_is_not_demo_data_is_only_replaced_with_force(session):
    f.location(session)
    with pytest.raises(Conflict, match=r"holds data that is not demo data \(1 branch\); add --force"):
        load_demo(session, SMALL, now=NOW)

    load_demo(session, SMALL, now=NOW, force=True)
    assert _count(session, "locations") == 5


def test_the_bulk_load_leaves_every_constraint_index_and_trigger_of_bookings_in_place(session):
    def schema_of_bookings():
        return sorted(session.execute(text("""
            SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conrelid = 'bookings'::regclass
            UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE tablename = 'bookings'
            UNION ALL SELECT 'trigger ' || tgname || ' ' || tgenabled::text FROM pg_trigger
            WHERE tgrelid = 'bookings'::regclass AND NOT tgisinternal
        """)).scalars())

    before = schema_of_bookings()
    load_demo(session, SMALL, now=NOW)
    assert schema_of_bookings() == before
    # The occupancy trigger ran for every active booking.
    assert _count(session, "vehicle_occupancy") == _scalar(
        session, "SELECT count(*) FROM bookings WHERE status IN ('pending', 'confirmed', 'picked_up')"
    ) + _scalar(session, "SELECT count(*) FROM maintenance_blocks WHERE status IN ('scheduled', 'in_progress')")


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        (DemoSpec(branches=0), "branches must be between 1 and 500, not 0"),
        (DemoSpec(branches=501, vehicles=2000), "branches must be between 1 and 500, not 501"),
        (DemoSpec(branches=40, vehicles=39), "vehicles must be between the number of branches (40) and 100,000"),
        (DemoSpec(vehicles=100_001), "vehicles must be between the number of branches (40) and 100,000"),
        (DemoSpec(history_days=-1), "history days must be between 0 and 730, not -1"),
        (DemoSpec(history_days=731), "history days must be between 0 and 730, not 731"),
        (DemoSpec(seed=-3), "the seed must be a whole number of 0 or more"),
    ],
)
def test_impossible_sizes_are_refused_with_one_clear_line(spec, complaint):
    with pytest.raises(ValueError) as refused:
        spec.validate()
    assert complaint in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_largest_sizes_allowed_are_valid():
    DemoSpec(branches=500, vehicles=100_000, history_days=730).validate()
    DemoSpec(branches=1, vehicles=1, history_days=0, seed=0).validate()


def test_no_car_is_in_two_bookings_at_once_even_in_the_past(small):
    overlapping = _scalar(small, f"""
        SELECT count(*) FROM bookings a JOIN bookings b
          ON a.vehicle_id = b.vehicle_id AND a.id < b.id AND a.blocked_period && b.blocked_period
        WHERE a.status IN {HOLDING} AND b.status IN {HOLDING}
    """)
    late_into_the_next = _scalar(small, f"""
        SELECT count(*) FROM bookings a JOIN bookings b ON a.vehicle_id = b.vehicle_id AND a.id <> b.id
          AND b.pickup_at > a.pickup_at AND b.pickup_at < a.actual_return_at + make_interval(mins => a.turnaround_minutes)
        WHERE a.status = 'completed' AND b.status IN {HOLDING}
    """)
    during_maintenance = _scalar(small, f"""
        SELECT count(*) FROM maintenance_blocks m JOIN bookings b
          ON b.vehicle_id = m.vehicle_id AND b.blocked_period && m.period
        WHERE b.status IN {HOLDING}
    """)
    assert (overlapping, late_into_the_next, during_maintenance) == (0, 0, 0)


def test_every_car_is_where_its_bookings_say(small):
    rented_iff_out = _scalar(small, """
        SELECT count(*) FROM vehicles v
        WHERE (v.status = 'rented')
              <> EXISTS (SELECT 1 FROM bookings b WHERE b.vehicle_id = v.id AND b.status = 'picked_up')
    """)
    misplaced = _scalar(small, """
        SELECT count(*) FROM vehicles v
        CROSS JOIN LATERAL (SELECT b.dropoff_location_id FROM bookings b
                            WHERE b.vehicle_id = v.id AND b.status = 'completed'
                            ORDER BY b.actual_return_at DESC LIMIT 1) last
        WHERE v.status <> 'rented' AND v.current_location_id IS DISTINCT FROM last.dropoff_location_id
    """)
    location_by_status = _scalar(small, """
        SELECT count(*) FROM vehicles
        WHERE (status = 'rented') <> (current_location_id IS NULL)
    """)
    in_workshop_iff_block_now = _scalar(small, """
        SELECT count(*) FROM vehicles v
        WHERE (v.status = 'maintenance') <> EXISTS (
            SELECT 1 FROM maintenance_blocks m
            WHERE m.vehicle_id = v.id AND m.status = 'in_progress' AND m.period @> CAST(:now AS timestamptz))
    """, now=NOW)
    moving_without_a_transfer = _scalar(small, """
        SELECT count(*) FROM vehicles v
        WHERE (v.status = 'in_transit') <> EXISTS (
            SELECT 1 FROM transfers t
            WHERE t.vehicle_id = v.id AND t.status = 'in_transit' AND t.from_location_id = v.current_location_id
              AND t.depart_at <= CAST(:now AS timestamptz) AND t.arrive_at > CAST(:now AS timestamptz))
    """, now=NOW)
    odometer_behind = _scalar(small, """
        SELECT count(*) FROM vehicles v
        WHERE v.odometer_km < (SELECT max(greatest(b.odometer_in_km, b.odometer_out_km)) FROM bookings b
                               WHERE b.vehicle_id = v.id)
    """)
    assert (rented_iff_out, misplaced, location_by_status, in_workshop_iff_block_now, moving_without_a_transfer,
            odometer_behind) == (0, 0, 0, 0, 0, 0)


def test_each_car_was_last_serviced_where_its_odometer_says(session):
    load_demo(session, MEDIUM, now=NOW)
    impossible = _scalar(session, """
        SELECT count(*) FROM vehicles
        WHERE last_service_km > odometer_km OR last_service_at > CAST(:now AS timestamptz)
           OR (last_service_at IS NULL) <> (last_service_km IS NULL)
    """, now=NOW)
    not_at_the_last_service_block = _scalar(session, """
        SELECT count(*) FROM vehicles v
        JOIN LATERAL (SELECT max(upper(m.period)) AS ended FROM maintenance_blocks m
                      WHERE m.vehicle_id = v.id AND m.status = 'completed' AND m.reason = 'Scheduled service') s
          ON s.ended IS NOT NULL
        WHERE v.last_service_at IS DISTINCT FROM s.ended
    """)
    overdue, cars = session.execute(text("""
        SELECT count(*) FILTER (WHERE v.odometer_km - coalesce(v.last_service_km, 0) >= t.service_interval_km),
               count(*)
        FROM vehicles v JOIN vehicle_types t ON t.id = v.vehicle_type_id
    """)).one()
    assert (impossible, not_at_the_last_service_block) == (0, 0)
    assert 0 < overdue < 0.2 * cars  # a maintenance queue, not a fleet that is all overdue


def test_the_past_is_settled_and_the_future_is_only_booked(small):
    wrong_side_of_now = _scalar(small, """
        SELECT count(*) FROM bookings
        WHERE (status = 'completed' AND actual_return_at > CAST(:now AS timestamptz))
           OR (status = 'picked_up' AND (pickup_at > CAST(:now AS timestamptz) OR actual_return_at IS NOT NULL))
           OR (status IN ('confirmed', 'pending') AND pickup_at <= CAST(:now AS timestamptz))
           OR (status = 'no_show' AND pickup_at > CAST(:now AS timestamptz))
           OR created_at > CAST(:now AS timestamptz)
           OR cancelled_at > CAST(:now AS timestamptz)
    """, now=NOW)
    assert wrong_side_of_now == 0
    assert _scalar(small, "SELECT bool_and(hold_expires_at > CAST(:now AS timestamptz)) FROM bookings "
                          "WHERE status = 'pending'", now=NOW)


def test_the_history_has_one_way_rentals_cancellations_no_shows_and_maintenance(small):
    counts = dict(small.execute(text("SELECT status::text, count(*) FROM bookings GROUP BY 1")).all())
    total = sum(counts.values())
    assert {"completed", "picked_up", "confirmed", "pending", "cancelled", "no_show"} <= counts.keys()
    assert 0.04 < counts["cancelled"] / total < 0.14
    one_way = _scalar(small, "SELECT avg((pickup_location_id <> dropoff_location_id)::int) FROM bookings")
    assert 0.04 < one_way < 0.16
    assert _scalar(small, "SELECT count(*) FROM bookings WHERE status = 'cancelled' "
                          "AND (cancel_reason IS NULL OR cancelled_at IS NULL)") == 0
    assert _scalar(small, "SELECT count(*) FROM bookings WHERE status = 'completed' AND actual_return_at > dropoff_at") > 0
    vehicle_status = dict(small.execute(text("SELECT status::text, count(*) FROM vehicles GROUP BY 1")).all())
    assert vehicle_status["maintenance"] >= 1 and vehicle_status["rented"] >= 1
    blocks = dict(small.execute(text("SELECT status, count(*) FROM maintenance_blocks GROUP BY 1")).all())
    assert blocks.keys() == {"in_progress", "scheduled", "completed"}


def test_money_is_exact_decimal_text_and_the_price_adds_up(small):
    float_columns = _scalar(small, """
        SELECT count(*) FROM information_schema.columns
        WHERE table_schema = current_schema() AND data_type IN ('real', 'double precision')
          AND table_name IN ('vehicle_types', 'vehicles', 'bookings')
    """)
    assert float_columns == 0
    not_text = _scalar(small, """
        SELECT count(*) FROM bookings, jsonb_each(price_breakdown) AS field(key, value)
        WHERE key <> 'days' AND (jsonb_typeof(value) <> 'string' OR value #>> '{}' !~ '^[0-9]+\\.[0-9]{2}$')
    """)
    assert not_text == 0
    wrong_sums = _scalar(small, """
        SELECT count(*) FROM bookings
        WHERE total_price <> (price_breakdown->>'total')::numeric
           OR total_price <> (price_breakdown->>'base')::numeric + (price_breakdown->>'one_way_fee')::numeric
           OR (price_breakdown->>'base')::numeric <> round((price_breakdown->>'days')::int
               * (price_breakdown->>'daily_rate')::numeric * (price_breakdown->>'multiplier')::numeric, 2)
           OR ((price_breakdown->>'one_way_fee')::numeric > 0) <> (pickup_location_id <> dropoff_location_id)
           OR currency <> 'GBP'
    """)
    assert wrong_sums == 0


def test_vins_check_and_plates_match_the_model_year(small):
    rows = small.execute(text("SELECT vin, license_plate, year FROM vehicles")).all()
    assert all(is_valid_vin(vin) for vin, _, _ in rows)
    assert len({plate for _, plate, _ in rows}) == len(rows)
    for _, plate, year in rows:
        assert re.fullmatch(r"[A-HJ-PR-Y]{2}[0-9]{2} [A-HJ-PR-Y]{3}", plate), plate
        age = int(plate[2:4])
        assert age in {year % 100, year % 100 + 50, (year - 1) % 100 + 50}, (plate, year)


def test_plate_age_identifiers_follow_the_registration_half_year():
    assert plate_age_identifier(datetime(2024, 3, 1).date()) == 24
    assert plate_age_identifier(datetime(2024, 9, 1).date()) == 74
    assert plate_age_identifier(datetime(2025, 2, 28).date()) == 74


def test_branches_are_real_places_first_then_depots_near_them():
    branches = build_branches(len(places()) + 12)
    first = branches.iloc[0]
    assert (first["code"], first["name"], first["kind"]) == ("B001", "Heathrow Airport Terminal 2", "airport")
    assert branches["code"].is_unique and branches["name"].is_unique
    assert branches["lat"].between(50.5, 52.6).all() and branches["lon"].between(-2.8, 1.4).all()
    assert set(branches["kind"]) == {"airport", "rail", "city"}
    depots = branches.iloc[len(places()):]
    assert depots["name"].str.contains(" – Depot ").all()
    parents = branches.set_index("name").loc[depots["parent"]]
    distance = haversine_km(depots["lat"].to_numpy(), depots["lon"].to_numpy(), parents["lat"].to_numpy(),
                            parents["lon"].to_numpy())
    assert ((distance > 1.5) & (distance < 6.5)).all()


def test_fridays_and_saturdays_are_busier_than_tuesdays_and_wednesdays(session):
    load_demo(session, MEDIUM, now=NOW)
    per_weekday = dict(session.execute(text("""
        SELECT extract(isodow FROM pickup_at AT TIME ZONE 'Europe/London')::int, count(*)
        FROM bookings WHERE pickup_at < CAST(:now AS timestamptz) GROUP BY 1
    """), {"now": NOW}).all())
    assert min(per_weekday[5], per_weekday[6]) > 1.15 * max(per_weekday[2], per_weekday[3])


def test_fewer_cars_are_picked_up_on_days_with_a_higher_price(session):
    load_demo(session, MEDIUM, now=NOW)
    rows = session.execute(text("""
        SELECT count(*), min(price_breakdown->>'multiplier')::numeric, count(DISTINCT price_breakdown->>'multiplier')
        FROM bookings WHERE pickup_at < CAST(:now AS timestamptz)
        GROUP BY pickup_location_id, vehicle_type_id, (pickup_at AT TIME ZONE 'Europe/London')::date
    """), {"now": NOW}).all()
    pickups = np.array([row[0] for row in rows], dtype=float)
    multiplier = np.array([row[1] for row in rows], dtype=float)
    assert all(row[2] == 1 for row in rows)  # one price per branch, class and day
    assert np.corrcoef(pickups, multiplier)[0, 1] < -0.1
    assert pickups[multiplier <= 0.9].mean() > 1.3 * pickups[multiplier >= 1.1].mean()


def test_demo_customers_have_encrypted_licences_that_decrypt_and_can_be_found(small):
    from db.models import UserRole
    from services.actors import Actor
    from services.crypto import LicenceCipher
    from services.customers import find_customers

    row = small.execute(text("SELECT id, last_name, licence_number_encrypted FROM users WHERE role = 'customer' "
                             "ORDER BY id LIMIT 1")).one()
    number = LicenceCipher.from_environment().decrypt(bytes(row.licence_number_encrypted))
    assert len(number) == 16 and number[:5].rstrip("9") in row.last_name.upper().replace("'", "").replace(" ", "")
    agent = Actor(None, "desk@example.test", UserRole.DESK_AGENT)
    assert [c.id for c in find_customers(small, agent, number)] == [row.id]
    missing = _scalar(small, "SELECT count(*) FROM users WHERE role = 'customer' AND licence_number_hash IS NULL")
    assert missing == 0
