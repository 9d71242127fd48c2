"""Who is signed in to this browser session, and for how long they may stay idle."""

from __future__ import annotations

import os
import time

import streamlit as st

from services.actors import Actor

ACTOR_KEY = "actor"
SEEN_KEY = "last_seen"


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
    """The signed-in actor, or None — signing out one who stayed idle too long."""
    actor = st.session_state.get(ACTOR_KEY)
    if actor is None:
        return None
    now = time.time()
    if now - st.session_state.get(SEEN_KEY, now) > idle_timeout_seconds():
        sign_out(reason=f"You were signed out after {idle_timeout_seconds() // 60} minutes without activity.")
        return None
    st.session_state[SEEN_KEY] = now
    return actor


def sign_in(actor: Actor) -> None:
    st.session_state[ACTOR_KEY] = actor
    st.session_state[SEEN_KEY] = time.time()
    st.session_state.pop("signed_out_reason", None)


def sign_out(reason: str | None = None) -> None:
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    if reason:
        st.session_state["signed_out_reason"] = reason
