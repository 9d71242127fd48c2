"""One vehicle in detail: photos and specs, where it is, its coming weeks as a timeline, and its telematics history.

Times are drawn in the vehicle's branch time zone (as wall-clock times, so every browser shows the same).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from app.resources import basemap_style, branch_list, session
from app.ui.maps import vehicle_deck
from services import maintenance, vehicles
from services.maintenance import ServiceStatus
from services.vehicles import VehicleView

STATUS_BADGES = {"available": "green", "rented": "blue", "maintenance": "orange", "in_transit": "violet",
                 "retired": "gray"}
# What a bar on the timeline is, and its colour: the same status reads differently in different lanes.
TIMELINE_COLOURS = {
    "booking pending": "#f2c45a", "booking confirmed": "#1f77b4", "booking picked up": "#0b3d6b",
    "booking completed": "#9bb7d4", "booking no show": "#d62728",
    "maintenance scheduled": "#ff8c00", "maintenance in progress": "#b35900", "maintenance completed": "#f5c38a",
    "transfer planned": "#b39ddb", "transfer in transit": "#6a3d9a", "transfer arrived": "#d6c9ec",
}
LANES = ["Bookings", "Maintenance", "Transfers"]
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=])")


def header(vehicle: VehicleView) -> None:
    st.header(f"{vehicle.plate} · {_md(vehicle.make)} {_md(vehicle.model)} ({vehicle.year})", divider="gray")
    colour = STATUS_BADGES.get(vehicle.status.value, "gray")
    reason = f" — {_md(vehicle.status_reason)}" if vehicle.status_reason else ""
    st.markdown(f":{colour}-badge[{vehicle.status.label}]{reason}")


def overview(vehicle: VehicleView, service: ServiceStatus) -> None:
    """Photos, specs and the service clock beside a small map of where the car is."""
    left, right = st.columns([3, 2])
    with left:
        if vehicle.image_urls:
            st.image(list(vehicle.image_urls), width=220)
        else:
            st.caption(":material/no_photography: No photos yet; add image URLs with Edit.")
        specs, state = st.columns(2)
        specs.markdown(
            f"**VIN** `{vehicle.vin}`  \n**Type** {_md(vehicle.type_name)} ({vehicle.vehicle_type}) · {vehicle.seats} "
            f"seats  \n**Gearbox** {vehicle.transmission} · **Fuel** {vehicle.fuel_type}  \n"
            f"**Daily rate** {vehicle.daily_rate:,.2f} {vehicle.currency}  \n"
            f"**In the fleet since** {vehicle.created_at.astimezone(vehicle.zone):%d %b %Y}")
        where = f"{vehicle.branch_code} · {_md(vehicle.branch_name)}" if vehicle.branch_code else "on the road"
        seen = (f"{vehicle.last_seen_at.astimezone(vehicle.zone):%d %b %Y %H:%M}" if vehicle.last_seen_at
                else "never reported")
        state.markdown(f"**Branch** {where}  \n**Odometer** {vehicle.odometer_km:,} km · **Fuel** "
                       f"{vehicle.fuel_level}%  \n**Last telematics** {seen}  \n{service_line(vehicle, service)}")
    with right:
        position = (vehicle.lat, vehicle.lon) if vehicle.lat is not None else None
        branch = ((vehicle.branch_lat, vehicle.branch_lon, vehicle.branch_code) if vehicle.branch_code else None)
        if position is None and branch is None:
            st.caption("No position reported yet and no branch: nothing to show on a map.")
        else:
            st.pydeck_chart(vehicle_deck(status=vehicle.status.value, plate=vehicle.plate, position=position,
                                         branch=branch, trail=pd.DataFrame(columns=["lat", "lon"]),
                                         basemap=basemap_style(), branches=branch_list()),
                            height=300, key=f"vehicle-map-{vehicle.id}")
            st.caption(("Large dot: where it last reported (coloured by status). " if position
                        else "It has not reported a position yet. ")
                       + ("Dark dot: its branch; faint dots: the other branches." if branch
                          else "Faint dots: branches."))


def service_line(vehicle: VehicleView, service: ServiceStatus) -> str:
    state = (":red[**overdue for service**]" if service.due else ":orange[**due for service soon**]"
             if service.urgency >= maintenance.DUE_SOON else "service not due yet")
    since = (f"last {vehicle.last_service_at.astimezone(vehicle.zone):%d %b %Y}" if vehicle.last_service_at
             else "never serviced here")
    return (f"**Service** {state} ({since}): {service.km_since:,} of {service.interval_km:,} km, "
            f"{service.days_since:,.0f} of {service.interval_days:,} days")


def timeline(vehicle: VehicleView) -> None:
    """Bookings, maintenance and transfers for the coming weeks, today marked."""
    weeks = st.columns([1, 2])[0].select_slider("Weeks ahead", options=[1, 2, 4, 6, 8, 12], value=4,
                                                key=f"timeline-weeks-{vehicle.id}")
    now = datetime.now(UTC)
    since, until = now - timedelta(days=2), now + timedelta(weeks=weeks)
    with session() as s:
        items = vehicles.vehicle_timeline(s, vehicle.id, since, until)
    if items.empty:
        st.info(f"Nothing planned for {vehicle.plate} in the next {weeks} weeks: no bookings, maintenance or "
                "transfers.")
    st.altair_chart(timeline_chart(items, since, until, now, vehicle), width="stretch", height=240)
    if not items.empty:
        st.caption(f"{len(items)} item{'s' if len(items) > 1 else ''}; times in {vehicle.timezone}. Hover a bar for "
                   "its details.")


def timeline_chart(items: pd.DataFrame, since: datetime, until: datetime, now: datetime,
                   vehicle: VehicleView) -> alt.LayerChart:
    zone = vehicle.zone

    def local(values):
        return pd.to_datetime(values, utc=True).dt.tz_convert(zone).dt.tz_localize(None)

    data = items.copy()
    if not data.empty:
        data["what"] = (data["lane"].str.rstrip("s").str.lower() + " " + data["status"].str.replace("_", " "))
        data["start"] = local(data["start_at"].clip(lower=since))
        data["end"] = local(data["end_at"].clip(upper=until))
        data["from"] = local(data["start_at"]).dt.strftime("%a %d %b %H:%M")
        data["to"] = local(data["end_at"]).dt.strftime("%a %d %b %H:%M")
    else:
        data = pd.DataFrame(columns=["lane", "ref", "what", "start", "end", "from", "to", "detail"])
    present = [what for what in TIMELINE_COLOURS if what in set(data["what"])]
    domain = [pd.Timestamp(since).tz_convert(zone).tz_localize(None),
              pd.Timestamp(until).tz_convert(zone).tz_localize(None)]
    base = alt.Chart(data).encode(
        y=alt.Y("lane:N", title=None, scale=alt.Scale(domain=LANES), axis=alt.Axis(labelFontWeight="bold")),
    )
    bars = base.mark_bar(cornerRadius=3, height=22).encode(
        x=alt.X("start:T", title=None, scale=alt.Scale(domain=domain), axis=alt.Axis(format="%d %b", tickCount="day")),
        x2="end:T",
        color=alt.Color("what:N", title=None, scale=alt.Scale(domain=present, range=[TIMELINE_COLOURS[w]
                                                                                      for w in present]),
                        legend=alt.Legend(orient="bottom", columns=4) if present else None),
        tooltip=[alt.Tooltip("ref:N", title="Ref"), alt.Tooltip("what:N", title="What"),
                 alt.Tooltip("from:N", title="From"), alt.Tooltip("to:N", title="To"),
                 alt.Tooltip("detail:N", title="Detail")],
    )
    labels = base.mark_text(align="left", dx=4, color="white", fontSize=10, clip=True).encode(
        x="start:T", text="ref:N")
    today = pd.DataFrame({"t": [pd.Timestamp(now).tz_convert(zone).tz_localize(None)], "label": ["now"]})
    rule = alt.Chart(today).mark_rule(color="#d62728", strokeDash=[4, 3], strokeWidth=2).encode(x="t:T")
    mark = alt.Chart(today).mark_text(color="#d62728", dy=-6, align="left", dx=3, fontWeight="bold").encode(
        x="t:T", text="label:N", y=alt.value(0))
    return alt.layer(bars, labels, rule, mark)


def telematics(vehicle: VehicleView) -> None:
    """Fuel and odometer over time, and where the readings were taken."""
    days = st.segmented_control("Period", [1, 7, 30, 90], default=7, format_func=lambda d: f"{d} days" if d > 1
                                else "24 hours", key=f"telematics-days-{vehicle.id}") or 7
    now = datetime.now(UTC)
    with session() as s:
        readings = vehicles.telematics_history(s, vehicle.id, now - timedelta(days=days), now + timedelta(minutes=5))
    if readings.empty:
        st.info(f"No telematics readings from {vehicle.plate} in the last {days} days. Readings arrive with "
                "`fleetdesk telematics ingest FILE`.")
        return
    readings = readings.assign(time=pd.to_datetime(readings["recorded_at"], utc=True).dt.tz_convert(vehicle.zone)
                               .dt.tz_localize(None))
    fuel, odometer = st.columns(2)
    ticks = "%H:%M" if days == 1 else "%d %b"
    fuel.altair_chart(_line(readings, "fuel_level", "Fuel (%)", alt.Scale(domain=[0, 100]), ticks),
                      width="stretch", height=240)
    odometer.altair_chart(_line(readings, "odometer_km", "Odometer (km)", alt.Scale(zero=False), ticks),
                          width="stretch", height=240)
    positions = readings.dropna(subset=["lat", "lon"])
    st.pydeck_chart(vehicle_deck(status=vehicle.status.value, plate=vehicle.plate,
                                 position=(float(positions.iloc[-1]["lat"]), float(positions.iloc[-1]["lon"])),
                                 branch=None, trail=positions, basemap=basemap_style(), branches=branch_list()),
                    height=320, key=f"telematics-map-{vehicle.id}")
    st.caption(f"{len(readings):,} readings (thinned evenly when there are many); the line is the path between them.")
    with st.expander("Readings"):
        st.dataframe(readings[["time", "fuel_level", "odometer_km", "lat", "lon"]].iloc[::-1], hide_index=True,
                     width="stretch", column_config={
                         "time": st.column_config.DatetimeColumn("Recorded", format="D MMM YYYY, HH:mm"),
                         "fuel_level": "Fuel %", "odometer_km": st.column_config.NumberColumn("Odometer (km)",
                                                                                             format="localized"),
                         "lat": st.column_config.NumberColumn("Lat", format="%.5f"),
                         "lon": st.column_config.NumberColumn("Lon", format="%.5f")})


def _line(readings: pd.DataFrame, column: str, title: str, scale: alt.Scale, ticks: str) -> alt.Chart:
    return alt.Chart(readings).mark_line(point=len(readings) < 60, interpolate="step-after").encode(
        x=alt.X("time:T", title=None, axis=alt.Axis(format=ticks, labelOverlap=True)),
        y=alt.Y(f"{column}:Q", title=title, scale=scale),
        tooltip=[alt.Tooltip("time:T", format="%d %b %H:%M"), alt.Tooltip(f"{column}:Q", format=",")],
    ).properties(title=title)


def service_for(vehicle: VehicleView) -> ServiceStatus:
    with session() as s:
        return maintenance.service_status(s, vehicle.id)


def _md(value: str | None) -> str:
    """Text typed by people, shown literally: no links, images, colours or icons smuggled in as Markdown."""
    if not value:
        return "—"
    return _MARKDOWN.sub(r"\\\1", " ".join(value.split()))
