"""Promotion codes: terms, who may use them, and their redemption — counted exactly once per booking.

A code gives a percentage or a fixed amount off the rental charge (not the extras, fees or one-way fee) when the
rental starts within its validity, lasts at least its minimum days and is of one of its vehicle types (any, when the
list is empty). Limits: a total number of redemptions and a number per customer.

Redemption happens in the booking's own transaction: one conditional `UPDATE promotions … SET redemptions_count =
redemptions_count + 1 WHERE … redemptions_count < max_redemptions RETURNING`, then an insert into
`promotion_redemptions` whose booking id is unique. Two bookings racing for the last redemption queue on the
promotion's row; the second re-checks the count after the first commits and gets no row back, so it is refused
(and the database's CHECK on the count would refuse it too). The per-customer count is read after that row lock is
held, so it sees every committed redemption of the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import Promotion, PromotionRedemption, UserRole
from services import audit
from services.actors import Actor, require_role
from services.errors import Conflict, InvalidInput, NotFound
from services.events import record_event

KINDS = {"percent": "Percentage off", "fixed": "Fixed amount off"}


@dataclass(frozen=True)
class PromotionTerms:
    """A promotion as the pricing arithmetic sees it."""

    id: int
    code: str
    discount_kind: str
    discount_value: Decimal
    currency: str
    description: str = ""
    min_days: int | None = None
    vehicle_type_codes: tuple[str, ...] = ()

    def fits(self, rental_days: int, vehicle_type_code: str) -> bool:
        """Whether a rental of this length and car type qualifies (limits and dates aside)."""
        return ((self.min_days is None or rental_days >= self.min_days)
                and (not self.vehicle_type_codes or vehicle_type_code in self.vehicle_type_codes))

    def discount(self, rental_charge: Decimal) -> Decimal:
        """Exact discount on this rental charge (never more than it)."""
        if self.discount_kind == "percent":
            return rental_charge * Decimal(self.discount_value) / Decimal(100)
        return min(Decimal(self.discount_value), rental_charge)

    @property
    def label(self) -> str:
        if self.discount_kind == "percent":
            return f"Promotion {self.code} ({Decimal(self.discount_value).normalize():f}% off the rental)"
        return f"Promotion {self.code} ({self.currency} {self.discount_value} off the rental)"


def normalise_code(code: str) -> str:
    return code.strip().upper()


def terms(row: Promotion) -> PromotionTerms:
    return PromotionTerms(row.id, row.code, row.discount_kind, row.discount_value, row.currency.strip(),
                          row.description, row.min_days, tuple(row.vehicle_type_codes or ()))


def usable_promotion(session: Session, code: str, *, pickup_at: datetime, rental_days: int, vehicle_type_code: str,
                     currency: str, customer_id: int | None) -> PromotionTerms:
    """The promotion behind a code if this rental may use it now; else InvalidInput saying why."""
    wanted = normalise_code(code)
    row = session.scalar(select(Promotion).where(Promotion.code == wanted)
                         .execution_options(populate_existing=True))  # the count as it is now, not as cached
    shown = wanted[:32]
    if row is None or not row.active:
        raise InvalidInput(f"Unknown or expired promotion code {shown}; check the code, or book without it.")
    if not row.valid_from <= pickup_at < row.valid_until:
        raise InvalidInput(f"Unknown or expired promotion code {shown}: it is for rentals starting "
                           f"{row.valid_from:%d %b %Y} to {row.valid_until:%d %b %Y}; book without it.")
    if row.min_days and rental_days < row.min_days:
        raise InvalidInput(f"Promotion {shown} needs a rental of at least {row.min_days} days (this one is "
                           f"{rental_days}); lengthen the rental or book without it.")
    if row.vehicle_type_codes and vehicle_type_code not in row.vehicle_type_codes:
        raise InvalidInput(f"Promotion {shown} is only for {', '.join(row.vehicle_type_codes)} cars; pick such a "
                           "car or book without it.")
    if row.discount_kind == "fixed" and row.currency.strip() != currency:
        raise InvalidInput(f"Promotion {shown} is in {row.currency}, this car is priced in {currency}; book "
                           "without it.")
    if row.max_redemptions is not None and row.redemptions_count >= row.max_redemptions:
        raise InvalidInput(f"Promotion {shown} has been fully used; book without it.")
    if customer_id is not None and row.max_per_customer is not None:
        used = _used_by(session, row.id, customer_id)
        if used >= row.max_per_customer:
            raise InvalidInput(f"This customer has already used promotion {shown} {used} time"
                               f"{'s' if used != 1 else ''} (the limit); book without it.")
    return terms(row)


def _used_by(session: Session, promotion_id: int, customer_id: int) -> int:
    return session.execute(text("SELECT count(*) FROM promotion_redemptions WHERE promotion_id = :p AND user_id = :u"),
                           {"p": promotion_id, "u": customer_id}).scalar_one()


_TAKE_ONE = text("""
    UPDATE promotions SET redemptions_count = redemptions_count + 1
    WHERE id = :id AND active AND (max_redemptions IS NULL OR redemptions_count < max_redemptions)
    RETURNING code, redemptions_count, max_per_customer
