"""Signing staff in: password sign-in, or OIDC through `st.login` when `[auth]` is configured in secrets."""

from __future__ import annotations

import streamlit as st

from app.resources import session
from services import staff, web_sessions
from services.actors import Actor


def sso_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:
        return False
    except Exception:  # a malformed secrets file must not lock everyone out of the password sign-in
        return False


def password_sign_in(email: str, password: str) -> staff.SignInResult:
    with session() as s:
        return staff.sign_in(s, email, password)


def start_web_session(actor: Actor) -> str:
    """A token for the browser to keep, so that a reload or a second tab stays signed in."""
    with session() as s:
        return web_sessions.start(s, actor.user_id)


def resume_web_session(token: str, idle_seconds: float) -> Actor | None:
    with session() as s:
        return web_sessions.resume(s, token, idle_seconds)


def touch_web_session(token: str) -> bool:
    with session() as s:
        return web_sessions.touch(s, token)


def end_web_session(token: str) -> None:
    with session() as s:
        web_sessions.end(s, token)


def sso_actor() -> Actor | None:
    """The staff member the identity provider vouched for, matched by email; their role comes from our database."""
    if not sso_configured() or not getattr(st.user, "is_logged_in", False):
        return None
    email = st.user.get("email")
    if not email:
        return None
    with session() as s:
        return staff.actor_for_email(s, email)
