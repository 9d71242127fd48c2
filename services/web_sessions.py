"""Staff web sessions: a random token in the browser's cookie, only its digest here; idle, expiring, revocable."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from db.models import User, WebSession
from services.actors import STAFF_ROLES, Actor
from services.crypto import token_digest

LIFETIME = timedelta(hours=12)  # a working day: after that, sign in again however active one was
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often, so a busy page stays cheap
KEEP_ENDED = timedelta(days=30)
MAX_TOKEN_LENGTH = 100


def _live(web: WebSession, now: datetime) -> bool:
    return web.revoked_at is None and web.expires_at > now


def _find(session: Session, token: str) -> WebSession | None:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return session.scalars(
        select(WebSession).where(WebSession.token_hash == token_digest(token)).with_for_update()
    ).first()


def start(session: Session, user_id: int, *, now: datetime | None = None) -> str:
    """A new web session for a staff member who just signed in; the plain token is returned once, never stored."""
    now = now or datetime.now(UTC)
    user = session.get(User, user_id)
    if user is None or user.status != "active" or user.role not in STAFF_ROLES:
        raise ValueError(f"user {user_id} is not an active staff member")  # callers sign in active staff only
    session.execute(delete(WebSession).where(WebSession.user_id == user_id,
                                             WebSession.expires_at < now - KEEP_ENDED))
    token = secrets.token_urlsafe(32)
    session.add(WebSession(user_id=user_id, token_hash=token_digest(token), role=user.role, created_at=now,
                           last_seen_at=now, expires_at=now + LIFETIME))
    session.flush()
    return token


def resume(session: Session, token: str, idle_seconds: float, now: datetime | None = None) -> Actor | None:
    """The staff member behind a browser's token, as they are now; None (and the session ended) if it may not go on.

    Unknown, ended or expired tokens, a session idle for longer than idle_seconds, a disabled account and a role
    changed since signing in all give None: the browser shows the sign-in screen.
    """
    now = now or datetime.now(UTC)
    web = _find(session, token)
    if web is None or not _live(web, now):
        return None
    user = session.get(User, web.user_id)
    if (now - web.last_seen_at > timedelta(seconds=idle_seconds) or user is None or user.status != "active"
            or user.role != web.role):
        web.revoked_at = now
        session.flush()
        return None
    web.last_seen_at = now
    session.flush()
    return Actor.of(user)


def touch(session: Session, token: str, *, now: datetime | None = None) -> bool:
    """Note activity on a web session (written at most once a minute); False when it has ended meanwhile."""
    now = now or datetime.now(UTC)
    web = _find(session, token)
    if web is None or not _live(web, now):
        return False
    if now - web.last_seen_at >= TOUCH_EVERY:
        web.last_seen_at = now
        session.flush()
    return True


def end(session: Session, token: str, *, now: datetime | None = None) -> None:
    """Sign a browser session out: its token no longer resumes anything."""
    now = now or datetime.now(UTC)
    web = _find(session, token)
    if web is not None and web.revoked_at is None:
        web.revoked_at = now
        session.flush()


def end_all(session: Session, user_id: int, *, now: datetime | None = None) -> int:
    """End every live web session of a staff member (account disabled, password reset); returns how many."""
    now = now or datetime.now(UTC)
    result = session.execute(
        update(WebSession).where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None),
                                 WebSession.expires_at > now).values(revoked_at=now)
    )
    return result.rowcount
