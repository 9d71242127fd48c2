"""Customers (drivers): create, find, change, identity checks, blocking, the licence kept encrypted, eligibility.

A customer is a `users` row with role 'customer'. The licence number exists in plain text only in memory: it is
stored as a Fernet token beside a keyed hash (services.crypto), shown masked, revealed only to roles that need it
(audited), and never put in a log line, an audit entry, an event payload or an error message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import String, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import User, UserRole, VehicleType
from services import audit
from services.actors import Actor, require_role
from services.crypto import LicenceCipher, normalise_licence_number
from services.customer_fields import (
    CONTROL_CHARACTERS,
    LICENCE_FIELDS,
    LICENCE_PATTERN,
    PHONE_PATTERN,
    PROFILE_FIELDS,
    REQUIRED_FIELDS,
    check_licence_complete,
    clean_fields,
    clean_note,
    today,
)
from services.eligibility_rules import CarType, Driver, check_rental_dates, ineligibility_reasons
from services.errors import Conflict, InvalidInput, NotFound
from services.events import record_event

IDENTITY_STATUSES = ("unverified", "verified", "rejected")
SEARCH_MAX_CHARS = 200


class DuplicateCustomer(Conflict):
    """The email or licence number already belongs to someone; `problems` names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.problems = {field: message}
        super().__init__(message)


@dataclass(frozen=True)
class Customer:
    """What staff see of a customer: everything but the licence number, which is masked."""

    id: int
    email: str
    first_name: str
    last_name: str
    date_of_birth: date | None
    phone: str | None
    address: str | None
    status: str
    licence_masked: str | None
    licence_country: str | None
    licence_expiry: date | None
    identity_status: str
    identity_checked_at: datetime | None
    identity_checked_by: str | None  # the checker's email, when a signed-in person checked
    blocked_reason: str | None
    marketing_opt_in: bool
    preferred_language: str | None  # None: messages in the branch's own language
    erased_at: datetime | None
    created_at: datetime | None

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def has_licence(self) -> bool:
        return self.licence_masked is not None


@dataclass(frozen=True)
class Eligibility:
    customer_id: int
    vehicle_type: str
    reasons: tuple[str, ...]  # each one a sentence the desk agent can read to the customer

    @property
    def eligible(self) -> bool:
        return not self.reasons


def mask_licence(licence_number: str) -> str:
    """'•••• 1234': enough for the customer to recognise their licence, not enough to copy it."""
    return "•••• " + licence_number[-4:]


# --- creating and changing ---------------------------------------------------------------------------------------

def create_customer(
    session: Session, actor: Actor, *, email: str, first_name: str, last_name: str, date_of_birth: date | None,
    phone: str | None = None, address: str | None = None, licence_number: str | None = None,
    licence_country: str | None = None, licence_expiry: date | None = None, marketing_opt_in: bool = False,
    preferred_language: str | None = None,
) -> Customer:
    """Add a customer after checking every field; all problems are reported at once."""
    require_role(actor, UserRole.DESK_AGENT, doing="create customers")
    values = clean_fields(dict(email=email, first_name=first_name, last_name=last_name, date_of_birth=date_of_birth,
                         phone=phone, address=address, licence_number=licence_number,
                         licence_country=licence_country, licence_expiry=licence_expiry,
                         marketing_opt_in=marketing_opt_in, preferred_language=preferred_language),
                          required=REQUIRED_FIELDS)
    check_licence_complete(values)
    cipher = LicenceCipher.from_environment() if values["licence_number"] else None
    _refuse_duplicates(session, values, cipher, customer_id=None)
    user = User(role=UserRole.CUSTOMER, status="active", identity_status="unverified")
    _apply(user, values, cipher)
    _flush(session, new=user)
    audit.record(session, actor, "customer.created", "customer", user.id, None, _snapshot(user))
    record_event(session, "customer", user.id, "customer.created", {"customer_id": user.id})
    return _view(session, user, cipher)


