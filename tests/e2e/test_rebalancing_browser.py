"""Rebalancing as a fleet manager does it: a real Streamlit server, a real Chromium, a committed database of its own.

Car RB31 AAA stands at Heathrow but is booked to be picked up at Gatwick the day after tomorrow: the manager sees the
shortfall, makes a plan, sees its arc on the map, approves it, and the Transfers page moves the car."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import pytest
from PIL import Image

from db.session import make_engine, session_scope
from services import staff
from services.actors import Actor
from services.staff import DEMO_STAFF
from tests import factories as f
from tests.conftest import recreate_database
from tests.db_helpers import scalar
from tests.e2e.conftest import SHOTS, serve_app, settled, sign_in

pytestmark = pytest.mark.e2e
FLEET_PASSWORD = next(p for e, _, _, p in DEMO_STAFF if e == "fleet@fleetdesk.demo")
LONDON = ZoneInfo("Europe/London")
ARC_COLOUR = (31, 119, 180)  # the first type's colour


@pytest.fixture(scope="module")
def rebalancing_db(database_url):
    url = database_url.set(database=f"{database_url.database}_rebale2e")
    recreate_database(url)
    engine = make_engine(url)
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    serviced = dict(last_service_at=datetime.now(UTC) - timedelta(days=10), last_service_km=11_000)
    with session_scope(engine) as session:
        staff.ensure_demo_staff(session, Actor.command_line())
        economy = f.vehicle_type(session, code="economy", name="Economy", base_daily_rate=Decimal("40.00"))
        heathrow = f.location(session, 51.47, -0.45, code="EHRW", name="E2E Heathrow")
        gatwick = f.location(session, 51.15, -0.18, code="EGTW", name="E2E Gatwick")
        booked = f.vehicle(session, economy, heathrow, license_plate="RB31 AAA", **serviced)
        f.vehicle(session, economy, heathrow, license_plate="RB31 BBB", **serviced)
        pickup = datetime.combine(tomorrow + timedelta(days=1), datetime.min.time(), LONDON) + timedelta(hours=10)
        f.booking(session, booked, f.customer(session), pickup.astimezone(UTC),
                  (pickup + timedelta(days=2)).astimezone(UTC), pickup_location_id=gatwick.id,
                  dropoff_location_id=gatwick.id)
    engine.dispose()
    yield url
    with psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


def test_a_fleet_manager_plans_approves_and_completes_a_move(rebalancing_db, page):
    with serve_app(rebalancing_db) as base:
        sign_in(page, f"{base}/rebalancing", "fleet@fleetdesk.demo", FLEET_PASSWORD)
        page.get_by_role("heading", name="Rebalancing").wait_for(timeout=60_000)
        page.get_by_text("Rentals lost over the horizon").wait_for(timeout=60_000)
        page.get_by_role("tab", name="Plan").click()
        page.get_by_role("button", name="Make a plan").click()
        page.get_by_text("Total cost").wait_for(timeout=60_000)
        settled(page)  # the maps are drawn again until the run ends: take the canvas after that
        arcs = page.locator("[data-testid='stDeckGlJsonChart'] canvas").nth(1)
        arcs.scroll_into_view_if_needed()
        arcs.wait_for(state="visible", timeout=30_000)
        page.wait_for_timeout(1500)  # let deck.gl draw its first frame
        SHOTS.mkdir(parents=True, exist_ok=True)
        shot = arcs.screenshot(path=str(SHOTS / "rebalancing_arcs.png"))
        pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=int)
        assert int((np.abs(pixels - np.array(ARC_COLOUR)).max(axis=2) < 40).sum()) > 30, "no arc was drawn"

        page.get_by_role("button", name="Approve the plan").click()
        page.get_by_text("1 transfers planned").wait_for(timeout=60_000)
        assert scalar(rebalancing_db, "SELECT v.license_plate FROM transfers t JOIN vehicles v "
                                      "ON v.id = t.vehicle_id WHERE t.status = 'planned'") == "RB31 AAA"

        page.get_by_role("link", name="Transfers").click()  # in the same session: still signed in
        page.get_by_role("heading", name="Transfers").wait_for(timeout=60_000)
        _select_first_row(page)
        page.get_by_role("button", name="Depart now").click()
        page.get_by_text("is in transit to EGTW").wait_for(timeout=60_000)
        assert scalar(rebalancing_db, "SELECT status::text FROM vehicles WHERE license_plate = 'RB31 AAA'") \
            == "in_transit"
        _select_first_row(page)
        page.get_by_role("button", name="Arrived now").click()
        page.get_by_text("is available at EGTW").wait_for(timeout=60_000)
        page.screenshot(path=str(SHOTS / "transfers.png"))
        assert page.locator("[data-testid='stException']").count() == 0
    assert scalar(rebalancing_db, "SELECT l.code FROM vehicles v JOIN locations l ON l.id = v.current_location_id "
                                  "WHERE v.license_plate = 'RB31 AAA' AND v.status = 'available'") == "EGTW"


def _select_first_row(page) -> None:
    page.get_by_text("Select a transfer to record").wait_for(timeout=30_000)  # the page ran to its end
    table = page.locator("[data-testid='stDataFrame']").first
    page.wait_for_timeout(1000)  # the grid is drawn on a canvas after the element appears
    box = table.bounding_box()
    page.mouse.click(box["x"] + 20, box["y"] + 55)  # the first row's selection cell
