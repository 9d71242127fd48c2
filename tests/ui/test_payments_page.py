"""The Payments page renders the payments and the disputes queue for the desk."""

from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from db.models import UserRole
from db.session import session_scope
from services import payments
from services.actors import Actor
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import AGENT, make_booking

PAGE = Path(__file__).resolve().parents[2] / "pages" / "payments.py"


def test_the_desk_finds_a_payment_by_its_booking_reference(payment_env, pay_engine):
    with session_scope(pay_engine) as session:
        booking = make_booking(session)
        payments.pay_at_desk(session, AGENT, booking.id, method="cash")
        reference = booking.reference
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.session_state["actor"] = Actor(None, "desk@example.test", UserRole.DESK_AGENT, "Desk")
    at.session_state["last_seen"] = time.time()
    at.run()
    assert not at.exception and at.title[0].value == "Payments"
    at.text_input(key="payments-search").input(reference.lower()).run()
    table = at.dataframe[0].value
    assert list(table["booking"]) == [reference] and list(table["status"]) == ["succeeded"]
    assert not at.exception
