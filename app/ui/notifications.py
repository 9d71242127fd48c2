"""Widgets of the Notifications page: message filters and list, a message as the customer saw it, resend,
the development mailbox, and the dead letters with replay."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.resources import session
from services import worker
from services.actors import Actor
from services.errors import FleetdeskError
from services.notifications import records

WHEN = st.column_config.DatetimeColumn("When", format="D MMM YYYY, HH:mm:ss")
STATUS_HELP = {"queued": "waiting to be sent (or to be tried again)", "sending": "going out now",
               "sent": "accepted by the provider", "failed": "given up; resend after fixing the cause",
               "unknown": "a worker stopped while sending it: ask the customer before resending"}


def message_filters() -> records.NotificationQuery:
    """The filter row; returns the query it describes."""
    with st.container(horizontal=True):
        search = st.text_input("Booking or recipient", max_chars=120, placeholder="FD… or name@…",
                               key="notifications-search")
        statuses = st.multiselect("Status", records.STATUSES, key="notifications-status",
                                  format_func=lambda s: s.title())
    return records.NotificationQuery(statuses=tuple(statuses), search=search)


def status_metrics(counts: dict[str, int]) -> None:
    with st.container(horizontal=True):
        for status in records.STATUSES:
            st.metric(status.title(), f"{counts.get(status, 0):,}", help=STATUS_HELP[status], border=True)


def messages_table(frame: pd.DataFrame, *, key: str) -> int | None:
    """The messages as a table; returns the id of the one the person selected."""
    event = st.dataframe(frame, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                         key=key, column_config={
                             "id": None, "created_at": WHEN,
                             "sent_at": st.column_config.DatetimeColumn("Sent", format="D MMM, HH:mm:ss"),
                             "booking": "Booking", "kind": "Message", "category": "Category", "channel": "Channel",
                             "language": "Lang.", "recipient": "To", "status": "Status", "attempts": "Tries",
                             "provider_id": "Provider id", "last_error": "Last error"})
    rows = event.selection.rows if event else []
    if rows:
        return int(frame.iloc[rows[0]]["id"])
    linked = st.query_params.get("message", "")  # a deep link: ?message=ID
    return int(linked) if linked.isdigit() else None


def message_view(notification_id: int, actor: Actor) -> None:
    """The message as the customer saw it (e-mail or SMS), its delivery record, and the resend button."""
    with session() as s:
        message = records.get_notification(s, notification_id)
    st.subheader(f"{message.kind.replace('_', ' ').capitalize()} · {message.channel}")
    st.caption(f"Status **{message.status}** after {message.attempts} tries · key `{message.idempotency_key}`"
               + (f" · provider id `{message.provider_id}`" if message.provider_id else ""))
    if message.last_error:
        st.warning(message.last_error)
    with st.container(border=True, key=f"message-{message.id}"):
        if message.subject is not None:
            st.markdown(f"**To:** {message.recipient}  \n**Subject:** {message.subject}")
            st.divider()
        else:
            st.markdown(f"**SMS to** {message.recipient}")
        st.text(message.body)
    if not actor.may("desk_agent") or message.status in ("queued", "sending"):
        return
    if st.button("Resend", key=f"resend-{message.id}", icon=":material/send:"):
        try:
            with session() as s:
                copy = records.resend(s, actor, message.id)
            st.success(f"Queued again as message {copy.id}; the worker sends it within seconds.")
        except FleetdeskError as error:
            st.error(str(error))


def mailbox_view() -> None:
    """What the development mailbox received, newest first."""
    with session() as s:
        frame = records.mailbox(s)
    if frame.empty:
        st.info("The development mailbox is empty. Confirm a booking at the walk-in desk and keep `fleetdesk "
                "worker` running (`make demo` starts it).")
        return
    st.caption("Messages the development channels stored instead of sending (FLEETDESK_EMAIL_CHANNEL / "
               "FLEETDESK_SMS_CHANNEL = mailbox).")
    st.dataframe(frame, hide_index=True, width="stretch", key="mailbox-table", column_config={
        "id": None, "notification_id": None, "received_at": WHEN, "medium": "Medium", "recipient": "To",
        "subject": "Subject", "body": st.column_config.TextColumn("Text", width="large")})


def dead_letters_view(actor: Actor) -> None:
    """Events the worker parked after repeated failures, each with its last error, and replay."""
    with session() as s:
        frame = worker.dead_letters(s)
        counts = worker.outbox_counts(s)
    st.caption(f"Outbox: {counts['waiting']:,} waiting · {counts['retrying']:,} being retried · "
               f"{counts['parked']:,} parked")
    if frame.empty:
        st.success("No dead letters: every event was handled.")
        return
    event = st.dataframe(frame, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                         key="dead-letters-table", column_config={
                             "id": "Event", "occurred_at": WHEN,
                             "parked_at": st.column_config.DatetimeColumn("Parked", format="D MMM, HH:mm"),
                             "aggregate_type": "About", "aggregate_id": "Id", "event_type": "Event type",
                             "attempts": "Tries", "last_error": st.column_config.TextColumn("Last error",
                                                                                          width="large")})
    rows = event.selection.rows if event else []
    linked = st.query_params.get("event", "")  # a deep link: ?event=ID
    if not rows and not linked.isdigit():
        st.caption("Select a dead letter to replay it once its cause is fixed.")
        return
    event_id = int(frame.iloc[rows[0]]["id"]) if rows else int(linked)
    if st.button(f"Replay event {event_id}", key=f"replay-{event_id}", type="primary", icon=":material/replay:"):
        try:
            with session() as s:
                worker.replay_dead_letter(s, actor, event_id)
            st.success(f"Event {event_id} is queued again; the worker picks it up within seconds.")
        except FleetdeskError as error:
            st.error(str(error))
