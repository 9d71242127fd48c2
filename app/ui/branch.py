"""One branch in detail: contact, hours, cars on hand, the week's movements and its neighbours."""

from __future__ import annotations

import altair as alt
import streamlit as st

from app import resources
from app.ui.maps import STATUS_COLOURS, STATUS_LABELS, fleet_deck
from services.branches import WEEKDAYS, BranchDetail


def render_branch_detail(detail: BranchDetail, basemap: str | None) -> None:
    branch = detail.branch
    st.header(f"{branch['name']} · {branch['code']}", divider="gray")
    left, right = st.columns([3, 2])
    with left:
        state = ":green[open now]" if detail.open_now else ":red[closed now]"
        st.markdown(
            f"**{branch['kind'].title()}** · {branch['address']}  \n"
            f":material/call: {branch['contact_phone']} · :material/schedule: "
            f"{detail.local_time:%a %H:%M} local time ({branch['timezone']}), {state}"
        )
        cars = detail.cars
        by_status = cars.groupby("status")["cars"].sum()
        with st.container(horizontal=True):
            st.metric("Cars on hand", detail.on_hand, border=True)
            st.metric("Available", int(by_status.get("available", 0)), border=True)
            st.metric("In maintenance", int(by_status.get("maintenance", 0)), border=True)
            st.metric("Parking spaces", branch["parking_capacity"], border=True)
        if cars.empty:
            st.info("No cars are at this branch right now.")
        else:
            chart = alt.Chart(cars).mark_bar().encode(
                x=alt.X("cars:Q", title="Cars"),
                y=alt.Y("vehicle_type:N", title=None, sort=alt.SortField("rank")),
                color=alt.Color("status:N", title="Status",
                                scale=alt.Scale(domain=list(STATUS_COLOURS),
                                                range=[f"rgb{tuple(c)}" for c in STATUS_COLOURS.values()]),
                                legend=alt.Legend(labelExpr=_label_expr())),
                tooltip=["vehicle_type", "status", "cars"],
            ).properties(height=200, title="Cars on hand by type")
            st.altair_chart(chart, width="stretch", height=240)
    with right:
        st.markdown("**Opening hours**")
        st.dataframe({"Day": [d.title() for d in WEEKDAYS], "Hours": [detail.hours[d] for d in WEEKDAYS]},
                     hide_index=True, width="stretch")
    st.markdown("**Pick-ups and returns, next 7 days**")
    movements = detail.movements.melt("day", var_name="movement", value_name="bookings")
    st.altair_chart(
        alt.Chart(movements).mark_bar().encode(
            x=alt.X("day:T", title=None, timeUnit="yearmonthdate"), xOffset="movement:N",
            y=alt.Y("bookings:Q", title="Bookings"), color=alt.Color("movement:N", title=None),
            tooltip=["day:T", "movement", "bookings"],
        ).properties(height=200),
        width="stretch", height=240,
    )
    map_col, near_col = st.columns([3, 2])
    with map_col:
        snapshot = resources.fleet_snapshot((), (), (branch["id"],))
        st.pydeck_chart(fleet_deck(snapshot.vehicles, snapshot.branches, aggregated=False, basemap=basemap),
                        height=320, key="branch-map")
    with near_col:
        st.markdown("**Nearby branches (30 km)**")
        if detail.nearby.empty:
            st.caption("No other branch within 30 km.")
        else:
            st.dataframe(detail.nearby[["code", "name", "distance_km"]], hide_index=True, width="stretch",
                         column_config={"code": "Code", "name": "Branch",
                                        "distance_km": st.column_config.NumberColumn("km", format="%.1f")})


def _label_expr() -> str:
    cases = " ".join(f"datum.label == '{s}' ? '{label}' :" for s, label in STATUS_LABELS.items())
    return f"{cases} datum.label"
