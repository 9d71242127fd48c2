"""Staff sign-in, lock-out, roles and tokens, on the real database."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AuditEntry, User, UserRole
from db.session import make_engine
from services import staff, tokens
from services.actors import Actor, Forbidden
from services.errors import Conflict, InvalidInput, NotFound

ADMIN = Actor.command_line()
PASSWORD = "Correct-Horse-Battery-9"


@pytest.fixture
def agent(session):
    staff.add_staff(session, ADMIN, email="Agent@Example.test", role="desk_agent", name="Avery Agent",
                    password=PASSWORD)
    return staff.sign_in(session, "agent@example.test", PASSWORD).actor


def test_a_staff_member_signs_in_with_a_case_insensitive_email(session, agent):
    assert agent.role == UserRole.DESK_AGENT
    assert agent.label == "agent@example.test"
    user = session.get(User, agent.user_id)
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_wrong_password_and_unknown_email_get_the_same_message_and_similar_time(session, agent):
    def timed(email: str, password: str) -> tuple[str, float]:
        start = time.perf_counter()
        result = staff.sign_in(session, email, password)
        return result.message, time.perf_counter() - start

    wrong_password = [timed("agent@example.test", "not-the-password-1") for _ in range(3)]
    unknown_email = [timed("nobody@example.test", "not-the-password-1") for _ in range(3)]
    assert {m for m, _ in wrong_password} == {m for m, _ in unknown_email} == {staff.SIGN_IN_FAILED}
    slow, fast = max(min(t for _, t in wrong_password), min(t for _, t in unknown_email)), \
        min(min(t for _, t in wrong_password), min(t for _, t in unknown_email))
    assert slow < fast * 3, "an unknown email must cost a password hash too"


def test_lock_out_after_repeated_failures_and_it_expires(session, agent, monkeypatch):
    monkeypatch.setenv("FLEETDESK_MAX_FAILED_SIGNINS", "3")
    monkeypatch.setenv("FLEETDESK_LOCKOUT_MINUTES", "15")
    now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    for _ in range(2):
        assert staff.sign_in(session, agent.label, "wrong-password-xyz", now=now).message == staff.SIGN_IN_FAILED
    locked = staff.sign_in(session, agent.label, "wrong-password-xyz", now=now)
    assert "locked for 15 minutes" in locked.message
    still = staff.sign_in(session, agent.label, PASSWORD, now=now + timedelta(minutes=5))
    assert not still.ok and "locked for 10 more minutes" in still.message
    later = staff.sign_in(session, agent.label, PASSWORD, now=now + timedelta(minutes=16))
    assert later.ok
    assert session.scalar(select(AuditEntry).where(AuditEntry.action == "staff.locked_out")) is not None


def test_a_disabled_account_cannot_sign_in_until_enabled(session, agent):
    staff.disable_staff(session, ADMIN, agent.label)
    assert staff.sign_in(session, agent.label, PASSWORD).message.startswith("This account is disabled")
    staff.enable_staff(session, ADMIN, agent.label)
    assert staff.sign_in(session, agent.label, PASSWORD).ok


@pytest.mark.parametrize("password, problem", [
    ("short-1A", "at least 12"), ("password1234", "common"), ("Password123!", "common"),
    ("agent-was-here-2026", "email"), ("aaaaaaaaaaaaaaaa", "too few"),
])
def test_weak_passwords_are_refused_with_the_reason(session, password, problem):
    with pytest.raises(InvalidInput, match=problem):
        staff.add_staff(session, ADMIN, email="agent@example.test", role="desk_agent", name="A", password=password)


def test_duplicate_email_unknown_role_and_bad_email_are_named(session, agent):
    with pytest.raises(Conflict, match="agent@example.test already exists"):
        staff.add_staff(session, ADMIN, email="AGENT@example.test", role="admin", name="X", password=PASSWORD)
    with pytest.raises(InvalidInput, match="Unknown staff role 'customer'"):
        staff.add_staff(session, ADMIN, email="c@example.test", role="customer", name="X", password=PASSWORD)
    with pytest.raises(InvalidInput, match="is not an email address"):
        staff.add_staff(session, ADMIN, email="not-an-email", role="admin", name="X", password=PASSWORD)
    with pytest.raises(NotFound):
        staff.set_role(session, ADMIN, "ghost@example.test", "admin")


def test_only_admins_manage_staff_and_tokens(session, agent):
    with pytest.raises(Forbidden, match="Desk agents cannot add staff members"):
        staff.add_staff(session, agent, email="x@example.test", role="admin", name="X", password=PASSWORD)
    with pytest.raises(Forbidden):
        staff.set_role(session, agent, agent.label, "admin")
    with pytest.raises(Forbidden):
        tokens.create_token(session, agent, agent.label)
    assert session.get(User, agent.user_id).role == UserRole.DESK_AGENT


def test_every_staff_change_is_audited_with_before_and_after_but_never_the_hash(session, agent):
    staff.set_role(session, ADMIN, agent.label, "fleet_manager")
    staff.reset_password(session, ADMIN, agent.label, "Another-Good-Phrase-7")
    entries = session.scalars(select(AuditEntry).where(AuditEntry.entity_id == str(agent.user_id))
                              .order_by(AuditEntry.id)).all()
    actions = [e.action for e in entries]
    assert actions == ["staff.created", "staff.role_changed", "staff.password_reset"]
    role_change = entries[1].changes
    assert role_change["role"] == {"before": "desk_agent", "after": "fleet_manager"}
    assert entries[2].changes["password_hash"] == {"changed": True}
    assert all("argon2" not in str(e.changes) for e in entries)
    assert entries[1].actor_label.startswith("cli:")


def test_a_token_carries_its_owners_role_and_can_be_revoked(session, agent):
    token, plain = tokens.create_token(session, ADMIN, agent.label, expires_days=30)
    assert plain.startswith("fdk_") and len(plain) > 40
    assert tokens.authenticate(session, plain).role == UserRole.DESK_AGENT
    assert token.token_hash != plain.encode()
    tokens.revoke_token(session, ADMIN, token.id)
    with pytest.raises(tokens.Unauthenticated, match="expired or was revoked"):
        tokens.authenticate(session, plain)


def test_an_expired_or_unknown_token_is_refused(session, agent):
    now = datetime(2030, 1, 1, tzinfo=UTC)
    _, plain = tokens.create_token(session, ADMIN, agent.label, expires_days=1, now=now)
    assert tokens.authenticate(session, plain, now=now + timedelta(hours=23)).user_id == agent.user_id
    with pytest.raises(tokens.Unauthenticated):
        tokens.authenticate(session, plain, now=now + timedelta(days=1, seconds=1))
    for forged in ("", "fdk_" + "A" * 43, "Bearer x", "fdk_' OR 1=1 --", "fdk_" + "x" * 5000):
        with pytest.raises(tokens.Unauthenticated):
            tokens.authenticate(session, forged)


def test_a_disabled_owner_makes_the_token_useless(session, agent):
    _, plain = tokens.create_token(session, ADMIN, agent.label)
    staff.disable_staff(session, ADMIN, agent.label)
    with pytest.raises(tokens.Unauthenticated, match="disabled"):
        tokens.authenticate(session, plain)


def test_token_expiry_must_be_sane(session, agent):
    with pytest.raises(InvalidInput, match="1 to 730 days"):
        tokens.create_token(session, ADMIN, agent.label, expires_days=0)


def test_passwords_and_tokens_never_reach_the_logs(database_url, caplog):
    """Even with SQL echo and its parameters on, no plain password or token is ever logged."""
    engine = make_engine(database_url, echo="debug")
    caplog.set_level(logging.DEBUG)
    with engine.connect() as conn:
        outer = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        staff.add_staff(session, ADMIN, email="logs@example.test", role="admin", name="L", password=PASSWORD)
        staff.sign_in(session, "logs@example.test", PASSWORD)
        staff.sign_in(session, "logs@example.test", "Wrong-Secret-Phrase-1")
        _, plain = tokens.create_token(session, ADMIN, "logs@example.test")
        tokens.authenticate(session, plain)
        session.close()
        outer.rollback()
    engine.dispose()
    assert "INSERT INTO users" in caplog.text, "expected SQL echo to have logged the statements"
    for secret in (PASSWORD, "Wrong-Secret-Phrase-1", plain):
        assert secret not in caplog.text


def test_sql_looking_and_very_long_sign_in_input_is_harmless(session, agent):
    for email in ("' OR '1'='1", "agent@example.test' --", "x" * 100_000):
        assert staff.sign_in(session, email, "' OR '1'='1").message == staff.SIGN_IN_FAILED
    assert staff.sign_in(session, agent.label, "p" * 100_000).message == staff.SIGN_IN_FAILED
    assert session.scalar(select(User).where(User.id == agent.user_id)) is not None


def test_demo_staff_are_one_per_role_and_created_once(session):
    first = staff.ensure_demo_staff(session, ADMIN)
    again = staff.ensure_demo_staff(session, ADMIN)
    assert first == again
    assert {role for _, role, _ in first} == {"Desk agent", "Fleet manager", "Pricing analyst", "Admin"}
    for email, _, password in first:
        assert staff.sign_in(session, email, password).ok


def test_no_demo_staff_in_production_mode(session, monkeypatch):
    monkeypatch.setenv("FLEETDESK_ENV", "production")
    assert staff.ensure_demo_staff(session, ADMIN) == []
