"""The fleet map updates by itself: a car's status changes in the database and the open page shows it, no reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from db.models import UserRole, VehicleStatus
from db.session import make_engine, session_scope
from services import vehicles
from services.actors import Actor
from tests.e2e.conftest import sign_in
from tests.e2e.test_fleet_map_browser import FLEET_PASSWORD

pytestmark = pytest.mark.e2e
FLEET = Actor(None, "fleet@example.test", UserRole.FLEET_MANAGER, "Fleet")


def metric(page, label: str):
    return page.locator(".st-key-status-counts [data-testid='stMetric']").filter(
        has=page.locator("[data-testid='stMetricLabel']", has_text=label)).locator("[data-testid='stMetricValue']")


def test_the_open_fleet_map_shows_a_car_leaving_for_the_workshop_without_a_reload(live_app, page, demo_url):
    sign_in(page, live_app, "fleet@fleetdesk.demo", FLEET_PASSWORD)
    page.get_by_role("heading", name="Fleet map").wait_for(timeout=60_000)
    maintenance = metric(page, "Maintenance")
    maintenance.wait_for(timeout=30_000)
    before = int(maintenance.inner_text().replace(",", ""))
    page.evaluate("window.__same_page = true")  # gone if the page were reloaded
    page.wait_for_timeout(1000)  # the fragment's first look remembers where the outbox stood
    engine = make_engine(demo_url)
    with engine.connect() as conn:
        car = conn.execute(text("SELECT id FROM vehicles v WHERE status = 'available' AND NOT EXISTS "
                                "(SELECT 1 FROM maintenance_blocks m WHERE m.vehicle_id = v.id) "
                                "ORDER BY id DESC LIMIT 1")).scalar_one()
    try:
        with session_scope(engine) as session:
            vehicles.change_status(session, FLEET, car, VehicleStatus.MAINTENANCE, "live map test")
        expect(maintenance).to_have_text(f"{before + 1:,}", timeout=60_000)
        assert page.evaluate("window.__same_page === true")
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        with session_scope(engine) as session:
            vehicles.change_status(session, FLEET, car, VehicleStatus.AVAILABLE, "live map test over")
        engine.dispose()
