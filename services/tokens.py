"""API tokens: shown once, stored only as a hash, carrying their staff member's role, expiring, revocable."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.models import ApiToken, User, UserRole
from db.queries import result_frame
from services import audit
from services.actors import Actor, require_role
from services.crypto import token_digest
from services.errors import FleetdeskError, InvalidInput, NotFound
from services.staff import get_staff

TOKEN_PREFIX = "fdk_"
MAX_EXPIRY_DAYS = 730


class Unauthenticated(FleetdeskError):
    """No valid credentials: missing, unknown, expired or revoked token."""


def create_token(session: Session, actor: Actor, email: str, *, expires_days: int = 90,
                 now: datetime | None = None) -> tuple[ApiToken, str]:
    """A new token for a staff member; the plain token is returned once and never stored."""
    require_role(actor, UserRole.ADMIN, doing="issue API tokens")
    if not 1 <= expires_days <= MAX_EXPIRY_DAYS:
        raise InvalidInput(f"A token must expire in 1 to {MAX_EXPIRY_DAYS} days, not {expires_days}.")
    owner = get_staff(session, email)
    if owner.status != "active":
        raise InvalidInput(f"{owner.email} is disabled; enable the account before issuing it a token.")
    now = now or datetime.now(UTC)
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=owner.id, prefix=plain[:12], token_hash=token_digest(plain), created_by=actor.user_id,
                     created_at=now, expires_at=now + timedelta(days=expires_days))
    session.add(token)
    session.flush()
    audit.record(session, actor, "token.created", "api_token", token.id, None,
                 {"owner": owner.email, "prefix": token.prefix, "expires_at": token.expires_at})
    return token, plain


def list_tokens(session: Session) -> pd.DataFrame:
    result = session.execute(text("""
        SELECT t.id, u.email AS owner, u.role::text AS role, t.prefix, t.created_at, t.expires_at, t.revoked_at,
               t.last_used_at,
               CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked' WHEN t.expires_at <= now() THEN 'expired'
                    ELSE 'active' END AS state
        FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.created_at DESC
    """))
    return result_frame(result)


def revoke_token(session: Session, actor: Actor, token_id: int, *, now: datetime | None = None) -> ApiToken:
    require_role(actor, UserRole.ADMIN, doing="revoke API tokens")
    token = session.get(ApiToken, token_id, with_for_update=True)
    if token is None:
        raise NotFound(f"There is no API token with id {token_id}; see `fleetdesk tokens list`.")
    if token.revoked_at is not None:
        raise InvalidInput(f"Token {token_id} ({token.prefix}…) was already revoked on {token.revoked_at:%d %b %Y}.")
    token.revoked_at = now or datetime.now(UTC)
    session.flush()
    audit.record(session, actor, "token.revoked", "api_token", token.id, {"revoked_at": None},
                 {"revoked_at": token.revoked_at})
    return token


def authenticate(session: Session, plain: str, *, now: datetime | None = None) -> Actor:
    """The actor behind a bearer token, or Unauthenticated (one message for every reason: no oracle)."""
    now = now or datetime.now(UTC)
    if not plain or not plain.startswith(TOKEN_PREFIX) or len(plain) > 200:
        raise Unauthenticated("Missing or invalid API token; send `Authorization: Bearer <token>`.")
    row = session.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == token_digest(plain))
    ).first()
    if row is None:
        raise Unauthenticated("Missing or invalid API token; send `Authorization: Bearer <token>`.")
    token, user = row
    if token.revoked_at is not None or token.expires_at <= now:
        raise Unauthenticated("This API token has expired or was revoked; ask an admin for a new one.")
    if user.status != "active":
        raise Unauthenticated("The account behind this API token is disabled; ask an admin.")
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now  # at most once a minute: a busy client must not write on every request
        session.flush()
    return Actor.of(user)