def update_customer(session: Session, actor: Actor, customer_id: int, **changes: Any) -> Customer:
    """Change some profile fields; a new licence number needs a new identity check."""
    require_role(actor, UserRole.DESK_AGENT, doing="change customer details")
    unknown = sorted(set(changes) - set(PROFILE_FIELDS))
    if unknown:
        raise InvalidInput(f"Customers have no field {', '.join(unknown)}; "
                           f"the fields are {', '.join(PROFILE_FIELDS)}.")
    user = _load_for_update(session, customer_id)
    values = clean_fields(changes, required=REQUIRED_FIELDS)
    if "licence_number" in values and values["licence_number"] is None:
        values.update(licence_country=None, licence_expiry=None)
    if set(LICENCE_FIELDS) & set(values):
        check_licence_complete({"licence_number": "on file" if user.licence_number_encrypted else None,
                                 "licence_country": user.licence_country, "licence_expiry": user.licence_expiry,
                                 **values})
    cipher = LicenceCipher.from_environment() if values.get("licence_number") else None
    if cipher and user.licence_number_hash in cipher.lookup_hashes(values["licence_number"]):
        del values["licence_number"]  # the same licence typed again (under any key): it and its check stand
    _refuse_duplicates(session, values, cipher, customer_id=user.id)
    before = _snapshot(user)
    _apply(user, values, cipher)
    if before["licence_number_hash"] != _snapshot(user)["licence_number_hash"] and user.identity_status != "unverified":
        user.identity_status, user.identity_checked_by, user.identity_checked_at = "unverified", None, None
    after = _snapshot(user)
    changed = sorted(field for field in after if after[field] != before[field])
    if changed:
        user.updated_at = func.now()
        _flush(session)
        audit.record(session, actor, "customer.updated", "customer", user.id, before, after)
        record_event(session, "customer", user.id, "customer.updated",
                     {"customer_id": user.id, "changed": _public_field_names(changed)})
    return get_customer(session, actor, user.id)


def set_identity_status(session: Session, actor: Actor, customer_id: int, status: str,
                        note: str | None = None) -> Customer:
    """Record the outcome of a desk agent's in-person check of the licence: who, when, and why when rejected."""
    require_role(actor, UserRole.DESK_AGENT, doing="record identity checks")
    if status not in IDENTITY_STATUSES:
        raise InvalidInput(f"Identity status {status!r} does not exist; use one of {', '.join(IDENTITY_STATUSES)}.")
    note = clean_note(note)
    if status == "rejected" and not note:
        raise InvalidInput("Say why the identity check was rejected (e.g. 'photo does not match'), then save again.")
    user = _load_for_update(session, customer_id)
    if status == "verified":
        if not user.licence_number_encrypted:
            raise InvalidInput(f"Customer {user.id} has no licence on file; add the licence number, country and "
                               "expiry before verifying it.")
        if user.licence_expiry and user.licence_expiry < today():
            raise InvalidInput(f"The licence on file expired on {user.licence_expiry:%d %b %Y}; update the licence "
                               "details from the customer's current licence before verifying it.")
    before = _snapshot(user)
    user.identity_status = status
    user.identity_checked_by = actor.user_id
    user.identity_checked_at = datetime.now(UTC)
    user.updated_at = func.now()
    _flush(session)
    audit.record(session, actor, "customer.identity_checked", "customer", user.id, before,
                 {**_snapshot(user), "identity_checked_at": user.identity_checked_at}, note=note)
    record_event(session, "customer", user.id, "customer.updated",
                 {"customer_id": user.id, "changed": ["identity_status"]})
    return get_customer(session, actor, user.id)


def block_customer(session: Session, actor: Actor, customer_id: int, reason: str) -> Customer:
    """Stop a customer from being booked, saying why (for staff; never read out to the customer)."""
    require_role(actor, UserRole.DESK_AGENT, doing="block customers")
    reason = clean_note(reason)
    if not reason:
        raise InvalidInput("Say why the customer is blocked, so that colleagues know; then block again.")
    user = _load_for_update(session, customer_id)
    if user.status == "blocked":
        raise Conflict(f"Customer {user.id} is already blocked ({user.blocked_reason}); unblock first to change "
                       "the reason.")
    return _set_status(session, actor, user, "blocked", reason, action="customer.blocked")


