"""Payment test fixtures: a real localstripe per test session (fresh state, free port), bookings, signed events.

Import the fixtures into a test module with `from tests.payments_fixtures import *  # noqa: F403`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app import payments_server
from db.config import fleetdesk_home
from db.models import UserRole
from db.session import session_scope
from services import bookings
from services.actors import Actor
from services.customers import create_customer
from services.gateway import GatewayConfig, StripeGateway
from tests import factories as f

__all__ = ["WEBHOOK_SECRET", "AGENT", "ADMIN", "KEYS", "localstripe", "gateway", "payment_env", "make_booking",
           "payments_db_url", "pay_engine",
           "committed_booking", "signed", "intents_for", "free_port", "StallingProxy", "start_localstripe"]

WEBHOOK_SECRET = "whsec_test_fleetdesk"
KEYS = "8t9s83BB4gZrz8HlbtH7FQ9vyQBHIHi50iNKgjItCmM="
AGENT = Actor(None, "desk@example.test", UserRole.DESK_AGENT, "Desk")
ADMIN = Actor(None, "admin@example.test", UserRole.ADMIN, "Admin")
_licences = itertools.count(100)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_localstripe(directory: Path) -> payments_server.LocalStripe:
    directory.mkdir(parents=True, exist_ok=True)
    server = payments_server.LocalStripe(free_port(), directory / "localstripe.pickle",
                                         directory / "localstripe.log", directory / "localstripe.pid")
    payments_server.start(server, from_scratch=True)
    return server


@pytest.fixture(scope="session")
def localstripe() -> Iterator[payments_server.LocalStripe]:
    """A localstripe subprocess for this test session, its state in a fresh file under .fleetdesk/."""
    directory = fleetdesk_home() / "test-localstripe" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    server = start_localstripe(directory)
    yield server
    payments_server.stop(server)
    for path in (server.state_file, server.log_file, server.pid_file):
        path.unlink(missing_ok=True)
    directory.rmdir()
    with contextlib.suppress(OSError):
        directory.parent.rmdir()


@pytest.fixture(scope="session")
def payments_db_url(database_url):
    """A database of its own for tests that commit (webhooks, dumps), so other tests never see their rows."""
    from tests.conftest import recreate_database

    url = database_url.set(database=f"{database_url.database}_payments")
    recreate_database(url)
    return url


@pytest.fixture(scope="session")
def pay_engine(payments_db_url) -> Iterator[Engine]:
    from db.session import make_engine

    engine = make_engine(payments_db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def gateway(localstripe) -> StripeGateway:
    return StripeGateway(GatewayConfig("sk_test_fleetdesk", localstripe.api_base, WEBHOOK_SECRET, timeout_s=10,
                                       max_network_retries=0))


@pytest.fixture
def payment_env(monkeypatch, localstripe, payments_db_url):
    """The environment the app reads: our test database, the test localstripe and its secrets."""
    monkeypatch.setenv("FLEETDESK_ENCRYPTION_KEYS", KEYS)
    monkeypatch.setenv("DATABASE_URL", payments_db_url.render_as_string(hide_password=False))
    monkeypatch.setenv("STRIPE_API_BASE", localstripe.api_base)
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_fleetdesk")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("STRIPE_TIMEOUT_SECONDS", "10")
    return localstripe


def make_booking(session: Session, *, deposit: Decimal = Decimal("200.00")):
    """A pending three-day booking (£40 a day) of a new car for a new eligible driver, starting in ten days."""
    vtype = f.vehicle_type(session, deposit_amount=deposit, min_driver_age=21)
    branch = f.location(session)
    car = f.vehicle(session, vtype, branch, daily_rate=Decimal("40.00"), odometer_km=12_000, fuel_level=100,
                    last_service_at=datetime.now(UTC) - timedelta(days=30), last_service_km=11_000)
    n = next(_licences)
    driver = create_customer(session, AGENT, email=f"payer{uuid.uuid4().hex[:10]}@example.test",
                             first_name="Pat", last_name="Payer", date_of_birth=date(1990, 1, 1),
                             licence_number=f"PAYER9010{n:03d}PP9AB", licence_country="GB",
                             licence_expiry=date.today() + timedelta(days=3650))
    pickup = (datetime.now(UTC) + timedelta(days=10)).replace(hour=10, minute=0, second=0, microsecond=0)
    return bookings.create_booking(session, AGENT, customer_id=driver.id, vehicle_id=car.id,
                                   pickup_location_id=branch.id, dropoff_location_id=branch.id, pickup_at=pickup,
                                   dropoff_at=pickup + timedelta(days=3)).booking


def committed_booking(engine: Engine) -> int:
    with session_scope(engine) as session:
        return make_booking(session).id


def signed(event: dict, secret: str = WEBHOOK_SECRET, *, timestamp: int | None = None) -> tuple[bytes, dict]:
    """The body and headers Stripe would send: `t=TIMESTAMP,v1=HMAC_SHA256(secret, f"{t}.{payload}")`."""
    payload = json.dumps(event).encode()
    t = timestamp or int(time.time())
    signature = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, {"Stripe-Signature": f"t={t},v1={signature}", "Content-Type": "application/json"}


def intents_for(gateway: StripeGateway, booking_id: int) -> list:
    return [i for i in gateway.list_intents() if i.metadata.get("fleetdesk_booking_id") == str(booking_id)]


class StallingProxy:
    """A TCP proxy to localstripe that, once a PaymentIntent is being created, forwards the request but never
    the answer — a gateway that took the request and then went silent."""

    MARK = b"POST /v1/payment_intents HTTP"

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stalled_requests = 0
        self._closing = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            state = {"stalled": False}
            threading.Thread(target=self._pipe, args=(client, upstream, state, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, state, False), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, state: dict, from_client: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if from_client and chunk.startswith(self.MARK):
                    state["stalled"] = True
                    self.stalled_requests += 1
                if from_client or not state["stalled"]:
                    target.sendall(chunk)
        except OSError:
            pass

    def close(self) -> None:
        self._closing = True
        for s in (self.listener, *self._sockets):
            with contextlib.suppress(OSError):
                s.close()
