"""Transfer widgets for the drivers' coordinator: the list, and depart / arrive / cancel for the selected one.

Times are shown in the origin branch's time zone."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import resources
from app.resources import session
from app.ui import desk
from services import transfers
from services.actors import Actor
from services.errors import FleetdeskError

FLASH_KEY = "transfers-flash"
TABLE_KEY = "transfer-table"
TABLE_VERSION = "transfer-table-version"
STATUS_LABELS = {"planned": "Planned", "in_transit": "In transit", "arrived": "Arrived", "cancelled": "Cancelled"}


@st.cache_data(ttl=10, show_spinner=False)
def _transfers(statuses: tuple[str, ...], location_id: int | None) -> pd.DataFrame:
    with session() as s:
        return transfers.list_transfers(s, statuses=statuses, location_id=location_id)


def flash(message: str) -> None:
    _transfers.clear()
    resources.forget_vehicle_data()
    # The rows move after a change, so a kept selection would be another transfer: a new table, nothing selected.
    st.session_state[TABLE_VERSION] = st.session_state.get(TABLE_VERSION, 0) + 1
    desk.flash(FLASH_KEY, message)


def show_flash() -> None:
    desk.show_flash(FLASH_KEY)


def filters() -> tuple[tuple[str, ...], int | None]:
    choices = resources.location_choices()
    labels = dict(zip(choices["id"], choices["code"] + " · " + choices["name"], strict=True))
    with st.container(horizontal=True):
        statuses = st.multiselect("Status", list(STATUS_LABELS), default=["planned", "in_transit"],
                                  format_func=STATUS_LABELS.get, key="transfer-status", placeholder="Every status")
        branch = st.selectbox("Branch (from or to)", list(labels), index=None, format_func=labels.get,
                              key="transfer-branch", placeholder="Every branch")
    return tuple(statuses), None if branch is None else int(branch)


def load(statuses: tuple[str, ...], location_id: int | None) -> pd.DataFrame:
    return _transfers(statuses, location_id)


def metrics(table: pd.DataFrame) -> None:
    with st.container(horizontal=True, key="transfer-counts"):
        st.metric("Planned", f"{int((table['status'] == 'planned').sum()):,}", border=True)
        st.metric("In transit", f"{int((table['status'] == 'in_transit').sum()):,}", border=True)
        st.metric("Cars moved by plans", f"{int(table['plan_id'].notna().sum()):,}", border=True)
        st.metric("Overdue", f"{int(table['overdue_minutes'].notna().sum()):,}", border=True,
                  help="Planned cars past their departure time, and cars on the road past their arrival time.")
    late = table[table["overdue_minutes"].notna()]
    if not late.empty:
        st.warning(f"{len(late)} transfer{'s are' if len(late) > 1 else ' is'} overdue: "
                   + "; ".join(f"{ref} ({plate}) {transfers.overdue_text(status, minutes).lower()}"
                               for ref, plate, status, minutes in late[["ref", "plate", "status", "overdue_minutes"]]
                               .head(5).itertuples(index=False))
                   + (f" and {len(late) - 5} more" if len(late) > 5 else "")
                   + ". Call the driver, or record the departure or arrival.",
                   icon=":material/schedule:")


def transfer_table(table: pd.DataFrame) -> pd.Series | None:
    shown = table.assign(
        state=table["status"].map(STATUS_LABELS),
        departs=[desk.short_time(at, zone) for at, zone in zip(table["depart_at"], table["timezone"], strict=True)],
        arrives=[desk.short_time(at, zone) for at, zone in zip(table["arrive_at"], table["timezone"], strict=True)],
        plan=table["plan_id"].map(lambda p: "" if pd.isna(p) else f"#{int(p)}"),
        late=[transfers.overdue_text(status, minutes)
              for status, minutes in zip(table["status"], table["overdue_minutes"], strict=True)],
    )
    selection = st.dataframe(
        shown, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
        key=f"{TABLE_KEY}-{st.session_state.get(TABLE_VERSION, 0)}",
        column_order=["ref", "state", "late", "plate", "make", "model", "vehicle_type", "from_code", "to_code",
                      "departs", "arrives", "distance_km", "cost", "plan"],
        column_config={"ref": "Transfer", "state": "Status", "plate": "Plate", "make": "Make", "model": "Model",
                       "vehicle_type": "Type", "from_code": "From", "to_code": "To", "departs": "Departs",
                       "arrives": "Arrives", "late": "Late", "distance_km": st.column_config.NumberColumn("km", format="%.1f"),
                       "cost": st.column_config.NumberColumn("Cost", format="%.2f"), "plan": "Plan"},
    )
    rows = selection.selection.rows
    return shown.iloc[rows[0]] if rows else None


def actions(actor: Actor, row: pd.Series) -> str | None:
    """Depart or arrive now, or cancel with a reason; returns what was done, for the flash message."""
    transfer_id, ref, plate = int(row["id"]), row["ref"], row["plate"]
    st.markdown(f"**{ref}** · {plate} · {row['from_code']} → {row['to_code']} · {row['state']}")
    try:
        if row["status"] == "planned":
            go, cancel = st.columns([1, 2])
            if go.button("Depart now", type="primary", icon=":material/local_shipping:", key=f"depart-{transfer_id}"):
                with session() as s:
                    transfers.depart(s, actor, transfer_id)
                return f"{ref} departed; {plate} is in transit to {row['to_code']}."
            with cancel, st.form(f"cancel-transfer-{transfer_id}", clear_on_submit=False):
                reason = st.text_input("Why cancel it? *", max_chars=500, key=f"transfer-cancel-reason-{transfer_id}")
                if st.form_submit_button("Cancel the transfer"):
                    with session() as s:
                        transfers.cancel(s, actor, transfer_id, reason)
                    return f"{ref} cancelled; {plate} stays at {row['from_code']}."
        elif row["status"] == "in_transit":
            if st.button("Arrived now", type="primary", icon=":material/where_to_vote:", key=f"arrive-{transfer_id}"):
                with session() as s:
                    transfers.arrive(s, actor, transfer_id)
                return f"{ref} arrived; {plate} is available at {row['to_code']}."
        else:
            st.caption("Nothing left to do for this transfer.")
    except FleetdeskError as error:
        st.error(str(error))
    return None

