"""Live staff screens: after a change to the fleet, the next redraw shows it (not the cached picture)."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import text

from db.models import UserRole, VehicleStatus
from db.session import make_engine, session_scope
from services import vehicles
from services.actors import Actor
from tests.ui.page_helpers import point_app_at, signed_in

FLEET = Actor(None, "fleet@example.test", UserRole.FLEET_MANAGER, "Fleet")


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@contextmanager
def a_car_sent_to_maintenance(url):
    """One available car goes to the workshop (its status change is an outbox event), and comes back after."""
    engine = make_engine(url)
    with engine.connect() as conn:
        car = conn.execute(text("SELECT id FROM vehicles v WHERE status = 'available' AND NOT EXISTS "
                                "(SELECT 1 FROM maintenance_blocks m WHERE m.vehicle_id = v.id) "
                                "ORDER BY id LIMIT 1")).scalar_one()
    try:
        with session_scope(engine) as session:
            vehicles.change_status(session, FLEET, car, VehicleStatus.MAINTENANCE, "live screen test")
        yield car
    finally:
        with session_scope(engine) as session:
            vehicles.change_status(session, FLEET, car, VehicleStatus.AVAILABLE, "live screen test over")
        engine.dispose()


def test_the_fleet_map_shows_a_status_change_at_its_next_redraw(demo_url, monkeypatch):
    point_app_at(monkeypatch, demo_url)
    at = signed_in("fleet_manager", "fleet_map.py")
    before = metrics(at)
    assert not at.exception and before["Available"]
    with a_car_sent_to_maintenance(demo_url):
        at.run()  # what the fragment's timer does every few seconds
        after = metrics(at)
    as_int = lambda v: int(v.replace(",", ""))  # noqa: E731
    assert as_int(after["Available"]) == as_int(before["Available"]) - 1
    assert as_int(after["Maintenance"]) == as_int(before["Maintenance"]) + 1
    assert any("Live: redrawn when the fleet changes" in c.value for c in at.caption)

