"""Shared, cached resources of the Streamlit app: the engine, sessions, and cached readers."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from db.config import database_target
from db.session import make_engine, session_scope
from services import branches, fleet

BASEMAP_STYLE = "https://basemaps.cartocdn.com/gl/positron-gl-style/style.json"


@st.cache_resource
def get_engine() -> Engine:
    """One pooled engine per process; pre-ping lets it recover when the database comes back."""
    return make_engine(database_target().url)


@contextmanager
def session() -> Iterator[Session]:
    """One session per action."""
    with session_scope(get_engine()) as s:
        yield s


@st.cache_data(ttl=600, show_spinner=False)
def basemap_style() -> str | None:
    """The basemap style URL when its server answers (FLEETDESK_BASEMAP=auto|on|off), else None."""
    mode = os.environ.get("FLEETDESK_BASEMAP", "auto").lower()
    if mode == "off":
        return None
    if mode == "on":
        return BASEMAP_STYLE
    try:
        with urllib.request.urlopen(BASEMAP_STYLE, timeout=1.5) as response:
            return BASEMAP_STYLE if response.status == 200 else None
    except OSError:
        return None


@st.cache_data(ttl=15, show_spinner=False)
def vehicle_types() -> list[str]:
    from db import queries

    with session() as s:
        return queries.vehicle_type_codes(s)


@st.cache_data(ttl=60, show_spinner=False)
def location_choices():
    from db import queries

    with session() as s:
        return queries.location_choices(s)


@st.cache_data(ttl=15, show_spinner="Loading the fleet…")
def fleet_snapshot(statuses: tuple[str, ...], type_codes: tuple[str, ...], location_ids: tuple[int, ...]):
    with session() as s:
        fleet_filter = fleet.make_filter(s, statuses=statuses, type_codes=type_codes, location_ids=location_ids)
        return fleet.fleet_snapshot(s, fleet_filter)


@st.cache_data(ttl=30, show_spinner=False)
def branch_list():
    with session() as s:
        return branches.list_branches(s)


@st.cache_data(ttl=15, show_spinner=False)
def branch_detail(location_id: int):
    with session() as s:
        return branches.branch_detail(s, location_id)


@st.cache_data(ttl=15, show_spinner=False)
def vehicle_table(search: str, statuses: tuple[str, ...], type_codes: tuple[str, ...], location_ids: tuple[int, ...],
                  include_retired: bool):
    from services import vehicles

    with session() as s:
        fleet.make_filter(s, statuses=statuses, type_codes=type_codes, location_ids=location_ids)
        return vehicles.list_vehicles(s, search=search, statuses=statuses, type_codes=type_codes,
                                      location_ids=location_ids, include_retired=include_retired)


@st.cache_data(ttl=60, show_spinner=False)
def vehicle_plates() -> list[str]:
    """Plates of the vehicles that are not retired, for pickers."""
    from services import vehicles

    with session() as s:
        return list(vehicles.list_vehicles(s, limit=50_000)["plate"])


@st.cache_data(ttl=30, show_spinner="Checking service intervals…")
def service_queue():
    from services import maintenance

    with session() as s:
        return maintenance.service_queue(s)


@st.cache_data(ttl=15, show_spinner=False)
def open_maintenance_blocks():
    from services import maintenance

    with session() as s:
        return maintenance.open_blocks(s)


def forget_vehicle_data() -> None:
    """After a change to vehicles or maintenance, the cached readers must not show the old state."""
    for reader in (vehicle_table, vehicle_plates, service_queue, open_maintenance_blocks, fleet_snapshot,
                   branch_list, branch_detail):
        reader.clear()


@st.cache_data(ttl=60, show_spinner=False)
def search_places():
    """Branches with position and time zone, for the availability search."""
    from services import availability

    with session() as s:
        return availability.search_places(s)


@st.cache_data(ttl=600, show_spinner=False)
def time_zone_near(lat: float, lon: float) -> str:
    from services import availability

    with session() as s:
        return availability.time_zone_near(s, lat, lon)