""")


def redeem(session: Session, promotion_id: int, *, booking_id: int, customer_id: int,
           discount: Decimal) -> PromotionRedemption:
    """Count one use of the promotion for this booking, in the caller's transaction (Conflict when none is left)."""
    taken = session.execute(_TAKE_ONE, {"id": promotion_id}).first()
    if taken is None:
        code = session.scalar(select(Promotion.code).where(Promotion.id == promotion_id)) or str(promotion_id)
        raise Conflict(f"Promotion {code} has just been fully used (or withdrawn); book without it.")
    if taken.max_per_customer is not None and _used_by(session, promotion_id, customer_id) >= taken.max_per_customer:
        raise Conflict(f"This customer has already used promotion {taken.code} as often as it allows; book "
                       "without it.")
    redemption = PromotionRedemption(promotion_id=promotion_id, booking_id=booking_id, user_id=customer_id,
                                     discount=discount)
    try:
        with session.begin_nested():
            session.add(redemption)
            session.flush()
    except IntegrityError:
        raise Conflict("This booking has already used a promotion; a booking takes one code.") from None
    record_event(session, "promotion", promotion_id, "promotion.redeemed",
                 {"promotion_id": promotion_id, "booking_id": booking_id, "code": taken.code,
                  "redemptions_count": taken.redemptions_count, "discount": str(discount)})
    return redemption


def redemption_of(session: Session, booking_id: int) -> tuple[PromotionRedemption, PromotionTerms] | None:
    """The promotion a booking redeemed, with its terms."""
    row = session.execute(select(PromotionRedemption, Promotion).join(
        Promotion, Promotion.id == PromotionRedemption.promotion_id).where(
        PromotionRedemption.booking_id == booking_id)).first()
    return None if row is None else (row[0], terms(row[1]))


def reprice(session: Session, booking_id: int, discount: Decimal | None) -> None:
    """After a booking changed: keep its redemption with the new discount, or give it back (None)."""
    if discount is None:
        release(session, booking_id)
    else:
        session.execute(text("UPDATE promotion_redemptions SET discount = :d WHERE booking_id = :b"),
                        {"d": discount, "b": booking_id})


def release(session: Session, booking_id: int) -> None:
    """Give back the redemption of a booking that no longer qualifies (in the caller's transaction)."""
    row = session.execute(text("DELETE FROM promotion_redemptions WHERE booking_id = :b RETURNING promotion_id"),
                          {"b": booking_id}).first()
    if row is not None:
        session.execute(text("UPDATE promotions SET redemptions_count = redemptions_count - 1 WHERE id = :id"),
                        {"id": row.promotion_id})
        record_event(session, "promotion", row.promotion_id, "promotion.released",
                     {"promotion_id": row.promotion_id, "booking_id": booking_id})


# --- the analysts' edits ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PromotionInput:
    """What an analyst enters for a promotion."""

    code: str
    discount_kind: str
    discount_value: Decimal
    currency: str
    valid_from: datetime
    valid_until: datetime
    description: str = ""
    max_redemptions: int | None = None
    max_per_customer: int | None = None
    min_days: int | None = None
    vehicle_type_codes: tuple[str, ...] = field(default_factory=tuple)
    active: bool = True


def validate(promo: PromotionInput, known_types: set[str] | None = None) -> list[str]:
    """What is wrong with a promotion, each as a sentence saying what to change (empty when it is fine)."""
    problems = []
    code = normalise_code(promo.code)
    if not code or len(code) > 32 or not all(c.isalnum() or c in "-_" for c in code):
        problems.append("The code is 1 to 32 letters, digits, - or _ (it is stored in capitals).")
    if promo.discount_kind not in KINDS:
        problems.append("The discount is either a percentage or a fixed amount.")
    value = Decimal(promo.discount_value)
    if not value.is_finite() or value <= 0:
        problems.append("The discount must be above zero.")
    elif value != value.quantize(Decimal("0.01")):
        problems.append("The discount has at most 2 decimal places.")
    elif promo.discount_kind == "percent" and value > 100:
        problems.append("A percentage discount is at most 100.")
    elif value >= Decimal("1e10"):
        problems.append("The discount is too large.")
    if len(promo.currency) != 3 or not promo.currency.isalpha() or not promo.currency.isupper():
        problems.append("The currency is a three-letter ISO code such as GBP.")
    if promo.valid_from.tzinfo is None or promo.valid_until.tzinfo is None:
        problems.append("The validity dates need a time zone.")
    elif promo.valid_until <= promo.valid_from:
        problems.append("The promotion must end after it starts; swap the dates.")
    for label, value_ in (("total number of redemptions", promo.max_redemptions),
                          ("number of uses per customer", promo.max_per_customer),
                          ("minimum number of days", promo.min_days)):
        if value_ is not None and not 1 <= value_ <= (366 if label.startswith("minimum") else 2_000_000_000):
            problems.append(f"The {label} must be at least 1, or left empty for no limit.")
    if known_types is not None:
        unknown = sorted(set(promo.vehicle_type_codes) - known_types)
        if unknown:
            problems.append(f"Unknown vehicle type {', '.join(unknown)}; choose from {', '.join(sorted(known_types))}.")
    return problems


