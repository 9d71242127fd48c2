"""The Vehicles and Maintenance pages through Streamlit's AppTest, on a committed database of their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from db.models import VehicleStatus
from db.session import make_engine, session_scope
from tests import factories as f
from tests.conftest import recreate_database
from tests.db_helpers import scalar
from tests.ui.page_helpers import clear_caches, point_app_at, signed_in

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")
NOW = datetime.now(UTC).replace(microsecond=0)
NEW_VIN = "1M8GDM9AXKP042788"


@pytest.fixture(scope="module")
def page_db(database_url):
    url = database_url.set(database=f"{database_url.database}_vehui")
    recreate_database(url)
    engine = make_engine(url)
    with session_scope(engine) as session:
        economy = f.vehicle_type(session, code="economy", name="Economy", service_interval_km=15_000,
                                 service_interval_days=365)
        london = f.location(session, code="LON1", name="London King's Cross")
        f.location(session, lat=51.47, lon=-0.45, code="LHR2", name="Heathrow T2")
        booked = f.vehicle(session, economy, london, license_plate="BK21 AAA", make="Ford", model="Fiesta",
                           odometer_km=20_000, last_service_km=18_000, last_service_at=NOW - timedelta(days=20))
        start = (NOW + timedelta(days=3)).replace(hour=9, minute=0, second=0)
        f.booking(session, booked, f.customer(session), start, start + timedelta(days=2), reference="FDUI0001")
        f.vehicle(session, economy, london, license_plate="DU21 AAA", make="Vauxhall", model="Corsa",
                  odometer_km=40_000, last_service_km=20_000, last_service_at=NOW - timedelta(days=100))
        workshop = f.vehicle(session, economy, london, license_plate="WS21 AAA", make="Kia", model="Picanto",
                             status=VehicleStatus.MAINTENANCE, odometer_km=1_000, last_service_km=0,
                             last_service_at=NOW - timedelta(days=10))
        block = f.maintenance(session, workshop, NOW - timedelta(hours=2), NOW + timedelta(days=1),
                              status="in_progress")
        block.reason = "Clutch"
        session.execute(text("SELECT fd_ensure_telematics_partition(:m)"), {"m": NOW.date()})
        session.execute(text("SELECT fd_ensure_telematics_partition(:m)"), {"m": (NOW - timedelta(days=2)).date()})
        session.execute(text("""
            INSERT INTO telematics_readings (vehicle_id, recorded_at, position, fuel_level, odometer_km)
            SELECT :v, :t - make_interval(mins => n * 30),
                   ST_SetSRID(ST_MakePoint(-0.12 + n * 0.002, 51.53), 4326)::geography, 80 - n, 20000 - n * 5
            FROM generate_series(0, 40) AS n
        """), {"v": booked.id, "t": NOW - timedelta(minutes=5)})
    engine.dispose()
    yield url
    with psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def page_env(page_db, monkeypatch):
    point_app_at(monkeypatch, page_db)
    yield
    clear_caches()




def open_page(role: str, page: str, **query) -> AppTest:
    return signed_in(role, page, query=query)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


# --- Vehicles ------------------------------------------------------------------------------------------------------

def test_a_fleet_manager_sees_the_fleet_and_can_search_it(page_db):
    at = open_page("fleet_manager", "vehicles.py")
    assert not at.exception
    assert at.title[0].value == "Vehicles"
    table = at.dataframe[0].value
    assert set(table["plate"]) >= {"BK21 AAA", "DU21 AAA", "WS21 AAA"}
    at.text_input(key="vehicle-search").input("bk21a").run()
    assert list(at.dataframe[0].value["plate"]) == ["BK21 AAA"]


def test_adding_a_vehicle_with_bad_fields_marks_each_and_keeps_what_was_typed(page_db):
    at = open_page("fleet_manager", "vehicles.py")
    at.text_input(key="vehicle-new-vin").input("1M8GDM9A1KP042788")
    at.text_input(key="vehicle-new-license_plate").input("OK21 AAA")
    at.text_input(key="vehicle-new-make").input("Ford")
    at.text_input(key="vehicle-new-model").input("Focus")
    at.number_input(key="vehicle-new-year").set_value(1985)
    at.text_input(key="vehicle-new-daily_rate").input("12.345")
    button(at, "Add vehicle").click().run()
    assert not at.exception
    shown = "\n".join(errors(at))
    assert "check digit) is 1, but for the other 16 characters it must be X" in shown
    assert "The year 1985 is outside 1990–" in shown
    assert "Enter the vehicle type." in shown and "Enter the branch." in shown
    assert "more than 2 decimal places" in shown
    assert "The vehicle was not saved; fix the fields marked above." in shown
    assert at.text_input(key="vehicle-new-license_plate").value == "OK21 AAA"
    assert scalar(page_db, "SELECT count(*) FROM vehicles WHERE license_plate = 'OK21 AAA'") == 0


def test_adding_a_vehicle_opens_it(page_db):
    at = open_page("fleet_manager", "vehicles.py")
    at.text_input(key="vehicle-new-vin").input(NEW_VIN)
    at.text_input(key="vehicle-new-license_plate").input("nw24abc")
    at.text_input(key="vehicle-new-make").input("Ford")
    at.text_input(key="vehicle-new-model").input("Focus")
    at.selectbox(key="vehicle-new-vehicle_type").select("economy")
    at.selectbox(key="vehicle-new-branch").select("LHR2")
    at.text_input(key="vehicle-new-daily_rate").input("41.90")
    button(at, "Add vehicle").click().run()
    assert not at.exception, at.exception
    assert at.success[0].value == "Added NW24 ABC, Ford Focus."
    assert at.query_params["vehicle"] == "NW24 ABC"
    assert at.header[0].value.startswith("NW24 ABC · Ford Focus")
    assert scalar(page_db, "SELECT daily_rate FROM vehicles WHERE vin = :v", v=NEW_VIN) == Decimal("41.90")


def test_the_detail_shows_specs_map_timeline_and_telematics(page_db):
    at = open_page("fleet_manager", "vehicles.py", vehicle="bk21-aaa")
    assert not at.exception, at.exception
    assert at.header[0].value == "BK21 AAA · Ford Fiesta (2023)"
    assert [t.label for t in at.tabs] == ["Overview", "Timeline", "Telematics", "Edit", "Status"]
    markdown = "\n".join(m.value for m in at.markdown)
    assert "**Branch** LON1" in markdown and "2,000 of 15,000 km" in markdown
    assert "No photos yet" in "\n".join(c.value for c in at.caption)
    charts = at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    assert len(charts) == 3  # the timeline, fuel and odometer
    assert len(at.get("deck_gl_json_chart")) == 2  # where it is, and the telematics positions
    assert "41 readings" in "\n".join(c.value for c in at.caption)


def test_a_plate_that_does_not_exist_is_a_warning(page_db):
    at = open_page("fleet_manager", "vehicles.py", vehicle="NO SUCH")
    assert not at.exception
    assert "There is no vehicle with the plate 'NO SUCH'" in at.warning[0].value


def test_editing_a_vehicle_saves_only_what_changed_and_audits_it(page_db):
    at = open_page("fleet_manager", "vehicles.py", vehicle="DU21 AAA")
    vehicle_id = scalar(page_db, "SELECT id FROM vehicles WHERE license_plate = 'DU21 AAA'")
    at.text_input(key=f"vehicle-edit-{vehicle_id}-daily_rate").input("44.00")
    button(at, "Save changes").click().run()
    assert not at.exception
    assert at.success[0].value == "Saved the changes to DU21 AAA."
    changes = scalar(page_db, "SELECT changes FROM audit_log WHERE action = 'vehicle.updated' AND entity_id = :id "
                              "ORDER BY id DESC LIMIT 1", id=str(vehicle_id))
    assert set(changes) == {"daily_rate"} and changes["daily_rate"]["after"] == "44.00"


def test_retiring_a_booked_car_is_refused_beside_the_form_with_the_booking(page_db):
    at = open_page("fleet_manager", "vehicles.py", vehicle="BK21 AAA")
    vehicle_id = scalar(page_db, "SELECT id FROM vehicles WHERE license_plate = 'BK21 AAA'")
    at.radio(key=f"vehicle-status-{vehicle_id}-target").set_value(VehicleStatus.RETIRED)
    at.text_input(key=f"vehicle-status-{vehicle_id}-reason").input("sold")
    button(at, "Change status").click().run()
    assert not at.exception
    assert any("still has 1 booking to come: FDUI0001 (" in e and "confirmed" in e for e in errors(at))
    assert at.text_input(key=f"vehicle-status-{vehicle_id}-reason").value == "sold"
    assert scalar(page_db, "SELECT status::text FROM vehicles WHERE id = :id", id=vehicle_id) == "available"


def test_a_status_change_needs_a_reason_and_is_recorded(page_db):
    at = open_page("fleet_manager", "vehicles.py", vehicle="DU21 AAA")
    vehicle_id = scalar(page_db, "SELECT id FROM vehicles WHERE license_plate = 'DU21 AAA'")
    at.radio(key=f"vehicle-status-{vehicle_id}-target").set_value(VehicleStatus.MAINTENANCE)
    button(at, "Change status").click().run()
    assert any("Give a reason for the status change" in e for e in errors(at))
    at.text_input(key=f"vehicle-status-{vehicle_id}-reason").input("dashboard warning light")
    button(at, "Change status").click().run()
    assert not at.exception
    assert at.success[0].value == "DU21 AAA is now maintenance."
    assert scalar(page_db, "SELECT status_reason FROM vehicles WHERE id = :id", id=vehicle_id) \
        == "dashboard warning light"
    at.radio(key=f"vehicle-status-{vehicle_id}-target").set_value(VehicleStatus.AVAILABLE)
    at.text_input(key=f"vehicle-status-{vehicle_id}-reason").input("light was a loose sensor")
    button(at, "Change status").click().run()
    assert at.success[0].value == "DU21 AAA is now available."


# --- Maintenance ---------------------------------------------------------------------------------------------------

def test_the_maintenance_page_shows_the_queue_most_urgent_first_and_the_workshop(page_db):
    at = open_page("fleet_manager", "maintenance.py")
    assert not at.exception, at.exception
    assert at.title[0].value == "Maintenance"
    queue = at.dataframe[0].value
    assert list(queue["plate"])[0] == "DU21 AAA"  # 20,000 km since its service: overdue
    assert "BK21 AAA" not in set(queue["plate"])  # 2,000 of 15,000 km: not due
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["In the workshop"] == "1"
    blocks = at.dataframe[1].value
    assert list(blocks["plate"]) == ["WS21 AAA"] and list(blocks["reason"]) == ["Clutch"]


def test_scheduling_over_a_booking_shows_the_booking_and_keeps_the_form(page_db):
    at = open_page("fleet_manager", "maintenance.py")
    day = (NOW + timedelta(days=3)).date()
    at.selectbox(key="maintenance-new-plate").select("BK21 AAA")
    at.date_input(key="maintenance-new-from").set_value(day)
    at.date_input(key="maintenance-new-until").set_value(day + timedelta(days=1))
    at.text_input(key="maintenance-new-reason").input("Tyres")
    button(at, "Schedule").click().run()
    assert not at.exception
    [message] = errors(at)
    assert message.startswith("Vehicle BK21 AAA has booking FDUI0001 (") and "confirmed" in message
    assert message.endswith("move it to another car or choose other dates.")
    assert at.text_input(key="maintenance-new-reason").value == "Tyres"
    at.date_input(key="maintenance-new-from").set_value(day + timedelta(days=10))
    at.date_input(key="maintenance-new-until").set_value(day + timedelta(days=10))
    button(at, "Schedule").click().run()
    assert not at.exception
    assert at.success[0].value.startswith("Block #") and "scheduled for BK21 AAA" in at.success[0].value
    assert scalar(page_db, "SELECT count(*) FROM maintenance_blocks m JOIN vehicles v ON v.id = m.vehicle_id "
                           "WHERE v.license_plate = 'BK21 AAA' AND m.status = 'scheduled'") == 1


def test_selecting_a_car_in_the_queue_fills_the_form_with_its_service(page_db):
    at = open_page("fleet_manager", "maintenance.py")
    at.session_state["maintenance-queue"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert at.selectbox(key="maintenance-new-plate").value == "DU21 AAA"
    assert at.text_input(key="maintenance-new-reason").value == "Scheduled service"


def test_completing_the_block_in_the_workshop_frees_the_car(page_db):
    at = open_page("fleet_manager", "maintenance.py")
    at.session_state["maintenance-blocks"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert any(m.value.startswith("**Block #") and "WS21 AAA" in m.value for m in at.markdown)
    button(at, "Complete").click().run()
    assert not at.exception
    assert at.success[0].value.endswith("completed; WS21 AAA is available again.")
    assert scalar(page_db, "SELECT status::text FROM vehicles WHERE license_plate = 'WS21 AAA'") == "available"
    assert scalar(page_db, "SELECT last_service_at IS NOT NULL AND last_service_at > now() - interval '1 hour' "
                           "FROM vehicles WHERE license_plate = 'WS21 AAA'")


@pytest.mark.parametrize("page", ["vehicles.py", "maintenance.py"])
def test_a_desk_agent_is_refused_both_pages(page_db, page):
    at = open_page("desk_agent", page)
    assert not at.exception
    assert any("ask an admin if you need access" in e for e in errors(at))
    assert not at.dataframe and not at.metric and not at.get("form")
