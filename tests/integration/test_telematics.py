"""Telematics readings: the good ones are kept, the impossible ones rejected with their line and reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from db.models import DomainEvent, Vehicle
from services import telematics
from services.telematics import Reading
from tests import factories as f

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)


def _car(session, **overrides):
    values = {"odometer_km": 10_000, "fuel_level": 80, **overrides}
    return f.vehicle(session, f.vehicle_type(session), f.location(session), **values)


def _r(line, car, minutes, lat=51.50, lon=-0.12, fuel=80, odo=10_000):
    return Reading(line, str(car.id), T0 + timedelta(minutes=minutes), lat, lon, fuel, odo)


def test_good_readings_are_stored_and_update_the_last_known_state(session):
    car = _car(session)
    report = telematics.ingest(session, [_r(1, car, 0), _r(2, car, 10, lat=51.52, fuel=78, odo=10_004)], now=NOW)
    assert (report.accepted, report.rejected) == (2, [])
    session.refresh(car)
    assert (car.fuel_level, car.odometer_km, car.last_seen_at) == (78, 10_004, T0 + timedelta(minutes=10))
    lat = session.scalar(text("SELECT ST_Y(last_position::geometry) FROM vehicles WHERE id = :id"), {"id": car.id})
    assert abs(lat - 51.52) < 1e-9
    stored = session.scalar(text("SELECT count(*) FROM telematics_readings WHERE vehicle_id = :id"), {"id": car.id})
    assert stored == 2
    partition = session.scalar(text("SELECT tableoid::regclass::text FROM telematics_readings WHERE vehicle_id = :id "
                                    "LIMIT 1"), {"id": car.id})
    assert partition == "telematics_readings_2026_11"


def test_impossible_and_unknown_rows_are_rejected_and_the_good_ones_kept(session):
    car = _car(session)
    readings = [
        _r(1, car, 0),
        _r(2, car, 10, odo=9_990),  # odometer back
        _r(3, car, 20, lat=52.50, odo=10_010),  # 111 km in 20 minutes
        _r(4, car, 30, odo=10_020, lat=51.505),
        Reading(5, "99999999", T0, 51.5, -0.1, 50, 1),  # unknown vehicle
        Reading(6, car.vin, T0 + timedelta(days=3), 51.5, -0.1, 50, 10_050),  # future
        _r(7, car, 30, odo=10_030),  # same time as line 4
    ]
    report = telematics.ingest(session, readings, now=NOW)
    assert report.accepted == 2
    reasons = dict(report.rejected)
    assert set(reasons) == {2, 3, 5, 6, 7}
    assert "odometer went back from 10,000 km to 9,990 km" in reasons[2]
    assert "faster than a car" in reasons[3]
    assert "unknown vehicle" in reasons[5]
    assert "in the future" in reasons[6]
    assert "out of order" in reasons[7]
    session.refresh(car)
    assert car.odometer_km == 10_020


def test_a_reading_older_than_what_we_know_is_out_of_order(session):
    car = _car(session, last_seen_at=T0 + timedelta(hours=1))
    report = telematics.ingest(session, [_r(1, car, 0)], now=NOW)
    assert report.accepted == 0 and "out of order" in report.rejected[0][1]


def test_vehicles_can_be_named_by_vin(session):
    car = _car(session)
    report = telematics.ingest(session, [Reading(1, car.vin.lower(), T0, 51.5, -0.1, 70, 10_001)], now=NOW)
    assert report.accepted == 1


def test_state_changes_are_recorded_as_events_in_the_same_transaction(session):
    car = _car(session, fuel_level=20)
    telematics.ingest(session, [_r(1, car, 0, fuel=20), _r(2, car, 60, fuel=10, odo=10_030)], now=NOW)
    events = session.scalars(select(DomainEvent).where(DomainEvent.aggregate_id == str(car.id))).all()
    assert sorted(e.event_type for e in events) == ["vehicle.fuel_low", "vehicle.telematics_updated"]


def test_files_in_csv_and_json_lines_report_unreadable_lines(session, tmp_path):
    car = _car(session)
    csv_file = tmp_path / "readings.csv"
    csv_file.write_text("vehicle,recorded_at,lat,lon,fuel_level,odometer_km\n"
                        f"{car.id},2026-11-20T08:00:00Z,51.5,-0.12,80,10000\n"
                        f"{car.id},2026-11-20T08:10:00,51.5,-0.12,80,10001\n"
                        f"{car.id},2026-11-20T08:20:00Z,95,-0.12,80,10002\n"
                        f"{car.id},2026-11-20T08:30:00Z,51.5,-0.12,abc,10003\n")
    readings, unreadable = telematics.read_file(csv_file)
    assert len(readings) == 1
    assert [line for line, _ in unreadable] == [3, 4, 5]
    assert "no UTC offset" in unreadable[0][1] and "off the globe" in unreadable[1][1]
    jsonl = tmp_path / "readings.jsonl"
    jsonl.write_text(json.dumps({"vin": car.vin, "recorded_at": "2026-11-20T09:00:00+00:00", "lat": 51.5,
                                 "lon": -0.12, "fuel_level": 79, "odometer_km": 10_005}) + "\n{not json\n")
    readings, unreadable = telematics.read_file(jsonl)
    assert len(readings) == 1 and unreadable[0][0] == 2


def test_the_simulation_moves_rented_cars_and_keeps_parked_ones(session):
    vtype = f.vehicle_type(session)
    branch = f.location(session)
    rented = f.vehicle(session, vtype, None, status="rented", odometer_km=5_000,
                       last_position=f.point(51.5, -0.12), last_seen_at=T0)
    parked = f.vehicle(session, vtype, branch, odometer_km=7_000)
    report = telematics.simulate_step(session, minutes=30, now=T0 + timedelta(minutes=30), seed=1)
    assert report.rejected == []
    session.refresh(rented)
    session.refresh(parked)
    assert rented.odometer_km > 5_000 and rented.last_seen_at == T0 + timedelta(minutes=30)
    assert parked.odometer_km == 7_000
    assert session.get(Vehicle, parked.id).last_seen_at == T0 + timedelta(minutes=30)
