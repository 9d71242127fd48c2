"""Live staff screens: fragments that ask the cheap "what changed since" query every few seconds and redraw
from fresh data only when the fleet changed (FLEETDESK_LIVE_REFRESH_SECONDS, default 5; 0 turns it off)."""

from __future__ import annotations

import os

import streamlit as st

from app import resources
from services import changes


def refresh_seconds() -> float | None:
    """How often live screens look for changes; None when live refresh is off."""
    raw = os.environ.get("FLEETDESK_LIVE_REFRESH_SECONDS", "5")
    try:
        seconds = float(raw)
    except ValueError:
        return 5.0
    return seconds if seconds > 0 else None


def fleet_changed(screen: str) -> bool:
    """Whether vehicles, bookings or maintenance changed since this screen last looked, in this browser session.

    The first look only remembers where the outbox stands: the screen has just loaded everything.
    """
    key = f"live-cursor-{screen}"
    cursor = st.session_state.get(key)
    with resources.session() as s:
        if cursor is None:
            st.session_state[key] = changes.latest_cursor(s)
            return False
        found = changes.changes_since(s, cursor)
    st.session_state[key] = found.cursor
    return bool(found)


def caption() -> None:
    every = refresh_seconds()
    if every:
        st.caption(f":material/sync: Live: redrawn when the fleet changes (checked every {every:g} s).")