def _snapshot(row: Promotion) -> dict[str, Any]:
    return {f.name: getattr(row, f.name) for f in fields(PromotionInput)} | {"redemptions_count":
                                                                              row.redemptions_count}


def _checked(session: Session, promo: PromotionInput) -> dict[str, Any]:
    known = set(session.scalars(text("SELECT code FROM vehicle_types")))
    problems = validate(promo, known)
    if problems:
        raise InvalidInput(" ".join(problems))
    return {**vars(promo), "code": normalise_code(promo.code), "description": promo.description.strip(),
            "vehicle_type_codes": sorted(set(promo.vehicle_type_codes))}


def create_promotion(session: Session, actor: Actor, promo: PromotionInput) -> Promotion:
    """Add a promotion code (audited)."""
    require_role(actor, UserRole.PRICING_ANALYST, doing="edit promotions")
    values = _checked(session, promo)
    if session.scalar(select(Promotion.id).where(Promotion.code == values["code"])) is not None:
        raise Conflict(f"There is already a promotion {values['code']}; edit it or pick another code.")
    row = Promotion(**values, created_by=actor.user_id)
    session.add(row)
    session.flush()
    audit.record(session, actor, "promotion.created", "promotion", row.id, None, _snapshot(row))
    record_event(session, "promotion", row.id, "promotion.created", {"promotion_id": row.id, "code": row.code})
    return row


def update_promotion(session: Session, actor: Actor, promotion_id: int, promo: PromotionInput) -> Promotion:
    """Change a promotion's terms (audited); redemptions already made stay counted."""
    require_role(actor, UserRole.PRICING_ANALYST, doing="edit promotions")
    row = session.get(Promotion, promotion_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFound(f"There is no promotion {promotion_id}; reload the list.")
    values = _checked(session, promo)
    if values["code"] != row.code and session.scalar(
            select(Promotion.id).where(Promotion.code == values["code"])) is not None:
        raise Conflict(f"There is already a promotion {values['code']}; pick another code.")
    if promo.max_redemptions is not None and promo.max_redemptions < row.redemptions_count:
        raise InvalidInput(f"{row.code} has already been redeemed {row.redemptions_count} times; the total limit "
                           "cannot be lower than that.")
    before = _snapshot(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = datetime.now(UTC)
    session.flush()
    audit.record(session, actor, "promotion.changed", "promotion", row.id, before, _snapshot(row))
    record_event(session, "promotion", row.id, "promotion.changed", {"promotion_id": row.id, "code": row.code})
    return row


def all_promotions(session: Session) -> list[Promotion]:
    """Every promotion, newest validity first."""
    return list(session.scalars(select(Promotion).order_by(Promotion.active.desc(), Promotion.valid_until.desc(),
                                                           Promotion.code)))


def loyalty_tiers(session: Session) -> list[tuple[str, str, Decimal, int]]:
    """(code, name, discount %, customers in it) of every loyalty tier, lowest first."""
    return [tuple(row) for row in session.execute(text("""
        SELECT t.code, t.name, t.discount_pct, count(u.id) AS members
        FROM loyalty_tiers t LEFT JOIN users u ON u.loyalty_tier = t.code
        GROUP BY t.code, t.name, t.discount_pct, t.rank ORDER BY t.rank
    """))]


def set_loyalty_tier(session: Session, actor: Actor, customer_email: str, tier: str | None) -> int:
    """Put a customer (found by email) in a loyalty tier, or in none; the customer's id (audited)."""
    require_role(actor, UserRole.PRICING_ANALYST, UserRole.DESK_AGENT, doing="set loyalty tiers")
    if tier is not None and session.execute(text("SELECT 1 FROM loyalty_tiers WHERE code = :t"),
                                            {"t": tier}).first() is None:
        raise InvalidInput(f"There is no loyalty tier {tier}; pick one from the list.")
    row = session.execute(text("""
        SELECT id, loyalty_tier FROM users WHERE lower(email) = lower(:e) AND role = 'customer' FOR UPDATE
    """), {"e": customer_email.strip()}).first()
    if row is None:
        raise NotFound(f"There is no customer with the email {customer_email.strip()[:254]}; check it on the "
                       "Customers page.")
    session.execute(text("UPDATE users SET loyalty_tier = :t, updated_at = now() WHERE id = :id"),
                    {"t": tier, "id": row.id})
    audit.record(session, actor, "customer.loyalty_tier_set", "user", row.id, {"loyalty_tier": row.loyalty_tier},
                 {"loyalty_tier": tier})
    return row.id
