"""Who is signed in to this browser session, and for how long they may stay idle.

A reload or a second tab is a new Streamlit session. So a password sign-in also starts a web session on the server,
whose token the browser keeps in a cookie; a new Streamlit session resumes it from `st.context.cookies`.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import suppress

import streamlit as st
from sqlalchemy.exc import OperationalError

from app import auth
from services.actors import Actor
from services.web_sessions import LIFETIME, TOUCH_EVERY

ACTOR_KEY = "actor"
SEEN_KEY = "last_seen"
TOKEN_KEY = "web_session"
TOUCHED_KEY = "web_session_touched"
FORGET_KEY = "forget_web_session"  # the cookie this session started with is spent: clear it, never resume it
REASON_KEY = "signed_out_reason"
COOKIE = "fleetdesk_session"
TOUCH_SECONDS = TOUCH_EVERY.total_seconds()  # no use asking the server more often than it writes


def idle_timeout_seconds() -> int:
    return int(float(os.environ.get("FLEETDESK_IDLE_MINUTES", "30")) * 60)


def current_actor() -> Actor:
    """The signed-in staff member; pages only run when there is one (the router sees to it)."""
    actor = st.session_state.get(ACTOR_KEY)
    if actor is None:
        st.error("You are not signed in.")
        st.stop()
    return actor


def signed_in() -> Actor | None:
    """The signed-in actor, or None — resuming the browser's web session, signing out one who stayed idle too long."""
    actor = st.session_state.get(ACTOR_KEY)
    if actor is None:
        return _resume_from_cookie()
    now = time.time()
    token = st.session_state.get(TOKEN_KEY)
    if now - st.session_state.get(SEEN_KEY, now) > idle_timeout_seconds():
        # Idle in this tab, but another tab of the same web session may have kept it alive: the server knows.
        if token is None or (actor := auth.resume_web_session(token, idle_timeout_seconds())) is None:
            sign_out(reason=f"You were signed out after {idle_timeout_seconds() // 60} minutes without activity.")
            return None
        st.session_state[ACTOR_KEY] = actor
        st.session_state[TOUCHED_KEY] = now
    elif token is not None and now - st.session_state.get(TOUCHED_KEY, 0) >= TOUCH_SECONDS:
        if not auth.touch_web_session(token):
            sign_out(reason="You were signed out: this session was ended in another tab or by an admin. "
                            "Sign in again to go on.")
            return None
        st.session_state[TOUCHED_KEY] = now
    st.session_state[SEEN_KEY] = now
    return actor


def _resume_from_cookie() -> Actor | None:
    token = st.context.cookies.get(COOKIE)  # empty under AppTest, which has no browser
    if not token or st.session_state.get(FORGET_KEY):
        return None
    actor = auth.resume_web_session(token, idle_timeout_seconds())
    if actor is None:
        st.session_state[FORGET_KEY] = True
        return None
    sign_in(actor, web_session=token)
    return actor


def sign_in(actor: Actor, *, web_session: str | None = None) -> None:
    """Sign this browser session in; with a web session's token, reloads and other tabs stay signed in too."""
    now = time.time()
    st.session_state[ACTOR_KEY] = actor
    st.session_state[SEEN_KEY] = now
    st.session_state.pop(REASON_KEY, None)
    st.session_state.pop(FORGET_KEY, None)
    if web_session:
        st.session_state[TOKEN_KEY] = web_session
        st.session_state[TOUCHED_KEY] = now


def sign_out(reason: str | None = None) -> None:
    """Sign out here, end the web session on the server, and have the sign-in screen clear the browser's cookie."""
    if token := st.session_state.get(TOKEN_KEY):
        # the database may be away: still sign out here; the session then ends on the server when it goes idle
        with suppress(OperationalError):
            auth.end_web_session(token)
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    st.session_state[FORGET_KEY] = True
    if reason:
        st.session_state[REASON_KEY] = reason


def keep_session_cookie() -> None:
    """While signed in with a password, have the browser keep the web session's token for reloads and new tabs."""
    if token := st.session_state.get(TOKEN_KEY):
        _write_cookie(f"{COOKIE}={token}; Max-Age={int(LIFETIME.total_seconds())}")


def forget_session_cookie() -> None:
    """After a sign-out, or when the browser's token no longer resumes anything, delete the cookie."""
    if st.session_state.get(FORGET_KEY):
        _write_cookie(f"{COOKIE}=; Max-Age=0")


def _write_cookie(cookie: str) -> None:
    # Streamlit cannot set a cookie from Python. st.html runs this script in the app's own document (no iframe),
    # once per distinct body; the token is URL-safe base64, and json.dumps quotes it for the script.
    cookie = json.dumps(f"{cookie}; Path=/; SameSite=Strict")
    st.html(f"<script>document.cookie = {cookie} + (location.protocol === 'https:' ? '; Secure' : '');</script>",
            unsafe_allow_javascript=True)
