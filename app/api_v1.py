"""The blueprint's REST API under /api/v1: locations, availability, vehicles, bookings, payments.

Every endpoint is a thin shell over the same services the desk uses: it checks the bearer token (in a unit of work
of its own, so a failed request still records that the token was used), opens one unit of work, calls the service
and turns its answer into JSON. The services' domain errors become HTTP answers in `add_error_handlers`.
"""

from __future__ import annotations

import logging
import re
import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.api_resources import engine
from db.models import Booking, User, UserRole, Vehicle, VehicleType
from db.session import session_scope
from services import bookings, payment_api, payments, quotes_bulk
from services.actors import Actor, Forbidden
from services.availability import (
    DEFAULT_LIMIT,
    DEFAULT_RADIUS_KM,
    MAX_LIMIT,
    MAX_RADIUS_KM,
    AvailabilityQuery,
    find_available,
)
from services.errors import Conflict, InvalidInput, NotFound
from services.gateway import GatewayNotConfigured, GatewayUnavailable, PaymentDeclined
from services.pricing import EXTRAS
from services.tokens import Unauthenticated, authenticate

log = logging.getLogger(__name__)

INT4_MAX = 2_147_483_647
INT8_MAX = 9_223_372_036_854_775_807
MAX_BOOKINGS_PAGE = 200
SERVER_ERROR = "Something went wrong on our side; try again, and tell us the time if it keeps failing."
API_CANCEL_REASON = "cancelled through the API"
_OTHER_BOOKING = re.compile(r"\b(next )?booking FD[A-Z0-9]{6}\b")


# --- value types ----------------------------------------------------------------------------------------------------

def _two_places(value: Any) -> str:
    return f"{Decimal(str(value)).quantize(Decimal('0.01'))}"


Money = Annotated[str, BeforeValidator(_two_places),
                  Field(pattern=r"^-?\d+\.\d{2}$", examples=["129.50"], description="Decimal, two places")]


def _utc_iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


Instant = Annotated[AwareDatetime, PlainSerializer(_utc_iso, return_type=str),
                    WithJsonSchema({"type": "string", "format": "date-time"})]


def _sensible_year(value: datetime) -> datetime:
    if not 2000 <= value.year <= 2999:
        raise ValueError("the date is out of range; give a date and time between the years 2000 and 2999")
    return value


