"""Maintenance widgets: the due-for-service queue, the scheduling form, and the open blocks with their actions.

Times are typed and shown in the vehicle's branch time zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pandas as pd
import streamlit as st

from app.resources import session
from app.ui import desk
from app.ui.maps import STATUS_LABELS
from services import maintenance, vehicles
from services.actors import Actor
from services.errors import FleetdeskError
from services.maintenance import BlockView

FORM = "maintenance-new-"
PREFILLED = "maintenance-prefilled"
SERVICE_REASON = "Scheduled service"


def metrics(queue: pd.DataFrame, blocks: pd.DataFrame) -> None:
    overdue = queue["urgency"] >= 1
    with st.container(horizontal=True, key="maintenance-counts"):
        st.metric("Overdue for service", f"{int(overdue.sum()):,}", border=True)
        st.metric("Overdue, nothing booked", f"{int((overdue & queue['block_id'].isna()).sum()):,}", border=True)
        st.metric("Due soon", f"{int((~overdue).sum()):,}", border=True)
        st.metric("In the workshop", f"{int((blocks['status'] == 'in_progress').sum()):,}", border=True)
        st.metric("Scheduled (30 days)", f"{int((blocks['status'] == 'scheduled').sum()):,}", border=True)


def due_queue(queue: pd.DataFrame) -> str | None:
    """The queue, most urgent first; selecting a car fills the scheduling form with a service for it."""
    shown = queue.assign(
        urgency=(queue["urgency"] * 100).round().astype(int),
        km=queue["km_since"].map("{:,}".format) + " / " + queue["interval_km"].map("{:,}".format),
        days=queue["days_since"].round().astype(int).map("{:,}".format) + " / "
        + queue["interval_days"].map("{:,}".format),
        status=queue["status"].map(STATUS_LABELS), branch_code=queue["branch_code"].fillna("on the road"),
        booked=[desk.short_time(at, zone) + (" (in progress)" if state == "in_progress" else "") if at is not None else ""
                for at, zone, state in zip(queue["block_start"].where(queue["block_start"].notna(), None),
                                           queue["timezone"], queue["block_status"], strict=True)],
    )
    selection = st.dataframe(
        shown, hide_index=True, width="stretch", height=320, on_select="rerun", selection_mode="single-row",
        key="maintenance-queue",
        column_order=["plate", "make", "model", "vehicle_type", "branch_code", "status", "urgency", "due_by", "km",
                      "days", "booked"],
        column_config={
            "plate": "Plate", "make": "Make", "model": "Model", "vehicle_type": "Type", "branch_code": "Branch",
            "status": "Status",
            "urgency": st.column_config.ProgressColumn("Interval used", min_value=0, max_value=100, format="%d%%",
                                                       help="The larger of km and days used since the last service"),
            "due_by": st.column_config.TextColumn("Due by", help="Which interval runs out first: km or date"),
            "km": "km since service / interval", "days": "days since service / interval",
            "booked": "Maintenance booked",
        },
    )
    rows = selection.selection.rows
    return str(shown.iloc[rows[0]]["plate"]) if rows else None


def prefill(plate: str) -> None:
    """Fill the scheduling form for this car — once per selection, so what the person types next is kept."""
    if st.session_state.get(PREFILLED) == plate:
        return
    st.session_state[PREFILLED] = plate
    st.session_state[FORM + "plate"] = plate
    st.session_state[FORM + "reason"] = SERVICE_REASON


def schedule_form(actor: Actor, plates: list[str]) -> BlockView | None:
    """Schedule a block; a collision is refused with the bookings in the way, under the form."""
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    with st.form("maintenance-schedule", clear_on_submit=False):
        plate = st.selectbox("Vehicle *", plates, index=None, placeholder="Type or pick a plate", key=FORM + "plate")
        start_day, start_time, end_day, end_time = st.columns(4)
        first = start_day.date_input("From *", tomorrow, min_value=tomorrow - timedelta(days=1), key=FORM + "from",
                                     format="DD/MM/YYYY")
        first_time = start_time.time_input("at", time(8, 0), key=FORM + "from-time", step=timedelta(minutes=15))
        last = end_day.date_input("Until *", tomorrow, min_value=tomorrow - timedelta(days=1), key=FORM + "until",
                                  format="DD/MM/YYYY")
        last_time = end_time.time_input("at ", time(17, 0), key=FORM + "until-time", step=timedelta(minutes=15))
        reason = st.text_input("What is to be done *", max_chars=500, key=FORM + "reason",
                               placeholder="e.g. Scheduled service; replace front tyres")
        st.caption("Times are the local time of the car's branch.")
        if not st.form_submit_button("Schedule", type="primary"):
            return None
    if not plate:
        st.error("Pick the vehicle to schedule.")
        return None
    try:
        with session() as s:
            vehicle = vehicles.find_vehicle(s, plate)
            zone = vehicle.zone
            block = maintenance.schedule_block(s, actor, vehicle.id, datetime.combine(first, first_time, zone),
                                               datetime.combine(last, last_time, zone), reason)
    except FleetdeskError as error:
        st.error(str(error), icon=":material/event_busy:")
        return None
    for key in [k for k in st.session_state if str(k).startswith(FORM)] + [PREFILLED]:
        st.session_state.pop(key, None)  # scheduled: the next one starts from an empty form
    return block


def blocks_table(blocks: pd.DataFrame) -> pd.Series | None:
    """Blocks in progress and coming up; returns the selected one."""
    shown = blocks.assign(
        starts=[desk.short_time(at, zone) for at, zone in zip(blocks["start_at"], blocks["timezone"], strict=True)],
        ends=[desk.short_time(at, zone) for at, zone in zip(blocks["end_at"], blocks["timezone"], strict=True)],
        state=blocks["status"].str.replace("_", " ").str.capitalize(),
        car=blocks["vehicle_status"].map(STATUS_LABELS),
    )
    selection = st.dataframe(
        shown, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
        key="maintenance-blocks",
        column_order=["id", "plate", "make", "model", "branch_code", "state", "starts", "ends", "reason", "car"],
        column_config={"id": st.column_config.NumberColumn("Block", format="#%d"), "plate": "Plate", "make": "Make",
                       "model": "Model", "branch_code": "Branch", "state": "Block status", "starts": "Starts",
                       "ends": "Ends", "reason": "Work", "car": "Car status"},
    )
    rows = selection.selection.rows
    return shown.iloc[rows[0]] if rows else None


def block_actions(actor: Actor, block: pd.Series) -> str | None:
    """Start, complete or cancel the selected block; returns what was done, for the flash message."""
    block_id, plate = int(block["id"]), block["plate"]
    st.markdown(f"**Block #{block_id}** · {plate} · {block['starts']} – {block['ends']}")
    act, cancel = st.columns(2)
    try:
        with act:
            if block["status"] == "scheduled":
                st.caption("When the car is handed to the workshop:")
                if st.button("Start now", key=f"start-{block_id}", type="primary", icon=":material/build:"):
                    with session() as s:
                        maintenance.start_block(s, actor, block_id)
                    return f"Block #{block_id} started; {plate} is in maintenance."
            else:
                with st.form(f"complete-{block_id}", clear_on_submit=False):
                    serviced = st.checkbox("A service was carried out (restarts its service clock)", value=True)
                    odometer = st.number_input("Odometer now (km), if you have it", min_value=0, step=1, value=None)
                    if st.form_submit_button("Complete", type="primary"):
                        with session() as s:
                            maintenance.complete_block(s, actor, block_id, serviced=serviced,
                                                       odometer_km=int(odometer) if odometer is not None else None)
                        return f"Block #{block_id} completed; {plate} is available again."
        with cancel, st.form(f"cancel-{block_id}", clear_on_submit=False):
            reason = st.text_input("Why cancel it? *", max_chars=500, key=f"cancel-reason-{block_id}")
            if st.form_submit_button("Cancel the block"):
                with session() as s:
                    maintenance.cancel_block(s, actor, block_id, reason)
                return f"Block #{block_id} cancelled."
    except FleetdeskError as error:
        st.error(str(error))
    return None

