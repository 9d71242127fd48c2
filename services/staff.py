"""Staff accounts: passwords, sign-in with lock-out, roles, enabling and disabling."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pandas as pd
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db.models import User, UserRole
from db.queries import result_frame
from services import audit, web_sessions
from services.actors import ROLE_LABELS, STAFF_ROLES, Actor, require_role
from services.errors import Conflict, InvalidInput, NotFound

PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 256
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the email is unknown, so a wrong email takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a real password, only here to spend the same time")
SIGN_IN_FAILED = "Wrong email or password. Check both and try again."


def max_failed_sign_ins() -> int:
    return int(os.environ.get("FLEETDESK_MAX_FAILED_SIGNINS", "5"))


def lockout_minutes() -> int:
    return int(os.environ.get("FLEETDESK_LOCKOUT_MINUTES", "15"))


@cache
def _common_passwords() -> frozenset[str]:
    return frozenset((Path(__file__).parent / "common_passwords.txt").read_text().split())


def password_problem(password: str, email: str = "") -> str | None:
    """Why this password is not acceptable, or None."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"The password must have at least {PASSWORD_MIN_LENGTH} characters."
    if len(password) > PASSWORD_MAX_LENGTH:
        return f"The password must have at most {PASSWORD_MAX_LENGTH} characters."
    lowered = password.lower()
    if lowered in _common_passwords() or lowered.rstrip("!0123456789") in _common_passwords():
        return "That password is on the list of common passwords; choose a less guessable one."
    local = email.split("@")[0].lower()
    if len(local) >= 4 and local in lowered:
        return "The password must not contain the email address."
    if len(set(password)) < 5:
        return "The password repeats too few characters; choose a less guessable one."
    return None


def hash_password(password: str, email: str = "") -> str:
    problem = password_problem(password, email)
    if problem:
        raise InvalidInput(problem)
    return _hasher.hash(password)


def normalise_email(email: str) -> str:
    cleaned = email.strip().lower()
    if not EMAIL.match(cleaned) or len(cleaned) > 254:
        raise InvalidInput(f"{email.strip()[:80]!r} is not an email address; write it as name@example.com.")
    return cleaned


def _staff_by_email(session: Session, email: str, *, lock: bool = False) -> User | None:
    query = select(User).where(func.lower(User.email) == email.strip().lower()[:254],
                               User.role != UserRole.CUSTOMER)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).first()


def get_staff(session: Session, email: str) -> User:
    user = _staff_by_email(session, email)
    if user is None:
        raise NotFound(f"There is no staff member with the email {email.strip()[:80]!r}.")
    return user


def _snapshot(user: User) -> dict:
    return {"email": user.email, "role": user.role, "status": user.status, "first_name": user.first_name,
            "last_name": user.last_name, "password_hash": user.password_hash}


def _role(role: str) -> UserRole:
    try:
        parsed = UserRole(role)
    except ValueError:
        parsed = None
    if parsed not in STAFF_ROLES:
        raise InvalidInput(f"Unknown staff role {role!r}; use one of {', '.join(r.value for r in STAFF_ROLES)}.")
    return parsed


def add_staff(session: Session, actor: Actor, *, email: str, role: str, name: str, password: str) -> User:
    """Create a staff member (admin only)."""
    require_role(actor, UserRole.ADMIN, doing="add staff members")
    email = normalise_email(email)
    staff_role = _role(role)
    if session.scalar(select(func.count()).select_from(User).where(func.lower(User.email) == email)):
        raise Conflict(f"Someone with the email {email} already exists; use another email or edit that account.")
    first, _, last = (name.strip() or email.split("@")[0]).partition(" ")
    if len(first) > 80 or len(last) > 80:
        raise InvalidInput("The name is too long; use at most 80 characters for first and last name each.")
    user = User(email=email, password_hash=hash_password(password, email), first_name=first, last_name=last,
                role=staff_role, status="active", password_changed_at=datetime.now(UTC))
    session.add(user)
    session.flush()
    audit.record(session, actor, "staff.created", "user", user.id, None, _snapshot(user))
    return user


def list_staff(session: Session) -> pd.DataFrame:
    result = session.execute(text("""
        SELECT id, email, first_name || ' ' || last_name AS name, role::text AS role, status, last_login_at,
               locked_until > now() AS locked
        FROM users WHERE role <> 'customer' ORDER BY role, email
    """))
    return result_frame(result)


