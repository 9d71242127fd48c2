"""The migrations go up, down and up again on a real PostGIS."""

from sqlalchemy import inspect

from db import migrate
from db.session import make_engine
from tests.conftest import recreate_database

CORE_TABLES = {"vehicle_types", "locations", "vehicles", "users", "bookings", "payments", "refunds",
               "pricing_rules", "promotions", "maintenance_blocks", "vehicle_occupancy", "domain_events",
               "audit_log", "app_meta"}


def _tables(url) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_round_trip(database_url):
    url = database_url.set(database=f"{database_url.database}_migrations")
    recreate_database(url)
    assert _tables(url) >= CORE_TABLES
    assert migrate.current_revision(url) == migrate.head_revision()

    migrate.downgrade(url, "base")
    assert _tables(url) & CORE_TABLES == set()
    assert migrate.current_revision(url) is None

    migrate.upgrade(url)
    assert _tables(url) >= CORE_TABLES
    assert migrate.current_revision(url) == migrate.head_revision()