def unblock_customer(session: Session, actor: Actor, customer_id: int, note: str | None = None) -> Customer:
    require_role(actor, UserRole.DESK_AGENT, doing="unblock customers")
    user = _load_for_update(session, customer_id)
    if user.status != "blocked":
        raise Conflict(f"Customer {user.id} is not blocked; there is nothing to unblock.")
    return _set_status(session, actor, user, "active", None, action="customer.unblocked", note=clean_note(note))


def reveal_licence(session: Session, actor: Actor, customer_id: int) -> str:
    """The full licence number, for a desk agent or admin; the audit log records that it was shown, not what."""
    require_role(actor, UserRole.DESK_AGENT, doing="see full licence numbers")
    user = load_customer(session, customer_id)
    if not user.licence_number_encrypted:
        raise NotFound(f"Customer {user.id} has no licence on file; add it from the customer's licence.")
    number = LicenceCipher.from_environment().decrypt(user.licence_number_encrypted,
                                                      what=f"the licence number of customer {user.id}")
    audit.record(session, actor, "licence.revealed", "customer", user.id, note="full licence number shown")
    return number


def rotate_licence_keys(session: Session, actor: Actor, *, batch_size: int = 1000) -> int:
    """Re-encrypt every licence number under the first key and rewrite its hash; returns how many."""
    require_role(actor, UserRole.ADMIN, doing="re-encrypt licence numbers")
    cipher = LicenceCipher.from_environment()
    rows = session.execute(
        select(User.id, User.licence_number_encrypted).where(User.licence_number_encrypted.is_not(None))
        .order_by(User.id).with_for_update()
    ).all()
    for start in range(0, len(rows), batch_size):
        batch = []
        for user_id, token in rows[start:start + batch_size]:
            new_token, new_hash = cipher.reencrypt(token, what=f"the licence number of customer {user_id}")
            batch.append({"id": user_id, "licence_number_encrypted": new_token, "licence_number_hash": new_hash})
        session.execute(update(User), batch)
    audit.record(session, actor, "licences.rekeyed", "encryption_key", "licence_number",
                 note=f"{len(rows)} licence numbers re-encrypted under the first of {cipher.key_count} keys")
    return len(rows)


# --- reading -----------------------------------------------------------------------------------------------------

def get_customer(session: Session, actor: Actor, customer_id: int) -> Customer:
    require_role(actor, UserRole.DESK_AGENT, doing="look up customers")
    user = load_customer(session, customer_id)
    return _view(session, user, LicenceCipher.from_environment() if user.licence_number_encrypted else None)


def find_customers(session: Session, actor: Actor, query: str, limit: int = 50,
                   *, include_erased: bool = False) -> list[Customer]:
    """Customers whose name, email or phone contains the query, or whose licence number is exactly it.

    The query is data, never SQL or a LIKE pattern; an empty query lists the newest customers. A query of letters
    and digits together is taken as a licence number and matched by its keyed hash only (an all-digit query is also
    matched against phone numbers, so database statement logging with parameters must stay off in production).
    """
    require_role(actor, UserRole.DESK_AGENT, doing="look up customers")
    text = CONTROL_CHARACTERS.sub("", query or "")[:SEARCH_MAX_CHARS].strip()
    statement = select(User).where(User.role == UserRole.CUSTOMER)
    if not include_erased:
        statement = statement.where(User.status != "erased")
    cipher: LicenceCipher | None = None
    if text:
        conditions = []
        licence = normalise_licence_number(text)
        if LICENCE_PATTERN.fullmatch(licence):
            cipher = LicenceCipher.from_environment()
            conditions.append(User.licence_number_hash.in_(cipher.lookup_hashes(text)))
        # Letters and digits together are a licence number, not a name, email or phone: only its hashes go to the
        # database, so that it cannot end up in a statement log as a search pattern.
        if not (conditions and re.search(r"[A-Z]", licence) and re.search(r"[0-9]", licence)):
            pattern = "%" + like_escape(text.lower()) + "%"
            conditions += [
                func.lower(User.first_name + " " + User.last_name).like(pattern, escape="\\"),
                func.lower(User.last_name + " " + User.first_name).like(pattern, escape="\\"),
                func.lower(User.email).like(pattern, escape="\\"),
            ]
            digits = re.sub(r"\D", "", text)
            if len(digits) >= 3 and PHONE_PATTERN.fullmatch(text):
                phone_digits = func.regexp_replace(User.phone, r"\D", "", "g", type_=String)
                conditions.append(phone_digits.like(f"%{digits}%"))
        statement = statement.where(or_(*conditions)).order_by(User.last_name, User.first_name, User.id)
    else:
        statement = statement.order_by(User.created_at.desc(), User.id.desc())
    users = session.scalars(statement.limit(max(1, min(int(limit), 500)))).all()
    if cipher is None and any(u.licence_number_encrypted for u in users):
        cipher = LicenceCipher.from_environment()
    return [_view(session, user, cipher, with_checker=False) for user in users]


