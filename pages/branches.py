"""Branches: where they are, their hours and phone, the cars on hand by type — and one branch in detail."""

import streamlit as st

from app import resources
from app.ui.branch import render_branch_detail
from app.ui.maps import branch_overview_deck
from services.branches import search_branches

st.title("Branches")

overview = resources.branch_list()
if overview.empty:
    st.info("There are no branches yet. Load the demo company with `make demo` (or `fleetdesk demo-data`).")
    st.stop()
query = st.text_input("Find a branch", placeholder="Code, name or city", max_chars=100, key="branch-search")
shown = search_branches(overview, query)
st.caption(f"{len(shown):,} of {len(overview):,} branches · {int(shown['on_hand'].sum()) if len(shown) else 0:,} "
           "cars on hand. Select a row to open the branch.")

type_columns = [c for c in resources.vehicle_types() if c in shown.columns]
selection = st.dataframe(
    shown, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key="branch-table",
    column_order=["code", "name", "kind", "address", "hours", "contact_phone", "on_hand", *type_columns],
    column_config={"code": "Code", "name": "Branch", "kind": "Kind", "address": "Address", "hours": "Opening hours",
                   "contact_phone": "Phone", "on_hand": st.column_config.NumberColumn("Cars on hand"),
                   **{t: st.column_config.NumberColumn(t.title()) for t in type_columns}},
)

rows = selection.selection.rows
if rows:
    st.query_params["branch"] = shown.iloc[rows[0]]["code"]
opened = overview[overview["code"] == st.query_params.get("branch", "")]
if not opened.empty:
    render_branch_detail(resources.branch_detail(int(opened.iloc[0]["id"])), resources.basemap_style())
elif "branch" in st.query_params:
    st.warning(f"There is no branch {st.query_params['branch']!r}; pick one from the list.")
else:
    st.pydeck_chart(branch_overview_deck(shown, resources.basemap_style()), height=420, key="branches-map")
