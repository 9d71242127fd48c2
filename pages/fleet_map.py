"""Fleet map: every branch and vehicle, coloured by status, with counts and a table."""

import streamlit as st

from app import resources
from app.ui import filters, live
from app.ui.maps import STATUS_COLOURS, STATUS_LABELS, fleet_deck

st.title("Fleet map")

with st.container(horizontal=True):
    statuses = filters.status_filter()
    types = filters.type_filter()
    branches = filters.branch_filter()


@st.fragment(run_every=live.refresh_seconds())
def fleet_view(statuses: tuple[str, ...], types: tuple[str, ...], branches: tuple[int, ...]) -> None:
    """Counts, map and table; redrawn from fresh data when a car is picked up, returned, moved or serviced."""
    if live.fleet_changed("fleet-map"):
        resources.fleet_snapshot.clear()
    snapshot = resources.fleet_snapshot(statuses, types, branches)

    counts = dict(zip(snapshot.counts["status"], snapshot.counts["vehicles"], strict=True))
    with st.container(horizontal=True, key="status-counts"):
        st.metric("Vehicles shown", f"{snapshot.total:,}", border=True)
        for status, label in STATUS_LABELS.items():
            if status == "retired" and not counts.get(status):
                continue
            st.metric(label, f"{counts.get(status, 0):,}", border=True)

    if snapshot.total == 0 and (statuses or types or branches):
        st.info("No vehicle matches these filters. Clear a filter to see more of the fleet.")
    elif snapshot.total == 0:
        st.info("There are no vehicles yet. Load the demo company with `make demo` (or `fleetdesk demo-data`).")
    if snapshot.aggregated:
        st.caption(f"{snapshot.total:,} vehicles are shown per branch (circle size: cars on hand, colour: share "
                   "available, green high, red low). Filter by branch, type or status to see single cars.")
    else:
        legend = " ".join(
            f"<span style='color:rgb{tuple(STATUS_COLOURS[s])}'>●</span> {label}" for s, label in STATUS_LABELS.items()
        )
        st.caption(f"{legend} &nbsp; · circles: branches, sized by cars on hand", unsafe_allow_html=True)

    st.pydeck_chart(
        fleet_deck(snapshot.vehicles, snapshot.branches, aggregated=snapshot.aggregated,
                   basemap=resources.basemap_style()),
        height=560, key="fleet-map",
    )

    st.subheader("Vehicles")
    if snapshot.truncated:
        st.caption(f"The first {len(snapshot.vehicles):,} of {snapshot.total:,} vehicles, by branch; narrow the filters "
                   "to see the rest.")
    st.dataframe(
        snapshot.vehicles.assign(status=snapshot.vehicles["status"].map(STATUS_LABELS)),
        hide_index=True, width="stretch",
        column_order=["plate", "make", "model", "year", "vehicle_type", "status", "branch", "fuel_level",
                      "odometer_km", "last_seen_at"],
        column_config={
            "plate": "Plate", "make": "Make", "model": "Model", "year": st.column_config.NumberColumn("Year", format="%d"),
            "vehicle_type": "Type", "status": "Status", "branch": "Branch",
            "fuel_level": st.column_config.ProgressColumn("Fuel", min_value=0, max_value=100, format="%d%%"),
            "odometer_km": st.column_config.NumberColumn("Odometer (km)", format="localized"),
            "last_seen_at": st.column_config.DatetimeColumn("Last seen", format="D MMM YYYY, HH:mm"),
        },
    )
    live.caption()


fleet_view(tuple(statuses), tuple(types), tuple(branches))