# A time from the client: ISO 8601 with an offset (naive times are refused with 422).
When = Annotated[AwareDatetime, AfterValidator(_sensible_year)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("the text contains a NUL character; remove it")
    return value


CleanText = Annotated[str, AfterValidator(_no_nul)]
Int4Id = Annotated[int, Field(ge=1, le=INT4_MAX)]


# --- answers ----------------------------------------------------------------------------------------------------------

class ErrorOut(BaseModel):
    detail: str = Field(description="What is wrong and what to do about it")


class ValidationErrorOut(BaseModel):
    detail: str | list[dict[str, Any]] = Field(
        description="What is wrong and what to do; a list of field errors when the request's shape is wrong")


class LocationOut(BaseModel):
    id: int
    name: str
    address: str
    latitude: float
    longitude: float
    operating_hours: dict[str, Any]
    contact_phone: str
    timezone: str


class AvailableVehicleOut(BaseModel):
    id: int
    make: str
    model: str
    year: int
    license_plate: str
    vehicle_type: str
    location_id: int
    distance_km: float
    daily_rate: Money
    total_price: Money = Field(description="The quote for the period without extras, customer discounts or codes: "
                                           "daily rates under the pricing rules and published rates, and any "
                                           "one-way fee")
    currency: str


class VehicleOut(BaseModel):
    id: int
    make: str
    model: str
    year: int
    license_plate: str
    vehicle_type: str
    status: str
    current_location_id: int | None
    daily_rate: Money
    currency: str
    image_urls: list[str]
    odometer_km: int
    fuel_level: int


class BookingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Int4Id
    vehicle_id: Int4Id
    pickup_location_id: Int4Id
    dropoff_location_id: Int4Id
    pickup_at: When
    dropoff_at: When
    promo_code: Annotated[CleanText, Field(min_length=1, max_length=32,
                                           description="A promotion code; redeemed once for this booking")] | None = None
    extras: Annotated[list[Annotated[CleanText, Field(max_length=32)]],
                      Field(max_length=len(EXTRAS), description=f"Codes of: {', '.join(EXTRAS)}")] = []


class BookingOut(BaseModel):
    id: int
    reference: str
    status: str
    user_id: int
    vehicle_id: int
    pickup_location_id: int
    dropoff_location_id: int
    pickup_at: Instant
    dropoff_at: Instant
    total_price: Money
    currency: str
    price_breakdown: dict[str, Any]
    hold_expires_at: Instant | None


class BookingDetailOut(BookingOut):
    payment_status: str


class CancelledBookingOut(BookingDetailOut):
    refund_amount: Money


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[CleanText, Field(min_length=1, max_length=500)] | None = None


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    booking_id: Annotated[int, Field(ge=1, le=INT8_MAX)]


class PaymentOut(BaseModel):
    payment_id: int
    booking_id: int
    provider_payment_id: str | None
    client_secret: str | None = Field(description="For the client to confirm the payment with Stripe.js")
    amount: Money
    currency: str
    status: str


# --- who is asking --------------------------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="An API token from `fleetdesk tokens create --email E`.")


def current_actor(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Actor:
    """The staff member behind the bearer token (401 when there is none, or it is not valid now)."""
    if credentials is None:
        raise Unauthenticated("Missing API token; send `Authorization: Bearer <token>` (an admin creates one with "
                              "`fleetdesk tokens create --email E`).")
    token = credentials.credentials
    cached = _recent_tokens.get(token)
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]
    with session_scope(engine()) as session:
        actor = authenticate(session, token)
    if len(_recent_tokens) > 10_000:  # bounded: a flood of distinct tokens must not grow memory
        _recent_tokens.clear()
    _recent_tokens[token] = (actor, time.monotonic() + TOKEN_CACHE_SECONDS)
    return actor


# A valid token is remembered for a few seconds, so a busy client does not pay a database round trip per request;
# revoking a token, disabling its owner or its expiry take effect within that time.
TOKEN_CACHE_SECONDS = 5.0
_recent_tokens: dict[str, tuple[Actor, float]] = {}


def desk_actor(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
    """Bookings and payments: a desk agent or an admin."""
    if not actor.may(UserRole.DESK_AGENT):
        raise Forbidden("This API token's role cannot make or read bookings and payments; it needs a desk agent "
                        "or admin token (ask an admin).")
    return actor


AnyStaff = Annotated[Actor, Depends(current_actor)]
DeskStaff = Annotated[Actor, Depends(desk_actor)]


def _uow() -> AbstractContextManager[Session]:
    return session_scope(engine())


# --- the routes -------------------------------------------------------------------------------------------------------

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing, invalid, expired or revoked token"},
    403: {"model": ErrorOut, "description": "The token's role may not do this"},
    422: {"model": ValidationErrorOut, "description": "The request is not valid; the detail says why"},
    500: {"model": ErrorOut, "description": "Our fault; try again"},
    503: {"model": ErrorOut, "description": "The database or the payment service did not answer; try again"},
}
_404 = {404: {"model": ErrorOut, "description": "Not found"}}
_409 = {409: {"model": ErrorOut, "description": "Conflicts with the current state"}}
_400 = {400: {"model": ErrorOut, "description": "The body is not JSON"}}

router = APIRouter(prefix="/api/v1", responses=_ERRORS)


@router.get("/locations", tags=["locations"], response_model=list[LocationOut])
def list_locations(actor: AnyStaff) -> list[LocationOut]:
    """Every branch with its position, opening hours (local times per weekday) and time zone."""
    with _uow() as session:
        rows = session.execute(text("""
            SELECT id, name, address, ST_Y(geog::geometry) AS latitude, ST_X(geog::geometry) AS longitude,
                   operating_hours, contact_phone, timezone
            FROM locations ORDER BY id
        """)).mappings().all()
    return [LocationOut(**row) for row in rows]


@router.get("/vehicles/available", tags=["vehicles"], response_model=list[AvailableVehicleOut])
def search_available(
    actor: AnyStaff,
    pickup_at: Annotated[When, Query(description="ISO 8601 with an offset")],
    dropoff_at: Annotated[When, Query(description="ISO 8601 with an offset; after the pick-up")],
    pickup_location_id: Annotated[int | None, Query(ge=1, le=INT4_MAX, description="Search at this branch")] = None,
    lat: Annotated[float | None, Query(ge=-90, le=90, description="Or around this point (with lon)")] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    radius_km: Annotated[float, Query(gt=0, le=MAX_RADIUS_KM, description="Around a point")] = DEFAULT_RADIUS_KM,
    dropoff_location_id: Annotated[int | None, Query(ge=1, le=INT4_MAX,
                                                     description="Default: the pick-up branch")] = None,
    vehicle_type: Annotated[CleanText | None, Query(max_length=32, description="A vehicle type code")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> JSONResponse:
    """Cars free for the whole period, nearest first, each with its full price for the period."""
    try:
        query = AvailabilityQuery(pickup_at=pickup_at, dropoff_at=dropoff_at, pickup_location_id=pickup_location_id,
                                  lat=lat, lon=lon, radius_km=radius_km, dropoff_location_id=dropoff_location_id,
                                  vehicle_types=(vehicle_type,) if vehicle_type is not None else (), limit=limit)
        with _uow() as session:
            found = find_available(session, query)
            totals = quotes_bulk.totals(session, ((v.id, v.daily_rate, v.location_id, v.vehicle_type)
                                                  for v in found.vehicles), dropoff_location_id, pickup_at, dropoff_at)
    except NotFound as exc:  # a branch named in the query: the query is what is wrong
        raise InvalidInput(str(exc)) from None
    # The hottest answer of the API: built as plain JSON once (the shape is AvailableVehicleOut, which documents it
    # and which the contract tests and schemathesis check), not validated a second time on the way out.
    return JSONResponse([{"id": v.id, "make": v.make, "model": v.model, "year": v.year,
                          "license_plate": v.license_plate, "vehicle_type": v.vehicle_type,
                          "location_id": v.location_id, "distance_km": float(v.distance_km),
                          "daily_rate": _two_places(v.daily_rate), "total_price": _two_places(totals[v.id]),
                          "currency": v.currency} for v in found.vehicles])


@router.get("/vehicles/{vehicle_id}", tags=["vehicles"], response_model=VehicleOut, responses=_404)
def get_vehicle(actor: AnyStaff, vehicle_id: Annotated[int, Path(ge=1, le=INT4_MAX)]) -> VehicleOut:
    """One car: its type, status, where it stands now, rate, pictures and last readings."""
    with _uow() as session:
        row = session.execute(select(Vehicle, VehicleType.code).join(VehicleType, VehicleType.id ==
                                                                     Vehicle.vehicle_type_id)
                              .where(Vehicle.id == vehicle_id)).first()
        if row is None:
            raise NotFound(f"There is no vehicle {vehicle_id}; pick a car from the search.")
        car, type_code = row
        return VehicleOut(id=car.id, make=car.make, model=car.model, year=car.year, license_plate=car.license_plate,
                          vehicle_type=type_code, status=car.status.value, current_location_id=car.current_location_id,
                          daily_rate=car.daily_rate, currency=car.currency.strip(), image_urls=list(car.image_urls),
                          odometer_km=car.odometer_km, fuel_level=car.fuel_level)


def _booking_fields(booking: Booking) -> dict[str, Any]:
    return dict(id=booking.id, reference=booking.reference, status=booking.status.value, user_id=booking.user_id,
                vehicle_id=booking.vehicle_id, pickup_location_id=booking.pickup_location_id,
                dropoff_location_id=booking.dropoff_location_id, pickup_at=booking.pickup_at,
                dropoff_at=booking.dropoff_at, total_price=booking.total_price, currency=booking.currency.strip(),
                price_breakdown=booking.price_breakdown, hold_expires_at=booking.hold_expires_at)


def _detail(booking: Booking) -> BookingDetailOut:
    return BookingDetailOut(**_booking_fields(booking), payment_status=booking.payment_status)


def _without_references(message: str) -> str:
    return _OTHER_BOOKING.sub(lambda m: "next booking" if m.group(1) else "another booking", message)


@router.post("/bookings", tags=["bookings"], status_code=201, response_model=BookingOut,
             responses={200: {"model": BookingOut, "description": "A retry with the same Idempotency-Key"},
                        **_400, **_404, **_409})
def create_booking(
    actor: DeskStaff, body: BookingIn, response: Response,
    idempotency_key: Annotated[CleanText | None, Header(min_length=1, max_length=128,
                                                        description="Makes retries safe")] = None,
) -> BookingOut:
    """Hold a car for a customer: a pending booking with its price frozen (expires unless paid in time)."""
    pickup_at, dropoff_at = body.pickup_at.astimezone(UTC), body.dropoff_at.astimezone(UTC)
    with _uow() as session:
        known = session.scalars(text("SELECT id FROM locations WHERE id = ANY(:ids)"),
                                {"ids": [body.pickup_location_id, body.dropoff_location_id]}).all()
        for location_id in (body.pickup_location_id, body.dropoff_location_id):
            if location_id not in known:
                raise InvalidInput(f"There is no branch with id {location_id}; pick one from /api/v1/locations.")
        try:
            result = bookings.create_booking(
                session, actor, customer_id=body.user_id, vehicle_id=body.vehicle_id,
                pickup_location_id=body.pickup_location_id, dropoff_location_id=body.dropoff_location_id,
                pickup_at=pickup_at, dropoff_at=dropoff_at, extras=tuple(body.extras), channel="api",
                idempotency_key=idempotency_key, promo_code=body.promo_code)
        except Conflict as exc:  # name the clash, never another customer's booking
            raise Conflict(_without_references(str(exc))) from None
        response.status_code = 201 if result.created else 200
        return BookingOut(**_booking_fields(result.booking))


@router.get("/bookings/{booking_id}", tags=["bookings"], response_model=BookingDetailOut, responses=_404)
def get_booking(actor: DeskStaff, booking_id: Annotated[int, Path(ge=1, le=INT8_MAX)]) -> BookingDetailOut:
    """A booking, with its current status and payment status."""
    with _uow() as session:
        return _detail(bookings.get_booking(session, booking_id))


@router.patch("/bookings/{booking_id}/cancel", tags=["bookings"], response_model=CancelledBookingOut,
              responses={**_400, **_404, **_409})
def cancel_booking(actor: DeskStaff, booking_id: Annotated[int, Path(ge=1, le=INT8_MAX)],
                   body: CancelIn | None = None) -> CancelledBookingOut:
    """Cancel a pending or confirmed booking by the cancellation policy; what was paid less the fee goes back."""
    reason = (body.reason if body and body.reason and body.reason.strip() else None) or API_CANCEL_REASON
    with _uow() as session:
        booking = bookings.cancel_booking(session, actor, booking_id, reason=reason)
        payments.refund_for_cancellation(session, actor, booking.id)
        return CancelledBookingOut(**_booking_fields(booking), payment_status=booking.payment_status,
                                   refund_amount=booking.refund_due or Decimal("0"))


@router.get("/users/{user_id}/bookings", tags=["bookings"], response_model=list[BookingDetailOut], responses=_404)
def list_user_bookings(
    actor: DeskStaff, user_id: Annotated[int, Path(ge=1, le=INT4_MAX)],
    limit: Annotated[int, Query(ge=1, le=MAX_BOOKINGS_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT4_MAX)] = 0,
) -> list[BookingDetailOut]:
    """A customer's bookings, newest first."""
    with _uow() as session:
        customer = session.get(User, user_id)
        if customer is None or customer.role != UserRole.CUSTOMER:
            raise NotFound(f"There is no customer {user_id}; check the id.")
        rows = session.scalars(select(Booking).where(Booking.user_id == user_id)
                               .order_by(Booking.created_at.desc(), Booking.id.desc()).limit(limit).offset(offset))
        return [_detail(booking) for booking in rows]


@router.post("/payments/initiate", tags=["payments"], status_code=201, response_model=PaymentOut,
             responses={200: {"model": PaymentOut, "description": "The booking's payment already open"},
                        402: {"model": ErrorOut, "description": "The card was declined"},
                        **_400, **_404, **_409})
def initiate_payment(actor: DeskStaff, body: PaymentIn, response: Response) -> PaymentOut:
    """Open a card payment (a Stripe PaymentIntent) for a pending booking; the client confirms it with the secret."""
    declined: PaymentDeclined | None = None
    with _uow() as session:
        try:
            started = payment_api.initiate_payment(session, actor, body.booking_id)
        except PaymentDeclined as exc:  # the failed attempt is recorded: keep it, then answer
            declined = exc
        else:
            payment = started.charge.payment
            response.status_code = 201 if started.created else 200
            return PaymentOut(payment_id=payment.id, booking_id=payment.booking_id,
                              provider_payment_id=payment.provider_payment_id,
                              client_secret=started.charge.client_secret, amount=payment.amount,
                              currency=payment.currency.strip(), status=payment.status.value)
    raise declined


# --- errors -----------------------------------------------------------------------------------------------------------

def _json(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (Unauthenticated, 401), (Forbidden, 403), (NotFound, 404), (InvalidInput, 422), (PaymentDeclined, 402),
    (Conflict, 409), (GatewayUnavailable, 503), (GatewayNotConfigured, 503),
)


def add_error_handlers(app: FastAPI) -> None:
    """Domain errors as JSON with the status they mean; anything else a 500 without a traceback."""
    for error, status in _STATUS:
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None

        async def handler(request: Request, exc: Exception, status: int = status,
                          headers: dict[str, str] | None = headers) -> JSONResponse:
            return _json(status, str(exc), headers)

        app.add_exception_handler(error, handler)

    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        log.error("database unreachable on %s %s: %s", request.method, request.url.path, exc)
        return _json(503, "The database did not answer; try again in a moment.")

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return _json(500, SERVER_ERROR)

    app.add_exception_handler(OperationalError, database_down)
    app.add_exception_handler(Exception, server_error)