def _change(session: Session, actor: Actor, email: str, action: str, **values) -> User:
    require_role(actor, UserRole.ADMIN, doing="change staff accounts")
    user = _staff_by_email(session, email, lock=True)
    if user is None:
        raise NotFound(f"There is no staff member with the email {email.strip()[:80]!r}.")
    before = _snapshot(user)
    for field, value in values.items():
        setattr(user, field, value)
    user.updated_at = datetime.now(UTC)
    session.flush()
    audit.record(session, actor, action, "user", user.id, before, _snapshot(user))
    return user


def disable_staff(session: Session, actor: Actor, email: str) -> User:
    if actor.label.lower() == email.strip().lower():
        raise InvalidInput("You cannot disable your own account; ask another admin.")
    user = _change(session, actor, email, "staff.disabled", status="disabled")
    web_sessions.end_all(session, user.id)  # every open browser is signed out within a minute
    return user


def enable_staff(session: Session, actor: Actor, email: str) -> User:
    return _change(session, actor, email, "staff.enabled", status="active", failed_logins=0, locked_until=None)


def set_role(session: Session, actor: Actor, email: str, role: str) -> User:
    return _change(session, actor, email, "staff.role_changed", role=_role(role))


def reset_password(session: Session, actor: Actor, email: str, password: str) -> User:
    user = _change(session, actor, email, "staff.password_reset", password_hash=hash_password(password, email),
                   password_changed_at=datetime.now(UTC), failed_logins=0, locked_until=None)
    web_sessions.end_all(session, user.id)  # whoever knew the old password is signed out everywhere
    return user


@dataclass(frozen=True)
class SignInResult:
    actor: Actor | None
    message: str

    @property
    def ok(self) -> bool:
        return self.actor is not None


def sign_in(session: Session, email: str, password: str, *, now: datetime | None = None) -> SignInResult:
    """Check a staff member's password, counting failures and locking the account after too many.

    Returns a result rather than raising, so the caller commits the failure count too.
    """
    now = now or datetime.now(UTC)
    user = _staff_by_email(session, email, lock=True) if email.strip() else None
    password = password[:PASSWORD_MAX_LENGTH]
    if user is None or not user.password_hash:
        _verify(_DUMMY_HASH, password)
        return SignInResult(None, SIGN_IN_FAILED)
    correct = _verify(user.password_hash, password)
    if user.locked_until and user.locked_until > now:
        minutes = max(1, math.ceil((user.locked_until - now).total_seconds() / 60))
        return SignInResult(None, f"Too many failed sign-ins: this account is locked for {minutes} more "
                                  f"minute{'s' if minutes != 1 else ''}. Try again then, or ask an admin to unlock it.")
    if not correct:
        user.failed_logins += 1
        if user.failed_logins >= max_failed_sign_ins():
            user.failed_logins = 0
            user.locked_until = now + timedelta(minutes=lockout_minutes())
            audit.record(session, Actor(user.id, user.email, user.role), "staff.locked_out", "user", user.id,
                         note=f"{max_failed_sign_ins()} failed sign-ins")
            session.flush()
            return SignInResult(None, f"Too many failed sign-ins: this account is locked for {lockout_minutes()} "
                                      "minutes. Try again then, or ask an admin to unlock it.")
        session.flush()
        return SignInResult(None, SIGN_IN_FAILED)
    if user.status != "active":
        return SignInResult(None, "This account is disabled. Ask an admin to enable it.")
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    session.flush()
    return SignInResult(Actor.of(user), "ok")


def actor_for_email(session: Session, email: str) -> Actor | None:
    """The active staff member with this email (for single sign-on, where the identity provider checked them)."""
    user = _staff_by_email(session, email)
    if user is None or user.status != "active":
        return None
    user.last_login_at = datetime.now(UTC)
    return Actor.of(user)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


DEMO_STAFF = (
    ("desk@fleetdesk.demo", UserRole.DESK_AGENT, "Dana Desk", "Counter-Keys-2026"),
    ("fleet@fleetdesk.demo", UserRole.FLEET_MANAGER, "Fergus Fleet", "Moving-Cars-2026"),
    ("pricing@fleetdesk.demo", UserRole.PRICING_ANALYST, "Priya Pricing", "Daily-Rates-2026"),
    ("admin@fleetdesk.demo", UserRole.ADMIN, "Ada Admin", "Audit-Trail-2026"),
)


def ensure_demo_staff(session: Session, actor: Actor) -> list[tuple[str, str, str]]:
    """One staff member per role with a known password (demo only); returns (email, role, password)."""
    if os.environ.get("FLEETDESK_ENV", "").lower() == "production":
        return []
    logins = []
    for email, role, name, password in DEMO_STAFF:
        if _staff_by_email(session, email) is None:
            add_staff(session, actor, email=email, role=role.value, name=name, password=password)
        logins.append((email, ROLE_LABELS[role], password))
    return logins
