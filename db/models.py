"""Typed SQLAlchemy 2 models of the whole data model. The schema itself is owned by the Alembic migrations."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from geoalchemy2 import Geography
from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSTZRANGE, Range
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

Money = Numeric(12, 2, asdecimal=True)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONB, datetime: DateTime(timezone=True), Decimal: Money}


def _pg_enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e], create_type=False)


class VehicleStatus(enum.StrEnum):
    AVAILABLE = "available"
    RENTED = "rented"
    MAINTENANCE = "maintenance"
    IN_TRANSIT = "in_transit"
    RETIRED = "retired"

    @property
    def label(self) -> str:
        return {"in_transit": "InTransit"}.get(self.value, self.value.title())


class BookingStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    PICKED_UP = "picked_up"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


ACTIVE_BOOKING_STATUSES = (BookingStatus.PENDING, BookingStatus.CONFIRMED, BookingStatus.PICKED_UP)


class UserRole(enum.StrEnum):
    CUSTOMER = "customer"
    DESK_AGENT = "desk_agent"
    FLEET_MANAGER = "fleet_manager"
    PRICING_ANALYST = "pricing_analyst"
    ADMIN = "admin"


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"


class VehicleType(Base):
    __tablename__ = "vehicle_types"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    rank: Mapped[int] = mapped_column(SmallInteger)
    seats: Mapped[int] = mapped_column(SmallInteger)
    transmission: Mapped[str] = mapped_column(String(16))
    fuel: Mapped[str] = mapped_column(String(16))
    base_daily_rate: Mapped[Decimal]
    deposit_amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    min_driver_age: Mapped[int] = mapped_column(SmallInteger)
    service_interval_km: Mapped[int] = mapped_column(Integer)
    service_interval_days: Mapped[int] = mapped_column(Integer)


class Location(Base):
    __tablename__ = "locations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(Text)
    city: Mapped[str] = mapped_column(String(80))
    country: Mapped[str] = mapped_column(String(2))
    geog: Mapped[Any] = mapped_column(Geography("POINT", srid=4326, spatial_index=False))
    operating_hours: Mapped[dict[str, Any]]
    contact_phone: Mapped[str] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64))
    parking_capacity: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    vat_rate: Mapped[Decimal] = mapped_column(Numeric(5, 4), server_default="0.20")  # prices include it (0008)
    languages: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{en}")  # of its messages (0009)


class Vehicle(Base):
    __tablename__ = "vehicles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vin: Mapped[str] = mapped_column(String(17), unique=True)
    license_plate: Mapped[str] = mapped_column(String(16), unique=True)
    make: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(60))
    year: Mapped[int] = mapped_column(SmallInteger)
    vehicle_type_id: Mapped[int] = mapped_column(ForeignKey("vehicle_types.id"))
    current_location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    status: Mapped[VehicleStatus] = mapped_column(_pg_enum(VehicleStatus, "vehicle_status"))
    daily_rate: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    image_urls: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    odometer_km: Mapped[int] = mapped_column(Integer)
    fuel_level: Mapped[int] = mapped_column(SmallInteger)  # percent of a full tank
    last_position: Mapped[Any | None] = mapped_column(Geography("POINT", srid=4326, spatial_index=False))
    last_seen_at: Mapped[datetime | None]
    last_service_at: Mapped[datetime | None]
    last_service_km: Mapped[int | None] = mapped_column(Integer)
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    vehicle_type: Mapped[VehicleType] = relationship(lazy="raise_on_sql")
    current_location: Mapped[Location | None] = relationship(lazy="raise_on_sql")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str | None] = mapped_column(Text)
    first_name: Mapped[str] = mapped_column(String(80))
    last_name: Mapped[str] = mapped_column(String(80))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    address: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    phone: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[UserRole] = mapped_column(_pg_enum(UserRole, "user_role"))
    licence_number_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    licence_number_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    licence_country: Mapped[str | None] = mapped_column(String(2))
    licence_expiry: Mapped[date | None] = mapped_column(Date)
    identity_status: Mapped[str] = mapped_column(String(16), server_default="unverified")
    marketing_opt_in: Mapped[bool] = mapped_column(Boolean, server_default="false")
    preferred_language: Mapped[str | None] = mapped_column(String(8))  # (0009)
    failed_logins: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime | None]
    identity_checked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    identity_checked_at: Mapped[datetime | None]
    blocked_reason: Mapped[str | None] = mapped_column(Text)
    erased_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    loyalty_tier: Mapped[str | None] = mapped_column(ForeignKey("loyalty_tiers.code"))  # (0008)

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    prefix: Mapped[str] = mapped_column(String(12))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class WebSession(Base):
    """A staff member's browser session (0015): the cookie's token is kept only as its SHA-256 digest."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    role: Mapped[UserRole] = mapped_column(_pg_enum(UserRole, "user_role"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Booking(Base):
    __tablename__ = "bookings"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reference: Mapped[str] = mapped_column(String(12), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id"))
    vehicle_type_id: Mapped[int] = mapped_column(ForeignKey("vehicle_types.id"))
    pickup_location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    dropoff_location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    pickup_at: Mapped[datetime]
    dropoff_at: Mapped[datetime]
    actual_return_at: Mapped[datetime | None]
    turnaround_minutes: Mapped[int] = mapped_column(SmallInteger)
    blocked_period: Mapped[Range[datetime]] = mapped_column(
        TSTZRANGE, Computed("tstzrange(pickup_at, fd_add_minutes(dropoff_at, turnaround_minutes), '[)')")
    )
    total_price: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    price_breakdown: Mapped[dict[str, Any]]
    status: Mapped[BookingStatus] = mapped_column(_pg_enum(BookingStatus, "booking_status"))
    payment_status: Mapped[str] = mapped_column(String(24), server_default="unpaid")
    channel: Mapped[str] = mapped_column(String(8))
    hold_expires_at: Mapped[datetime | None]
    odometer_out_km: Mapped[int | None] = mapped_column(Integer)
    fuel_out: Mapped[int | None] = mapped_column(SmallInteger)
    odometer_in_km: Mapped[int | None] = mapped_column(Integer)
    fuel_in: Mapped[int | None] = mapped_column(SmallInteger)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    cancelled_at: Mapped[datetime | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    extras: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    confirmed_at: Mapped[datetime | None]
    picked_up_at: Mapped[datetime | None]
    licence_checked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    checkout_notes: Mapped[str | None] = mapped_column(Text)
    checkin_notes: Mapped[str | None] = mapped_column(Text)
    photo_urls: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    damage_reported: Mapped[bool] = mapped_column(Boolean, server_default="false")
    late_fee: Mapped[Decimal | None]
    fuel_charge: Mapped[Decimal | None]
    damage_charge: Mapped[Decimal | None]
    cancellation_fee: Mapped[Decimal | None]
    refund_due: Mapped[Decimal | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    disputed: Mapped[bool] = mapped_column(Boolean, server_default="false")  # flagged for staff (0007)

    vehicle: Mapped[Vehicle] = relationship(lazy="raise_on_sql")
    user: Mapped[User] = relationship(lazy="raise_on_sql", foreign_keys=[user_id])


class MaintenanceBlock(Base):
    __tablename__ = "maintenance_blocks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id"))
    period: Mapped[Range[datetime]] = mapped_column(TSTZRANGE)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="scheduled")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class VehicleOccupancy(Base):
    """Every period a vehicle is taken (active booking incl. turnaround, or maintenance); kept by triggers."""

    __tablename__ = "vehicle_occupancy"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id"))
    period: Mapped[Range[datetime]] = mapped_column(TSTZRANGE)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    maintenance_block_id: Mapped[int | None] = mapped_column(
        ForeignKey("maintenance_blocks.id", ondelete="CASCADE")
    )
    transfer_id: Mapped[int | None] = mapped_column(ForeignKey("transfers.id", ondelete="CASCADE"))  # 0010


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"))
    kind: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal]
    amount_captured: Mapped[Decimal] = mapped_column(Money, server_default="0")
    amount_refunded: Mapped[Decimal] = mapped_column(Money, server_default="0")
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PaymentStatus] = mapped_column(_pg_enum(PaymentStatus, "payment_status"))
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    provider: Mapped[str] = mapped_column(String(16), server_default="stripe")
    provider_payment_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    provider_customer_id: Mapped[str | None] = mapped_column(String(128))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # 0007_payments
    attempt: Mapped[int] = mapped_column(SmallInteger, server_default="1")
    provider_charge_id: Mapped[str | None] = mapped_column(String(128))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    dispute_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    dispute_status: Mapped[str | None] = mapped_column(String(32))
    dispute_reason: Mapped[str | None] = mapped_column(Text)
    dispute_amount: Mapped[Decimal | None]
    disputed_at: Mapped[datetime | None]


