"""Filter widgets shared by fleet screens; each owns its key and returns plain values."""

from __future__ import annotations

import streamlit as st

from app import resources
from app.ui.maps import STATUS_LABELS


def status_filter(key: str = "status") -> list[str]:
    return st.multiselect("Status", list(STATUS_LABELS), format_func=STATUS_LABELS.get, key=key,
                          placeholder="All but retired")


def type_filter(key: str = "vehicle_type") -> list[str]:
    return st.multiselect("Vehicle type", resources.vehicle_types(), key=key, placeholder="All types")


def branch_filter(key: str = "branch") -> list[int]:
    choices = resources.location_choices()
    labels = dict(zip(choices["id"], choices["code"] + " · " + choices["name"], strict=True))
    return st.multiselect("Branch", list(labels), format_func=labels.get, key=key, placeholder="All branches")
