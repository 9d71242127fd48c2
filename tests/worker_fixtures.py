"""A committed database for the worker and notification tests, a desk that makes real bookings, test servers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from db.models import UserRole
from db.session import make_engine, session_scope
from services import bookings
from services.actors import Actor
from services.customers import create_customer
from tests import factories as f
from tests.conftest import recreate_database

AGENT = Actor(None, "desk@example.test", UserRole.DESK_AGENT, "Desk")
ADMIN = Actor(None, "admin@example.test", UserRole.ADMIN, "Admin")
NOW = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)
PICKUP = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in London


@pytest.fixture(scope="session")
def worker_url(database_url) -> URL:
    url = database_url.set(database=f"{database_url.database}_worker")
    recreate_database(url)
    return url


@pytest.fixture
def wengine(worker_url):
    """An engine on the worker database, whose outbox and messages are emptied for each test."""
    engine = make_engine(worker_url, pool_size=6, max_overflow=4)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE pickup_reminders, dev_mailbox, notifications, domain_events CASCADE"))
    yield engine
    engine.dispose()


@dataclass
class Desk:
    """A branch with cars and a customer who can rent them, committed; makes real confirmed bookings."""

    engine: object
    branch: int
    cars: list[int]
    customer: int
    made: int = 0
    bookings: list[int] = field(default_factory=list)

    def confirmed_booking(self, *, car: int | None = None, pickup: datetime | None = None,
                          payment: str = "due") -> int:
        car = car if car is not None else self.cars[self.made % len(self.cars)]
        pickup = pickup or PICKUP + timedelta(days=4 * (self.made // len(self.cars)))
        self.made += 1
        with session_scope(self.engine) as session:
            result = bookings.create_booking(
                session, AGENT, customer_id=self.customer, vehicle_id=car, pickup_location_id=self.branch,
                dropoff_location_id=self.branch, pickup_at=pickup, dropoff_at=pickup + timedelta(days=3), now=NOW,
                policy=f.desk_policy())
            bookings.confirm_booking(session, AGENT, result.booking.id, payment=payment, now=NOW)
            self.bookings.append(result.booking.id)
            return result.booking.id


def make_desk(engine, *, cars: int = 1, languages: list[str] | None = None, marketing: bool = False,
              phone: str | None = "+447700900123", preferred_language: str | None = None) -> Desk:
    with session_scope(engine) as session:
        vtype = f.vehicle_type(session, min_driver_age=21)
        branch = f.location(session, languages=languages or ["en"])
        car_ids = [f.vehicle(session, vtype, branch).id for _ in range(cars)]
        driver = create_customer(session, AGENT, email=f"driver{car_ids[0]}@example.test", first_name="Dana",
                                 last_name="Driver", date_of_birth=date(1990, 1, 1), phone=phone,
                                 licence_number=f"WORK{car_ids[0]:07d}DD9AB", licence_country="GB",
                                 licence_expiry=date(2035, 1, 1), marketing_opt_in=marketing)
        if preferred_language:
            session.execute(text("UPDATE users SET preferred_language = :l WHERE id = :id"),
                            {"l": preferred_language, "id": driver.id})
        return Desk(engine, branch.id, car_ids, driver.id)


@pytest.fixture
def desk(wengine) -> Desk:
    return make_desk(wengine)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpInbox:
    """A real SMTP server (aiosmtpd) on a local port that keeps what it accepts."""

    def __init__(self, port: int | None = None, delay_s: float = 0.0) -> None:
        from aiosmtpd.controller import Controller

        self.port = port or free_port()
        self.messages: list[dict] = []
        self.delay_s = delay_s
        inbox = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
                import asyncio

                if inbox.delay_s:  # slow before the message: a client that dies now has sent nothing
                    await asyncio.sleep(inbox.delay_s)
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
                from email import message_from_bytes

                mail = message_from_bytes(envelope.content)
                inbox.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                       "subject": mail["Subject"], "message_id": mail["Message-ID"],
                                       "key": mail["X-Fleetdesk-Key"],
                                       "body": mail.get_payload(decode=True).decode()})
                return "250 Message accepted for delivery"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpInbox:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ProviderStub:
    """A local HTTP server standing in for SendGrid or Twilio: records each request, answers as they document."""

    def __init__(self, status: int, body: dict | None = None, headers: dict[str, str] | None = None) -> None:
        self.requests: list[Recorded] = []
        self.status, self.body, self.headers = status, body or {}, headers or {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                length = int(self.headers.get("Content-Length", 0))
                stub.requests.append(Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()},
                                              self.rfile.read(length)))
                payload = json.dumps(stub.body).encode() if stub.body else b""
                self.send_response(stub.status)
                for name, value in stub.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ProviderStub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def wait_for(condition, *, timeout_s: float = 90.0, every_s: float = 0.2) -> None:
    """Poll until condition() is true; a deadline only so a broken worker fails the test instead of hanging it."""
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting after {timeout_s:g} s for {condition.__doc__ or condition}")
        time.sleep(every_s)


def iter_lines(stream) -> Iterator[str]:
    yield from iter(stream.readline, "")
