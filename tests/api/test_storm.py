"""A storm: 40 clients book the same car for overlapping periods at once through a real server — one wins."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from threading import Barrier

import httpx
from sqlalchemy import text

from db.session import session_scope
from tests.api.conftest import DROPOFF, PICKUP, booking_body, new_car

CLIENTS = 40


def test_forty_concurrent_bookings_of_one_car_make_exactly_one_booking(live_api, api_env):
    car = new_car(api_env)
    bodies = [booking_body(api_env, car, pickup_at=(PICKUP + timedelta(minutes=10 * (i % 5))).isoformat(),
                           dropoff_at=(DROPOFF + timedelta(minutes=5 * i)).isoformat()) for i in range(CLIENTS)]
    start = Barrier(CLIENTS)

    def book(body: dict) -> httpx.Response:
        with httpx.Client(base_url=live_api, headers=api_env.headers(), timeout=60) as client:
            start.wait()
            return client.post("/api/v1/bookings", json=body)

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(book, bodies))

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] + [409] * (CLIENTS - 1), [a.text for a in answers if a.status_code not in (201, 409)]
    for answer in answers:
        assert answer.headers["content-type"].startswith("application/json")
        if answer.status_code == 409:
            detail = answer.json()["detail"]
            assert isinstance(detail, str) and ("choose another car" in detail or "pick another car" in detail)
    with session_scope(api_env.engine) as session:
        active = session.execute(text("""
            SELECT count(*) FROM bookings WHERE vehicle_id = :car AND status IN ('pending', 'confirmed', 'picked_up')
        """), {"car": car}).scalar_one()
    assert active == 1