def check_eligibility(session: Session, customer_id: int, vehicle_type_code: str, dropoff_date: date,
                      *, pickup_date: date | None = None) -> Eligibility:
    """Whether the customer may drive this type of car for this rental, with every reason if not."""
    pickup = _as_date(pickup_date) if pickup_date is not None else today()
    dropoff = _as_date(dropoff_date)
    check_rental_dates(pickup, dropoff)
    vehicle_type = session.scalar(select(VehicleType).where(VehicleType.code == vehicle_type_code))
    if vehicle_type is None:
        known = session.scalars(select(VehicleType.code).order_by(VehicleType.rank)).all()
        raise NotFound(f"There is no vehicle type {vehicle_type_code!r}; pick one of {', '.join(known)}.")
    user = load_customer(session, customer_id)
    driver = Driver(status=user.status, erased_at=user.erased_at, date_of_birth=user.date_of_birth,
                    has_licence=bool(user.licence_number_encrypted), licence_expiry=user.licence_expiry,
                    identity_status=user.identity_status)
    return Eligibility(user.id, vehicle_type.code, ineligibility_reasons(
        driver, CarType(vehicle_type.name, vehicle_type.min_driver_age), pickup, dropoff))


# --- helpers -----------------------------------------------------------------------------------------------------

def load_customer(session: Session, customer_id: int, *, for_update: bool = False) -> User:
    """The customer's row (never a staff account's), for other services; NotFound when there is none."""
    statement = select(User).where(User.id == _as_id(customer_id), User.role == UserRole.CUSTOMER)
    user = session.scalar(statement.with_for_update() if for_update else statement)
    if user is None:
        raise NotFound(f"There is no customer {customer_id}; search for the customer by name, email, phone or "
                       "licence number.")
    return user


def _load_for_update(session: Session, customer_id: int) -> User:
    user = load_customer(session, customer_id, for_update=True)
    if user.status == "erased":
        raise Conflict(f"Customer {user.id} was erased at their request; an erased record cannot be changed — "
                       "create a new customer if they come back.")
    return user


def _set_status(session: Session, actor: Actor, user: User, status: str, reason: str | None, *,
                action: str, note: str | None = None) -> Customer:
    before = _snapshot(user)
    user.status, user.blocked_reason = status, reason
    user.updated_at = func.now()
    _flush(session)
    audit.record(session, actor, action, "customer", user.id, before, _snapshot(user), note=note)
    record_event(session, "customer", user.id, "customer.updated", {"customer_id": user.id, "changed": ["status"]})
    return get_customer(session, actor, user.id)


