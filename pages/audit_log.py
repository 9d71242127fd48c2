"""Admin: who changed what, and when — filtered by person, entity, action and time."""

from datetime import UTC, datetime, time, timedelta

import streamlit as st

from app.resources import session
from app.ui.session import current_actor
from services import audit

current_actor()
st.title("Audit log")

with session() as s:
    facets = audit.facets(s)
with st.container(horizontal=True):
    person = st.text_input("Person", placeholder="email contains…", max_chars=200, key="audit-person")
    entity = st.selectbox("Entity", facets["entity_types"], index=None, placeholder="Any", key="audit-entity")
    entity_id = st.text_input("Entity id", max_chars=64, key="audit-entity-id")
    action = st.selectbox("Action", facets["actions"], index=None, placeholder="Any", key="audit-action")
    today = datetime.now(UTC).date()
    period = st.date_input("Between", (today - timedelta(days=30), today), key="audit-period")

since = datetime.combine(period[0], time.min, tzinfo=UTC) if period else None
until = datetime.combine(period[-1], time.min, tzinfo=UTC) + timedelta(days=1) if period else None
with session() as s:
    entries = audit.search(s, audit.AuditQuery(actor=person, entity_type=entity or "", entity_id=entity_id,
                                               action=action or "", since=since, until=until))
st.caption(f"{len(entries):,} entries, newest first" + (" (the first 500)" if len(entries) == 500 else ""))
st.dataframe(entries, hide_index=True, width="stretch",
             column_config={"at": st.column_config.DatetimeColumn("When", format="D MMM YYYY, HH:mm:ss"),
                            "actor": "Who", "action": "Action", "entity_type": "Entity", "entity_id": "Id",
                            "changes": st.column_config.JsonColumn("Changes (before → after)")})