class Refund(Base):
    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    provider_refund_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # 0007


class PricingRule(Base):
    __tablename__ = "pricing_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    vehicle_type_id: Mapped[int | None] = mapped_column(ForeignKey("vehicle_types.id"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    daily_rate_modifier: Mapped[Decimal] = mapped_column(Numeric(6, 4), server_default="1")
    seasonal_surcharge_pct: Mapped[Decimal] = mapped_column(Numeric(6, 2), server_default="0")
    min_days: Mapped[int | None] = mapped_column(SmallInteger)
    max_days: Mapped[int | None] = mapped_column(SmallInteger)
    priority: Mapped[int] = mapped_column(SmallInteger, server_default="100")
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    days_of_week: Mapped[str] = mapped_column(String(8), server_default="all")  # all | weekend | weekday (0008)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Promotion(Base):
    __tablename__ = "promotions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    description: Mapped[str] = mapped_column(Text)
    discount_kind: Mapped[str] = mapped_column(String(8))
    discount_value: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    max_redemptions: Mapped[int | None] = mapped_column(Integer)
    max_per_customer: Mapped[int | None] = mapped_column(Integer)
    min_days: Mapped[int | None] = mapped_column(SmallInteger)
    vehicle_type_codes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    redemptions_count: Mapped[int] = mapped_column(Integer, server_default="0")
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # (0008)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DomainEvent(Base):
    """The transactional outbox."""

    __tablename__ = "domain_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    aggregate_type: Mapped[str] = mapped_column(String(32))
    aggregate_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime] = mapped_column(server_default=func.now())
    published_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    parked_at: Mapped[datetime | None]  # a dead letter (0009)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    changes: Mapped[dict[str, Any]]
    at: Mapped[datetime] = mapped_column(server_default=func.now())