def _view(session: Session, user: User, cipher: LicenceCipher | None, *, with_checker: bool = True) -> Customer:
    masked = None
    if user.licence_number_encrypted:
        assert cipher is not None
        masked = mask_licence(cipher.decrypt(user.licence_number_encrypted,
                                             what=f"the licence number of customer {user.id}"))
    checked_by = None
    if with_checker and user.identity_checked_by is not None:
        checked_by = session.scalar(select(User.email).where(User.id == user.identity_checked_by))
    return Customer(
        id=user.id, email=user.email, first_name=user.first_name, last_name=user.last_name,
        date_of_birth=user.date_of_birth, phone=user.phone, address=user.address, status=user.status,
        licence_masked=masked, licence_country=user.licence_country, licence_expiry=user.licence_expiry,
        identity_status=user.identity_status, identity_checked_at=user.identity_checked_at,
        identity_checked_by=checked_by, blocked_reason=user.blocked_reason,
        marketing_opt_in=bool(user.marketing_opt_in), preferred_language=user.preferred_language,
        erased_at=user.erased_at, created_at=user.created_at,
    )


def _snapshot(user: User) -> dict[str, Any]:
    """The audited state: the licence appears only as its hash, which audit.SECRET_FIELDS reduces to 'changed'."""
    return {
        "email": user.email, "first_name": user.first_name, "last_name": user.last_name,
        "date_of_birth": user.date_of_birth, "phone": user.phone, "address": user.address, "status": user.status,
        "licence_number_hash": user.licence_number_hash.hex() if user.licence_number_hash else None,
        "licence_country": user.licence_country, "licence_expiry": user.licence_expiry,
        "identity_status": user.identity_status, "blocked_reason": user.blocked_reason,
        "marketing_opt_in": bool(user.marketing_opt_in), "preferred_language": user.preferred_language,
    }


def _public_field_names(snapshot_fields: list[str]) -> list[str]:
    return sorted({"licence_number" if f == "licence_number_hash" else f for f in snapshot_fields})


def _apply(user: User, values: Mapping[str, Any], cipher: LicenceCipher | None) -> None:
    for field, value in values.items():
        if field == "licence_number":
            if value is None:
                user.licence_number_encrypted = user.licence_number_hash = None
            else:
                assert cipher is not None
                user.licence_number_encrypted = cipher.encrypt(value)
                user.licence_number_hash = cipher.lookup_hash(value)
        else:
            setattr(user, field, value)


def _flush(session: Session, *, new: User | None = None) -> None:
    """Flush in a savepoint, turning a lost race on the unique email into the same Conflict as the check."""
    try:
        with session.begin_nested():
            if new is not None:
                session.add(new)
            session.flush()
    except IntegrityError as exc:
        if "users_email_lower_key" in str(exc.orig):
            raise DuplicateCustomer("email", "That email address was just taken by another record; search for "
                                    "the customer before creating them again.") from None
        raise


def _refuse_duplicates(session: Session, values: Mapping[str, Any], cipher: LicenceCipher | None,
                       customer_id: int | None) -> None:
    others = User.id != customer_id if customer_id is not None else true()
    if values.get("email"):
        holder = session.execute(select(User.id, User.role).where(
            func.lower(User.email) == values["email"].lower(), others)).first()
        if holder is not None:
            whose = (f"customer {holder.id}; open that customer instead" if holder.role == UserRole.CUSTOMER
                     else "a staff account; use the customer's own email")
            raise DuplicateCustomer("email", f"The email {values['email']} already belongs to {whose}.")
    if values.get("licence_number"):
        assert cipher is not None
        holder_id = session.scalar(select(User.id).where(
            User.licence_number_hash.in_(cipher.lookup_hashes(values["licence_number"])), others))
        if holder_id is not None:
            raise DuplicateCustomer("licence_number", f"This licence number is already on file for customer "
                                    f"{holder_id}; open that customer instead, or check the number.")


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _as_id(customer_id: Any) -> int:
    try:
        value = int(customer_id)
    except (TypeError, ValueError):
        raise InvalidInput(f"{str(customer_id)[:40]!r} is not a customer number; use the number shown in the "
                           "search results.") from None
    if not 0 < value < 2**31:
        raise NotFound(f"There is no customer {value}; search for the customer by name, email, phone or "
                       "licence number.")
    return value


def _as_date(value: date) -> date:
    return value.date() if isinstance(value, datetime) else value


