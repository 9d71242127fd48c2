"""The API under test: a committed database of its own with a small company, tokens of each role, and clients.

The world is built once per test session; tests that book take a car of their own (`new_car`), so they never
depend on each other's bookings.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.engine import URL

from app.api import app
from db.models import Location, UserRole, VehicleType
from db.session import make_engine, session_scope
from services import staff, tokens
from services.actors import Actor
from services.customers import create_customer
from tests import factories as f
from tests.conftest import recreate_database
from tests.payments_fixtures import free_port

OPERATOR = Actor.command_line()
DESK = Actor(None, "api-tests", UserRole.DESK_AGENT, "API tests")
PICKUP = (datetime.now(UTC) + timedelta(days=30)).replace(hour=10, minute=0, second=0, microsecond=0)
DROPOFF = PICKUP + timedelta(days=3)
_plates = itertools.count(1)


@dataclass(frozen=True)
class World:
    url: URL
    engine: Engine
    city: int  # a branch in central London
    airport: int  # one ~25 km away
    far: int  # one in Edinburgh, ~530 km away
    type_code: str
    adult_type_code: str  # min driver age 25
    customer: int
    young_customer: int  # 20 at pick-up
    cars: tuple[int, ...]  # at the city branch, for read-only tests
    tokens: dict[str, str]  # role -> plain token (plus 'revoked', 'expired')

    def headers(self, role: str = "desk_agent") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def _licence(n: int) -> str:
    return f"APITS9010{n:03d}AA9AB"


@pytest.fixture(scope="session")
def api_world(database_url) -> Iterator[World]:
    url = database_url.set(database=f"{database_url.database}_api")
    recreate_database(url)
    engine = make_engine(url)
    with session_scope(engine) as session:
        compact = f.vehicle_type(session, code="api_compact", name="Compact", min_driver_age=21,
                                 base_daily_rate=Decimal("40.00"))
        adult = f.vehicle_type(session, code="api_premium", name="Premium", rank=2, min_driver_age=25,
                               base_daily_rate=Decimal("95.50"))
        city = f.location(session, lat=51.5308, lon=-0.1238, name="API City")
        airport = f.location(session, lat=51.4700, lon=-0.4543, name="API Airport")
        far = f.location(session, lat=55.9533, lon=-3.1883, name="API Edinburgh", timezone="Europe/London")
        cars = tuple(f.vehicle(session, compact, city, daily_rate=Decimal("40.00") + i,
                               license_plate=f"APIR{i:03d}").id for i in range(3))
        f.vehicle(session, adult, airport, daily_rate=Decimal("95.50"), license_plate="APIPREM1")
        customer = create_customer(session, DESK, email="casey@example.test", first_name="Casey",
                                   last_name="Customer", date_of_birth=date(1990, 1, 1), licence_number=_licence(1),
                                   licence_country="GB", licence_expiry=date.today() + timedelta(days=3650)).id
        young = create_customer(session, DESK, email="young@example.test", first_name="Yan", last_name="Young",
                                date_of_birth=date.today() - timedelta(days=365 * 20), licence_number=_licence(2),
                                licence_country="GB", licence_expiry=date.today() + timedelta(days=3650)).id
        plain = {}
        for role in ("desk_agent", "admin", "fleet_manager", "pricing_analyst"):
            email = f"{role.replace('_', '-')}@api.test"
            staff.add_staff(session, OPERATOR, email=email, role=role, name=f"API {role}",
                            password="Correct-Horse-Battery-42")
            plain[role] = tokens.create_token(session, OPERATOR, email)[1]
        revoked, plain["revoked"] = tokens.create_token(session, OPERATOR, "desk-agent@api.test")
        tokens.revoke_token(session, OPERATOR, revoked.id)
        plain["expired"] = tokens.create_token(session, OPERATOR, "desk-agent@api.test", expires_days=1,
                                               now=datetime.now(UTC) - timedelta(days=2))[1]
    world = World(url, engine, city.id, airport.id, far.id, "api_compact", "api_premium", customer, young, cars,
                  plain)
    yield world
    engine.dispose()


def new_car(world: World, *, at: int | None = None, rate: str = "40.00", type_code: str | None = None) -> int:
    """A car of its own for one test, committed."""
    with session_scope(world.engine) as session:
        vtype = session.scalar(select(VehicleType).where(VehicleType.code == (type_code or world.type_code)))
        location = session.get(Location, at or world.city)
        return f.vehicle(session, vtype, location, daily_rate=Decimal(rate),
                         license_plate=f"APT{next(_plates):04d}{int(time.time()) % 1000:03d}").id


@pytest.fixture
def api_env(monkeypatch, api_world) -> World:
    monkeypatch.setenv("DATABASE_URL", api_world.url.render_as_string(hide_password=False))
    return api_world


@pytest.fixture
def client(api_env) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def live_api(api_env) -> Iterator[str]:
    """A real uvicorn serving app.api on a free port (in a thread), against the API test database."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           limit_concurrency=200))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def booking_body(world: World, car: int, **overrides) -> dict:
    body = {"user_id": world.customer, "vehicle_id": car, "pickup_location_id": world.city,
            "dropoff_location_id": world.city, "pickup_at": PICKUP.isoformat(), "dropoff_at": DROPOFF.isoformat()}
    body.update(overrides)
    return body