class TransferStatus(enum.StrEnum):
    PLANNED = "planned"
    IN_TRANSIT = "in_transit"
    ARRIVED = "arrived"
    CANCELLED = "cancelled"


class Transfer(Base):
    """A car driven from one branch to another (rebalancing), with its own lifecycle."""

    __tablename__ = "transfers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id"))
    from_location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    to_location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    depart_at: Mapped[datetime]
    arrive_at: Mapped[datetime]
    status: Mapped[TransferStatus] = mapped_column(_pg_enum(TransferStatus, "transfer_status"))
    distance_km: Mapped[Decimal | None] = mapped_column(Numeric(8, 1))
    cost: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("rebalancing_plans.id"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # 0010_rebalance
    move_id: Mapped[int | None] = mapped_column(ForeignKey("rebalancing_moves.id"))
    arrived_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(Text)


class TelematicsReading(Base):
    """One reading from a car's telematics box (partitioned by month in PostgreSQL)."""

    __tablename__ = "telematics_readings"

    vehicle_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(primary_key=True)
    position: Mapped[Any] = mapped_column(Geography("POINT", srid=4326, spatial_index=False))
    fuel_level: Mapped[int] = mapped_column(SmallInteger)
    odometer_km: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AppMeta(Base):
    """Small facts about this database (e.g. what demo data was loaded)."""

    __tablename__ = "app_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]]


class PaymentEvent(Base):
    """An event the payment gateway sent us, stored once by its id (card data never kept)."""

    __tablename__ = "payment_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16), server_default="stripe")
    provider_event_id: Mapped[str] = mapped_column(String(128), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    payload: Mapped[dict[str, Any]]
    outcome: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    processed_at: Mapped[datetime | None]


class RatePublication(Base):
    """A reviewed optimiser run whose multipliers were published for quotes (0008)."""

    __tablename__ = "rate_publications"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    published_at: Mapped[datetime] = mapped_column(server_default=func.now())
    published_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    horizon_start: Mapped[date] = mapped_column(Date)
    horizon_days: Mapped[int] = mapped_column(SmallInteger)
    expected_revenue: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    summary: Mapped[dict[str, Any]] = mapped_column(server_default="{}")


class PublishedRate(Base):
    """The published multiplier of a (pick-up branch, vehicle type, pick-up day): scales the whole rental's daily rate."""

    __tablename__ = "published_rates"

    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"), primary_key=True)
    vehicle_type_id: Mapped[int] = mapped_column(ForeignKey("vehicle_types.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    multiplier: Mapped[Decimal] = mapped_column(Numeric(6, 4))
    publication_id: Mapped[int] = mapped_column(ForeignKey("rate_publications.id"))


class LoyaltyTier(Base):
    """A customer loyalty tier and the percentage it takes off the rental (0008)."""

    __tablename__ = "loyalty_tiers"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    rank: Mapped[int] = mapped_column(SmallInteger, unique=True)
    discount_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2))


class OneWayFee(Base):
    """The fee for dropping a car at another branch, per direction (0008)."""

    __tablename__ = "one_way_fees"

    from_location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"), primary_key=True)
    to_location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"), primary_key=True)
    fee: Mapped[Decimal]


class PromotionRedemption(Base):
    """A promotion used by one booking: unique per booking (0008)."""

    __tablename__ = "promotion_redemptions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    promotion_id: Mapped[int] = mapped_column(ForeignKey("promotions.id"))
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    discount: Mapped[Decimal]
    redeemed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Notification(Base):
    """A message to a customer on one channel, at most once per idempotency key (0009)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("domain_events.id"))
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(40))
    category: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    claimed_by: Mapped[int | None] = mapped_column(Integer)
    provider_id: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    resend_of: Mapped[int | None] = mapped_column(ForeignKey("notifications.id"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    sent_at: Mapped[datetime | None]


class DevMailboxMessage(Base):
    """What the development mailbox received (0009)."""

    __tablename__ = "dev_mailbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), unique=True)
    medium: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())


class PickupReminder(Base):
    """A pick-up reminder queued once per booking and pick-up time (0009)."""

    __tablename__ = "pickup_reminders"

    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), primary_key=True)
    pickup_at: Mapped[datetime] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("domain_events.id"))
    queued_at: Mapped[datetime] = mapped_column(server_default=func.now())


class RebalancingPlan(Base):
    """A run of the rebalancing optimiser on the live fleet, kept for review; approved (once) or discarded (0010)."""

    __tablename__ = "rebalancing_plans"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), server_default="proposed")
    start_date: Mapped[date] = mapped_column(Date)
    horizon_days: Mapped[int] = mapped_column(SmallInteger)
    solver_status: Mapped[str] = mapped_column(String(16))
    objective: Mapped[Decimal]
    bound: Mapped[Decimal | None]
    move_cost: Mapped[Decimal]
    lost_sale_cost: Mapped[Decimal]
    baseline_cost: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    demand_total: Mapped[int] = mapped_column(Integer)
    lost_sales: Mapped[int] = mapped_column(Integer)
    baseline_lost_sales: Mapped[int] = mapped_column(Integer)
    cars_moved: Mapped[int] = mapped_column(Integer)
    demand_source: Mapped[str] = mapped_column(String(16))
    solve_seconds: Mapped[Decimal] = mapped_column(Numeric(9, 3))
    settings: Mapped[dict[str, Any]]
    lost_detail: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]


class RebalancingMove(Base):
    """`count` cars of a type to drive from one branch to another on the night before `day` of a plan (0010)."""

    __tablename__ = "rebalancing_moves"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("rebalancing_plans.id", ondelete="CASCADE"))
    from_location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    to_location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    vehicle_type_id: Mapped[int] = mapped_column(ForeignKey("vehicle_types.id"))
    day: Mapped[int] = mapped_column(SmallInteger)
    night_of: Mapped[date] = mapped_column(Date)
    count: Mapped[int] = mapped_column(Integer)
    distance_km: Mapped[Decimal] = mapped_column(Numeric(8, 1))
    unit_cost: Mapped[Decimal]
    assigned: Mapped[int] = mapped_column(Integer, server_default="0")


class KafkaRelayPosition(Base):
    """How far a Kafka relay has got through the outbox (0011): a transaction-id horizon, kept as text (xid8)."""

    __tablename__ = "kafka_relay_positions"

    relay: Mapped[str] = mapped_column(String(64), primary_key=True)
    horizon: Mapped[str] = mapped_column(String, server_default="0")
    relayed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class KafkaRelayHeld(Base):
    """An event a relay holds back until an older event of the same aggregate can go first (0011)."""

    __tablename__ = "kafka_relay_held"

    relay: Mapped[str] = mapped_column(ForeignKey("kafka_relay_positions.relay", ondelete="CASCADE"),
                                       primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("domain_events.id", ondelete="CASCADE"), primary_key=True)
    held_at: Mapped[datetime] = mapped_column(server_default=func.now())



class _AnalyticsSums:
    """The sums every Analytics figure is made of, for one branch and vehicle type over a day or a month (0012;
    derived data, written only by services.analytics.refresh)."""

    location_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vehicle_type_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    fleet_days: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    rented_days: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    maintenance_days: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    rentals: Mapped[int] = mapped_column(Integer)
    contracted_days: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    revenue: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    one_way_out: Mapped[int] = mapped_column(Integer)
    one_way_in: Mapped[int] = mapped_column(Integer)
    bookings: Mapped[int] = mapped_column(Integer)
    cancellations: Mapped[int] = mapped_column(Integer)
    no_shows: Mapped[int] = mapped_column(Integer)
    returns: Mapped[int] = mapped_column(Integer)
    late_returns: Mapped[int] = mapped_column(Integer)
    transfers_out: Mapped[int] = mapped_column(Integer)
    transfers_in: Mapped[int] = mapped_column(Integer)
    transfer_cost: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    turned_away: Mapped[int] = mapped_column(Integer)  # 0014


class AnalyticsDaily(_AnalyticsSums, Base):
    """One branch-local day of one branch and vehicle type."""

    __tablename__ = "analytics_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)


class AnalyticsMonthly(_AnalyticsSums, Base):
    """One calendar month (day = the 1st) of one branch and vehicle type."""

    __tablename__ = "analytics_monthly"

    day: Mapped[date] = mapped_column(Date, primary_key=True)


class TurnedAway(Base):
    """A customer the desk could not serve: lost demand (0014)."""

    __tablename__ = "turned_away"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    vehicle_type_id: Mapped[int] = mapped_column(ForeignKey("vehicle_types.id"))
    pickup_at: Mapped[datetime]
    dropoff_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(8), server_default="desk")
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now())
