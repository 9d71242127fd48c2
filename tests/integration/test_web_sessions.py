"""Staff web sessions (a sign-in that survives a reload), on the real database."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from db.models import UserRole, WebSession
from services import staff, web_sessions
from services.actors import Actor

ADMIN = Actor.command_line()
PASSWORD = "Correct-Horse-Battery-9"
IDLE = 30 * 60
T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def agent(session) -> Actor:
    staff.add_staff(session, ADMIN, email="agent@example.test", role="desk_agent", name="Avery Agent",
                    password=PASSWORD)
    return staff.sign_in(session, "agent@example.test", PASSWORD).actor


def _row(session, token: str) -> WebSession:
    return session.scalars(
        select(WebSession).where(WebSession.token_hash == hashlib.sha256(token.encode()).digest())
    ).one()


def test_the_token_is_stored_only_as_its_digest(session, agent):
    token = web_sessions.start(session, agent.user_id, now=T0)
    assert len(token) >= 43  # 256 random bits, URL-safe base64
    row = _row(session, token)
    assert row.token_hash == hashlib.sha256(token.encode()).digest()
    assert token.encode() not in row.token_hash
    stored = session.execute(select(WebSession.__table__)).mappings().all()
    assert not any(token in str(value) for r in stored for value in r.values())
    assert (row.user_id, row.role, row.last_seen_at, row.expires_at) == (
        agent.user_id, UserRole.DESK_AGENT, T0, T0 + web_sessions.LIFETIME)


def test_two_sign_ins_get_different_tokens(session, agent):
    assert web_sessions.start(session, agent.user_id, now=T0) != web_sessions.start(session, agent.user_id, now=T0)


def test_a_token_resumes_its_staff_member_as_they_are_now(session, agent):
    token = web_sessions.start(session, agent.user_id, now=T0)
    actor = web_sessions.resume(session, token, IDLE, now=T0 + timedelta(minutes=20))
    assert actor == agent
    assert _row(session, token).last_seen_at == T0 + timedelta(minutes=20)
    again = web_sessions.resume(session, token, IDLE, now=T0 + timedelta(minutes=45))  # 25 idle minutes
    assert again == agent


def test_a_session_idle_too_long_does_not_resume_and_is_ended(session, agent):
    token = web_sessions.start(session, agent.user_id, now=T0)
    assert web_sessions.resume(session, token, IDLE, now=T0 + timedelta(minutes=31)) is None
    assert _row(session, token).revoked_at == T0 + timedelta(minutes=31)
    assert web_sessions.resume(session, token, IDLE, now=T0 + timedelta(minutes=32)) is None


def test_touch_keeps_a_session_alive_but_writes_at_most_once_a_minute(session, agent):
    token = web_sessions.start(session, agent.user_id, now=T0)
    assert web_sessions.touch(session, token, now=T0 + timedelta(seconds=30))
    assert _row(session, token).last_seen_at == T0
    assert web_sessions.touch(session, token, now=T0 + timedelta(minutes=25))
    assert _row(session, token).last_seen_at == T0 + timedelta(minutes=25)
    assert web_sessions.resume(session, token, IDLE, now=T0 + timedelta(minutes=50)) == agent


def test_a_session_ends_after_its_lifetime_however_active(session, agent):
    token = web_sessions.start(session, agent.user_id, now=T0)
    late = T0 + web_sessions.LIFETIME
    assert web_sessions.touch(session, token, now=late - timedelta(minutes=1))
    assert not web_sessions.touch(session, token, now=late)
    assert web_sessions.resume(session, token, IDLE, now=late) is None


def test_an_ended_session_does_not_resume(session, agent):
    token = web_sessions.start(session, agent.user_id, now=T0)
    web_sessions.end(session, token, now=T0 + timedelta(minutes=5))
    assert _row(session, token).revoked_at == T0 + timedelta(minutes=5)
    assert web_sessions.resume(session, token, IDLE, now=T0 + timedelta(minutes=6)) is None
    assert not web_sessions.touch(session, token, now=T0 + timedelta(minutes=6))


def test_unknown_and_tampered_tokens_do_not_resume(session, agent):
    token = web_sessions.start(session, agent.user_id, now=T0)
    later = T0 + timedelta(minutes=1)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for forged in (flipped, token + "x", token[:-1], token.upper(), "", "x" * 5000):
        assert web_sessions.resume(session, forged, IDLE, now=later) is None, forged
        assert not web_sessions.touch(session, forged, now=later)
    assert web_sessions.resume(session, token, IDLE, now=later) == agent  # forgeries did not end the real one


def test_disabling_a_staff_member_ends_their_web_sessions(session, agent):
    token = web_sessions.start(session, agent.user_id)
    other = web_sessions.start(session, agent.user_id)
    staff.disable_staff(session, ADMIN, agent.label)
    assert web_sessions.resume(session, token, IDLE) is None
    assert not web_sessions.touch(session, other)
    staff.enable_staff(session, ADMIN, agent.label)
    assert web_sessions.resume(session, other, IDLE) is None  # enabling again does not bring old sessions back


def test_a_disabled_account_does_not_resume_even_without_revocation(session, agent):
    token = web_sessions.start(session, agent.user_id, now=T0)
    staff.get_staff(session, agent.label).status = "disabled"  # e.g. changed in the database directly
    session.flush()
    assert web_sessions.resume(session, token, IDLE, now=T0 + timedelta(minutes=1)) is None
    assert _row(session, token).revoked_at is not None


def test_a_password_reset_ends_their_web_sessions(session, agent):
    token = web_sessions.start(session, agent.user_id)
    staff.reset_password(session, ADMIN, agent.label, "Another-Long-Secret-42")
    assert web_sessions.resume(session, token, IDLE) is None


def test_a_role_changed_since_signing_in_does_not_resume(session, agent):
    token = web_sessions.start(session, agent.user_id)
    staff.set_role(session, ADMIN, agent.label, "fleet_manager")
    assert web_sessions.resume(session, token, IDLE) is None
    fresh = web_sessions.start(session, agent.user_id)
    assert web_sessions.resume(session, fresh, IDLE).role == UserRole.FLEET_MANAGER


def test_only_active_staff_get_a_web_session(session, agent):
    staff.disable_staff(session, ADMIN, agent.label)
    with pytest.raises(ValueError):
        web_sessions.start(session, agent.user_id)
