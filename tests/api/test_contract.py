"""The /api/v1 contract: every endpoint, its success and every error the issue lists, exactly as specified."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from app import api_v1
from db.models import Booking, BookingStatus, Promotion
from db.session import session_scope
from services import pricing
from tests import factories as f
from tests.api.conftest import DROPOFF, PICKUP, booking_body, new_car
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import WEBHOOK_SECRET

MONEY = re.compile(r"^\d+\.\d{2}$")
LOCATION_FIELDS = {"id", "name", "address", "latitude", "longitude", "operating_hours", "contact_phone", "timezone"}
AVAILABLE_FIELDS = {"id", "make", "model", "year", "license_plate", "vehicle_type", "location_id", "distance_km",
                    "daily_rate", "total_price", "currency"}
VEHICLE_FIELDS = {"id", "make", "model", "year", "license_plate", "vehicle_type", "status", "current_location_id",
                  "daily_rate", "currency", "image_urls", "odometer_km", "fuel_level"}
BOOKING_FIELDS = {"id", "reference", "status", "user_id", "vehicle_id", "pickup_location_id", "dropoff_location_id",
                  "pickup_at", "dropoff_at", "total_price", "currency", "price_breakdown", "hold_expires_at"}
PAYMENT_FIELDS = {"payment_id", "booking_id", "provider_payment_id", "client_secret", "amount", "currency", "status"}


def _search(world, **params):
    query = {"pickup_at": PICKUP.isoformat(), "dropoff_at": DROPOFF.isoformat(), **params}
    return {k: v for k, v in query.items() if v is not None}


def _aware(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None and parsed.utcoffset() is not None, value
    return parsed


def _json_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    return detail


def _quote_total(world, car: int, pickup: int, dropoff: int) -> Decimal:
    with session_scope(world.engine) as session:
        return pricing.quote(session, car, pickup, dropoff, PICKUP, DROPOFF).total


def _book(client, world, car: int, **overrides):
    return client.post("/api/v1/bookings", json=booking_body(world, car, **overrides), headers=world.headers())


# --- auth ---------------------------------------------------------------------------------------------------------

def test_healthz_needs_no_token(client):
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer fdk_not-a-real-token", "Bearer nonsense",
                                           "Basic dXNlcjpwYXNz"])
def test_a_missing_or_invalid_token_is_401_with_a_bearer_challenge(client, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    answer = client.get("/api/v1/locations", headers=headers)
    assert "Bearer" in _json_error(answer, 401) or "token" in answer.json()["detail"]
    assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("which", ["revoked", "expired"])
def test_a_revoked_or_expired_token_is_401(client, api_env, which):
    answer = client.get("/api/v1/locations", headers=api_env.headers(which))
    assert "expired or was revoked" in _json_error(answer, 401)


@pytest.mark.parametrize("role", ["fleet_manager", "pricing_analyst"])
def test_roles_without_the_desk_right_read_the_fleet_but_get_403_for_bookings_and_payments(client, api_env, role):
    headers = api_env.headers(role)
    assert client.get("/api/v1/locations", headers=headers).status_code == 200
    assert client.get(f"/api/v1/vehicles/{api_env.cars[0]}", headers=headers).status_code == 200
    refused = [
        client.post("/api/v1/bookings", json=booking_body(api_env, api_env.cars[0]), headers=headers),
        client.get("/api/v1/bookings/1", headers=headers),
        client.patch("/api/v1/bookings/1/cancel", headers=headers),
        client.get(f"/api/v1/users/{api_env.customer}/bookings", headers=headers),
        client.post("/api/v1/payments/initiate", json={"booking_id": 1}, headers=headers),
    ]
    for answer in refused:
        assert "desk agent or admin" in _json_error(answer, 403)


def test_an_admin_token_may_book(client, api_env):
    answer = client.post("/api/v1/bookings", json=booking_body(api_env, new_car(api_env)),
                         headers=api_env.headers("admin"))
    assert answer.status_code == 201, answer.text


# --- locations ----------------------------------------------------------------------------------------------------

def test_locations_lists_every_branch_with_exactly_the_contract_fields(client, api_env):
    answer = client.get("/api/v1/locations", headers=api_env.headers())
    assert answer.status_code == 200
    branches = {row["id"]: row for row in answer.json()}
    assert {api_env.city, api_env.airport, api_env.far} <= set(branches)
    city = branches[api_env.city]
    assert set(city) == LOCATION_FIELDS
    assert city["name"] == "API City" and city["timezone"] == "Europe/London"
    assert (round(city["latitude"], 4), round(city["longitude"], 4)) == (51.5308, -0.1238)
    assert city["operating_hours"]["mon"] == [["07:00", "21:00"]]


# --- availability -------------------------------------------------------------------------------------------------

def test_a_search_at_a_branch_lists_its_free_cars_with_the_full_price_as_money_strings(client, api_env):
    answer = client.get("/api/v1/vehicles/available", params=_search(api_env, pickup_location_id=api_env.city),
                        headers=api_env.headers())
    assert answer.status_code == 200, answer.text
    cars = answer.json()
    assert cars and all(set(car) == AVAILABLE_FIELDS for car in cars)
    assert set(api_env.cars) <= {car["id"] for car in cars}
    for car in cars:
        assert MONEY.match(car["daily_rate"]) and MONEY.match(car["total_price"]) and car["currency"] == "GBP"
        assert car["location_id"] == api_env.city and car["distance_km"] == 0
        assert Decimal(car["total_price"]) == Decimal(car["daily_rate"]) * 3
        assert Decimal(car["total_price"]) == _quote_total(api_env, car["id"], api_env.city, api_env.city)


def test_a_one_way_search_prices_each_car_exactly_as_a_quote_does(client, api_env):
    answer = client.get("/api/v1/vehicles/available", headers=api_env.headers(),
                        params=_search(api_env, pickup_location_id=api_env.city, dropoff_location_id=api_env.far))
    cars = answer.json()
    assert answer.status_code == 200 and cars
    for car in cars:
        quoted = _quote_total(api_env, car["id"], api_env.city, api_env.far)
        assert Decimal(car["total_price"]) == quoted > Decimal(car["daily_rate"]) * 3


def test_a_search_around_a_point_is_nearest_first_and_each_car_is_quoted_from_its_own_branch(client, api_env):
    answer = client.get("/api/v1/vehicles/available", headers=api_env.headers(),
                        params=_search(api_env, lat=51.47, lon=-0.45, radius_km=40, dropoff_location_id=api_env.far))
    cars = answer.json()
    assert answer.status_code == 200, answer.text
    distances = [car["distance_km"] for car in cars]
    assert distances == sorted(distances) and {api_env.city, api_env.airport} <= {c["location_id"] for c in cars}
    for car in cars:
        assert Decimal(car["total_price"]) == _quote_total(api_env, car["id"], car["location_id"], api_env.far)


def test_a_search_filters_by_type_and_respects_the_limit(client, api_env):
    premium = client.get("/api/v1/vehicles/available", headers=api_env.headers(),
                         params=_search(api_env, lat=51.5, lon=-0.3, vehicle_type=api_env.adult_type_code))
    assert premium.status_code == 200 and {c["vehicle_type"] for c in premium.json()} == {api_env.adult_type_code}
    one = client.get("/api/v1/vehicles/available", headers=api_env.headers(),
                     params=_search(api_env, pickup_location_id=api_env.city, limit=1))
    assert one.status_code == 200 and len(one.json()) == 1


@pytest.mark.parametrize("change", [
    {"pickup_at": None},
    {"dropoff_at": None},
    {"pickup_at": PICKUP.replace(tzinfo=None).isoformat()},
    {"dropoff_at": DROPOFF.replace(tzinfo=None).isoformat()},
    {"pickup_at": "tomorrow"},
    {"dropoff_at": PICKUP.isoformat()},
    {"dropoff_at": (PICKUP - timedelta(hours=1)).isoformat()},
    {"pickup_at": (datetime.now(UTC) - timedelta(days=2)).isoformat(),
     "dropoff_at": (datetime.now(UTC) + timedelta(days=2)).isoformat()},
    {"vehicle_type": "hovercraft"},
    {"radius_km": 0, "lat": 51.5, "lon": -0.1, "pickup_location_id": None},
    {"radius_km": -5, "lat": 51.5, "lon": -0.1, "pickup_location_id": None},
    {"radius_km": 500.1, "lat": 51.5, "lon": -0.1, "pickup_location_id": None},
    {"limit": 0},
    {"limit": 501},
    {"lat": 51.5, "lon": -0.1},
    {"pickup_location_id": None},
    {"pickup_location_id": None, "lat": 51.5},
    {"pickup_location_id": 999_999},
], ids=["no-pickup", "no-dropoff", "naive-pickup", "naive-dropoff", "not-a-date", "dropoff-equal",
        "dropoff-before", "pickup-past", "unknown-type", "radius-0", "radius-negative", "radius-too-big", "limit-0",
        "limit-501", "both-branch-and-point", "neither", "lat-without-lon", "unknown-branch"])
def test_a_search_that_is_not_valid_is_422(client, api_env, change):
    params = _search(api_env, pickup_location_id=api_env.city)
    params.update(change)
    params = {k: v for k, v in params.items() if v is not None}
    answer = client.get("/api/v1/vehicles/available", params=params, headers=api_env.headers())
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/json") and answer.json()["detail"]


# --- one vehicle --------------------------------------------------------------------------------------------------

def test_a_vehicle_has_exactly_the_contract_fields(client, api_env):
    answer = client.get(f"/api/v1/vehicles/{api_env.cars[1]}", headers=api_env.headers())
    assert answer.status_code == 200
    car = answer.json()
    assert set(car) == VEHICLE_FIELDS
    assert (car["id"], car["license_plate"], car["vehicle_type"], car["status"]) == (
        api_env.cars[1], "APIR001", api_env.type_code, "available")
    assert (car["daily_rate"], car["currency"], car["current_location_id"]) == ("41.00", "GBP", api_env.city)
    assert car["image_urls"] == [] and isinstance(car["odometer_km"], int) and isinstance(car["fuel_level"], int)


def test_an_unknown_vehicle_is_404(client, api_env):
    assert "no vehicle" in _json_error(client.get("/api/v1/vehicles/999999", headers=api_env.headers()), 404)


# --- booking --------------------------------------------------------------------------------------------------------

def test_a_booking_is_201_pending_with_exactly_the_contract_fields(client, api_env):
    car = new_car(api_env, rate="43.25")
    answer = _book(client, api_env, car, extras=["child_seat"])
    assert answer.status_code == 201, answer.text
    booking = answer.json()
    assert set(booking) == BOOKING_FIELDS
    assert (booking["status"], booking["user_id"], booking["vehicle_id"]) == ("pending", api_env.customer, car)
    assert (booking["pickup_location_id"], booking["dropoff_location_id"]) == (api_env.city, api_env.city)
    assert _aware(booking["pickup_at"]) == PICKUP and _aware(booking["dropoff_at"]) == DROPOFF
    assert _aware(booking["hold_expires_at"]) > datetime.now(UTC)
    assert booking["total_price"] == "153.75" and booking["currency"] == "GBP"  # 3 × 43.25 + 3 × 8.00
    lines = {line["code"]: line["amount"] for line in booking["price_breakdown"]["lines"]}
    assert lines == {"base": "129.75", "child_seat": "24.00"}
    assert booking["reference"].startswith("FD")


def test_a_booking_costs_what_the_search_said(client, api_env):
    car = new_car(api_env, rate="37.10")
    found = client.get("/api/v1/vehicles/available", headers=api_env.headers(),
                       params=_search(api_env, pickup_location_id=api_env.city, dropoff_location_id=api_env.airport,
                                      limit=500)).json()
    listed = next(c for c in found if c["id"] == car)
    booked = _book(client, api_env, car, dropoff_location_id=api_env.airport).json()
    assert booked["total_price"] == listed["total_price"]


def test_times_with_another_offset_are_the_same_instant(client, api_env):
    car = new_car(api_env)
    plus_two = [t.astimezone(datetime.now().astimezone().tzinfo).isoformat() for t in (PICKUP, DROPOFF)]
    body = booking_body(api_env, car, pickup_at=PICKUP.isoformat().replace("+00:00", "Z"), dropoff_at=plus_two[1])
    answer = client.post("/api/v1/bookings", json=body, headers=api_env.headers())
    assert answer.status_code == 201 and _aware(answer.json()["dropoff_at"]) == DROPOFF


def test_a_clash_is_409_naming_the_period_but_not_the_other_customers_booking(client, api_env):
    car = new_car(api_env)
    first = _book(client, api_env, car).json()
    later = {"pickup_at": (PICKUP + timedelta(days=1)).isoformat(),
             "dropoff_at": (DROPOFF + timedelta(days=1)).isoformat()}
    detail = _json_error(_book(client, api_env, car, **later), 409)
    assert "turnaround included" in detail and "pick another car" in detail
    assert first["reference"] not in detail and "Casey" not in detail and "casey@" not in detail


def test_a_car_that_will_not_be_at_the_pick_up_branch_is_409(client, api_env):
    car = new_car(api_env)
    detail = _json_error(_book(client, api_env, car, pickup_location_id=api_env.airport,
                               dropoff_location_id=api_env.airport), 409)
    assert "API City" in detail and "not at API Airport" in detail


def test_an_ineligible_driver_is_422_with_the_reason(client, api_env):
    car = new_car(api_env, type_code=api_env.adult_type_code)
    detail = _json_error(_book(client, api_env, car, user_id=api_env.young_customer), 422)
    assert "at least 25" in detail


@pytest.mark.parametrize("change", [
    {"pickup_at": PICKUP.replace(tzinfo=None).isoformat()},
    {"dropoff_at": PICKUP.isoformat()},
    {"pickup_at": (datetime.now(UTC) - timedelta(days=1)).isoformat()},
    {"pickup_at": "2030-13-01T10:00:00+00:00"},
    {"vehicle_id": None},
    {"user_id": "one"},
    {"surprise": True},
    {"extras": ["jetpack"]},
    {"pickup_location_id": 999_999},
    {"dropoff_at": (PICKUP + timedelta(days=400)).isoformat()},
], ids=["naive", "dropoff-not-after", "past", "bad-date", "missing-field", "bad-id", "unknown-field",
        "unknown-extra", "unknown-branch", "too-long"])
def test_a_booking_that_is_not_valid_is_422(client, api_env, change):
    body = booking_body(api_env, new_car(api_env))
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    answer = client.post("/api/v1/bookings", json=body, headers=api_env.headers())
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]


def test_an_unknown_user_or_vehicle_is_404(client, api_env):
    car = new_car(api_env)
    assert "no customer" in _json_error(_book(client, api_env, car, user_id=999_999), 404)
    assert "no vehicle" in _json_error(_book(client, api_env, 999_999), 404)


def test_the_idempotency_key_makes_a_retry_return_the_same_booking_and_refuses_another_body(client, api_env):
    car = new_car(api_env)
    key = {"Idempotency-Key": f"try-{uuid.uuid4()}", **api_env.headers()}
    body = booking_body(api_env, car)
    first = client.post("/api/v1/bookings", json=body, headers=key)
    again = client.post("/api/v1/bookings", json=body, headers=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    other = {**body, "dropoff_at": (DROPOFF + timedelta(days=1)).isoformat()}
    assert "already used" in _json_error(client.post("/api/v1/bookings", json=other, headers=key), 422)
    without_key = client.post("/api/v1/bookings", json=body, headers=api_env.headers())
    assert without_key.status_code == 409


def test_an_unknown_promotion_code_is_422(client, api_env):
    detail = _json_error(_book(client, api_env, new_car(api_env), promo_code="NOSUCH10"), 422)
    assert detail.startswith("Unknown or expired promotion code NOSUCH10")


def _promotion(world, **terms) -> str:
    code = f"SPRING{uuid.uuid4().hex[:6].upper()}"
    with session_scope(world.engine) as session:
        session.add(Promotion(**{"code": code, "description": "test", "discount_kind": "percent",
                                 "discount_value": Decimal("10"), "currency": "GBP",
                                 "valid_from": PICKUP - timedelta(days=60), "valid_until": PICKUP + timedelta(days=60),
                                 **terms}))
    return code


def test_a_live_promotion_code_takes_its_discount_and_is_counted_once(client, api_env):
    code = _promotion(api_env)
    car = new_car(api_env)
    without = _quote_total(api_env, car, api_env.city, api_env.city)
    made = _book(client, api_env, car, promo_code=code.lower())
    assert made.status_code == 201, made.text
    booking = made.json()
    promotion_line = next(line for line in booking["price_breakdown"]["lines"] if line["code"] == "promotion")
    assert Decimal(promotion_line["amount"]) < 0
    assert Decimal(booking["total_price"]) == without + Decimal(promotion_line["amount"])
    assert booking["price_breakdown"]["promotion"]["code"] == code
    with session_scope(api_env.engine) as session:
        assert session.scalar(select(Promotion.redemptions_count).where(Promotion.code == code)) == 1


def test_a_used_up_promotion_code_is_422_and_books_nothing(client, api_env):
    code = _promotion(api_env, max_redemptions=1, redemptions_count=1)
    car = new_car(api_env)
    detail = _json_error(_book(client, api_env, car, promo_code=code), 422)
    assert "fully used" in detail
    with session_scope(api_env.engine) as session:
        assert session.scalar(select(Booking.id).where(Booking.vehicle_id == car)) is None


# --- reading and cancelling ---------------------------------------------------------------------------------------

def test_get_a_booking_adds_its_payment_status(client, api_env):
    made = _book(client, api_env, new_car(api_env)).json()
    answer = client.get(f"/api/v1/bookings/{made['id']}", headers=api_env.headers())
    assert answer.status_code == 200
    booking = answer.json()
    assert set(booking) == BOOKING_FIELDS | {"payment_status"}
    assert {k: booking[k] for k in BOOKING_FIELDS} == made
    assert (booking["status"], booking["payment_status"]) == ("pending", "unpaid")


def test_an_unknown_booking_is_404_everywhere(client, api_env):
    headers = api_env.headers()
    assert "no booking" in _json_error(client.get("/api/v1/bookings/987654321", headers=headers), 404)
    assert "no booking" in _json_error(client.patch("/api/v1/bookings/987654321/cancel", headers=headers), 404)


def test_cancel_is_200_cancelled_with_the_refund_and_a_second_cancel_is_409(client, api_env):
    made = _book(client, api_env, new_car(api_env)).json()
    answer = client.patch(f"/api/v1/bookings/{made['id']}/cancel", json={"reason": "plans changed"},
                          headers=api_env.headers())
    assert answer.status_code == 200, answer.text
    cancelled = answer.json()
    assert set(cancelled) == BOOKING_FIELDS | {"payment_status", "refund_amount"}
    assert (cancelled["status"], cancelled["refund_amount"]) == ("cancelled", "0.00")  # nothing was paid
    with session_scope(api_env.engine) as session:
        assert session.get(Booking, made["id"]).cancel_reason == "plans changed"
    again = client.patch(f"/api/v1/bookings/{made['id']}/cancel", headers=api_env.headers())
    assert "is cancelled" in _json_error(again, 409)
    assert client.get(f"/api/v1/bookings/{made['id']}", headers=api_env.headers()).json()["status"] == "cancelled"


def test_cancel_without_a_body_is_fine(client, api_env):
    made = _book(client, api_env, new_car(api_env)).json()
    assert client.patch(f"/api/v1/bookings/{made['id']}/cancel", headers=api_env.headers()).status_code == 200


@pytest.mark.parametrize("status", [BookingStatus.PICKED_UP, BookingStatus.COMPLETED])
def test_a_picked_up_or_completed_booking_cannot_be_cancelled(client, api_env, status):
    car_id = new_car(api_env)
    with session_scope(api_env.engine) as session:
        from db.models import User, Vehicle

        booking = f.booking(session, session.get(Vehicle, car_id), session.get(User, api_env.customer), PICKUP,
                            DROPOFF, status=status)
        booking_id = booking.id
    detail = _json_error(client.patch(f"/api/v1/bookings/{booking_id}/cancel", headers=api_env.headers()), 409)
    assert "only a pending or confirmed booking can be cancelled" in detail


# --- a customer's bookings ----------------------------------------------------------------------------------------

def test_a_users_bookings_are_newest_first_and_paged(client, api_env):
    made = [_book(client, api_env, new_car(api_env)).json()["id"] for _ in range(3)]
    url = f"/api/v1/users/{api_env.customer}/bookings"
    first = client.get(url, params={"limit": 2}, headers=api_env.headers())
    assert first.status_code == 200
    page = first.json()
    assert [b["id"] for b in page] == made[::-1][:2]
    assert all(set(b) == BOOKING_FIELDS | {"payment_status"} for b in page)
    second = client.get(url, params={"limit": 2, "offset": 1}, headers=api_env.headers()).json()
    assert second[0]["id"] == made[1]
    everything = client.get(url, headers=api_env.headers()).json()
    created = [b["id"] for b in everything]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"offset": -1}, {"limit": "many"}])
def test_a_users_bookings_with_a_page_out_of_range_is_422(client, api_env, params):
    answer = client.get(f"/api/v1/users/{api_env.customer}/bookings", params=params, headers=api_env.headers())
    assert answer.status_code == 422 and answer.json()["detail"]


def test_an_unknown_user_has_no_bookings_list(client, api_env):
    assert "no customer" in _json_error(client.get("/api/v1/users/999999/bookings", headers=api_env.headers()), 404)


# --- payments -------------------------------------------------------------------------------------------------------

@pytest.fixture
def stripe_env(monkeypatch, localstripe):
    monkeypatch.setenv("STRIPE_API_BASE", localstripe.api_base)
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_fleetdesk")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("STRIPE_TIMEOUT_SECONDS", "10")
    return localstripe


def test_initiate_is_201_then_200_with_the_same_open_payment(client, api_env, stripe_env):
    made = _book(client, api_env, new_car(api_env)).json()
    first = client.post("/api/v1/payments/initiate", json={"booking_id": made["id"]}, headers=api_env.headers())
    assert first.status_code == 201, first.text
    payment = first.json()
    assert set(payment) == PAYMENT_FIELDS
    assert (payment["booking_id"], payment["amount"], payment["currency"]) == (made["id"], made["total_price"],
                                                                              "GBP")
    assert payment["provider_payment_id"].startswith("pi_") and payment["client_secret"]
    assert payment["status"] == "pending"
    again = client.post("/api/v1/payments/initiate", json={"booking_id": made["id"]}, headers=api_env.headers())
    assert again.status_code == 200 and again.json() == payment
    after = client.get(f"/api/v1/bookings/{made['id']}", headers=api_env.headers()).json()
    assert (after["status"], after["payment_status"]) == ("pending", "pending")


def test_initiate_for_a_booking_that_is_not_pending_is_409_and_unknown_is_404(client, api_env, stripe_env):
    made = _book(client, api_env, new_car(api_env)).json()
    client.patch(f"/api/v1/bookings/{made['id']}/cancel", headers=api_env.headers())
    answer = client.post("/api/v1/payments/initiate", json={"booking_id": made["id"]}, headers=api_env.headers())
    assert "only a pending booking" in _json_error(answer, 409)
    unknown = client.post("/api/v1/payments/initiate", json={"booking_id": 987654321}, headers=api_env.headers())
    assert "no booking" in _json_error(unknown, 404)


@pytest.mark.parametrize("body", [{}, {"booking_id": "x"}, {"booking_id": 0}])
def test_initiate_without_a_booking_id_is_422(client, api_env, body):
    answer = client.post("/api/v1/payments/initiate", json=body, headers=api_env.headers())
    assert answer.status_code == 422 and answer.json()["detail"]


# --- errors are JSON ------------------------------------------------------------------------------------------------

def test_unknown_paths_and_methods_are_json(client, api_env):
    assert _json_error(client.get("/api/v1/nowhere", headers=api_env.headers()), 404)
    assert _json_error(client.delete("/api/v1/locations", headers=api_env.headers()), 405)
    malformed = client.post("/api/v1/bookings", content=b"{not json", headers={**api_env.headers(),
                                                                             "Content-Type": "application/json"})
    assert malformed.status_code == 422 and malformed.headers["content-type"].startswith("application/json")


def test_an_unexpected_failure_is_a_json_500_without_a_traceback(client, api_env, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals /srv/fleetdesk")

    monkeypatch.setattr(api_v1, "find_available", explode)
    answer = client.get("/api/v1/vehicles/available", params=_search(api_env, pickup_location_id=api_env.city),
                        headers=api_env.headers())
    assert _json_error(answer, 500) == api_v1.SERVER_ERROR
    assert "secret" not in answer.text and "Traceback" not in answer.text


def test_the_openapi_document_and_docs_are_served(client):
    document = client.get("/openapi.json").json()
    assert document["info"]["title"] == "Fleetdesk API"
    assert {"/api/v1/locations", "/api/v1/vehicles/available", "/api/v1/bookings",
            "/api/v1/payments/initiate"} <= set(document["paths"])
    assert client.get("/docs").status_code == 200


def test_each_request_is_one_unit_of_work_and_a_refused_booking_leaves_nothing(client, api_env):
    car = new_car(api_env)
    _book(client, api_env, car, extras=["jetpack"])
    with session_scope(api_env.engine) as session:
        assert session.execute(text("SELECT count(*) FROM bookings WHERE vehicle_id = :v"), {"v": car}).scalar() == 0


def test_a_token_revoked_while_in_use_stops_working_within_the_cache_window(client, api_env, monkeypatch):
    """Valid tokens are remembered for TOKEN_CACHE_SECONDS; revocation takes effect once that has passed."""
    import time

    from app import api_v1
    from db.session import make_engine, session_scope
    from services.actors import Actor
    from services.tokens import create_token, revoke_token

    monkeypatch.setattr(api_v1, "TOKEN_CACHE_SECONDS", 0.3)
    engine = make_engine(api_env.url)
    with session_scope(engine) as session:
        token, plain = create_token(session, Actor.command_line(), _any_staff_email(session))
    headers = {"Authorization": f"Bearer {plain}"}
    assert client.get("/api/v1/locations", headers=headers).status_code == 200
    with session_scope(engine) as session:
        revoke_token(session, Actor.command_line(), token.id)
    engine.dispose()
    time.sleep(0.4)
    assert "expired or was revoked" in _json_error(client.get("/api/v1/locations", headers=headers), 401)


def _any_staff_email(session) -> str:
    from sqlalchemy import text

    return session.execute(text("SELECT email FROM users WHERE role <> 'customer' AND status = 'active' "
                                "ORDER BY id LIMIT 1")).scalar_one()
